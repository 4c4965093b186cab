"""Float64 reference implementations built on stock PyTorch ops, for tests and benchmarks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import _args

__all__ = ["depthwise_conv2d"]


def depthwise_conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1):
    """F.conv2d(groups=C) evaluated in float64 (result in float64), any padding dwconv accepts."""
    stride = _args.pair(stride, "stride")
    dilation = _args.pair(dilation, "dilation")
    top, bottom, left, right = _args.conv_padding(padding, tuple(weight.shape[2:]), stride,
                                                  dilation)
    x = F.pad(input.double(), (left, right, top, bottom))
    b = None if bias is None else bias.double()
    return F.conv2d(x, weight.double(), b, stride, 0, dilation, groups=input.shape[-3])
