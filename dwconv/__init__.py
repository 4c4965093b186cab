"""dwconv: fast depthwise convolution for PyTorch (CPU SIMD, CUDA and Triton kernels).

    >>> import dwconv
    >>> y = dwconv.depthwise_conv2d(x, w, padding=1)     # like F.conv2d(..., groups=C)
    >>> dwconv.convert(model)                             # swap depthwise nn.Conv2d layers
"""

import os as _os

from . import backends as _backends_module
from . import nn, reference
from .backends import available as available_backends
from .backends import explain as explain_backends
from .nn import DepthwiseConv2d, convert
from .ops import depthwise_conv2d
from . import triton as _triton

if _triton.IMPORT_ERROR is None:
    from .triton import ops as _triton_ops  # registers torch.ops.dwconv.dw2d_*_triton

__version__ = "0.1.0"
__all__ = ["depthwise_conv2d", "DepthwiseConv2d", "convert", "nn", "reference", "backends",
           "available_backends", "explain_backends", "build_info", "__version__"]


def backends() -> dict:
    """Every backend with the reason it is unavailable here (None when available)."""
    return _backends_module.backends()


def build_info() -> dict:
    """Build configuration of the compiled extension, the CPU ISA in use, and the versions and
    switches of the runtime pieces (torch, CUDA, triton and whether its interpreter is on)."""
    from . import _C
    import torch
    info = dict(_C.build_info())
    info["cpu_isas_supported"] = list(_C.cpu_isas_supported())
    info["cpu_isa"] = _C.get_cpu_isa()
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    info["triton"] = _triton.VERSION or f"unavailable: {_triton.IMPORT_ERROR}"
    info["triton_interpret"] = _triton.interpreter_enabled()
    return info


if _os.environ.get("DWCONV_CPU_ISA") and _backends_module._EXTENSION_ERROR is None:
    from . import _C as _ext
    _ext.set_cpu_isa(_os.environ["DWCONV_CPU_ISA"])
