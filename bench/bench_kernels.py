"""pytest-benchmark suite over the kernel rows of `python -m dwconv bench` (same shapes file, same
calls), for pytest-benchmark's statistics, histograms and --benchmark-compare between commits.

Not part of the test run (the file name does not match test_*.py); run it explicitly:

    python -m pytest bench/bench_kernels.py --benchmark-only                  # default suite
    DWCONV_BENCH_SUITE=full python -m pytest bench/bench_kernels.py -k "nchw and fwd"
    python -m pytest bench/bench_kernels.py --benchmark-autosave              # then
    python -m pytest bench/bench_kernels.py --benchmark-compare --benchmark-compare-fail=median:15%
"""

import os

import pytest

from dwconv import benchmark as B

CASES = B.expand(B.load_layers(suite=os.environ.get("DWCONV_BENCH_SUITE", "default")))


@pytest.mark.parametrize("impl", ["dwconv", "torch"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel(benchmark, case, impl):
    fns, backend = B.case_functions(case)
    benchmark.group = case.id
    benchmark.extra_info.update(backend=backend if impl == "dwconv" else "torch",
                                min_bytes=case.min_bytes, flops=case.flops)
    benchmark(fns[impl])
