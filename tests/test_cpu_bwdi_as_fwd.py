"""Backward-input at stride 1 with depth multiplier 1 runs the forward kernels on grad_output with
the weight rotated 180 degrees (kernels/cpu/dw2d.h, bwdi_as_fwd). Checks which calls take that
route (through _C.kernel_name), that they match the float64 reference on every ISA, layout and
dtype, that the calls it must not take (stride > 1, multiplier > 1, padding beyond the kernel's
extent) keep the backward-input kernels and are right too, and that set_cpu_bwdi_as_fwd(False)
turns it off."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dwconv
from dwconv import _C
from tolerances import assert_close

# (id, N, C, H, W, (kh, kw), stride, (pt, pb, pl, pr), dilation, m, runs the forward kernels)
CASES = [
    ("k3_same", 2, 19, 9, 21, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    ("k3_valid", 1, 18, 8, 19, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    ("k5_same", 2, 33, 12, 12, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),
    ("k7_same", 1, 40, 15, 17, (7, 7), (1, 1), (3, 3, 3, 3), (1, 1), 1, True),
    ("k2x4_same_asym", 1, 9, 8, 17, (2, 4), (1, 1), (0, 1, 1, 2), (1, 1), 1, True),
    ("k3_dil2_asym", 1, 18, 11, 13, (3, 3), (1, 1), (2, 1, 0, 3), (2, 2), 1, True),
    ("k31_large", 1, 17, 20, 40, (31, 31), (1, 1), (15, 15, 15, 15), (1, 1), 1, True),
    ("k1x7_row", 1, 16, 1, 35, (1, 7), (1, 1), (0, 0, 3, 3), (1, 1), 1, True),
    ("pad_at_extent", 1, 5, 6, 7, (3, 3), (1, 1), (2, 2, 2, 2), (1, 1), 1, True),
    # not taken: padding beyond the kernel's extent, stride 2, multiplier 2
    ("pad_beyond_extent", 1, 5, 6, 7, (3, 3), (1, 1), (3, 0, 0, 3), (1, 1), 1, False),
    ("stride2", 1, 17, 13, 10, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, False),
    ("stride1x2", 1, 6, 11, 13, (3, 5), (1, 2), (1, 1, 2, 2), (1, 1), 1, False),
    ("multiplier2", 2, 5, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, False),
]
IDS = [c[0] for c in CASES]


def _problem(case, dtype, channels_last):
    _, n, c, h, w, k, stride, pad, dil, m, _ = case
    x = torch.randn(n, c, h, w, dtype=dtype)
    wt = torch.randn(c * m, 1, *k, dtype=dtype)
    top, bottom, left, right = pad
    xr, wr = x.double().requires_grad_(), wt.double()
    ref = dwconv.reference.depthwise_conv2d(F.pad(xr, (left, right, top, bottom)), wr, None,
                                            stride, 0, dil)
    gy = torch.randn_like(ref)
    (gx_ref,) = torch.autograd.grad(ref, (xr,), gy)
    gy = gy.to(dtype)
    if channels_last:
        gy = gy.contiguous(memory_format=torch.channels_last)
    return x, wt, gy, gx_ref


def _bwdi(case, gy, wt, x_shape):
    _, _, _, _, _, _, stride, pad, dil, _, _ = case
    return torch.ops.dwconv.dw2d_bwdi(gy, wt, list(x_shape), list(stride), list(pad), list(dil))


def _name(case, channels_last, float64=False):
    _, n, c, h, w, k, stride, pad, dil, m, _ = case
    return _C.kernel_name("bwdi", [n, c, h, w], [c * m, 1, *k], list(stride), list(pad),
                          list(dil), channels_last, float64)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bwdi_route_matches_reference(case, channels_last, cpu_isa):
    runs = "fwd" if case[-1] else "bwdi"
    assert _name(case, channels_last).startswith(f"dw2d_{runs}_"), _name(case, channels_last)
    assert _name(case, channels_last).endswith(f"_{cpu_isa}")
    x, wt, gy, gx_ref = _problem(case, torch.float32, channels_last)
    gx = _bwdi(case, gy, wt, x.shape)
    assert gx.is_contiguous(memory_format=torch.channels_last if channels_last
                            else torch.contiguous_format)
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_input")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("k2x4_same_asym", "k3_dil2_asym")],
                         ids=lambda c: c[0])
def test_bwdi_route_other_dtypes(case, dtype):
    if dtype == torch.float64:
        assert _name(case, True, float64=True).startswith("dw2d_fwd_nhwc_")
    x, wt, gy, gx_ref = _problem(case, dtype, channels_last=True)
    gx = _bwdi(case, gy, wt, x.shape)
    assert gx.dtype == dtype
    baseline = None
    if dtype == torch.bfloat16:  # PyTorch's own backward-input in bfloat16, for the tolerance
        _, _, c, _, _, _, stride, pad, dil, _, _ = case
        xb = F.pad(x.double(), (pad[2], pad[3], pad[0], pad[1])).to(dtype).requires_grad_()
        yb = F.conv2d(xb, wt, None, stride, 0, dil, groups=c)
        (baseline,) = torch.autograd.grad(yb, (xb,), gy.contiguous())
        baseline = baseline[:, :, pad[0]:pad[0] + x.shape[2], pad[2]:pad[2] + x.shape[3]]
    assert_close(gx, gx_ref, backend="cpu", dtype=dtype, baseline=baseline)


def test_bwdi_route_off_runs_bwdi_kernels_with_the_same_result(bwdi_kernels):
    case = CASES[0]
    assert _name(case, True).startswith("dw2d_bwdi_nhwc_")
    x, wt, gy, gx_ref = _problem(case, torch.float32, channels_last=True)
    off = _bwdi(case, gy, wt, x.shape)
    _C.set_cpu_bwdi_as_fwd(True)
    assert _name(case, True).startswith("dw2d_fwd_nhwc_")
    on = _bwdi(case, gy, wt, x.shape)
    assert_close(off, gx_ref, backend="cpu", dtype=torch.float32, what="bwdi kernels")
    assert_close(on, gx_ref, backend="cpu", dtype=torch.float32, what="forward kernels")


def test_bwdi_route_in_autograd_and_gradcheck():
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, w: dwconv.depthwise_conv2d(x, w, padding="same", backend="cpu"), (x, w))
