"""Compile-only: every Triton kernel, for representative constexpr configurations, compiled for
sm_80 and sm_90 without a GPU. A compile error or a register spill (ptxas -v) fails the test.

Each case uses the autotune configuration with the most elements per thread for its layout, the
one most likely to spill. Needs triton imported normally: when TRITON_INTERPRET=1 was set before
triton was imported, triton.language's own helpers are interpreter-only and nothing compiles.
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")
from triton.runtime.jit import JITFunction  # noqa: E402

from dwconv.triton.compile_check import compile_kernel  # noqa: E402

pytestmark = pytest.mark.skipif(
    not isinstance(triton.language.standard.sum, JITFunction),
    reason="triton was imported with TRITON_INTERPRET=1, so its language cannot be compiled")

PASSES = ("fwd", "bwdi", "bwdw")
COMMON = dict(KH=3, KW=3, SH=1, SW=1, DH=1, DW=1, PT=1, PL=1, M=1)
STRIDED = dict(KH=7, KW=5, SH=2, SW=2, DH=2, DW=1, PT=3, PL=0, M=2)
CASES = [
    # (pass, channels_last, arch, dtype, geometry, IDX64)
    *[(p, cl, 80, torch.float32, COMMON, False) for p in PASSES for cl in (0, 1)],
    *[(p, cl, 90, torch.bfloat16, STRIDED, False) for p in PASSES for cl in (0, 1)],
    *[(p, 1, 90, torch.float16, COMMON, True) for p in PASSES],
]


def _id(case):
    name, cl, arch, dtype, geometry, idx64 = case
    k = "k3s1" if geometry is COMMON else "k7x5s2d2m2"
    return (f"{name}-{'nhwc' if cl else 'nchw'}-sm{arch}-{str(dtype)[6:]}-{k}"
            f"{'-idx64' if idx64 else ''}")


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_compiles_without_spills(case):
    name, cl, arch, dtype, geometry, idx64 = case
    k = compile_kernel(name, dtype, arch, CHANNELS_LAST=bool(cl), IDX64=idx64, **geometry)
    assert k.compiled.asm["cubin"], "no cubin produced"
    assert f".target sm_{arch}" in k.compiled.asm["ptx"]
    assert k.spill_bytes == 0, f"{k.registers} registers, {k.spill_bytes} bytes spilled"
