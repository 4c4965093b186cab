"""The ISA kernel objects must export nothing but their table: any other external or weak symbol
(e.g. a std template instantiated under -mavx512f) could be picked by the linker for code that
runs on CPUs without that ISA."""

import glob
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECTS = sorted(glob.glob(os.path.join(ROOT, "build", "temp*", "kernels", "cpu", "dw2d_*.o")))


@pytest.mark.skipif(not OBJECTS or shutil.which("nm") is None,
                    reason="needs the in-place build's objects (scripts/setup.sh) and nm")
@pytest.mark.parametrize("obj", OBJECTS, ids=os.path.basename)
def test_isa_object_exports_only_its_table(obj):
    out = subprocess.run(["nm", "-C", "--defined-only", "--extern-only", obj],
                         capture_output=True, text=True, check=True).stdout
    symbols = [line.split(" ", 2)[2] for line in out.splitlines() if line.count(" ") >= 2]
    leaked = [s for s in symbols
              if not s.startswith(("dwconv::cpu::dw2d_kernels_", "DW.ref.__gxx_personality"))]
    assert not leaked, f"{os.path.basename(obj)} exports {leaked[:5]}"
