"""Shared test helpers: one depthwise-conv problem description, its inputs in a chosen memory
layout, the check of output and every gradient against the float64 reference, and a call
repeated at several thread counts."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

import dwconv
from dwconv import _args
from dwconv.backends import get as get_backend
from tolerances import assert_close

HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Case:
    """One depthwise conv2d problem. `layout` is the input's memory layout: "nchw",
    "channels_last", "sliced" (a strided view) or "transposed" (H and W swapped in memory)."""
    n: int = 2
    c: int = 5
    h: int = 9
    w: int = 11
    m: int = 1
    k: tuple = (3, 3)
    stride: object = 1
    padding: object = 1
    dilation: object = 1
    bias: bool = True
    layout: str = "nchw"
    grad_layout: str = "nchw"  # "sliced": a non-contiguous grad_output

    def with_(self, **kw) -> "Case":
        return replace(self, **kw)

    def __str__(self) -> str:  # readable pytest ids
        k = f"{self.k[0]}x{self.k[1]}"
        return (f"n{self.n}c{self.c}_{self.h}x{self.w}_m{self.m}_k{k}_s{self.stride}_"
                f"p{self.padding}_d{self.dilation}{'' if self.bias else '_nobias'}"
                f"{'' if self.layout == 'nchw' else '_' + self.layout}"
                f"{'' if self.grad_layout == 'nchw' else '_g' + self.grad_layout}")


def at_thread_counts(fn, counts=(1, 2, 3)) -> list:
    """fn() once per torch thread count in `counts`, in order; the thread count restored after."""
    before = torch.get_num_threads()
    try:
        results = []
        for threads in counts:
            torch.set_num_threads(threads)
            results.append(fn())
        return results
    finally:
        torch.set_num_threads(before)


def layout_as(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The values of `t` (4-D) in the requested memory layout."""
    if layout == "nchw":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "sliced":  # every other element of a twice-as-wide buffer
        big = torch.empty(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
        view = big[..., ::2]
        view.copy_(t)
        return view
    if layout == "transposed":
        return t.transpose(2, 3).contiguous().transpose(2, 3)
    raise ValueError(layout)


def make_inputs(case: Case, dtype=torch.float32):
    """Leaf tensors (input, weight, bias or None), input in `case.layout`."""
    kh, kw = case.k
    x = layout_as(torch.randn(case.n, case.c, case.h, case.w, dtype=dtype), case.layout)
    w = torch.randn(case.c * case.m, 1, kh, kw, dtype=dtype)
    b = torch.randn(case.c * case.m, dtype=dtype) if case.bias else None
    return [t if t is None else t.requires_grad_() for t in (x, w, b)]


def leaves_like(tensors, dtype):
    """Detached copies in `dtype` that require grad (None stays None)."""
    return [t if t is None else t.detach().to(dtype).requires_grad_() for t in tensors]


def grads_of(y, tensors, grad_out):
    """Gradients of <y, grad_out> w.r.t. every tensor (None for None)."""
    present = [t for t in tensors if t is not None]
    grads = iter(torch.autograd.grad(y, present, grad_out))
    return [None if t is None else next(grads) for t in tensors]


def check_case(case: Case, dtype=torch.float32, backend: str = "cpu") -> None:
    """Output and every gradient of dwconv against the float64 reference; half dtypes are judged
    against PyTorch's own error in that dtype (tests/tolerances.py)."""
    geo = dict(stride=case.stride, padding=case.padding, dilation=case.dilation)
    tensors = make_inputs(case, dtype)

    ref_in = leaves_like(tensors, torch.float64)
    ref = dwconv.reference.depthwise_conv2d(*ref_in, **geo)
    g = layout_as(torch.randn(ref.shape, dtype=torch.float64).to(dtype), case.grad_layout)
    ref_grads = grads_of(ref, ref_in, g.double())

    y = dwconv.depthwise_conv2d(*tensors, **geo, backend=backend)
    assert y.dtype == dtype and y.shape == ref.shape
    grads = grads_of(y, tensors, g)

    baseline, base_grads = None, [None] * 3
    if dtype in HALF:  # PyTorch's own result in this dtype sets the bar
        torch_in = leaves_like(tensors, dtype)
        baseline = get_backend("torch").conv2d(
            torch_in[0], torch_in[1], torch_in[2], *_normalised(case, ref_in[1]))
        base_grads = grads_of(baseline, torch_in, g)
    assert_close(y, ref, backend=backend, dtype=dtype, baseline=baseline)
    for name, a, e, bl in zip(("grad_input", "grad_weight", "grad_bias"), grads, ref_grads,
                              base_grads):
        if e is not None:
            assert a.dtype == dtype, f"{name} dtype {a.dtype}"
            assert_close(a, e, backend=backend, dtype=dtype, baseline=bl, what=name)


def _normalised(case: Case, weight: torch.Tensor):
    """(stride, padding as 4 ints, dilation), as the backends take them."""
    stride = _args.pair(case.stride, "stride")
    dilation = _args.pair(case.dilation, "dilation")
    return stride, _args.conv_padding(case.padding, tuple(weight.shape[2:]), stride, dilation), \
        dilation
