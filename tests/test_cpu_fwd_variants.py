"""Every CPU forward kernel variant (kernels/cpu/dw2d_fwd.h) against the float64 reference.

Each case names the variant it must select (checked with _C.kernel_name) and is shaped to reach
that variant's border, tail and blocking paths: widths that are not a multiple of the vector
width, planes narrower than one vector, row blocks that overlap, channel tails, m=2, dilation,
asymmetric padding, few planes or rows (work split into bands/chunks). Runs on every ISA this
machine has (float32) and on the float64 kernels.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dwconv
from dwconv import _C
from tolerances import assert_close

# (id, variant, N, C, H, W, m, (kh, kw), (sh, sw), (pt, pb, pl, pr), (dh, dw))
CASES = [
    ("k3s1", "k3s1", 2, 20, 17, 50, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ("k3s1_narrow_m2", "k3s1", 1, 3, 9, 5, 2, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ("k3s1_asym_valid", "k3s1", 1, 33, 12, 41, 1, (3, 3), (1, 1), (0, 2, 2, 0), (1, 1)),
    ("k3s1_wide_rows", "k3s1", 1, 2, 30, 112, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ("k3s2", "k3s2", 2, 17, 19, 45, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    ("k3s2_asym_m2", "k3s2", 1, 9, 16, 70, 2, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1)),
    ("k5s1", "k5s1", 2, 24, 15, 38, 1, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),
    ("k5s1_m2_tail", "k5s1", 1, 5, 11, 23, 2, (5, 5), (1, 1), (1, 3, 4, 0), (1, 1)),
    ("k5s2", "k5s2", 2, 20, 21, 57, 1, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
    ("k7s1", "k7s1", 2, 18, 16, 28, 1, (7, 7), (1, 1), (3, 3, 3, 3), (1, 1)),
    ("k7s1_narrow", "k7s1", 1, 40, 7, 7, 1, (7, 7), (1, 1), (3, 3, 3, 3), (1, 1)),
    ("k7s2", "k7s2", 1, 20, 23, 61, 1, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1)),
    ("klarge_k13", "klarge", 1, 20, 24, 45, 1, (13, 13), (1, 1), (6, 6, 6, 6), (1, 1)),
    ("klarge_k31", "klarge", 1, 17, 33, 35, 1, (31, 31), (1, 1), (15, 15, 15, 15), (1, 1)),
    ("klarge_nonsquare_m2", "klarge", 1, 3, 20, 26, 2, (13, 15), (1, 1), (3, 9, 7, 2), (1, 1)),
    ("klarge_s2", "klarge", 1, 18, 30, 53, 1, (13, 13), (2, 2), (6, 6, 6, 6), (1, 1)),
    ("klarge_s3x1", "klarge", 1, 9, 30, 40, 1, (15, 13), (3, 1), (7, 7, 6, 6), (1, 1)),
    ("klarge_s1x3", "klarge", 1, 9, 30, 60, 1, (13, 13), (1, 3), (6, 6, 6, 6), (1, 1)),
    ("generic_k1", "generic", 2, 20, 9, 37, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
    ("generic_k2_same", "generic", 1, 17, 12, 33, 2, (2, 2), (1, 1), (0, 1, 0, 1), (1, 1)),
    ("generic_1x7", "generic", 1, 20, 10, 40, 1, (1, 7), (1, 1), (0, 0, 3, 3), (1, 1)),
    ("generic_7x1", "generic", 1, 20, 30, 19, 1, (7, 1), (1, 1), (3, 3, 0, 0), (1, 1)),
    ("generic_3x5_s2x1", "generic", 1, 11, 17, 39, 1, (3, 5), (2, 1), (1, 1, 2, 2), (1, 1)),
    ("generic_dil2", "generic", 2, 18, 20, 45, 1, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
    ("generic_dil2_s2_m2", "generic", 1, 5, 19, 50, 2, (3, 3), (2, 2), (1, 2, 3, 0), (2, 1)),
    ("generic_s3", "generic", 1, 20, 25, 80, 1, (3, 3), (3, 3), (1, 1, 1, 1), (1, 1)),
    ("generic_k9_dil", "generic", 1, 9, 40, 40, 1, (9, 9), (1, 2), (4, 4, 8, 8), (1, 2)),
    ("generic_k11", "generic", 1, 20, 15, 30, 1, (11, 11), (1, 1), (5, 5, 5, 5), (1, 1)),
]
IDS = [c[0] for c in CASES]


def _inputs(case, dtype, channels_last, bias):
    _, _, n, c, h, w, m, (kh, kw), *_ = case
    x = torch.randn(n, c, h, w, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(c * m, 1, kh, kw, dtype=dtype)
    b = torch.randn(c * m, dtype=dtype) if bias else None
    return x, weight, b


def _run(case, dtype, channels_last, bias):
    _, variant, *_, stride, pad, dil = case
    x, weight, b = _inputs(case, dtype, channels_last, bias)
    y = torch.ops.dwconv.dw2d_fwd(x, weight, b, list(stride), list(pad), list(dil))
    top, bottom, left, right = pad
    ref = dwconv.reference.depthwise_conv2d(F.pad(x, (left, right, top, bottom)), weight, b,
                                            stride=stride, padding=0, dilation=dil)
    assert_close(y, ref, backend="cpu", dtype=dtype)
    want = torch.channels_last if channels_last else torch.contiguous_format
    assert y.is_contiguous(memory_format=want)
    return variant, x, weight, stride, pad, dil


def _kernel(x, weight, stride, pad, dil, channels_last, float64):
    return _C.kernel_name("fwd", list(x.shape), list(weight.shape), list(stride), list(pad),
                          list(dil), channels_last, float64)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fwd_variant_float32(case, channels_last, cpu_isa, native_kernels):
    bias = IDS.index(case[0]) % 2 == 0  # half the cases with a bias
    variant, x, weight, stride, pad, dil = _run(case, torch.float32, channels_last, bias)
    layout = "nhwc" if channels_last else "nchw"
    assert _kernel(x, weight, stride, pad, dil, channels_last, False) == \
        f"dw2d_fwd_{layout}_{variant}_{cpu_isa}"


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fwd_variant_float64(case, channels_last, native_kernels):
    variant, x, weight, stride, pad, dil = _run(case, torch.float64, channels_last, True)
    layout = "nhwc" if channels_last else "nchw"
    assert _kernel(x, weight, stride, pad, dil, channels_last, True) == \
        f"dw2d_fwd_{layout}_{variant}_scalar"


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_fwd_large_batch_and_public_api(channels_last, cpu_isa):
    """More planes/rows than work items need splitting, through the public function."""
    x = torch.randn(3, 48, 20, 36)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(48, 1, 3, 3)
    b = torch.randn(48)
    y = dwconv.depthwise_conv2d(x, w, b, stride=1, padding=1, backend="cpu")
    assert_close(y, dwconv.reference.depthwise_conv2d(x, w, b, padding=1), backend="cpu",
                 dtype=torch.float32)


def test_fwd_same_bits_any_thread_count():
    """Work items never overlap, so the result does not depend on how they are split."""
    x = torch.randn(1, 5, 40, 70)
    w = torch.randn(5, 1, 7, 7)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = dwconv.depthwise_conv2d(x, w, padding=3, backend="cpu")
        torch.set_num_threads(max(before, 2))
        many = dwconv.depthwise_conv2d(x, w, padding=3, backend="cpu")
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)
