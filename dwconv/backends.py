"""Backend registry: every backend says whether it can serve a call and, if not, why.

A backend is a family of registered ops (``torch.ops.dwconv.dw2d_fwd{suffix}`` with its backward
ops) plus a support predicate: the devices and dtypes it serves, and why it is unavailable on this
machine (derived from what is built and present, never assumed).

Selection (``backend=`` argument, else ``$DWCONV_BACKEND``, else ``"auto"``):

- an explicit backend that cannot serve the call raises one error giving the reason;
- ``"auto"`` takes, in this order, the first backend that supports the call and lists the call's
  device among its ``auto_devices``: ``cuda`` (CUDA tensors), ``cpu`` (CPU tensors), ``triton``
  (CUDA tensors, when the CUDA kernels are not built or do not serve the call), then ``torch``,
  which serves everything. ``cuda_emu`` (CUDA kernels compiled for the host) and ``triton`` on CPU
  tensors (the Triton interpreter) are test and study tools, used only when asked for by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from . import _args
from . import triton as _dwt

__all__ = ["Backend", "available", "backends", "explain", "get", "select"]

_AUTO = "auto"
_ENV = "DWCONV_BACKEND"


def _load_extension() -> str | None:
    """Imports dwconv._C (which registers the ops); returns why it failed, or None."""
    try:
        from . import _C  # noqa: F401
    except ImportError as e:  # a source checkout that was never built
        return f"the dwconv._C extension is not built ({e}); run scripts/setup.sh"
    return None


_EXTENSION_ERROR = _load_extension()


# What the extension was built with, read once: these facts cannot change while the process runs,
# and reading them per call (C functions) would stop torch.compile from tracing selection.
def _built_reason(op: str, dispatch_key: str | None, what: str) -> str | None:
    if _EXTENSION_ERROR:
        return _EXTENSION_ERROR
    if not hasattr(torch.ops.dwconv, op):
        return f"dwconv._C was built without {what} (no op dwconv::{op})"
    if dispatch_key and not torch._C._dispatch_has_kernel_for_dispatch_key(f"dwconv::{op}",
                                                                           dispatch_key):
        return f"dwconv._C was built without {what} (no {dispatch_key} kernel for dwconv::{op})"
    return None


_CUDA_BUILT = _built_reason("dw2d_fwd", "CUDA", "CUDA kernels")
_CUDA_EMU_BUILT = _built_reason("dw2d_fwd_emu", None, "the CUDA emulation ops")


def _cuda_unavailable() -> str | None:
    if _CUDA_BUILT:
        return _CUDA_BUILT
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    return None


def _triton_unavailable() -> str | None:
    if _dwt.IMPORT_ERROR:
        return _dwt.IMPORT_ERROR
    if not torch.cuda.is_available() and not _dwt.interpreter_enabled():
        return ("no CUDA device, and TRITON_INTERPRET=1 is not set (which runs the kernels on CPU "
                "tensors under Triton's interpreter)")
    return None


def _triton_devices() -> tuple[str, ...]:
    return ("cuda", "cpu") if _dwt.interpreter_enabled() else ("cuda",)


def _triton_limits(input: torch.Tensor, weight: torch.Tensor) -> str | None:
    cm, m = weight.shape[0], weight.shape[0] // input.shape[1]
    if cm > _dwt.MAX_CHANNELS or m > _dwt.MAX_MULTIPLIER:
        return (f"C*m = {cm} with m = {m} exceeds the Triton kernels' limits (C*m <= "
                f"{_dwt.MAX_CHANNELS}, m <= {_dwt.MAX_MULTIPLIER})")
    return None


_ALL_DTYPES = _args.FLOAT_DTYPES
_HALF_AND_FLOAT = (torch.float32, torch.float16, torch.bfloat16)


@dataclass
class Backend:
    """One way to compute the dw2d ops.

    suffix: the op family, torch.ops.dwconv.dw2d_{fwd,bwdi,bwdw}{suffix}; None for non-op backends.
    devices: device types it serves (a callable when that depends on the environment).
    auto_devices: device types on which "auto" may pick it.
    """
    name: str
    description: str
    suffix: str | None = None
    devices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ("cpu", "cuda")
    auto_devices: tuple[str, ...] = ()
    dtypes: tuple[torch.dtype, ...] = _ALL_DTYPES
    why_unavailable: Callable[[], str | None] = field(default=lambda: None)
    limits: Callable[[torch.Tensor, torch.Tensor], str | None] = field(default=lambda i, w: None)
    has_out_op: bool = False

    def unavailable(self) -> str | None:
        """Why this backend cannot run on this machine at all, or None."""
        return self.why_unavailable()

    def served_devices(self) -> tuple[str, ...]:
        return self.devices() if callable(self.devices) else self.devices

    def unsupported(self, input: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None, device_type: str | None = None) -> str | None:
        """Why this backend cannot serve this call, or None. `device_type`: input.device.type,
        when the caller has it already."""
        reason = self.unavailable()
        if reason:
            return reason
        devices = self.served_devices()
        if (device_type or input.device.type) not in devices:
            return f"needs tensors on {' or '.join(devices)}, got {input.device}"
        if input.dtype not in self.dtypes:
            names = ", ".join(str(d).removeprefix("torch.") for d in self.dtypes)
            return f"dtype {input.dtype} is not supported ({names})"
        return self.limits(input, weight)

    def auto_picks(self, device_type: str) -> bool:
        """Whether "auto" may choose this backend for tensors on this device type."""
        return device_type in self.auto_devices

    def conv2d(self, input, weight, bias, stride, padding, dilation) -> torch.Tensor:
        op = getattr(torch.ops.dwconv, f"dw2d_fwd{self.suffix}")
        return op(input, weight, bias, stride, padding, dilation)

    def conv2d_out(self, input, weight, bias, stride, padding, dilation, out) -> None:
        if self.has_out_op:
            op = getattr(torch.ops.dwconv, f"dw2d_fwd_out{self.suffix}")
            op(input, weight, bias, stride, padding, dilation, out=out)
        else:
            out.copy_(self.conv2d(input, weight, bias, stride, padding, dilation))


class TorchBackend(Backend):
    """Serves every call (any device and dtype F.conv2d accepts): auto's fallback."""

    def unsupported(self, input, weight, bias, device_type=None):
        return None

    def auto_picks(self, device_type):
        return True

    def conv2d(self, input, weight, bias, stride, padding, dilation):
        top, bottom, left, right = padding
        if top == bottom and left == right:
            return F.conv2d(input, weight, bias, stride, (top, left), dilation, input.shape[1])
        return F.conv2d(F.pad(input, (left, right, top, bottom)), weight, bias, stride, 0,
                        dilation, input.shape[1])


