"""ChannelNets' layers (Gao, Wang, Ji, NeurIPS 2018, arXiv 1809.01330), as the paper defines them:
channel-wise convolution (plain and grouped), the depthwise separable channel-wise block and the
convolutional classification layer. Written with nn.Conv3d over a unit channel axis, as PyTorch ports
do, so the profiler sees (and counts) a 'channelwise' layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelWiseConv2d", "DepthwiseSeparableChannelWise", "ConvClassifier"]


class ChannelWiseConv2d(nn.Module):
    r"""Channel-wise convolution: a 1-D kernel of length `kernel_size` slides along the channel axis
    with `stride`, shared by every pixel and sample:
    :math:`Y[i, j, h, w] = \sum_t w[t]\, X[i, j s + t - p_{left}, h, w]` (zero outside the
    channels). With `groups` g there are g kernels, each over all input channels, their outputs
    concatenated (the paper's group channel-wise conv uses stride g, so out = in channels).

    Args:
        in_channels: input channels m.
        kernel_size: the channel kernel dc.
        stride: along channels. Default: 1
        padding: ``'same'`` (dc - 1 zeros, the odd one after), ``'valid'``, an int (both sides) or
            (before, after). Default: ``'same'``
        groups: number of kernels g. Default: 1

    Shape:
        - Input: :math:`(N, m, H, W)`
        - Output: :math:`(N, g \cdot n_g, H, W)`, :math:`n_g = \lfloor (m + p - dc)/s \rfloor + 1`

    Examples::

        >>> gcwc = ChannelWiseConv2d(64, 8, stride=2, groups=2)   # ChannelNet's GCWC, g=2, dc=8
        >>> gcwc(torch.randn(1, 64, 7, 7)).shape
        torch.Size([1, 64, 7, 7])
    """

    def __init__(self, in_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | tuple[int, int] | str = "same", groups: int = 1,
                 bias: bool = False):
        super().__init__()
        if padding == "same":
            self.pad = ((kernel_size - 1) // 2, kernel_size - 1 - (kernel_size - 1) // 2)
        elif padding == "valid":
            self.pad = (0, 0)
        elif isinstance(padding, int):
            self.pad = (padding, padding)
        else:
            self.pad = tuple(padding)
        if in_channels + sum(self.pad) < kernel_size:
            raise ValueError(f"kernel_size ({kernel_size}) is longer than in_channels "
                             f"({in_channels}) plus padding {self.pad}")
        self.in_channels = in_channels
        self.conv = nn.Conv3d(1, groups, (kernel_size, 1, 1), (stride, 1, 1), bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ChannelWiseConv2d expects (N, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")
        x = F.pad(x.unsqueeze(1), (0, 0, 0, 0, *self.pad))  # pad the channel axis only
        return self.conv(x).flatten(1, 2)  # [N, g, n_g, H, W] -> groups concatenated


class DepthwiseSeparableChannelWise(nn.Module):
    """Depthwise k x k, then one channel-wise conv (stride 1, 'same') in place of the 1x1:
    k^2 * m + dc parameters (ChannelNet-v2 uses dc = 64 on its 7x7x1024 layer)."""

    def __init__(self, channels: int, kernel_size: int = 3, channel_kernel: int = 64,
                 stride: int = 1):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, kernel_size, stride, kernel_size // 2,
                                   groups=channels, bias=False)
        self.channelwise = ChannelWiseConv2d(channels, channel_kernel)

    def forward(self, x):
        return self.channelwise(self.depthwise(x))


class ConvClassifier(nn.Module):
    """The convolutional classification layer: one 3-D conv, kernel (m - n + 1) x df x df, 'valid',
    one filter, in place of global pooling + FC: (N, m, df, df) -> (N, n). ImageNet, m = 1024,
    n = 1000, df = 7: 1,225 parameters instead of 1,025,000."""

    def __init__(self, in_channels: int, num_classes: int, spatial: int):
        super().__init__()
        if num_classes > in_channels:
            raise ValueError(f"num_classes ({num_classes}) must be at most in_channels "
                             f"({in_channels})")
        self.conv = nn.Conv3d(1, 1, (in_channels - num_classes + 1, spatial, spatial), bias=False)

    def forward(self, x):
        return self.conv(x.unsqueeze(1)).flatten(1)
