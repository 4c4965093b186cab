"""The Triton kernels under Triton's interpreter, on CPU tensors, against the float64 reference.

The interpreter costs ~15-20 ms per program instance, so the cases are few and small, chosen so
that every mask is crossed: C and W not multiples of the block, padding on every side (unequal),
stride 2-3, dilation, depth multiplier 2, NCHW and NHWC, several blocks per axis (small-block
cases), bwdw split into several chunks, and the 64-bit indexing path (forced).

TRITON_INTERPRET=1 is set per test with monkeypatch, so other tests in the same pytest process
see the environment unchanged; dwconv.triton builds its interpreted kernels explicitly, so it does
not matter that triton was imported before the variable was set.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import dwconv
from tolerances import assert_close

launch = pytest.importorskip("dwconv.triton.launch")

BIG = {"fwd": {"BLOCK_P": 128, "BLOCK_C": 16}, "bwdi": {"BLOCK_P": 128, "BLOCK_C": 16},
       "bwdw": {"BLOCK_P": 128, "BLOCK_C": 16, "CHUNK": None}}
# several blocks along both tile axes, ragged last blocks, bwdw in chunks not a multiple of BLOCK_P
SMALL = {"fwd": {"BLOCK_P": 32, "BLOCK_C": 8}, "bwdi": {"BLOCK_P": 32, "BLOCK_C": 4},
         "bwdw": {"BLOCK_P": 16, "BLOCK_C": 8, "CHUNK": 40}}


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(launch, "INTERPRETER_CONFIG", BIG)
    launch.set_debug_fill_nan(True)
    yield
    launch.set_debug_fill_nan(False)


def _torch_conv(x, w, b, stride, padding, dilation):
    """F.conv2d(groups=C) after explicit 4-sided padding (top, bottom, left, right)."""
    top, bottom, left, right = padding
    return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride, 0, dilation, x.shape[1])


def _reference(x, w, b, stride, padding, dilation):
    top, bottom, left, right = padding
    return dwconv.reference.depthwise_conv2d(F.pad(x.double(), (left, right, top, bottom)), w, b,
                                             stride, 0, dilation)


def _leaves(*tensors):
    return [None if t is None else t.detach().clone().requires_grad_() for t in tensors]


def check_case(n, c, h, w, m, k, stride, padding, dilation, channels_last, dtype, bias=True):
    """Forward and both backward passes of the Triton ops against the float64 reference."""
    x = torch.randn(n, c, h, w, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    wt = torch.randn(c * m, 1, *k, dtype=dtype)
    b = torch.randn(c * m, dtype=dtype) if bias else None
    xs, ws, bs = _leaves(x, wt, b)
    y = torch.ops.dwconv.dw2d_fwd_triton(xs, ws, bs, stride, padding, dilation)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last
                           else torch.contiguous_format)
    xr, wr, br = _leaves(x.double(), wt.double(), None if b is None else b.double())
    ref = _reference(xr, wr, br, stride, padding, dilation)
    g = torch.randn(ref.shape, dtype=torch.float64)
    inputs, ref_inputs = [xs, ws] + ([bs] if bias else []), [xr, wr] + ([br] if bias else [])
    grads = torch.autograd.grad(y, inputs, g.to(dtype))
    ref_grads = torch.autograd.grad(ref, ref_inputs, g)
    base, base_grads = None, [None] * len(inputs)
    if dtype in (torch.float16, torch.bfloat16):  # PyTorch's own error in this dtype is the bar
        xb, wb, bb = _leaves(x, wt, b)
        base = _torch_conv(xb, wb, bb, stride, padding, dilation)
        base_grads = torch.autograd.grad(base, [xb, wb] + ([bb] if bias else []), g.to(dtype))
    assert_close(y, ref, backend="triton", dtype=dtype, baseline=base, what="output")
    for name, a, r, bl in zip(("grad_input", "grad_weight", "grad_bias"), grads, ref_grads,
                              base_grads):
        assert_close(a, r, backend="triton", dtype=dtype, baseline=bl, what=name)


# name: (n, c, h, w, m, k, stride, padding (t, b, l, r), dilation)
GEOMETRIES = {
    "k3s1p1": (2, 5, 9, 11, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    "k3x5_s21_d12_m2_pad_all_sides": (1, 6, 10, 13, 2, (3, 5), (2, 1), (0, 2, 3, 1), (1, 2)),
    "k1_h1": (3, 7, 1, 7, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
    "k2x7_s3_pad_past_edge": (1, 3, 8, 9, 1, (2, 7), (3, 2), (2, 3, 4, 5), (1, 1)),
}


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_float32(geometry, channels_last):
    check_case(*geometry, channels_last, torch.float32)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_float32_block_edges(monkeypatch, channels_last):
    """Several blocks along positions and channels, ragged last blocks, bwdw in chunks of 40."""
    monkeypatch.setattr(launch, "INTERPRETER_CONFIG", SMALL)
    check_case(2, 13, 7, 9, 2, (5, 3), (2, 1), (2, 1, 0, 3), (2, 1), channels_last, torch.float32)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_int64_indexing_path(monkeypatch, channels_last):
    """The IDX64 specialisation (used for images of >= 2**31 elements) on a small problem."""
    real_consts = launch._consts
    monkeypatch.setattr(launch, "_consts", lambda *a: {**real_consts(*a), "IDX64": True})
    check_case(2, 5, 6, 7, 2, (3, 3), (2, 2), (1, 0, 1, 2), (1, 1), channels_last, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_half(dtype, channels_last):
    check_case(2, 6, 8, 9, 2, (3, 3), (2, 1), (1, 1, 2, 0), (1, 2), channels_last, dtype)


@st.composite
def _random_case(draw):
    kh, kw, dh, dw = (draw(st.integers(1, n)) for n in (5, 5, 2, 2))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pad[0] - pad[1]), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pad[2] - pad[3]), 9))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 9)), h, w, draw(st.integers(1, 3)),
            (kh, kw), (draw(st.integers(1, 3)), draw(st.integers(1, 3))), pad, (dh, dw),
            draw(st.booleans()), torch.float32, draw(st.booleans()))


@settings(max_examples=6, deadline=None, derandomize=True)
@given(case=_random_case())
def test_random_geometries(case):
    """Random geometries with small blocks (a 40-case sweep with other seeds passed too)."""
    launch.INTERPRETER_CONFIG = SMALL  # the autouse fixture's monkeypatch undoes this
    check_case(*case)


def test_public_api_same_padding_noncontiguous_no_bias():
    x = torch.randn(2, 4, 12, 10)[:, :, 1:, ::2]  # neither NCHW- nor NHWC-contiguous
    w = torch.randn(4, 1, 4, 2)
    y = dwconv.depthwise_conv2d(x, w, padding="same", backend="triton")
    assert_close(y, dwconv.reference.depthwise_conv2d(x, w, padding="same"), backend="triton",
                 dtype=torch.float32)


def test_empty_batch():
    x = torch.randn(0, 3, 5, 5, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, requires_grad=True)
    y = dwconv.depthwise_conv2d(x, w, padding=1, backend="triton")
    assert y.shape == (0, 3, 5, 5)
    gx, gw = torch.autograd.grad(y, (x, w), torch.ones_like(y))
    assert gx.shape == x.shape and torch.equal(gw, torch.zeros_like(w))


def test_bwdw_is_deterministic(monkeypatch):
    monkeypatch.setattr(launch, "INTERPRETER_CONFIG", SMALL)
    gy = torch.randn(2, 6, 9, 9)
    x = torch.randn(2, 6, 9, 9)
    a = torch.ops.dwconv.dw2d_bwdw_triton(gy, x, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1])
    b = torch.ops.dwconv.dw2d_bwdw_triton(gy, x, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1])
    assert torch.equal(a, b)


def test_bad_arguments_raise_clearly():
    x, w = torch.randn(1, 4, 6, 6), torch.randn(4, 1, 3, 3)
    with pytest.raises(TypeError, match="float64"):
        torch.ops.dwconv.dw2d_fwd_triton(x.double(), w.double(), None, [1, 1], [0] * 4, [1, 1])
    with pytest.raises(ValueError, match="grad_out must have shape"):
        torch.ops.dwconv.dw2d_bwdi_triton(torch.randn(1, 4, 5, 5), w, [1, 4, 6, 6], [1, 1],
                                          [0] * 4, [1, 1])
    with pytest.raises(ValueError, match="multiple"):
        torch.ops.dwconv.dw2d_fwd_triton(x, torch.randn(6, 1, 3, 3), None, [1, 1], [0] * 4,
                                         [1, 1])


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        torch.ops.dwconv.dw2d_fwd_triton(torch.randn(1, 2, 4, 4), torch.randn(2, 1, 3, 3), None,
                                         [1, 1], [1] * 4, [1, 1])


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_opcheck(channels_last):
    x = torch.randn(1, 3, 5, 6)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    w, b = torch.randn(6, 1, 3, 3), torch.randn(6)
    geometry = ([2, 1], [1, 0, 2, 1], [1, 1])
    ops = torch.ops.dwconv
    y = ops.dw2d_fwd_triton(x, w, b, *geometry)
    x.requires_grad_(), w.requires_grad_(), b.requires_grad_()
    torch.library.opcheck(ops.dw2d_fwd_triton, (x, w, b, *geometry))
    gy = torch.randn_like(y)
    torch.library.opcheck(ops.dw2d_bwdi_triton, (gy, w.detach(), list(x.shape), *geometry))
    torch.library.opcheck(ops.dw2d_bwdw_triton, (gy, x.detach(), [3, 3], *geometry))


def test_torch_compile_sees_one_op():
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    @torch.compile(backend=recording_backend, fullgraph=True)
    def f(x, w):
        return dwconv.depthwise_conv2d(x, w, padding=1, backend="triton").relu().sum()

    out = f(x, w)
    out.backward()
    targets = [n.target for g in graphs for n in g.graph.nodes if n.op == "call_function"]
    assert targets.count(torch.ops.dwconv.dw2d_fwd_triton) == 1, targets
    ref = dwconv.reference.depthwise_conv2d(x, w, padding=1).relu().sum()
    assert_close(out.detach().reshape(1), ref.detach().reshape(1), backend="triton",
                 dtype=torch.float32)
    rx, rw = torch.autograd.grad(ref, (x, w))
    assert_close(x.grad, rx, backend="triton", dtype=torch.float32, what="grad_input")
    assert_close(w.grad, rw, backend="triton", dtype=torch.float32, what="grad_weight")
