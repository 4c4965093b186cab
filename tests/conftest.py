"""Shared test set-up: NaN-filled outputs, the ISA parameter, small helpers."""

import pytest
import torch

import dwconv
from dwconv import _C

# every fresh output starts as NaN, so an element a kernel never writes fails the comparison
_C.set_debug_fill_nan(True)

CPU_ISAS = list(_C.cpu_isas_supported())


@pytest.fixture(params=CPU_ISAS)
def cpu_isa(request):
    """Runs the test once per CPU ISA this machine supports, restoring the default after."""
    before = _C.get_cpu_isa()
    _C.set_cpu_isa(request.param)
    yield request.param
    _C.set_cpu_isa(before)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
