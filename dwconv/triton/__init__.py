"""Triton depthwise conv2d kernels (forward, backward-input, backward-weight; NCHW and NHWC;
float32/float16/bfloat16 with float32 accumulation), reached through the registered ops
``torch.ops.dwconv.dw2d_{fwd,bwdi,bwdw}_triton`` or ``depthwise_conv2d(..., backend="triton")``.

On CUDA tensors they are compiled and autotuned; on CPU tensors they run under Triton's
interpreter when ``TRITON_INTERPRET=1`` is set at call time (tests; slow, ~15-20 ms per program).
The environment variable may be set before or after this import: both kernel wrappers are built
explicitly (see launch.py), so import order does not matter.

Files: kernels.py (the kernel source), launch.py (launchers), ops.py (op registration).
"""

from __future__ import annotations

def _import_error() -> str | None:
    try:
        import triton  # noqa: F401
    except ImportError as e:
        return f"triton is not installed ({e})"
    return None


IMPORT_ERROR = _import_error()

if IMPORT_ERROR is None:
    import triton as _triton

    from . import ops  # noqa: F401  (registers the ops)

    VERSION: str | None = _triton.__version__
else:
    VERSION = None


def interpreter_enabled() -> bool:
    """Whether TRITON_INTERPRET asks for the interpreter (read now, through triton's own knob)."""
    return IMPORT_ERROR is None and bool(_triton.knobs.runtime.interpret)
