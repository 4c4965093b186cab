"""Cost model of convolution variants: parameters, MACs, FLOPs, minimum bytes moved, feature-map
memory and arithmetic intensity.

Conventions (MobileNet's, so the published counts reproduce exactly):

- MACs are multiply-adds of the kernel taps: ``outputs x taps per output``. Taps that fall on zero
  padding count (the kernel still runs over them); bias adds, normalisation and activations do not.
- FLOPs = 2 x MACs.
- Params count weights and biases.
- Minimum bytes = read the input once + read the weights (and bias) once + write the output once:
  what a perfect kernel moves between memory and the cores. Intensity = FLOPs / minimum bytes.
- Feature-map memory = input + output activations (what must be resident while the layer runs).

Every function takes the input shape ``(N, C, H, W)`` and returns a :class:`Cost`; composite blocks
(depthwise separable, flattened) return the sum, with their stages in :attr:`Cost.parts`.

    >>> c = depthwise(1, 32, 112, 112, kernel=3, padding=1)
    >>> c.macs, round(c.intensity, 2)
    (3612672, 2.25)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Cost", "conv_out_size", "element_size", "conv2d", "standard", "grouped", "depthwise",
           "pointwise", "depthwise_separable", "flattened", "channelwise", "linear", "elementwise",
           "classify_conv2d"]


def element_size(dtype: torch.dtype | str) -> int:
    """Bytes per element of `dtype` (a torch.dtype or a name such as ``'float16'``)."""
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"dtype must be a torch dtype name such as 'float32', got {name!r}")
    return torch.empty((), dtype=dtype).element_size()


def conv_out_size(size: int, kernel: int, stride: int = 1, padding: int | tuple[int, int] = 0,
                  dilation: int = 1) -> int:
    """Output length along one axis: floor((size + pad_total - dilation*(kernel-1) - 1)/stride) + 1.

    `padding` is one int (both sides) or (before, after)."""
    before, after = (padding, padding) if isinstance(padding, int) else padding
    span = dilation * (kernel - 1) + 1
    out = (size + before + after - span) // stride + 1
    if out < 1:
        raise ValueError(f"kernel {kernel} with dilation {dilation} (span {span}) does not fit an "
                         f"input of {size} padded by {before}+{after}")
    return out


@dataclass
class Cost:
    """The cost of one layer (or the sum of a block's stages, in `parts`). Counts are elements
    except the ``*_bytes`` fields; `kind` names the variant ('depthwise', 'pointwise'...)."""

    kind: str
    params: int
    macs: int
    input_elems: int
    weight_elems: int
    output_elems: int
    elem_bytes: int
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    parts: list["Cost"] = field(default_factory=list)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def input_bytes(self) -> int:
        return self.input_elems * self.elem_bytes

    @property
    def weight_bytes(self) -> int:
        return self.weight_elems * self.elem_bytes

    @property
    def output_bytes(self) -> int:
        return self.output_elems * self.elem_bytes

    @property
    def min_bytes(self) -> int:
        """Read input once, read weights once, write output once."""
        return self.input_bytes + self.weight_bytes + self.output_bytes

    @property
    def feature_map_bytes(self) -> int:
        """Input plus output activations."""
        return self.input_bytes + self.output_bytes

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP per byte of minimum traffic."""
        return self.flops / self.min_bytes if self.min_bytes else 0.0

    def backward(self) -> "Cost":
        """The cost of backward (grad-input + grad-weight): twice the MACs; minimum traffic reads
        grad-output, input and weights once and writes grad-input and grad-weight once."""
        return Cost(self.kind, self.params, 2 * self.macs, self.input_elems + self.output_elems,
                    2 * self.weight_elems, self.input_elems, self.elem_bytes, self.out_shape,
                    self.in_shape)

    def __add__(self, other: "Cost") -> "Cost":
        """A sequence of layers: the second's input is the first's output. The minimum traffic still
        counts every intermediate map once written and once read (no fusion assumed)."""
        return Cost(f"{self.kind}+{other.kind}", self.params + other.params,
                    self.macs + other.macs, self.input_elems + other.input_elems,
                    self.weight_elems + other.weight_elems, self.output_elems + other.output_elems,
                    self.elem_bytes, self.in_shape, other.out_shape,
                    (self.parts or [self]) + (other.parts or [other]))


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _padding(padding, kernel, dilation) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) from an int, (ph, pw), (t, b, l, r) or 'same'/'valid'."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":  # PyTorch's rule: extra padding goes after
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
        return out[0], out[1]
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    if len(padding) == 2:
        return (padding[0], padding[0]), (padding[1], padding[1])
    if len(padding) == 4:
        return (padding[0], padding[1]), (padding[2], padding[3])
    raise ValueError(f"padding must be an int, 'same', 'valid', (ph, pw) or (top, bottom, left, "
                     f"right), got {padding!r}")


