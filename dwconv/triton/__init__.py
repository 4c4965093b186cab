"""Triton depthwise conv2d kernels (forward, backward-input, backward-weight; NCHW and NHWC;
float32/float16/bfloat16 with float32 accumulation), reached through the registered ops
``torch.ops.dwconv.dw2d_{fwd,bwdi,bwdw}_triton`` or ``depthwise_conv2d(..., backend="triton")``.

On CUDA tensors they are compiled and autotuned; on CPU tensors they run under Triton's
interpreter when ``TRITON_INTERPRET=1`` is set at call time (tests; slow, ~15-20 ms per program).
The environment variable may be set before or after this import: both kernel wrappers are built
explicitly (see launch.py), so import order does not matter.

Files: kernels.py (the kernel source), launch.py (launchers), ops.py (op registration, imported
by dwconv/__init__.py when triton is installed), compile_check.py (compiling for a GPU without
one). This module itself stays light: the backend registry reads it on every call.
"""

from __future__ import annotations

import os

MAX_CHANNELS = 65535  # C*m: CUDA's limit on grid axis 1, which counts channel blocks
MAX_MULTIPLIER = 64  # depth multiplier m: the backward-input kernel unrolls over it


def _import_error() -> str | None:
    try:
        import triton  # noqa: F401
    except ImportError as e:
        return f"triton is not installed ({e})"
    return None


IMPORT_ERROR = _import_error()
VERSION: str | None = None
if IMPORT_ERROR is None:
    import triton as _triton

    VERSION = _triton.__version__


def interpreter_enabled() -> bool:
    """Whether TRITON_INTERPRET asks for the interpreter, read now and parsed as triton does
    (os.environ rather than triton.knobs, so torch.compile can trace backend selection)."""
    value = os.environ.get("TRITON_INTERPRET", "").lower()
    return IMPORT_ERROR is None and value in ("1", "true", "yes", "on", "y")
