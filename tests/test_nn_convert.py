"""dwconv.nn.DepthwiseConv2d and dwconv.convert(): drop-in for nn.Conv2d(groups=C)."""

import copy

import pytest
import torch
import torchvision
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

import dwconv
from dwconv.nn import DepthwiseConv2d
from tolerances import assert_close


class CountDwconvCalls(TorchDispatchMode):
    """Counts calls of the dwconv forward op (proves converted layers run dwconv's kernels)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.ops.dwconv.dw2d_fwd.default
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name,depthwise_layers", [("mobilenet_v2", 17), ("convnext_tiny", 18)])
def test_convert_torchvision_model(name, depthwise_layers):
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double())
        assert dwconv.convert(model) == depthwise_layers
        assert sum(type(m) is DepthwiseConv2d for m in model.modules()) == depthwise_layers
        assert not any(type(m) is nn.Conv2d and m.groups == m.in_channels and m.groups > 1
                       for m in model.modules())
        scale = ref.abs().max()  # random-init networks can have tiny outputs: compare relatively
        for memory_format in (torch.contiguous_format, torch.channels_last):
            with CountDwconvCalls() as counter:
                y = model(x.contiguous(memory_format=memory_format))
            assert counter.calls == depthwise_layers
            assert_close(y / scale, ref / scale, backend="cpu", dtype=torch.float32)


def test_convert_replaces_only_depthwise_and_shares_parameters():
    model = nn.Sequential(
        nn.Conv2d(4, 8, 1),                                     # pointwise: kept
        nn.Conv2d(8, 8, 3, padding=1, groups=8),                # depthwise: replaced
        nn.Sequential(nn.Conv2d(8, 16, 5, padding=2, groups=8, bias=False),  # m=2: replaced
                      nn.ReLU()),
        nn.Conv2d(16, 16, 3, padding=1, groups=4),              # grouped, not depthwise: kept
        nn.Conv2d(16, 16, 3, padding=1, groups=16, padding_mode="reflect"),  # replaced
        nn.ConvTranspose2d(16, 16, 3, groups=16),               # not a Conv2d: kept
    )
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        ref = copy.deepcopy(model).double()(x.double())
        params = {name: p for name, p in model.named_parameters()}
        assert dwconv.convert(model) == 3
        assert [type(m).__name__ for m in (model[0], model[1], model[2][0], model[3], model[4],
                                           model[5])] == [
            "Conv2d", "DepthwiseConv2d", "DepthwiseConv2d", "Conv2d", "DepthwiseConv2d",
            "ConvTranspose2d"]
        for name, p in model.named_parameters():
            assert p is params[name], f"{name} is not the same Parameter after convert()"
        assert model[4].padding_mode == "reflect" and model[2][0].bias is None
        assert_close(model(x), ref, backend="cpu", dtype=torch.float32)
        assert dwconv.convert(model) == 0  # already converted


def _pair(m=2, **kw):
    """An nn.Conv2d(groups=C) and a DepthwiseConv2d with the same configuration and parameters."""
    torch.manual_seed(1)
    conv = nn.Conv2d(6, 6 * m, groups=6, **kw)
    dw = DepthwiseConv2d(6, 6 * m, **kw)
    dw.load_state_dict(conv.state_dict())
    return conv, dw


def test_state_dict_loads_both_ways():
    conv, dw = _pair(kernel_size=3, padding=1)
    assert conv.state_dict().keys() == dw.state_dict().keys()
    torch.manual_seed(2)
    other = DepthwiseConv2d(6, 12, 3, padding=1)
    other.load_state_dict(conv.state_dict())
    assert torch.equal(other.weight, conv.weight) and torch.equal(other.bias, conv.bias)
    fresh = nn.Conv2d(6, 12, 3, padding=1, groups=6)
    fresh.load_state_dict(other.state_dict())
    assert torch.equal(fresh.weight, other.weight) and torch.equal(fresh.bias, other.bias)
    x = torch.randn(2, 6, 7, 7)
    with torch.no_grad():
        assert_close(other(x), fresh.double()(x.double()), backend="cpu", dtype=torch.float32)


def test_same_init_as_conv2d():
    for kw in (dict(kernel_size=3), dict(kernel_size=(1, 7), bias=False), dict(kernel_size=5)):
        torch.manual_seed(3)
        conv = nn.Conv2d(8, 16, groups=8, **kw)
        torch.manual_seed(3)
        dw = DepthwiseConv2d(8, 16, **kw)
        for name, p in conv.named_parameters():
            assert torch.equal(p, getattr(dw, name)), f"{name} initialised differently ({kw})"
        assert dw.weight.shape == (16, 1) + tuple(conv.kernel_size)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"], ids=str)
def test_module_matches_conv2d(padding_mode, padding):
    kw = dict(kernel_size=(3, 4) if padding == "same" else 3, padding=padding,
              padding_mode=padding_mode)
    conv, dw = _pair(**kw)
    x = torch.randn(2, 6, 8, 9)
    x64 = x.double().requires_grad_()
    conv64 = copy.deepcopy(conv).double()
    ref = conv64(x64)
    g = torch.randn(ref.shape)
    ref_grads = torch.autograd.grad(ref, (x64, conv64.weight, conv64.bias), g.double())
    x.requires_grad_()
    y = dw(x)
    grads = torch.autograd.grad(y, (x, dw.weight, dw.bias), g)
    assert_close(y, ref, backend="cpu", dtype=torch.float32)
    for name, a, e in zip(("grad_input", "grad_weight", "grad_bias"), grads, ref_grads):
        assert_close(a, e, backend="cpu", dtype=torch.float32, what=name)


def test_module_strided_dilated_unbatched_and_dtype():
    conv, dw = _pair(m=1, kernel_size=(5, 3), stride=(2, 1), padding=(2, 2), dilation=(1, 2))
    x = torch.randn(6, 11, 10)
    with torch.no_grad():
        assert_close(dw(x), copy.deepcopy(conv).double()(x.double()), backend="cpu",
                     dtype=torch.float32)
    conv, dw = _pair(m=1, kernel_size=3, padding=2, padding_mode="reflect")
    with torch.no_grad():
        assert_close(dw(x), copy.deepcopy(conv).double()(x.double()), backend="cpu",
                     dtype=torch.float32)
    dw64 = DepthwiseConv2d(6, 6, 3, dtype=torch.float64)
    assert dw64.weight.dtype == torch.float64 and dw64(torch.randn(1, 6, 5, 5).double()).dtype \
        == torch.float64
    assert "DepthwiseConv2d(6, 6, kernel_size=(3, 3)" in repr(dw64)
