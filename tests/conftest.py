"""Shared test set-up: NaN-filled outputs, the ISA parameter, small helpers."""

import pytest
import torch

import dwconv
from dwconv import _C

# every fresh output starts as NaN, so an element a kernel never writes fails the comparison
_C.set_debug_fill_nan(True)

CPU_ISAS = list(_C.cpu_isas_supported())
SIMD_ISAS = [i for i in CPU_ISAS if i != "scalar"]


def _with_isa(isa):
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(isa)
    yield isa
    _C.set_cpu_isa(before)


@pytest.fixture(params=CPU_ISAS)
def cpu_isa(request):
    """Runs the test once per CPU ISA this machine supports, restoring the default after."""
    yield from _with_isa(request.param)


@pytest.fixture(params=SIMD_ISAS)
def simd_isa(request):
    """As cpu_isa, for the SIMD ISAs only (the packed and fused paths need L >= 8 lanes)."""
    yield from _with_isa(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def native_kernels():
    """Every pass runs the kernels of its tensors' own layout (never the packed path) during the
    test."""
    before = _C.get_cpu_packed()
    _C.set_cpu_packed(False)
    yield
    _C.set_cpu_packed(before)


@pytest.fixture(params=[True, False], ids=["packed", "native"])
def packed_path(request):
    """Runs the test with the packed path allowed (the default) and forbidden."""
    before = _C.get_cpu_packed()
    _C.set_cpu_packed(request.param)
    yield request.param
    _C.set_cpu_packed(before)


@pytest.fixture
def bwdi_kernels():
    """Backward-input always runs the backward-input kernels during the test (not, at stride 1,
    the forward ones on the rotated weight)."""
    before = _C.get_cpu_bwdi_as_fwd()
    _C.set_cpu_bwdi_as_fwd(False)
    yield
    _C.set_cpu_bwdi_as_fwd(before)
