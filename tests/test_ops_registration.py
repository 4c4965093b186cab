"""The torch.library side: opcheck on every op, fake kernels on the meta device, torch.compile
without graph breaks, torch.export, asymmetric padding through the raw ops."""

import pytest
import torch
import torch.nn.functional as F

import dwconv
from dwcase import layout_as
from tolerances import assert_close

# (input layout, input shape, weight shape, stride, padding (t, b, l, r), dilation, bias)
SAMPLES = [
    ("nchw", (2, 3, 7, 8), (3, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True),
    ("channels_last", (2, 4, 9, 6), (8, 1, 3, 2), (2, 1), (0, 2, 1, 0), (1, 2), False),
    ("sliced", (1, 5, 6, 6), (5, 1, 5, 5), (1, 1), (2, 2, 2, 2), (1, 1), True),
]


def _sample(layout, xs, ws, stride, padding, dilation, bias, requires_grad=False):
    x = layout_as(torch.randn(xs), layout).requires_grad_(requires_grad)
    w = torch.randn(ws, requires_grad=requires_grad)
    b = torch.randn(ws[0], requires_grad=requires_grad) if bias else None
    return x, w, b, list(stride), list(padding), list(dilation)


def _out_shape(x, w, stride, padding, dilation):
    return dwconv.reference.depthwise_conv2d(
        F.pad(x.detach(), (padding[2], padding[3], padding[0], padding[1])), w.detach(),
        stride=stride, dilation=dilation).shape


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s[0])
def test_opcheck_every_op(sample):
    x, w, b, stride, padding, dilation = _sample(*sample, requires_grad=True)
    ops = torch.ops.dwconv
    torch.library.opcheck(ops.dw2d_fwd, (x, w, b, stride, padding, dilation))
    shape = _out_shape(x, w, stride, padding, dilation)
    gy = layout_as(torch.randn(shape), sample[0])
    out = layout_as(torch.empty(shape), sample[0])
    torch.library.opcheck(ops.dw2d_fwd_out, (x.detach(), w.detach(), b, stride, padding, dilation),
                          {"out": out})
    torch.library.opcheck(ops.dw2d_bwdi, (gy, w.detach(), list(x.shape), stride, padding,
                                          dilation))
    torch.library.opcheck(ops.dw2d_bwdw, (gy, x.detach(), list(w.shape[2:]), stride, padding,
                                          dilation))
    torch.library.opcheck(ops.dw2d_bwd, (gy, x.detach(), w.detach(), stride, padding, dilation))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s[0])
def test_raw_ops_asymmetric_padding(sample):
    """The ops take (top, bottom, left, right) padding; every pass matches the reference."""
    x, w, b, stride, padding, dilation = _sample(*sample)
    ops = torch.ops.dwconv
    refs = [t.double().requires_grad_() for t in (x, w)]
    ref = dwconv.reference.depthwise_conv2d(
        F.pad(refs[0], (padding[2], padding[3], padding[0], padding[1])), refs[1],
        None if b is None else b.double(), stride=stride, dilation=dilation)
    gy = torch.randn(ref.shape)
    rgx, rgw = torch.autograd.grad(ref, refs, gy.double())
    kw = dict(backend="cpu", dtype=torch.float32)
    assert_close(ops.dw2d_fwd(x, w, b, stride, padding, dilation), ref, **kw)
    assert_close(ops.dw2d_bwdi(gy, w, list(x.shape), stride, padding, dilation), rgx,
                 what="grad_input", **kw)
    assert_close(ops.dw2d_bwdw(gy, x, list(w.shape[2:]), stride, padding, dilation), rgw,
                 what="grad_weight", **kw)


def test_meta_device_matches_real_metadata():
    """Fake kernels give the real kernels' shapes and memory formats (channels_last included)."""
    x = torch.randn(2, 6, 9, 10).contiguous(memory_format=torch.channels_last)
    w = torch.randn(12, 1, 3, 3)
    real = dwconv.depthwise_conv2d(x, w, None, 2, 1, backend="cpu")
    meta = torch.ops.dwconv.dw2d_fwd(x.to("meta"), w.to("meta"), None, [2, 2], [1, 1, 1, 1],
                                     [1, 1])
    assert meta.shape == real.shape and meta.stride() == real.stride()


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.dw = dwconv.nn.DepthwiseConv2d(8, 16, 3, padding=1, backend="cpu")
        self.dw2 = dwconv.nn.DepthwiseConv2d(16, 16, (1, 5), stride=2, padding="valid")

    def forward(self, x):
        return self.dw2(torch.relu(self.dw(x)))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
def test_torch_compile_fullgraph(memory_format):
    torch._dynamo.reset()
    net = TinyNet()
    x = torch.randn(2, 8, 10, 12).contiguous(memory_format=memory_format).requires_grad_()
    expected = net(x)
    expected_grads = torch.autograd.grad(expected.sum(), (x, net.dw.weight))
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")  # fails on a graph break
    y = compiled(x)
    grads = torch.autograd.grad(y.sum(), (x, net.dw.weight))
    assert y.stride() == expected.stride()
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    for a, e in zip(grads, expected_grads):
        torch.testing.assert_close(a, e, rtol=0, atol=0)
    explanation = torch._dynamo.explain(TinyNet())(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_torch_compile_dynamic_shapes():
    """Fake kernels work on symbolic shapes: one compiled graph serves several input sizes."""
    torch._dynamo.reset()
    net = TinyNet()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager", dynamic=True)
    for shape in [(2, 8, 10, 12), (3, 8, 14, 9), (1, 8, 7, 7)]:
        x = torch.randn(shape, requires_grad=True)
        y = compiled(x)
        (gx,) = torch.autograd.grad(y.sum(), x)
        expected = net(x)
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
        torch.testing.assert_close(gx, torch.autograd.grad(expected.sum(), x)[0], rtol=0, atol=0)


def test_torch_export():
    net = TinyNet().eval()
    x = torch.randn(2, 8, 10, 12)
    exported = torch.export.export(net, (x,))
    targets = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert "dwconv.dw2d_fwd.default" in targets, targets
    torch.testing.assert_close(exported.module()(x), net(x), rtol=0, atol=0)


def test_backend_registry_and_build_info():
    assert dwconv.backends()["cpu"] is None and dwconv.backends()["torch"] is None
    assert {"cpu", "torch"} <= set(dwconv.available_backends())
    info = dwconv.build_info()
    assert info["cpu_isa"] in info["cpu_isas_supported"]
    assert set(info["cpu_isas_supported"]) <= set(info["cpu_isas_compiled"])
    assert "scalar" in info["cpu_isas_supported"]
