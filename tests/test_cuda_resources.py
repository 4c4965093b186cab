"""Static resources of the CUDA kernels (no GPU needed): every kernel compiled by nvcc for sm_80 and
sm_90 must use no local memory (no register spills, no stack frame), and docs/cuda_resources.md
must be the table scripts/cuda_resources.py generates from the current sources.

nvcc runs once per kernel file and arch (about 40 s on 2 cores); results are cached under
build/cuda_resources/ by a hash of the sources and the nvcc version.
"""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("cuda_resources",
                                               os.path.join(ROOT, "scripts", "cuda_resources.py"))
cuda_resources = importlib.util.module_from_spec(_spec)
sys.modules["cuda_resources"] = cuda_resources  # dataclasses look their module up there
_spec.loader.exec_module(cuda_resources)

pytestmark = pytest.mark.skipif(cuda_resources.nvcc() is None,
                                reason="nvcc not found (CUDA_HOME): cannot compile the CUDA kernels")


@pytest.fixture(scope="module")
def resources():
    return cuda_resources.collect()


def test_every_kernel_compiled_for_both_archs(resources):
    names80 = {k.mangled for k in resources["80"]}
    assert names80 == {k.mangled for k in resources["90"]}
    # 4 dtypes x (fwd NCHW 7 direct, NHWC 7 x 2 vector widths; bwdi 7 + 14;
    #             bwdw 2 layouts x 4 + finish; klarge: 2 layouts for each pass)
    assert len(names80) == 4 * ((7 + 14) + (7 + 14) + (8 + 1) + 3 * 2)


def test_no_register_spills_or_local_memory(resources):
    assert cuda_resources.problems(resources) == []


def test_resource_table_is_current(resources):
    with open(cuda_resources.DOC) as f:
        current = f.read()
    assert current == cuda_resources.render(resources), (
        "docs/cuda_resources.md is stale: run python scripts/cuda_resources.py")


def test_occupancy_model():
    # 32 registers, no shared memory: 8 blocks of 8 warps = full occupancy
    assert cuda_resources.occupancy(32, 0, "90") == 1.0
    # 128 registers: 65536 / (128 * 256) = 2 blocks = 16 of 64 warps
    assert cuda_resources.occupancy(128, 0, "80") == 0.25
    # 48 KB of shared memory on sm_80: 164 KB / 49 KB = 3 blocks
    assert cuda_resources.occupancy(32, 48 * 1024, "80") == 3 * 8 / 64
