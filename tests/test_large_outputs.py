"""Outputs big enough to come from the output cache of csrc/output_cache.cpp (>= 1 MiB: blocks
reused after their tensor dies; >= 8 MiB: huge-page hint on new ones): neither may change what the
kernels compute, in either layout or pass; and outputs big enough for the forward and the
stride-2 backward-input to stream them past the cache."""

import pytest
import torch

import dwconv
from tolerances import assert_close


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_large_output_forward_and_backward(channels_last):
    x = torch.randn(4, 64, 112, 112)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(64, 1, 3, 3, requires_grad=True)
    y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
    assert y.numel() * y.element_size() >= 8 << 20
    ref = dwconv.reference.depthwise_conv2d(x, w, padding=1)
    assert_close(y, ref, backend="cpu", dtype=torch.float32)
    g = torch.randn_like(ref)
    gx, gw = torch.autograd.grad(y, (x, w), g.float())
    rx, rw = torch.autograd.grad(ref, (x, w), g)
    assert_close(gx, rx, backend="cpu", dtype=torch.float32, what="grad_input")
    assert_close(gw, rw, backend="cpu", dtype=torch.float32, what="grad_weight")


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_streamed_output_forward(channels_last, cpu_isa):
    """In + out >= 32 MiB: the forward writes whole aligned vectors with non-temporal stores
    (kStreamBytes in kernels/cpu/dw2d_impl.h): the NHWC kernels, and in NCHW the packed path's
    unpack. C = 100 gives NHWC pixels whose vectors are not all 64-byte aligned and a channel
    tail; NCHW planes of 181x181 (past the last full vector, and not 64-byte aligned but for
    every 16th) and a partial last tile of channels, so streamed and plain stores mix in one
    output."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 100, 181, 181).contiguous(memory_format=fmt)
    w = torch.randn(100, 1, 3, 3)
    b = torch.randn(100)
    y = dwconv.depthwise_conv2d(x, w, b, padding=1, backend="cpu")
    assert (x.numel() + y.numel()) * 4 >= 32 << 20
    assert y.is_contiguous(memory_format=fmt)
    assert_close(y, dwconv.reference.depthwise_conv2d(x, w, b, padding=1), backend="cpu",
                 dtype=torch.float32)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_streamed_grad_input_stride2(channels_last, cpu_isa):
    """gx + gy >= 32 MiB at stride 2 (the backward-input kernels, not the forward ones): whole
    aligned vectors streamed, the rest stored plainly. C = 100 (NHWC) and W = 250 (NCHW rows of
    1000 bytes) mix aligned and unaligned vectors and tails in one gx."""
    x = torch.randn(2, 100, 250, 250, dtype=torch.float64)
    w = torch.randn(100, 1, 3, 3, dtype=torch.float64)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xr = x.requires_grad_()
    ref = dwconv.reference.depthwise_conv2d(xr, w, stride=2, padding=1)
    g = torch.randn_like(ref)
    (gx_ref,) = torch.autograd.grad(ref, (xr,), g)
    assert (x.numel() + g.numel()) * 4 >= 32 << 20
    gx = torch.ops.dwconv.dw2d_bwdi(g.float().contiguous(memory_format=fmt), w.float(),
                                    list(x.shape), [2, 2], [1, 1, 1, 1], [1, 1])
    assert gx.is_contiguous(memory_format=fmt)
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what="grad_input")


def test_output_cache_reuses_freed_blocks_and_can_be_turned_off():
    """Large CPU outputs come from csrc/output_cache.cpp: a freed one's block serves the next output
    of that size (no fresh page faults); limit 0 frees the cache and allocates normally."""
    from dwconv import _C
    before = _C.cpu_output_cache_info()["limit_bytes"] >> 20
    x = torch.randn(2, 64, 128, 128)  # 8 MiB outputs
    w = torch.randn(64, 1, 3, 3)
    try:
        _C.set_cpu_output_cache_limit(64)
        y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
        ptr, expected = y.data_ptr(), y.clone()
        del y
        assert _C.cpu_output_cache_info()["cached_bytes"] >= 8 << 20
        y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
        assert y.data_ptr() == ptr
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
        y.resize_(2, 64, 256, 256).fill_(1.0)  # outputs stay resizable like any CPU tensor
        del y
        _C.set_cpu_output_cache_limit(0)
        assert _C.cpu_output_cache_info()["cached_bytes"] == 0
        y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
        torch.testing.assert_close(y, expected, rtol=0, atol=0)
    finally:
        _C.set_cpu_output_cache_limit(before)


def test_output_cache_hands_out_the_newest_freed_block():
    """Of several cached blocks of one size, the last freed (likeliest still in the CPU caches)
    serves the next output, every time: no rotation through all of them."""
    from dwconv import _C
    before = _C.cpu_output_cache_info()["limit_bytes"] >> 20
    x = torch.randn(1, 64, 64, 64)  # 1 MiB outputs
    w = torch.randn(64, 1, 3, 3)
    try:
        _C.set_cpu_output_cache_limit(0)  # start empty
        _C.set_cpu_output_cache_limit(64)
        ys = [dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu") for _ in range(3)]
        ptrs = [y.data_ptr() for y in ys]
        assert len(set(ptrs)) == 3
        while ys:  # freed in order 0, 1, 2
            del ys[0]
        for _ in range(3):
            y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
            assert y.data_ptr() == ptrs[2]
            del y
        a = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
        b = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
        assert (a.data_ptr(), b.data_ptr()) == (ptrs[2], ptrs[1])
    finally:
        _C.set_cpu_output_cache_limit(before)
