"""Argument normalisation and validation for the public functions: every error names the argument
and the shapes involved, before any kernel runs."""

from __future__ import annotations

from typing import Sequence, Union

import torch

IntOrPair = Union[int, Sequence[int]]
Padding = Union[str, int, Sequence[int]]

FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def pair(value: IntOrPair, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair; raises naming the argument otherwise."""
    # the common cases first: this runs on every call (bool is a subclass of int, not this type)
    if type(value) is int:
        return (value, value)
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int \
            and type(value[1]) is int:
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) == 1:
        items = items * 2
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return items  # type: ignore[return-value]


def conv_padding(padding: Padding, kernel_size: tuple[int, int], stride: tuple[int, int],
                 dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """Padding as (top, bottom, left, right), with PyTorch's meaning of 'same' and 'valid'.

    'same' pads d*(k-1) in total, the smaller half first (asymmetric for even effective kernels),
    and like PyTorch is only allowed with stride 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' is not supported for strided convolutions, "
                                 f"got stride={stride}")
            out = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                out += [total // 2, total - total // 2]
            return tuple(out)  # type: ignore[return-value]
        raise ValueError(f"padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return (ph, ph, pw, pw)


def check_positive(value: tuple[int, int], name: str) -> None:
    if value[0] < 1 or value[1] < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def output_size(size: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def check_depthwise(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    stride: tuple[int, int], padding: tuple[int, int, int, int],
                    dilation: tuple[int, int]) -> tuple[int, int]:
    """Validates a batched depthwise conv2d call; returns the output (H, W)."""
    # every attribute read once: this runs on every call, and each read builds a Python object
    for name, t in (("input", input), ("weight", weight), ("bias", bias)):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    ishape, wshape = input.shape, weight.shape
    if len(ishape) != 4:
        raise ValueError(f"input must be [N, C, H, W] or [C, H, W], got shape {tuple(ishape)}")
    if len(wshape) != 4 or wshape[1] != 1:
        raise ValueError(f"weight must be [C*m, 1, kH, kW] for a depthwise convolution, got shape "
                         f"{tuple(wshape)}")
    c, cout = ishape[1], wshape[0]
    if c == 0 or cout == 0 or cout % c != 0:
        raise ValueError(f"weight has {cout} output channels, which must be a positive multiple of "
                         f"the input's {c} channels (input shape {tuple(ishape)}, weight shape "
                         f"{tuple(wshape)})")
    if wshape[2] < 1 or wshape[3] < 1:
        raise ValueError(f"weight has an empty kernel, shape {tuple(wshape)}")
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != cout):
        raise ValueError(f"bias must be [{cout}] for weight shape {tuple(wshape)}, got shape "
                         f"{tuple(bias.shape)}")
    dtype, device = input.dtype, input.device
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if t.dtype != dtype:
            raise TypeError(f"{name} dtype {t.dtype} does not match input dtype {dtype}")
        if t.device != device:
            raise ValueError(f"{name} is on {t.device} but input is on {device}")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"input dtype must be one of float32, float64, bfloat16, float16, got "
                        f"{dtype}")
    check_positive(stride, "stride")
    check_positive(dilation, "dilation")
    if min(padding) < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    kh, kw = wshape[2], wshape[3]
    oh = output_size(ishape[2], kh, stride[0], dilation[0], padding[0], padding[1])
    ow = output_size(ishape[3], kw, stride[1], dilation[1], padding[2], padding[3])
    if oh < 1 or ow < 1:
        raise ValueError(f"output would be empty ({oh}x{ow}): input shape {tuple(ishape)} with "
                         f"padding {padding} is smaller than the dilated kernel "
                         f"{dilation[0] * (kh - 1) + 1}x{dilation[1] * (kw - 1) + 1} (weight shape "
                         f"{tuple(wshape)}, dilation {dilation})")
    return oh, ow
