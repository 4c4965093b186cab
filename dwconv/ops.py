"""Public functions and the registration of the dwconv ops with torch.library.

Every op lives in the `torch.ops.dwconv` namespace (schemas in csrc/ops.cpp). This module gives
each one a fake (meta) kernel, so torch.compile and torch.export trace through it, and wires the
forward op's autograd to the backward ops, so gradients are registered ops too. The CPU/CUDA family
(dw2d_fwd, dw2d_bwdi, dw2d_bwdw, and dw2d_bwd: both gradients at once) has its autograd in C++
(csrc/autograd.cpp, same behaviour, ~10 us less per forward and ~100 us less per backward of a
batch-1 layer than torch.library.register_autograd); the _emu and _triton families use
register_autograd here.
"""

from __future__ import annotations

import torch
from torch._prims_common import suggest_memory_format

from . import _args, backends

__all__ = ["depthwise_conv2d"]


# ------------------------------------------------------------------------- fake kernels
# They validate like the real kernels (so a bad call fails while tracing or on the meta device, not
# later) and give outputs the real kernels' shapes, dtypes and memory formats.
def _empty(like, size, memory_format=torch.contiguous_format):
    # new_empty takes no memory_format
    return torch.empty(size, dtype=like.dtype, device=like.device, memory_format=memory_format)


def _check_grad_out(grad_out, other, other_name, expected):
    if grad_out.dtype != other.dtype or grad_out.device != other.device:
        raise RuntimeError(f"dwconv: grad_output ({grad_out.dtype} on {grad_out.device}) and "
                           f"{other_name} ({other.dtype} on {other.device}) must have the same "
                           f"dtype and device")
    if tuple(grad_out.shape) != tuple(expected):
        raise RuntimeError(f"dwconv: grad_output must be {list(expected)}, got shape "
                           f"{list(grad_out.shape)}")


def _dw2d_fwd_fake(input, weight, bias, stride, padding, dilation):
    oh, ow = _args.check_depthwise(input, weight, bias, stride, padding, dilation)
    return _empty(input, (input.shape[0], weight.shape[0], oh, ow), suggest_memory_format(input))


@torch.library.register_fake("dwconv::dw2d_fwd_out")
def _dw2d_fwd_out_fake(input, weight, bias, stride, padding, dilation, *, out):
    oh, ow = _args.check_depthwise(input, weight, bias, stride, padding, dilation)
    if tuple(out.shape) != (input.shape[0], weight.shape[0], oh, ow) or out.dtype != input.dtype:
        raise RuntimeError(f"dwconv: out must be a {input.dtype} tensor of shape "
                           f"{[input.shape[0], weight.shape[0], oh, ow]}, got {out.dtype} "
                           f"{list(out.shape)}")
    return None


def _dw2d_bwdi_fake(grad_out, weight, input_size, stride, padding, dilation):
    input = _empty(grad_out, input_size)
    oh, ow = _args.check_depthwise(input, weight, None, stride, padding, dilation)
    _check_grad_out(grad_out, weight, "weight", (input_size[0], weight.shape[0], oh, ow))
    return _empty(grad_out, input_size, suggest_memory_format(grad_out))


def _dw2d_bwdw_fake(grad_out, input, kernel_size, stride, padding, dilation):
    if grad_out.dim() != 4:
        raise RuntimeError(f"dwconv: grad_output must be 4-D, got shape {list(grad_out.shape)}")
    weight_size = (grad_out.shape[1], 1, kernel_size[0], kernel_size[1])
    oh, ow = _args.check_depthwise(input, _empty(input, weight_size), None, stride, padding,
                                   dilation)
    _check_grad_out(grad_out, input, "input", (input.shape[0], weight_size[0], oh, ow))
    return _empty(grad_out, weight_size)


# ------------------------------------------------------------------------------ autograd
def _dw2d_setup_context(ctx, inputs, output):
    input, weight, bias, stride, padding, dilation = inputs
    ctx.save_for_backward(input if ctx.needs_input_grad[1] else None,
                          weight if ctx.needs_input_grad[0] else None)
    ctx.input_size = input.shape
    ctx.kernel_size = weight.shape[2:]
    ctx.geometry = (stride, padding, dilation)


def _dw2d_backward(suffix):
    """Backward of dw2d_fwd{suffix}, made of the same family's registered backward ops."""
    bwdi = getattr(torch.ops.dwconv, f"dw2d_bwdi{suffix}")
    bwdw = getattr(torch.ops.dwconv, f"dw2d_bwdw{suffix}")

    def backward(ctx, grad_out):
        input, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_input = bwdi(grad_out, weight, ctx.input_size, stride, padding, dilation)
        if ctx.needs_input_grad[1]:
            grad_weight = bwdw(grad_out, input, ctx.kernel_size, stride, padding, dilation)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_input, grad_weight, grad_bias, None, None, None
    return backward


def _no_double_backward(name):
    def backward(ctx, *grads):
        raise RuntimeError(f"dwconv: double backward through {name} is not supported; use "
                           f"backend='torch' for higher-order gradients")
    return backward