def conv2d(n: int, c_in: int, h: int, w: int, c_out: int, kernel=1, stride=1, padding=0,
           dilation=1, groups: int = 1, bias: bool = False, dtype=torch.float32,
           kind: str | None = None) -> Cost:
    """Any 2-D convolution, as ``nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups,
    bias)`` on an ``(n, c_in, h, w)`` input. `kind` defaults to the classification of
    :func:`classify_conv2d`."""
    if c_in % groups or c_out % groups:
        raise ValueError(f"c_in ({c_in}) and c_out ({c_out}) must be multiples of groups "
                         f"({groups})")
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel), _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = _padding(padding, (kh, kw), (dh, dw))
    oh = conv_out_size(h, kh, sh, (pt, pb), dh)
    ow = conv_out_size(w, kw, sw, (pl, pr), dw)
    weights = c_out * (c_in // groups) * kh * kw
    params = weights + (c_out if bias else 0)
    macs = n * oh * ow * c_out * (c_in // groups) * kh * kw
    return Cost(kind or classify_conv2d(c_in, c_out, (kh, kw), groups), params, macs,
                n * c_in * h * w, params, n * c_out * oh * ow, element_size(dtype),
                (n, c_in, h, w), (n, c_out, oh, ow))


def classify_conv2d(c_in: int, c_out: int, kernel, groups: int) -> str:
    """'pointwise' (1x1, groups 1), 'standard' (groups 1), 'depthwise' (groups == c_in > 1, c_out a
    multiple of it) or 'grouped' (anything else with groups > 1)."""
    if groups == 1:
        return "pointwise" if _pair(kernel) == (1, 1) else "standard"
    if groups == c_in and c_out % c_in == 0:
        return "depthwise"
    return "grouped"


def standard(n, c_in, h, w, c_out, kernel=3, stride=1, padding=0, dilation=1, bias=False,
             dtype=torch.float32) -> Cost:
    """A full k x k convolution (every output channel sees every input channel)."""
    return conv2d(n, c_in, h, w, c_out, kernel, stride, padding, dilation, 1, bias, dtype,
                  kind="standard")


def grouped(n, c_in, h, w, c_out, groups, kernel=3, stride=1, padding=0, dilation=1, bias=False,
            dtype=torch.float32) -> Cost:
    """A grouped convolution: `groups` independent convolutions of c_in/groups channels each."""
    return conv2d(n, c_in, h, w, c_out, kernel, stride, padding, dilation, groups, bias, dtype,
                  kind="grouped")


def depthwise(n, c, h, w, kernel=3, stride=1, padding=0, dilation=1, multiplier: int = 1,
              bias=False, dtype=torch.float32) -> Cost:
    """A depthwise convolution: each of the c channels gets `multiplier` k x k filters."""
    return conv2d(n, c, h, w, c * multiplier, kernel, stride, padding, dilation, c, bias, dtype,
                  kind="depthwise")


def pointwise(n, c_in, h, w, c_out, stride=1, bias=False, dtype=torch.float32) -> Cost:
    """A 1x1 convolution: a matrix product over channels at every pixel."""
    return conv2d(n, c_in, h, w, c_out, 1, stride, 0, 1, 1, bias, dtype, kind="pointwise")


def depthwise_separable(n, c_in, h, w, c_out, kernel=3, stride=1, padding=0, dilation=1,
                        multiplier: int = 1, bias=False, dtype=torch.float32) -> Cost:
    """Depthwise k x k (stride, dilation and multiplier here) then pointwise to c_out."""
    dw = depthwise(n, c_in, h, w, kernel, stride, padding, dilation, multiplier, bias, dtype)
    _, c_mid, oh, ow = dw.out_shape
    total = dw + pointwise(n, c_mid, oh, ow, c_out, bias=bias, dtype=dtype)
    total.kind = "depthwise_separable"
    return total


def flattened(n, c_in, h, w, c_out, kernel=3, stride=1, padding=0, dilation=1, bias=False,
              dtype=torch.float32) -> Cost:
    """A rank-1 (flattened) convolution: 1-D depthwise k x 1 along H, then 1 x k along W, then
    pointwise to c_out. Stride, padding and dilation are per axis ((h, w) pairs or one int) and
    applied on the axis each 1-D stage runs along."""
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel), _pair(stride), _pair(dilation)
    (pt, pb), (pl, pr) = _padding(padding, (kh, kw), (dh, dw))
    vert = conv2d(n, c_in, h, w, c_in, (kh, 1), (sh, 1), (pt, pb, 0, 0), (dh, 1), c_in, bias,
                  dtype, kind="depthwise")
    _, _, oh, _ = vert.out_shape
    horiz = conv2d(n, c_in, oh, w, c_in, (1, kw), (1, sw), (0, 0, pl, pr), (1, dw), c_in, bias,
                   dtype, kind="depthwise")
    _, _, _, ow = horiz.out_shape
    total = vert + horiz + pointwise(n, c_in, oh, ow, c_out, bias=bias, dtype=dtype)
    total.kind = "flattened"
    return total


def channelwise(n, c_in, h, w, kernel: int, stride: int = 1,
                padding: int | tuple[int, int] | str = 0, groups: int = 1,
                dtype=torch.float32) -> Cost:
    """A (group) channel-wise convolution (ChannelNets): a 1-D kernel of length `kernel` sliding
    along the channel axis with `stride`, shared by every pixel and sample. With `groups` g there
    are g such kernels, each over all input channels, their outputs concatenated (ChannelNets'
    GCWC uses stride g, so c_out = c_in). 'same' padding adds kernel-1 zeros, the odd one after."""
    if padding == "same":
        total = kernel - 1
        pad = (total // 2, total - total // 2)
    elif padding == "valid":
        pad = (0, 0)
    else:
        pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    per_group = conv_out_size(c_in, kernel, stride, pad)
    c_out = per_group * groups
    params = kernel * groups
    macs = n * h * w * c_out * kernel
    return Cost("channelwise", params, macs, n * c_in * h * w, params, n * c_out * h * w,
                element_size(dtype), (n, c_in, h, w), (n, c_out, h, w))


def linear(n: int, in_features: int, out_features: int, bias: bool = True,
           dtype=torch.float32) -> Cost:
    """A fully connected layer on an (n, in_features) input."""
    params = in_features * out_features + (out_features if bias else 0)
    return Cost("fc", params, n * in_features * out_features, n * in_features, params,
                n * out_features, element_size(dtype), (n, in_features), (n, out_features))


def elementwise(shape_in: tuple[int, ...], shape_out: tuple[int, ...] | None = None,
                params: int = 0, kind: str = "other", dtype=torch.float32) -> Cost:
    """A layer without MACs under this convention (normalisation, activation, pooling...): it
    still moves its input and output."""
    shape_out = shape_in if shape_out is None else shape_out
    numel_in = int(torch.Size(shape_in).numel())
    numel_out = int(torch.Size(shape_out).numel())
    return Cost(kind, params, 0, numel_in, params, numel_out, element_size(dtype),
                tuple(shape_in), tuple(shape_out))
