"""MobileNet v1 (Howard et al. 2017, arXiv 1704.04861), Table 1, in PyTorch.

The paper's Table 1 shows the last depthwise layer with stride 2; it is stride 1 (the map stays
7x7), as in every released implementation and as the paper's own counts require.
"""

from __future__ import annotations

from torch import nn

__all__ = ["MobileNetV1", "mobilenet_v1", "mobilenet_v1_fullconv"]

# (output channels, stride) of the 13 depthwise separable blocks after the first 3x3 conv
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _scaled(channels: int, width_mult: float) -> int:
    # TF-slim's rule: nearest multiple of 8, at least 8, never more than 10% below the target
    target = channels * width_mult
    out = max(8, int(target + 4) // 8 * 8)
    return out + 8 if out < 0.9 * target else out


class MobileNetV1(nn.Module):
    r"""MobileNet v1: a 3x3 stride-2 conv, 13 depthwise separable blocks (depthwise 3x3 + pointwise
    1x1, each followed by BN and ReLU), global average pooling and a fully connected classifier.

    Args:
        width_mult: the width multiplier alpha (channels scaled to multiples of 8). Default: 1.0
        resolution_mult: the resolution multiplier rho; only sets :attr:`input_size`
            (``round(224 * rho)``), since the network itself takes any size. Default: 1.0
        num_classes: classifier outputs. Default: 1000
        bn: BatchNorm after every conv. Default: True
        conv_bias: bias in the convs. Default: False (the paper's 4,210,088 parameters at bn=False
            count no conv bias)
        full_conv: replace every depthwise separable block by a standard 3x3 conv with the same
            input, output and stride (the paper's "Conv MobileNet", Table 4). Default: False
        dropout: dropout before the classifier. Default: 0.0

    Shape:
        - Input: :math:`(N, 3, H, W)`, :math:`H, W \ge 32` (``input_size`` is the paper's)
        - Output: :math:`(N, \text{num\_classes})`

    Examples::

        >>> m = MobileNetV1(width_mult=0.5, resolution_mult=160 / 224)
        >>> m(torch.randn(1, 3, m.input_size, m.input_size)).shape
        torch.Size([1, 1000])
    """

    def __init__(self, width_mult: float = 1.0, resolution_mult: float = 1.0,
                 num_classes: int = 1000, bn: bool = True, conv_bias: bool = False,
                 full_conv: bool = False, dropout: float = 0.0):
        super().__init__()
        if width_mult <= 0 or resolution_mult <= 0:
            raise ValueError(f"width_mult ({width_mult}) and resolution_mult ({resolution_mult}) "
                             f"must be positive")
        self.input_size = round(224 * resolution_mult)

        def unit(c_in, c_out, k, stride, groups):
            layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=conv_bias)]
            if bn:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            return layers

        c = _scaled(32, width_mult)
        layers = unit(3, c, 3, 2, 1)
        for c_out, stride in _BLOCKS:
            c_out = _scaled(c_out, width_mult)
            if full_conv:
                layers += unit(c, c_out, 3, stride, 1)
            else:
                layers += unit(c, c, 3, stride, c) + unit(c, c_out, 1, 1, 1)
            c = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.classifier(self.dropout(self.pool(self.features(x)).flatten(1)))


def mobilenet_v1(width_mult: float = 1.0, resolution_mult: float = 1.0, **kwargs) -> MobileNetV1:
    """MobileNet v1 (see :class:`MobileNetV1` for the arguments)."""
    return MobileNetV1(width_mult, resolution_mult, **kwargs)


def mobilenet_v1_fullconv(width_mult: float = 1.0, resolution_mult: float = 1.0,
                          **kwargs) -> MobileNetV1:
    """The paper's full-convolution MobileNet: standard 3x3 convs for the separable blocks."""
    return MobileNetV1(width_mult, resolution_mult, full_conv=True, **kwargs)