def register_family(suffix: str = "", *, autograd: bool = True) -> None:
    """Fake kernels and autograd for one family of ops with the dw2d_fwd/bwdi/bwdw schemas:
    dwconv::dw2d_fwd{suffix}, dw2d_bwdi{suffix}, dw2d_bwdw{suffix} (e.g. suffix "_triton").
    autograd=False: the family has its autograd in C++ already (csrc/autograd.cpp)."""
    fakes = {"fwd": _dw2d_fwd_fake, "bwdi": _dw2d_bwdi_fake, "bwdw": _dw2d_bwdw_fake}
    for name, fake in fakes.items():
        torch.library.register_fake(f"dwconv::dw2d_{name}{suffix}", fake)
    if not autograd:
        return
    torch.library.register_autograd(f"dwconv::dw2d_fwd{suffix}", _dw2d_backward(suffix),
                                    setup_context=_dw2d_setup_context)
    for name in (f"dw2d_bwdi{suffix}", f"dw2d_bwdw{suffix}"):
        torch.library.register_autograd(f"dwconv::{name}", _no_double_backward(name),
                                        setup_context=lambda ctx, inputs, output: None)


register_family(autograd=False)  # the CPU/CUDA ops: autograd in csrc/autograd.cpp


@torch.library.register_fake("dwconv::dw2d_bwd")
def _dw2d_bwd_fake(grad_out, input, weight, stride, padding, dilation):
    """Both gradients of dw2d_fwd at once (the CPU/CUDA family only): (grad_input, grad_weight)."""
    oh, ow = _args.check_depthwise(input, weight, None, stride, padding, dilation)
    _check_grad_out(grad_out, input, "input", (input.shape[0], weight.shape[0], oh, ow))
    _check_grad_out(grad_out, weight, "weight", (input.shape[0], weight.shape[0], oh, ow))
    return (_empty(grad_out, input.shape, suggest_memory_format(grad_out)),
            _empty(grad_out, weight.shape))


if hasattr(torch.ops.dwconv, "dw2d_fwd_emu"):  # built with the CUDA emulation (backend cuda_emu)
    register_family("_emu")


# ------------------------------------------------------------------------ public function
def depthwise_conv2d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride: _args.IntOrPair = 1, padding: _args.Padding = 0,
                     dilation: _args.IntOrPair = 1, *, backend: str | None = None,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    r"""Depthwise 2-D convolution: ``F.conv2d(input, weight, bias, stride, padding, dilation,
    groups=C)`` computed by dwconv's kernels.

    Shapes:
        - input: :math:`(N, C, H, W)` or :math:`(C, H, W)`, NCHW or channels_last
        - weight: :math:`(C \cdot m, 1, kH, kW)` for depth multiplier :math:`m \ge 1`
        - bias: :math:`(C \cdot m)`
        - output: :math:`(N, C \cdot m, H_{out}, W_{out})` in the input's memory format

    Args:
        input, weight, bias: as for :func:`torch.nn.functional.conv2d` with ``groups=C``.
        stride, dilation: int or pair. Default: 1
        padding: int, pair, ``'valid'`` or ``'same'`` (PyTorch's meaning: asymmetric for even
            kernels, stride 1 only). Default: 0
        backend: ``'auto'`` (the default, or ``$DWCONV_BACKEND``), or a name from
            :func:`dwconv.backends`. An explicit backend that cannot serve the call raises.
        out: optional preallocated output (reused across calls to avoid allocation cost);
            not differentiable, like PyTorch's ``out=`` arguments.

    Examples::

        >>> x = torch.randn(8, 32, 56, 56).to(memory_format=torch.channels_last)
        >>> w = torch.randn(32, 1, 3, 3)
        >>> y = dwconv.depthwise_conv2d(x, w, padding=1)
    """
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    unbatched = input.dim() == 3
    if unbatched:
        input = input.unsqueeze(0)
        if out is not None:
            out = out.unsqueeze(0)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, got {type(weight).__name__}")
    if weight.dim() != 4:
        raise ValueError(f"weight must be a 4-D tensor [C*m, 1, kH, kW], got shape "
                         f"{tuple(weight.shape)}")
    stride_ = _args.pair(stride, "stride")
    dilation_ = _args.pair(dilation, "dilation")
    _args.check_positive(stride_, "stride")
    _args.check_positive(dilation_, "dilation")
    padding_ = _args.conv_padding(padding, (weight.shape[2], weight.shape[3]), stride_, dilation_)
    oh, ow = _args.check_depthwise(input, weight, bias, stride_, padding_, dilation_)
    impl = backends.select(backend, input, weight, bias)
    if out is None:
        y = impl.conv2d(input, weight, bias, stride_, padding_, dilation_)
    else:
        expected = (input.shape[0], weight.shape[0], oh, ow)
        if tuple(out.shape) != expected or out.dtype != input.dtype or out.device != input.device:
            raise ValueError(f"out must be a {input.dtype} tensor of shape {expected} on "
                             f"{input.device}, got {out.dtype} {tuple(out.shape)} on {out.device}")
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                           for t in (input, weight, bias)):
            raise RuntimeError("depthwise_conv2d(): functions with out=... arguments don't support "
                               "automatic differentiation, but one of the arguments requires grad")
        impl.conv2d_out(input, weight, bias, stride_, padding_, dilation_, out)
        y = out
    return y.squeeze(0) if unbatched else y
