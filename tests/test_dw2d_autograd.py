"""Autograd of the cpu backend: gradcheck, partial gradients, determinism, thread-count
independence, and the out= argument."""

import pytest
import torch

import dwconv
from dwcase import Case, layout_as, make_inputs
from tolerances import assert_close

GRADCHECK_CASES = [
    Case(n=2, c=3, h=6, w=7, m=2, k=(3, 3), stride=1, padding=1),
    Case(n=1, c=4, h=7, w=6, k=(2, 3), stride=(2, 1), padding="valid", dilation=(1, 2),
         layout="channels_last"),
    Case(n=2, c=2, h=5, w=5, k=(3, 3), padding="same", dilation=2, bias=False,
         layout="transposed"),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=str)
def test_gradcheck_float64(case):
    x, w, b = make_inputs(case, torch.float64)
    inputs = (x, w) if b is None else (x, w, b)

    def fn(*t):
        return dwconv.depthwise_conv2d(*t, stride=case.stride, padding=case.padding,
                                       dilation=case.dilation, backend="cpu")
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=False)


@pytest.mark.parametrize("wanted", ["input", "weight", "bias"])
def test_partial_gradients(wanted):
    """Only the requested gradient is computed, and it is right."""
    x = torch.randn(2, 6, 8, 9, requires_grad=wanted == "input")
    w = torch.randn(6, 1, 3, 3, requires_grad=wanted == "weight")
    b = torch.randn(6, requires_grad=wanted == "bias")
    i = ["input", "weight", "bias"].index(wanted)
    y = dwconv.depthwise_conv2d(x, w, b, padding=1, backend="cpu")
    (grad,) = torch.autograd.grad(y, (x, w, b)[i], torch.ones_like(y))
    refs = [t.detach().double().requires_grad_(t.requires_grad) for t in (x, w, b)]
    r = dwconv.reference.depthwise_conv2d(*refs, padding=1)
    (expected,) = torch.autograd.grad(r, refs[i], torch.ones_like(r))
    assert_close(grad, expected, backend="cpu", dtype=torch.float32, what=f"grad_{wanted}")


def test_graph_only_when_a_gradient_is_wanted():
    """A call under no_grad, or on tensors none of which requires grad, records no graph node
    (it skips the autograd wrapper) and computes the same bits as one that records."""
    x = torch.randn(2, 6, 8, 9, requires_grad=True)
    w = torch.randn(6, 1, 3, 3, requires_grad=True)
    gy = torch.randn(2, 6, 8, 9)
    recorded = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
    with torch.no_grad():
        plain = [dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu"),
                 torch.ops.dwconv.dw2d_bwdi(gy, w, x.shape, (1, 1), (1, 1, 1, 1), (1, 1)),
                 torch.ops.dwconv.dw2d_bwdw(gy, x, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1))]
    plain.append(dwconv.depthwise_conv2d(x.detach(), w.detach(), padding=1, backend="cpu"))
    assert recorded.grad_fn is not None
    assert all(t.grad_fn is None and not t.requires_grad for t in plain)
    assert torch.equal(plain[0], recorded.detach()) and torch.equal(plain[3], plain[0])
    gx, gw = torch.autograd.grad(recorded, (x, w), gy)
    assert torch.equal(gx, plain[1]) and torch.equal(gw, plain[2])


def test_double_backward_raises_clearly():
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through dw2d_bwdi"):
        gx.sum().backward()


def _all_passes(layout, m=1):
    """Output, grad_input, grad_weight of a problem big enough to split over threads."""
    x = layout_as(torch.randn(4, 24, 30, 30), layout).requires_grad_()
    w = torch.randn(24 * m, 1, 5, 5, requires_grad=True)
    y = dwconv.depthwise_conv2d(x, w, padding=2, backend="cpu")
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    return y.detach(), gx, gw


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_backward_weight_deterministic(layout, cpu_isa):
    runs = []
    for _ in range(3):
        torch.manual_seed(0)
        runs.append(_all_passes(layout, m=2))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b), "results differ bitwise between identical runs"


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_thread_count_does_not_change_results(layout):
    before = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            results[threads] = _all_passes(layout)
    finally:
        torch.set_num_threads(before)
    for name, a, b in zip(("output", "grad_input", "grad_weight"), results[1], results[2]):
        assert torch.equal(a, b), f"{name} differs between 1 and 2 threads"


# ----------------------------------------------------------------------------------- out=
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_out_reuses_buffer(layout, cpu_isa):
    x = layout_as(torch.randn(2, 8, 9, 9), layout)
    w, b = torch.randn(16, 1, 3, 3), torch.randn(16)
    out = torch.empty(2, 16, 5, 5).contiguous(memory_format=torch.channels_last
                                               if layout == "channels_last" else
                                               torch.contiguous_format)
    for _ in range(2):
        x.normal_()
        y = dwconv.depthwise_conv2d(x, w, b, stride=2, padding=1, out=out, backend="cpu")
        assert y.data_ptr() == out.data_ptr()
        assert_close(out, dwconv.reference.depthwise_conv2d(x, w, b, 2, 1), backend="cpu",
                     dtype=torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_out_non_contiguous_or_other_format(dtype):
    x, w = torch.randn(2, 4, 6, 6, dtype=dtype), torch.randn(4, 1, 3, 3, dtype=dtype)
    out = layout_as(torch.empty(2, 4, 6, 6, dtype=dtype), "sliced")
    dwconv.depthwise_conv2d(x, w, padding=1, out=out, backend="cpu")
    expected = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
    assert torch.equal(out, expected)


def test_out_unbatched():
    x, w = torch.randn(4, 6, 6), torch.randn(8, 1, 3, 3)
    out = torch.empty(8, 6, 6)
    y = dwconv.depthwise_conv2d(x, w, padding=1, out=out, backend="cpu")
    assert y.shape == (8, 6, 6) and y.data_ptr() == out.data_ptr()
    assert torch.equal(out, dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu"))


def test_out_wrong_shape_or_dtype():
    x, w = torch.randn(2, 4, 6, 6), torch.randn(4, 1, 3, 3)
    with pytest.raises(ValueError, match=r"out must be a torch.float32 tensor of shape "
                                         r"\(2, 4, 6, 6\).*got torch.float32 \(2, 4, 5, 5\)"):
        dwconv.depthwise_conv2d(x, w, padding=1, out=torch.empty(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"out must be a torch.float32 .*got torch.float64"):
        dwconv.depthwise_conv2d(x, w, padding=1, out=torch.empty(2, 4, 6, 6, dtype=torch.float64))


def test_out_refuses_when_grad_required():
    x, w = torch.randn(2, 4, 6, 6), torch.randn(4, 1, 3, 3, requires_grad=True)
    out = torch.empty(2, 4, 6, 6)
    with pytest.raises(RuntimeError, match="out=.*don't support automatic differentiation"):
        dwconv.depthwise_conv2d(x, w, padding=1, out=out)
    with torch.no_grad():
        dwconv.depthwise_conv2d(x, w, padding=1, out=out)
