"""Reference networks and layers for the analysis: MobileNet v1 (width and resolution multipliers,
optional BN), its full-convolution counterpart, and ChannelNets' channel-wise layers."""

from .channelnet import ChannelWiseConv2d, ConvClassifier, DepthwiseSeparableChannelWise
from .mobilenet import MobileNetV1, mobilenet_v1, mobilenet_v1_fullconv

__all__ = ["MobileNetV1", "mobilenet_v1", "mobilenet_v1_fullconv", "ChannelWiseConv2d",
           "DepthwiseSeparableChannelWise", "ConvClassifier"]
