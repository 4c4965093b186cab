"""The Triton kernels as registered ops: torch.ops.dwconv.dw2d_{fwd,bwdi,bwdw}_triton.

Same schemas as the C++ ops (padding is always (top, bottom, left, right)), implemented for CPU
(under TRITON_INTERPRET=1) and CUDA tensors, with the shared fake kernels and autograd from
dwconv/ops.py, so torch.compile sees one opaque node per call and opcheck passes.
"""

from __future__ import annotations

import torch

from .. import ops as _ops
from . import launch

_SCHEMAS = {
    "fwd": "(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, "
           "int[2] dilation) -> Tensor",
    "bwdi": "(Tensor grad_out, Tensor weight, SymInt[4] input_size, int[2] stride, "
            "int[4] padding, int[2] dilation) -> Tensor",
    "bwdw": "(Tensor grad_out, Tensor input, SymInt[2] kernel_size, int[2] stride, "
            "int[4] padding, int[2] dilation) -> Tensor",
}
SUFFIX = "_triton"

for _name, _schema in _SCHEMAS.items():
    _qualname = f"dwconv::dw2d_{_name}{SUFFIX}"
    torch.library.define(_qualname, _schema)
    torch.library.impl(_qualname, ("cpu", "cuda"), getattr(launch, _name))

_ops.register_family(SUFFIX)
