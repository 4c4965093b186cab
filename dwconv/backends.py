"""Backend registry: every backend says whether it can serve a call and, if not, why.

``auto`` takes the first available backend that supports the call (``torch`` last, as the
fallback); an explicit backend that cannot serve the call raises one error giving the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Backend", "available", "backends", "get", "select"]

_AUTO = "auto"


def _load_extension() -> str | None:
    """Imports dwconv._C (which registers the ops); returns why it failed, or None."""
    try:
        from . import _C  # noqa: F401
    except ImportError as e:  # a source checkout that was never built
        return f"the dwconv._C extension is not built ({e}); run scripts/setup.sh"
    return None


_EXTENSION_ERROR = _load_extension()


@dataclass
class Backend:
    name: str
    description: str

    def unavailable(self) -> str | None:
        """Why this backend cannot run on this machine at all, or None."""
        return None

    def unsupported(self, input: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None) -> str | None:
        """Why this backend cannot serve this call, or None."""
        return self.unavailable()

    def conv2d(self, input, weight, bias, stride, padding, dilation) -> torch.Tensor:
        raise NotImplementedError

    def conv2d_out(self, input, weight, bias, stride, padding, dilation, out) -> None:
        out.copy_(self.conv2d(input, weight, bias, stride, padding, dilation))


class CpuBackend(Backend):
    def unavailable(self):
        return _EXTENSION_ERROR

    def unsupported(self, input, weight, bias):
        reason = self.unavailable()
        if reason:
            return reason
        if input.device.type != "cpu":
            return f"needs CPU tensors, got {input.device}"
        if input.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
            return f"dtype {input.dtype} is not supported (float32, float64, bfloat16, float16)"
        return None

    def conv2d(self, input, weight, bias, stride, padding, dilation):
        return torch.ops.dwconv.dw2d_fwd(input, weight, bias, stride, padding, dilation)

    def conv2d_out(self, input, weight, bias, stride, padding, dilation, out):
        torch.ops.dwconv.dw2d_fwd_out(input, weight, bias, stride, padding, dilation, out=out)


class TorchBackend(Backend):
    def conv2d(self, input, weight, bias, stride, padding, dilation):
        top, bottom, left, right = padding
        if top == bottom and left == right:
            return F.conv2d(input, weight, bias, stride, (top, left), dilation, input.shape[1])
        return F.conv2d(F.pad(input, (left, right, top, bottom)), weight, bias, stride, 0,
                        dilation, input.shape[1])


_REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        CpuBackend("cpu", "dwconv's SIMD kernels (kernels/cpu) on CPU tensors"),
        TorchBackend("torch", "PyTorch's own F.conv2d(groups=C): oneDNN on CPU, cuDNN/ATen on GPU"),
    )
}


def get(name: str) -> Backend:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"backend must be 'auto' or one of {sorted(_REGISTRY)}, got {name!r}") from None


def backends() -> dict[str, str | None]:
    """Every backend with the reason it is unavailable on this machine (None if available)."""
    return {name: b.unavailable() for name, b in _REGISTRY.items()}


def available() -> list[str]:
    return [name for name, reason in backends().items() if reason is None]


def select(name: str | None, input: torch.Tensor, weight: torch.Tensor,
           bias: torch.Tensor | None) -> Backend:
    """The backend that will run a call: an explicit one (which must support it) or auto's pick."""
    name = name or os.environ.get("DWCONV_BACKEND", _AUTO)
    if name != _AUTO:
        backend = get(name)
        reason = backend.unsupported(input, weight, bias)
        if reason:
            raise RuntimeError(f"dwconv backend {name!r} cannot run this call (input "
                               f"{tuple(input.shape)} {input.dtype} on {input.device}): {reason}")
        return backend
    for backend in _REGISTRY.values():
        if backend.unsupported(input, weight, bias) is None:
            return backend
    raise AssertionError("the torch backend supports every call")
