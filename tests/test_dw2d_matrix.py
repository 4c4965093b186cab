"""Curated correctness matrix of the cpu backend: output and all gradients against the float64
reference, for every kernel shape family, geometry edge case, memory layout, dtype and ISA."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

import dwconv
from dwcase import HALF, Case, check_case, layout_as
from tolerances import assert_close

# One line per thing worth covering; ISAs and layouts are crossed only where it matters.
CASES = [
    Case(k=(1, 1), padding=0),                                           # pointwise taps
    Case(c=17, h=8, w=8, k=(2, 2), padding="same"),                      # even k: asymmetric same
    Case(c=3, h=13, w=13, m=2, k=(3, 3), padding=1),                     # MobileNet 3x3 s1, m=2
    Case(c=19, h=13, w=13, k=(3, 3), stride=2, padding=1),               # 3x3 s2, prime sizes
    Case(c=24, h=12, w=15, k=(5, 5), padding=2),                         # EfficientNet 5x5 s1
    Case(c=7, h=17, w=11, k=(5, 5), stride=2, padding=2, m=2),           # 5x5 s2
    Case(c=20, h=14, w=14, k=(7, 7), padding=3),                         # ConvNeXt 7x7
    Case(c=9, h=7, w=23, k=(1, 7), padding=(0, 3)),                      # 1x7
    Case(c=9, h=23, w=7, k=(7, 1), padding=(3, 0), bias=False),          # 7x1, no bias
    Case(c=6, h=11, w=13, k=(3, 5), stride=(1, 2), padding=(1, 2), dilation=(2, 1)),
    Case(n=1, c=3, h=37, w=33, k=(31, 31), padding=15),                  # RepLKNet 31x31
    Case(c=5, h=16, w=17, k=(3, 3), stride=3, padding=0),                # stride 3
    Case(c=11, h=12, w=13, k=(3, 3), padding="same", dilation=2),        # dilation 2, same
    Case(c=4, h=11, w=11, k=(5, 5), padding="valid", m=2),               # valid
    Case(c=7, h=1, w=13, k=(3, 3), padding=1),                           # H = 1
    Case(c=6, h=11, w=1, k=(3, 3), padding=1, stride=2),                 # W = 1
    Case(c=1, h=5, w=7, k=(3, 3), padding=(0, 2)),                       # C = 1
    Case(n=0, c=4, h=6, w=6),                                            # batch 0
    Case(n=3, c=37, h=5, w=37, k=(3, 3), padding=1),                     # vector tails in C and W
    Case(c=13, h=9, w=10, k=(4, 2), stride=(2, 3), padding=(2, 1), dilation=(1, 2)),
    # wide enough in W (NCHW) and C (NHWC) for full vectors plus tails on the fast paths
    Case(c=35, h=9, w=45, k=(3, 3), stride=2, padding=1),
    Case(c=35, h=10, w=41, k=(5, 5), padding=2),
    Case(n=1, c=33, h=11, w=38, m=2, k=(5, 5), stride=2, padding=2),
    Case(n=1, c=33, h=12, w=35, k=(7, 7), padding=3, bias=False),
    Case(n=1, c=17, h=40, w=40, k=(31, 31), padding=15),
    Case(n=1, c=17, h=34, w=35, k=(13, 13), padding=6, dilation=2),
]
LAYOUTS = ["nchw", "channels_last"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_float32_every_isa(case, layout, cpu_isa):
    check_case(case.with_(layout=layout))


NON_CONTIGUOUS = [
    Case(c=6, h=9, w=11, layout="sliced"),
    Case(c=6, h=9, w=11, k=(5, 5), padding=2, layout="transposed"),
    Case(c=18, h=8, w=8, m=2, layout="channels_last", grad_layout="sliced"),
    Case(c=6, h=9, w=11, stride=2, layout="nchw", grad_layout="sliced"),
    Case(c=6, h=9, w=11, layout="sliced", grad_layout="channels_last"),
]


@pytest.mark.parametrize("case", NON_CONTIGUOUS, ids=str)
def test_non_contiguous(case, cpu_isa):
    check_case(case)


FLOAT64_CASES = [CASES[i] for i in (1, 3, 9, 10, 13, 17)]


@pytest.mark.parametrize("layout", LAYOUTS + ["sliced"])
@pytest.mark.parametrize("case", FLOAT64_CASES, ids=str)
def test_float64(case, layout):
    check_case(case.with_(layout=layout), dtype=torch.float64)


HALF_CASES = [CASES[i] for i in (2, 3, 6, 9)]


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS + ["transposed"])
@pytest.mark.parametrize("case", HALF_CASES, ids=str)
def test_half(case, layout, dtype):
    check_case(case.with_(layout=layout), dtype=dtype)


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_other_backends(backend):
    check_case(CASES[5].with_(layout="channels_last"), backend=backend)


@pytest.mark.parametrize("layout", ["nchw", "channels_last", "sliced"])
def test_output_memory_format_follows_input(layout):
    x = layout_as(torch.randn(2, 8, 10, 10), layout)
    w = torch.randn(16, 1, 3, 3)
    y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
    expected = F.conv2d(x, w, padding=1, groups=8)
    for fmt in (torch.contiguous_format, torch.channels_last):
        assert y.is_contiguous(memory_format=fmt) == expected.is_contiguous(memory_format=fmt)
    assert y.stride() == expected.stride()


def test_unbatched_input(cpu_isa):
    """[C, H, W] input gives a [C*m, H', W'] output and [C, H, W] gradient, like nn.Conv2d."""
    x = torch.randn(6, 9, 10, requires_grad=True)
    w = torch.randn(12, 1, 3, 3, requires_grad=True)
    y = dwconv.depthwise_conv2d(x, w, None, 1, "same", backend="cpu")
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    ref = dwconv.reference.depthwise_conv2d(x64, w64, padding="same")
    assert y.shape == ref.shape == (12, 9, 10)
    assert_close(y, ref, backend="cpu", dtype=torch.float32)
    g = torch.randn(ref.shape)
    for name, a, e in zip(("grad_input", "grad_weight"), torch.autograd.grad(y, (x, w), g),
                          torch.autograd.grad(ref, (x64, w64), g.double())):
        assert a.shape == e.shape
        assert_close(a, e, backend="cpu", dtype=torch.float32, what=name)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_property_random_configs(data):
    """Random geometry within small bounds: any valid config matches the reference."""
    kh, kw = data.draw(st.integers(1, 7)), data.draw(st.integers(1, 7))
    sh, sw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    dh, dw = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    if data.draw(st.booleans()) and (sh, sw) == (1, 1):
        padding = data.draw(st.sampled_from(["same", "valid"]))
        ph = pw = 0
    else:
        ph, pw = data.draw(st.integers(0, kh)), data.draw(st.integers(0, kw))
        padding = (ph, pw)
    # the input must hold the dilated kernel after padding
    h = data.draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 20))
    w = data.draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 20))
    case = Case(n=data.draw(st.integers(0, 3)), c=data.draw(st.integers(1, 40)), h=h, w=w,
                m=data.draw(st.integers(1, 3)), k=(kh, kw), stride=(sh, sw), padding=padding,
                dilation=(dh, dw), bias=data.draw(st.booleans()),
                layout=data.draw(st.sampled_from(["nchw", "channels_last", "sliced", "transposed"])))
    check_case(case)


def test_nan_inf_propagate_like_pytorch(cpu_isa):
    for layout in ("nchw", "channels_last"):
        x = torch.randn(2, 19, 12, 12)
        x[0, 0, 3, 3] = float("nan")
        x[0, 1, 5, 6] = float("inf")
        x[1, 18, 0, 0] = float("-inf")
        x[1, 2, 7, 7] = float("inf")
        x[1, 2, 7, 8] = float("-inf")  # inf - inf inside one window: NaN
        x = layout_as(x, layout)
        w = torch.randn(19, 1, 3, 3)
        w[3, 0, 1, 1] = float("inf")
        y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
        r = F.conv2d(x, w, padding=1, groups=19)
        assert torch.equal(y.isnan(), r.isnan()), f"{layout}: NaN positions differ"
        assert torch.equal(y.isinf(), r.isinf()), f"{layout}: Inf positions differ"
        assert torch.equal(y.isposinf(), r.isposinf())
        finite = r.isfinite()
        torch.testing.assert_close(y[finite], r[finite], rtol=1e-4, atol=1e-4)
