"""nn modules backed by dwconv's kernels, and `convert(model)` to swap them into a network."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ops import depthwise_conv2d

__all__ = ["DepthwiseConv2d", "convert"]


class DepthwiseConv2d(nn.Conv2d):
    r"""``nn.Conv2d(in_channels, out_channels, kernel_size, groups=in_channels)`` run by dwconv.

    Same constructor arguments, parameters, initialisation and ``state_dict`` keys as
    :class:`torch.nn.Conv2d` with ``groups=in_channels``, so checkpoints load either way.
    ``out_channels`` must be a multiple of ``in_channels`` (the depth multiplier).

    Args:
        backend: which dwconv backend runs it (``None``: ``'auto'`` or ``$DWCONV_BACKEND``).

    Shape:
        - Input: :math:`(N, C_{in}, H, W)` or :math:`(C_{in}, H, W)`
        - Output: :math:`(N, C_{out}, H_{out}, W_{out})`, in the input's memory format

    Examples::

        >>> m = dwconv.nn.DepthwiseConv2d(32, 32, 3, padding=1)
        >>> y = m(torch.randn(8, 32, 56, 56))
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None, *, backend=None):
        if in_channels < 1 or out_channels % in_channels != 0:
            raise ValueError(f"out_channels ({out_channels}) must be a positive multiple of "
                             f"in_channels ({in_channels}) for a depthwise convolution")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups=in_channels, bias=bias, padding_mode=padding_mode, device=device,
                         dtype=dtype)
        self.backend = backend

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = 0
        else:
            padding = self.padding
        return depthwise_conv2d(input, self.weight, self.bias, self.stride, padding,
                                self.dilation, backend=self.backend)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, backend: str | None = None) -> "DepthwiseConv2d":
        """A DepthwiseConv2d sharing `conv`'s parameters (the same Parameter objects)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update({k: v for k, v in conv.__dict__.items()
                             if k not in ("_parameters", "_buffers", "_modules")})
        new._parameters = dict(conv._parameters)
        new._buffers = dict(conv._buffers)
        new._modules = dict(conv._modules)
        new.backend = backend
        return new


def _is_depthwise(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.groups == m.in_channels
            and m.out_channels % m.in_channels == 0)


def convert(model: nn.Module, backend: str | None = None) -> int:
    """Replaces, in place, every depthwise ``nn.Conv2d`` of `model` (``groups == in_channels``,
    ``out_channels`` a multiple of it) with a :class:`DepthwiseConv2d` holding the same
    parameters; returns how many it replaced. Everything else is left alone.

    Examples::

        >>> model = torchvision.models.mobilenet_v2()
        >>> dwconv.convert(model)
        17
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_depthwise(child):
                setattr(parent, name, DepthwiseConv2d.from_conv(child, backend))
                replaced += 1
    return replaced
