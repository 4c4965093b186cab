"""The Triton kernels compiled and run on a CUDA GPU (skipped without one): outputs and gradients
against the float64 reference, autotuned block sizes, bwdw split over many programs, 64-bit
indexing on a real >2**31-element image, and auto's choice on CUDA tensors."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

import dwconv
from tolerances import assert_close

pytest.importorskip("triton")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# (n, c, h, w, m, k, stride, padding (t, b, l, r), dilation)
GEOMETRIES = {
    "k3s1p1": (4, 32, 28, 28, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    "k3s2_c130": (2, 130, 31, 29, 1, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    "k7x5_s2_d2_m2_asym": (2, 24, 33, 40, 2, (7, 5), (2, 1), (3, 1, 0, 4), (2, 1)),
    "k31": (1, 16, 40, 40, 1, (31, 31), (1, 1), (15, 15, 15, 15), (1, 1)),
}


def _reference(x, w, b, stride, padding, dilation):
    top, bottom, left, right = padding
    return dwconv.reference.depthwise_conv2d(F.pad(x.double(), (left, right, top, bottom)), w, b,
                                             stride, 0, dilation)


def _torch_conv(x, w, b, stride, padding, dilation):
    top, bottom, left, right = padding
    return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride, 0, dilation, x.shape[1])


def _leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_forward_backward(geometry, channels_last, dtype):
    n, c, h, w, m, k, stride, padding, dilation = geometry
    x = torch.randn(n, c, h, w, device="cuda", dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    wt = torch.randn(c * m, 1, *k, device="cuda", dtype=dtype) / (k[0] * k[1]) ** 0.5
    b = torch.randn(c * m, device="cuda", dtype=dtype)
    xs, ws, bs = _leaves(x, wt, b)
    y = torch.ops.dwconv.dw2d_fwd_triton(xs, ws, bs, stride, padding, dilation)
    xr, wr, br = _leaves(x.double(), wt.double(), b.double())
    ref = _reference(xr, wr, br, stride, padding, dilation)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(y, (xs, ws, bs), g.to(dtype))
    refs = torch.autograd.grad(ref, (xr, wr, br), g)
    base, base_grads = None, [None] * 3
    if dtype != torch.float32:
        xb, wb, bb = _leaves(x, wt, b)
        base = _torch_conv(xb, wb, bb, stride, padding, dilation)
        base_grads = torch.autograd.grad(base, (xb, wb, bb), g.to(dtype))
    assert_close(y, ref, backend="triton", dtype=dtype, baseline=base)
    for name, a, r, bl in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs,
                              base_grads):
        assert_close(a, r, backend="triton", dtype=dtype, baseline=bl, what=name)


def test_bwdw_is_deterministic_across_many_programs():
    gy = torch.randn(16, 64, 56, 56, device="cuda")
    x = torch.randn(16, 64, 56, 56, device="cuda")
    args = ([3, 3], [1, 1], [1, 1, 1, 1], [1, 1])
    a = torch.ops.dwconv.dw2d_bwdw_triton(gy, x, *args)
    assert torch.equal(a, torch.ops.dwconv.dw2d_bwdw_triton(gy, x, *args))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_int64_indexing_on_a_huge_image(channels_last):
    """One image of 2**31 + 2**21 elements: offsets past 2**31 must not wrap around, in any pass."""
    free, _ = torch.cuda.mem_get_info()
    if free < 24 * 2**30:
        pytest.skip("needs 24 GiB of free GPU memory")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.empty(1, 2049, 1024, 1024, device="cuda", dtype=torch.float16, memory_format=fmt)
    x.normal_()
    w = torch.randn(2049, 1, 3, 3, device="cuda", dtype=torch.float16)
    geometry = ([1, 1], [1, 1, 1, 1], [1, 1])
    y = torch.ops.dwconv.dw2d_fwd_triton(x, w, None, *geometry)  # also the grad_out below
    gx = torch.ops.dwconv.dw2d_bwdi_triton(y, w, list(x.shape), *geometry)
    gw = torch.ops.dwconv.dw2d_bwdw_triton(y, x, [3, 3], *geometry)
    tail = slice(2045, 2049)  # channels are independent: check the last ones, furthest in memory
    xt, wt = _leaves(x[:, tail], w[tail])
    base = F.conv2d(xt, wt, None, 1, 1, 1, 4)
    base_grads = torch.autograd.grad(base, (xt, wt), y[:, tail])
    xr, wr = _leaves(x[:, tail].double(), w[tail].double())
    ref = dwconv.reference.depthwise_conv2d(xr, wr, padding=1)
    ref_grads = torch.autograd.grad(ref, (xr, wr), y[:, tail].double())
    assert_close(y[:, tail], ref, backend="triton", dtype=torch.float16, baseline=base)
    for name, a, r, bl in zip(("grad_input", "grad_weight"), (gx[:, tail], gw[tail]), ref_grads,
                              base_grads):
        assert_close(a, r, backend="triton", dtype=torch.float16, baseline=bl, what=name)


def test_auto_on_cuda_picks_a_dwconv_kernel():
    x = torch.randn(1, 8, 10, 10, device="cuda")
    w = torch.randn(8, 1, 3, 3, device="cuda")
    picked = sys.modules["dwconv.backends"].select("auto", x, w, None).name
    assert picked == ("cuda" if dwconv.backends()["cuda"] is None else "triton")
