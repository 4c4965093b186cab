"""The packed path (kernels/cpu/dw2d_packed.h): NCHW passes that transpose L-channel tiles, run
the NHWC kernels on them and transpose back, and channels_last large-kernel forwards that copy
such tiles out of the NHWC tensor. Checks which passes take it (through
_C.kernel_name), every pass against the float64 reference on each SIMD ISA (partial channel
tiles, planes of one pixel or narrower than a vector, strides, dilation, bias, batches that the
backward-weight splits into chunks), that it never applies where it must not, and that
set_cpu_packed(False) turns it off."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import dwconv
from dwconv import _C
from tolerances import assert_close

SIMD_ISAS = [i for i in _C.cpu_isas_supported() if i != "scalar"]

# (id, N, C, H, W, (kh, kw), stride, (pt, pb, pl, pr), dilation, expected variants fwd/bwdi/bwdw)
CASES = [
    ("mbv2_7x7_tail", 2, 37, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), ("packed",) * 3),
    ("narrow_s2", 2, 20, 14, 14, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), ("packed",) * 3),
    ("dil2_nonsquare", 3, 16, 9, 5, (3, 2), (1, 1), (2, 1, 0, 1), (2, 2), ("packed",) * 3),
    ("one_pixel", 2, 17, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), ("packed",) * 3),
    ("k13_small_plane", 1, 24, 7, 7, (13, 13), (1, 1), (6, 6, 6, 6), (1, 1), ("packed",) * 3),
    ("s3_asym", 2, 9, 11, 13, (2, 4), (3, 2), (1, 0, 2, 1), (1, 1), ("packed",) * 3),
    # wider planes: bwdw and bwdi always, fwd for kernels larger than 3x3
    ("wide_k5s1", 1, 18, 20, 33, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), ("packed",) * 3),
    ("wide_k3s1", 2, 18, 20, 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), ("k3s1", "packed", "packed")),
    ("wide_k3s2", 2, 18, 20, 33, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), ("k3s2", "packed", "packed")),
    # planes over 4096 pixels, up to 32768: backward-weight, and every pass of an input of at
    # least 8 MiB (here 2*63*130*130 floats, a partial last tile, stride 2)
    ("big_plane", 1, 3, 65, 70, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), ("k3s1", "s1", "packed")),
    ("huge_plane", 1, 2, 190, 180, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), ("k3s1", "s1", "s1")),
    ("big_input_plane", 2, 63, 130, 130, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), ("packed",) * 3),
]
IDS = [c[0] for c in CASES]


def _problem(case, dtype=torch.float32, m=1, bias=True):
    _, n, c, h, w, k, stride, pad, dil, _ = case
    x = torch.randn(n, c, h, w, dtype=dtype)
    wt = torch.randn(c * m, 1, *k, dtype=dtype)
    b = torch.randn(c * m, dtype=dtype) if bias else None
    top, bottom, left, right = pad
    xr, wr = x.double().requires_grad_(), wt.double().requires_grad_()
    ref = dwconv.reference.depthwise_conv2d(F.pad(xr, (left, right, top, bottom)), wr,
                                            None if b is None else b.double(), stride, 0, dil)
    gy = torch.randn_like(ref)
    gx_ref, gw_ref = torch.autograd.grad(ref, (xr, wr), gy)
    return x, wt, b, gy.to(dtype), ref, gx_ref, gw_ref


def _name(case, pass_, m=1, float64=False):
    _, n, c, h, w, k, stride, pad, dil, _ = case
    return _C.kernel_name(pass_, [n, c, h, w], [c * m, 1, *k], list(stride), list(pad), list(dil),
                          False, float64)


def _passes(case, x, wt, b, gy):
    _, _, _, _, _, k, stride, pad, dil, _ = case
    args = (list(stride), list(pad), list(dil))
    y = torch.ops.dwconv.dw2d_fwd(x, wt, b, *args)
    gx = torch.ops.dwconv.dw2d_bwdi(gy, wt, list(x.shape), *args)
    gw = torch.ops.dwconv.dw2d_bwdw(gy, x, list(k), *args)
    return y, gx, gw


@pytest.mark.parametrize("cpu_isa", SIMD_ISAS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_packed_passes_match_reference(case, cpu_isa, bwdi_kernels):
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(cpu_isa)
    try:
        for pass_, want in zip(("fwd", "bwdi", "bwdw"), case[-1]):
            assert _name(case, pass_) == f"dw2d_{pass_}_nchw_{want}_{cpu_isa}"
        x, wt, b, gy, ref, gx_ref, gw_ref = _problem(case, bias=IDS.index(case[0]) % 2 == 0)
        y, gx, gw = _passes(case, x, wt, b, gy)
    finally:
        _C.set_cpu_isa(before)
    assert y.is_contiguous() and gx.is_contiguous()
    assert_close(y, ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} output")
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_input")
    assert_close(gw, gw_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_weight")


@pytest.mark.parametrize("cpu_isa", SIMD_ISAS)
def test_packed_bwdw_chunks_the_batch(cpu_isa):
    """A batch larger than one backward-weight chunk (~256 KB of tiles): chunks summed in order,
    the same bits for any thread count."""
    case = ("chunked", 60, 21, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), ("packed",) * 3)
    before_isa, before_threads = _C.get_cpu_isa(), torch.get_num_threads()
    _C.set_cpu_isa(cpu_isa)
    try:
        assert _name(case, "bwdw") == f"dw2d_bwdw_nchw_packed_{cpu_isa}"
        x, wt, b, gy, _, _, gw_ref = _problem(case)
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(_passes(case, x, wt, b, gy)[2])
    finally:
        _C.set_cpu_isa(before_isa)
        torch.set_num_threads(before_threads)
    assert_close(results[0], gw_ref, backend="cpu", dtype=torch.float32, what="grad_weight")
    for r in results[1:]:
        assert torch.equal(r, results[0]), "grad_weight bits differ between thread counts"


@pytest.mark.parametrize("cpu_isa", _C.cpu_isas_supported())
def test_packed_never_for_multiplier_float64_scalar_or_when_off(cpu_isa):
    case = CASES[0]
    lanes = cpu_isa != "scalar"
    for pass_ in ("fwd", "bwdi", "bwdw"):
        before = _C.get_cpu_isa()
        _C.set_cpu_isa(cpu_isa)
        try:
            packed = _name(case, pass_).endswith(f"_packed_{cpu_isa}")
            multiplier = _name(case, pass_, m=2)
            float64 = _name(case, pass_, float64=True)
            _C.set_cpu_packed(False)
            off = _name(case, pass_)
        finally:
            _C.set_cpu_packed(True)
            _C.set_cpu_isa(before)
        assert packed == lanes, f"{pass_}: packed on {cpu_isa}"
        assert "packed" not in multiplier and "packed" not in float64 and "packed" not in off


def test_packed_multiplier_two_runs_nchw_kernels_correctly():
    case = CASES[0]
    x, wt, b, gy, ref, gx_ref, gw_ref = _problem(case, m=2)
    y, gx, gw = _passes(case, x, wt, b, gy)
    assert_close(y, ref, backend="cpu", dtype=torch.float32)
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what="grad_input")
    assert_close(gw, gw_ref, backend="cpu", dtype=torch.float32, what="grad_weight")


# NHWC: forwards of large kernels with more than L channels (channel tails, a plane wider than a
# row block, strides, bias) take the packed path; backward-input at stride 1 runs as such a
# forward; backward-weight, small kernels and C <= L keep the NHWC kernels
NHWC_CASES = [
    ("k13_tail", 2, 37, 20, 30, (13, 13), (1, 1), (6, 6, 6, 6), (1, 1), ("packed", "packed")),
    ("k15x13_s2", 1, 20, 27, 33, (15, 13), (2, 1), (7, 3, 6, 6), (1, 1), ("packed", "tiled")),
    ("k13_c8", 1, 8, 20, 20, (13, 13), (1, 1), (6, 6, 6, 6), (1, 1), ("klarge", "klarge")),
    ("k7", 1, 40, 20, 20, (7, 7), (1, 1), (3, 3, 3, 3), (1, 1), ("k7s1", "k7s1")),
]


@pytest.mark.parametrize("cpu_isa", SIMD_ISAS)
@pytest.mark.parametrize("case", NHWC_CASES, ids=[c[0] for c in NHWC_CASES])
def test_packed_nhwc_large_kernels(case, cpu_isa):
    _, n, c, h, w, k, stride, pad, dil, want = case
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(cpu_isa)
    try:
        names = [_C.kernel_name(p, [n, c, h, w], [c, 1, *k], list(stride), list(pad), list(dil),
                                True, False) for p in ("fwd", "bwdi", "bwdw")]
        x, wt, b, gy, ref, gx_ref, gw_ref = _problem(case)
        cl = torch.channels_last
        y, gx, gw = _passes(case, x.contiguous(memory_format=cl), wt, b,
                            gy.contiguous(memory_format=cl))
    finally:
        _C.set_cpu_isa(before)
    runs = ("fwd", "fwd" if stride == (1, 1) else "bwdi")
    assert names[:2] == [f"dw2d_{r}_nhwc_{v}_{cpu_isa}" for r, v in zip(runs, want)]
    assert "packed" not in names[2]
    assert y.is_contiguous(memory_format=cl) and gx.is_contiguous(memory_format=cl)
    assert_close(y, ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} output")
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_input")
    assert_close(gw, gw_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_weight")