# registry order is auto's order of preference
_REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("cuda", "dwconv's CUDA kernels (kernels/cuda) on CUDA tensors", suffix="",
                devices=("cuda",), auto_devices=("cuda",), why_unavailable=_cuda_unavailable,
                has_out_op=True),
        Backend("cpu", "dwconv's SIMD kernels (kernels/cpu) on CPU tensors", suffix="",
                devices=("cpu",), auto_devices=("cpu",),
                why_unavailable=lambda: _EXTENSION_ERROR, has_out_op=True),
        Backend("triton", "dwconv's Triton kernels (dwconv/triton): compiled on CUDA tensors, "
                "interpreted on CPU tensors when TRITON_INTERPRET=1", suffix="_triton",
                devices=_triton_devices, auto_devices=("cuda",), dtypes=_HALF_AND_FLOAT,
                why_unavailable=_triton_unavailable, limits=_triton_limits),
        Backend("cuda_emu", "dwconv's CUDA kernels compiled for the host, on CPU tensors (tests "
                "and study)", suffix="_emu", devices=("cpu",),
                why_unavailable=lambda: _CUDA_EMU_BUILT),
        TorchBackend("torch", "PyTorch's own F.conv2d(groups=C): oneDNN on CPU, cuDNN/ATen on "
                     "GPU"),
    )
}


def get(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"backend must be 'auto' or one of {sorted(_REGISTRY)}, got "
                         f"{name!r}") from None


def backends() -> dict[str, str | None]:
    """Every backend with the reason it is unavailable on this machine (None if available)."""
    return {name: b.unavailable() for name, b in _REGISTRY.items()}


def available() -> list[str]:
    return [name for name, reason in backends().items() if reason is None]


def explain(input: torch.Tensor, weight: torch.Tensor,
            bias: torch.Tensor | None = None) -> dict[str, str | None]:
    """Every backend with the reason it cannot serve this call (None if it can)."""
    return {name: b.unsupported(input, weight, bias) for name, b in _REGISTRY.items()}


def select(name: str | None, input: torch.Tensor, weight: torch.Tensor,
           bias: torch.Tensor | None) -> Backend:
    """The backend that will run a call: an explicit one (which must support it) or auto's pick."""
    source = ""
    if name is None:
        name = os.environ.get(_ENV) or _AUTO
        source = f" (from ${_ENV})"
    if name != _AUTO:
        if name not in _REGISTRY:
            raise ValueError(f"{'$' + _ENV if source else 'backend'} must be 'auto' or one of "
                             f"{sorted(_REGISTRY)}, got {name!r}")
        backend = _REGISTRY[name]
        reason = backend.unsupported(input, weight, bias)
        if reason:
            raise RuntimeError(f"dwconv backend {name!r}{source} cannot run this call "
                               f"(input {tuple(input.shape)} {input.dtype} on {input.device}, "
                               f"weight {tuple(weight.shape)}): {reason}")
        return backend
    device_type = input.device.type
    for backend in _REGISTRY.values():
        if (backend.auto_picks(device_type)
                and backend.unsupported(input, weight, bias, device_type) is None):
            return backend
    raise AssertionError("the torch backend serves every call")
