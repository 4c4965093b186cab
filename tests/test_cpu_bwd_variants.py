"""Every specialised CPU backward kernel (backward-input and backward-weight) against the float64
reference, with the kernel variant each case is meant to reach checked through _C.kernel_name,
and the bitwise determinism of grad_weight across runs and thread counts. NCHW runs its own
kernels here (the packed path, which runs the NHWC ones on NCHW data, has test_cpu_packed.py), and
backward-input its own (the forward kernels it runs at stride 1: test_cpu_bwdi_as_fwd.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import dwconv
from dwconv import _C
from dwcase import at_thread_counts
from tolerances import assert_close

LANES = {"scalar": 1, "avx2": 8, "avx512": 16}  # float32 lanes per ISA; float64 is scalar


def bwdw_row_taps(lanes: int) -> int:
    """Widest kernel row the NHWC backward-weight keeps in registers (kMaxTaps in dw2d_bwdw.h)."""
    return 24 if lanes >= 16 else 12


@dataclass(frozen=True)
class Case:
    name: str
    n: int
    c: int
    h: int
    w: int
    k: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right
    m: int = 1
    nhwc_bwdi: str = "row"  # expected NHWC backward-input variant

    def nchw_variant(self) -> str:
        return {1: "s1", 2: "s2"}.get(self.stride[1], "generic")

    def expected(self, pass_: str, channels_last: bool, lanes: int) -> str:
        if not channels_last:
            return self.nchw_variant()
        if self.m > 1:
            return "generic"
        if pass_ == "bwdi":
            return self.nhwc_bwdi
        return "row" if self.k[1] <= bwdw_row_taps(lanes) else "tiled"


# C and W are chosen off the vector widths (tails), planes are small (fast float64 reference)
CASES = [
    Case("k3s1", 2, 19, 9, 21, (3, 3), padding=(1, 1, 1, 1)),
    Case("k3s2", 1, 17, 13, 10, (3, 3), (2, 2), padding=(1, 1, 1, 1)),
    Case("k5s1", 2, 8, 12, 12, (5, 5), padding=(2, 2, 2, 2)),
    Case("k5s2", 1, 20, 15, 15, (5, 5), (2, 2), padding=(2, 2, 2, 2)),
    Case("k7s1", 1, 33, 15, 17, (7, 7), padding=(3, 3, 3, 3)),
    Case("k3s1_dil2_asym", 1, 18, 11, 13, (3, 3), (1, 1), (2, 2), (2, 1, 0, 3)),
    Case("k3x5_s2x1_dil1x2", 1, 6, 11, 13, (3, 5), (2, 1), (1, 2), (0, 2, 1, 3)),
    Case("k3s3_generic", 1, 18, 9, 11, (3, 3), (3, 3), (2, 2), (2, 1, 0, 3)),
    Case("k1x7", 1, 16, 9, 35, (1, 7), padding=(0, 0, 3, 3)),
    Case("k7x1", 1, 16, 35, 9, (7, 1), padding=(3, 3, 0, 0)),
    Case("k9s1_tiled", 1, 5, 10, 23, (9, 9), padding=(4, 4, 4, 4), nhwc_bwdi="tiled"),
    Case("k3x25_tiled", 1, 17, 6, 30, (3, 25), padding=(1, 1, 12, 12), nhwc_bwdi="tiled"),
    Case("k31s1", 1, 4, 20, 40, (31, 31), padding=(15, 15, 15, 15), nhwc_bwdi="tiled"),
    Case("k2x4_even_s2", 1, 9, 8, 17, (2, 4), (2, 2), padding=(1, 0, 2, 1)),
    Case("one_pixel", 1, 3, 1, 1, (3, 3), padding=(1, 1, 1, 1)),
    Case("valid_no_pad", 2, 21, 8, 19, (3, 3)),
    Case("m2_k3s1", 2, 5, 9, 9, (3, 3), padding=(1, 1, 1, 1), m=2),
    Case("m2_k2x4_s2", 1, 5, 8, 17, (2, 4), (2, 2), padding=(1, 0, 2, 1), m=2),
]


def _problem(case: Case, channels_last: bool, dtype: torch.dtype):
    x = torch.randn(case.n, case.c, case.h, case.w, dtype=dtype)
    wt = torch.randn(case.c * case.m, 1, *case.k, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    top, bottom, left, right = case.padding
    xr = x.double().requires_grad_()
    wr = wt.double().requires_grad_()
    ref = dwconv.reference.depthwise_conv2d(F.pad(xr, (left, right, top, bottom)), wr, None,
                                            case.stride, 0, case.dilation)
    gy = torch.randn_like(ref)
    gx_ref, gw_ref = torch.autograd.grad(ref, (xr, wr), gy)
    gy = gy.to(dtype)
    if channels_last:
        gy = gy.contiguous(memory_format=torch.channels_last)
    return x, wt, gy, gx_ref, gw_ref


def _bwdi(case: Case, gy, wt, x):
    return torch.ops.dwconv.dw2d_bwdi(gy, wt, list(x.shape), list(case.stride), list(case.padding),
                                      list(case.dilation))


def _bwdw(case: Case, gy, x):
    return torch.ops.dwconv.dw2d_bwdw(gy, x, list(case.k), list(case.stride), list(case.padding),
                                      list(case.dilation))


def _kernel(case: Case, pass_: str, channels_last: bool, float64: bool) -> str:
    return _C.kernel_name(pass_, [case.n, case.c, case.h, case.w], [case.c * case.m, 1, *case.k],
                          list(case.stride), list(case.padding), list(case.dilation),
                          channels_last, float64)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bwd_variant_matches_reference(case, channels_last, cpu_isa, native_kernels, bwdi_kernels):
    layout = "nhwc" if channels_last else "nchw"
    for pass_ in ("bwdi", "bwdw"):
        want = case.expected(pass_, channels_last, LANES[cpu_isa])
        assert _kernel(case, pass_, channels_last, False) == f"dw2d_{pass_}_{layout}_{want}_{cpu_isa}"
    x, wt, gy, gx_ref, gw_ref = _problem(case, channels_last, torch.float32)
    gx = _bwdi(case, gy, wt, x)
    gw = _bwdw(case, gy, x)
    assert gx.is_contiguous(memory_format=torch.channels_last if channels_last
                            else torch.contiguous_format)
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what=f"{case.name} grad_input")
    assert_close(gw, gw_ref, backend="cpu", dtype=torch.float32, what=f"{case.name} grad_weight")


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("case", [c for c in CASES if c.name in
                                  ("k3s2", "k3s1_dil2_asym", "k3x5_s2x1_dil1x2", "k3x25_tiled",
                                   "m2_k2x4_s2")], ids=lambda c: c.name)
def test_bwd_float64_matches_reference(case, channels_last, native_kernels, bwdi_kernels):
    layout = "nhwc" if channels_last else "nchw"
    for pass_ in ("bwdi", "bwdw"):
        want = case.expected(pass_, channels_last, 1)
        assert _kernel(case, pass_, channels_last, True) == f"dw2d_{pass_}_{layout}_{want}_scalar"
    x, wt, gy, gx_ref, gw_ref = _problem(case, channels_last, torch.float64)
    assert_close(_bwdi(case, gy, wt, x), gx_ref, backend="cpu", dtype=torch.float64,
                 what=f"{case.name} grad_input")
    assert_close(_bwdw(case, gy, x), gw_ref, backend="cpu", dtype=torch.float64,
                 what=f"{case.name} grad_weight")


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("case", [
    Case("k3s1_batch", 4, 37, 14, 14, (3, 3), padding=(1, 1, 1, 1)),
    Case("k7s2_batch", 3, 40, 13, 13, (7, 7), (2, 2), padding=(3, 3, 3, 3)),
    Case("k3x25_batch", 2, 35, 6, 30, (3, 25), padding=(1, 1, 12, 12)),
], ids=lambda c: c.name)
def test_bwdw_bitwise_deterministic_across_runs_and_threads(case, channels_last, cpu_isa,
                                                            packed_path):
    x, _, gy, _, _ = _problem(case, channels_last, torch.float32)
    results = at_thread_counts(lambda: _bwdw(case, gy, x), (1, 2, 3, 2))
    for r in results[1:]:
        assert torch.equal(r, results[0]), "grad_weight bits differ between runs/thread counts"


@pytest.mark.parametrize("case", [
    Case("k3s1_parts", 11, 40, 64, 64, (3, 3), padding=(1, 1, 1, 1)),
    Case("k5s2_parts", 3, 48, 128, 128, (5, 5), (2, 2), padding=(2, 2, 2, 2)),
], ids=lambda c: c.name)
def test_bwdw_nhwc_in_parts(case, cpu_isa):
    """A channels_last backward-weight of at least 8 MiB with a batch is summed in chunks of
    images, added in order (bwdw_parts in dw2d_packed.h; 11 images: five chunks of 2 and one of
    1): right against the reference, and the same bits for any thread count."""
    x, _, gy, _, gw_ref = _problem(case, True, torch.float32)
    assert (x.numel() + gy.numel()) * 4 >= 8 << 20
    results = at_thread_counts(lambda: _bwdw(case, gy, x))
    assert_close(results[0], gw_ref, backend="cpu", dtype=torch.float32,
                 what=f"{case.name} grad_weight")
    for r in results[1:]:
        assert torch.equal(r, results[0]), "grad_weight bits differ between thread counts"
