"""The one tolerance table: every backend and dtype is compared with the float64 reference here.

float32/float64: |actual - ref| <= atol * scale + rtol * |ref|, where scale is the largest |ref|
(sums of many products lose accuracy relative to the largest term, not each element).
float16/bfloat16: the error may be at most ~2x the stock PyTorch op's own error in that dtype
against the same float64 reference (the bar flash-attention uses), plus a floor for exact zeros.
"""

from __future__ import annotations

import torch

# (backend, dtype) -> (rtol, atol); backend "*" applies to any backend without its own row
TOLERANCES: dict[tuple[str, torch.dtype], tuple[float, float]] = {
    ("*", torch.float64): (1e-10, 1e-10),
    ("*", torch.float32): (2e-5, 2e-5),
    ("*", torch.bfloat16): (0.0, 0.0),  # relative to the PyTorch baseline's error, see below
    ("*", torch.float16): (0.0, 0.0),
}
HALF_FACTOR = 2.0  # allowed multiple of PyTorch's own error for half types
HALF_FLOOR = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}  # one ulp at the largest |ref|


def tolerance(backend: str, dtype: torch.dtype) -> tuple[float, float]:
    return TOLERANCES.get((backend, dtype), TOLERANCES[("*", dtype)])


def assert_close(actual: torch.Tensor, ref: torch.Tensor, *, backend: str, dtype: torch.dtype,
                 baseline: torch.Tensor | None = None, what: str = "output") -> None:
    """Checks `actual` (computed in `dtype`) against the float64 `ref`.

    For half dtypes `baseline` is PyTorch's own result in that dtype; the allowed error is
    HALF_FACTOR times its largest error against `ref`.
    """
    assert actual.shape == ref.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(ref.shape)}"
    a, r = actual.double(), ref.double()
    assert not torch.isnan(a).any() or torch.isnan(r).any(), f"{what}: NaN in result (unwritten?)"
    scale = r.abs().max().item() if r.numel() else 0.0
    err = (a - r).abs()
    if dtype in (torch.float16, torch.bfloat16):
        assert baseline is not None, "half dtypes are judged against PyTorch's own error"
        base_err = (baseline.double() - r).abs().max().item() if r.numel() else 0.0
        bound = HALF_FACTOR * base_err + HALF_FLOOR[dtype] * max(scale, 1e-30)
        worst = err.max().item() if r.numel() else 0.0
        assert worst <= bound, (f"{what} [{backend}, {dtype}]: max error {worst:.3g} exceeds "
                                f"{HALF_FACTOR}x PyTorch's own error {base_err:.3g} (+ floor)")
        return
    rtol, atol = tolerance(backend, dtype)
    bound = atol * max(scale, 1.0) + rtol * r.abs()
    bad = err > bound
    if r.numel() and bad.any():
        i = bad.flatten().nonzero()[0].item()
        raise AssertionError(
            f"{what} [{backend}, {dtype}]: {int(bad.sum())} of {r.numel()} elements out of "
            f"tolerance (rtol={rtol}, atol={atol}*{max(scale, 1.0):.3g}); first at flat index {i}: "
            f"{a.flatten()[i].item()!r} vs reference {r.flatten()[i].item()!r}")
