"""Reference networks for the analysis: MobileNet v1 (width and resolution multipliers, optional
BN) and its full-convolution counterpart."""

from .mobilenet import MobileNetV1, mobilenet_v1, mobilenet_v1_fullconv

__all__ = ["MobileNetV1", "mobilenet_v1", "mobilenet_v1_fullconv"]
