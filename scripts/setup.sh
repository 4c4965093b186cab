#!/usr/bin/env bash
# Fresh-machine set-up: a venv in .venv with torch 2.14.1 (the CUDA 13 build) and the test/bench
# dependencies, then an in-place build of the dwconv._C extension. Safe to re-run (incremental).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# -q keeps CI logs readable; the pins are the contract with the build notes
mkdir -p build
if ! .venv/bin/python -m pip install -q --disable-pip-version-check \
    "torch==2.14.1" "torchvision==0.29.1" numpy pytest hypothesis pytest-benchmark rich matplotlib \
    ninja >build/pip.log 2>&1; then
  grep -v "^WARNING: Location" build/pip.log >&2
  echo "setup.sh: dependency install failed" >&2
  exit 1
fi
# CUDA toolchain facts (../shared/research/BUILD_NOTES.md): torch guesses the wrong CUDA_HOME from
# the nvcc wrapper, and cannot query an arch list without a GPU.
if [ -z "${CUDA_HOME:-}" ] && [ -d /usr/local/cuda ]; then export CUDA_HOME=/usr/local/cuda; fi
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0+PTX}"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
.venv/bin/python setup.py -q build_ext --inplace
.venv/bin/python -c "import dwconv, sys; i = dwconv.build_info(); print('dwconv built:', i)" \
  || { echo "setup.sh: the dwconv extension failed to build or import" >&2; exit 1; }
