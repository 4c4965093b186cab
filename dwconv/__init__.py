"""dwconv: fast depthwise convolution for PyTorch (CPU SIMD kernels; CUDA and Triton to come).

    >>> import dwconv
    >>> y = dwconv.depthwise_conv2d(x, w, padding=1)     # like F.conv2d(..., groups=C)
    >>> dwconv.convert(model)                             # swap depthwise nn.Conv2d layers
"""

import os as _os

from . import backends as _backends_module
from . import nn, reference
from .backends import available as available_backends
from .nn import DepthwiseConv2d, convert
from .ops import depthwise_conv2d

__version__ = "0.1.0"
__all__ = ["depthwise_conv2d", "DepthwiseConv2d", "convert", "nn", "reference", "backends",
           "available_backends", "build_info", "__version__"]


def backends() -> dict:
    """Every backend with the reason it is unavailable here (None when available)."""
    return _backends_module.backends()


def build_info() -> dict:
    """Build configuration of the compiled extension and the CPU ISA in use."""
    from . import _C
    info = dict(_C.build_info())
    info["cpu_isas_supported"] = list(_C.cpu_isas_supported())
    info["cpu_isa"] = _C.get_cpu_isa()
    return info


if _os.environ.get("DWCONV_CPU_ISA") and _backends_module._EXTENSION_ERROR is None:
    from . import _C as _ext
    _ext.set_cpu_isa(_os.environ["DWCONV_CPU_ISA"])
