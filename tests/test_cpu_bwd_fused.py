"""The fused backward (dwconv::dw2d_bwd: grad_input and grad_weight from one read of grad_output,
kernels/cpu/dw2d_packed.h): where it applies (through _C.kernel_name("bwd", ...)), right against
the float64 reference, the same bits for any thread count and (but for grad_input where the
passes apart run other kernels) the same bits as dw2d_bwdi and dw2d_bwdw; the
problems it does not take still right through the two passes; autograd calls it when both
gradients are wanted, and refuses a double backward through it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import dwconv
from dwconv import _C
from dwcase import at_thread_counts
from tolerances import assert_close

# (id, N, C, H, W, (kh, kw), stride, (pt, pb, pl, pr), dilation, channels_last, fused variant)
CASES = [
    # NCHW, both passes packed: the backward-input as a forward (stride 1), partial channel tile
    ("nchw_7x7_tail", 3, 37, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, "packed"),
    # ... in chunks of 2 images (5 = 2 + 2 + 1)
    ("nchw_k5_chunks", 5, 20, 28, 28, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1), False, "packed"),
    # the backward-input kernels (stride 2), asymmetric padding, dilation, non-square
    ("nchw_s2", 3, 18, 20, 33, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False, "packed"),
    ("nchw_dil2", 2, 16, 9, 5, (3, 2), (1, 1), (2, 1, 0, 1), (2, 2), False, "packed"),
    # a backward-input that apart runs the NCHW kernels (k3s1 on wide planes, s1 past 4096
    # pixels) runs on the tiles here
    ("nchw_wide_k3s1", 2, 18, 20, 33, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, "packed"),
    ("nchw_plane_past_l2", 1, 3, 65, 70, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, "packed"),
    # planes past L2 on an input of at least 8 MiB, one image per chunk
    ("nchw_big_plane", 2, 63, 130, 130, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False, "packed"),
    # channels_last backward-weight in parts (at least 8 MiB, a batch): 11 images in 6 chunks
    ("nhwc_k3s1_parts", 11, 40, 64, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "parts"),
    ("nhwc_k5s2_parts", 3, 48, 128, 128, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), True, "parts"),
]
IDS = [c[0] for c in CASES]
# whose grad_input, apart, comes from the NCHW kernels, which sum a pixel's taps in another order
OTHER_GX_BITS = {"nchw_wide_k3s1", "nchw_plane_past_l2"}


def _problem(case, dtype=torch.float32, m=1, gy_layout=None):
    _, n, c, h, w, k, stride, pad, dil, channels_last, _ = case
    x = torch.randn(n, c, h, w, dtype=dtype)
    wt = torch.randn(c * m, 1, *k, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    top, bottom, left, right = pad
    xr, wr = x.double().requires_grad_(), wt.double().requires_grad_()
    ref = dwconv.reference.depthwise_conv2d(F.pad(xr, (left, right, top, bottom)), wr, None,
                                            stride, 0, dil)
    gy = torch.randn_like(ref)
    gx_ref, gw_ref = torch.autograd.grad(ref, (xr, wr), gy)
    cl = channels_last if gy_layout is None else gy_layout
    gy = gy.to(dtype).contiguous(memory_format=torch.channels_last if cl else
                                 torch.contiguous_format)
    return x, wt, gy, gx_ref, gw_ref


def _geometry(case):
    return list(case[6]), list(case[7]), list(case[8])


def _apart(case, gy, wt, x):
    stride, pad, dil = _geometry(case)
    ops = torch.ops.dwconv
    return (ops.dw2d_bwdi(gy, wt, list(x.shape), stride, pad, dil),
            ops.dw2d_bwdw(gy, x, list(wt.shape[2:]), stride, pad, dil))


def _fused(case, gy, wt, x):
    return torch.ops.dwconv.dw2d_bwd(gy, x, wt, *_geometry(case))


def _bwd_kernel(case, isa, m=1):
    _, n, c, h, w, k, stride, pad, dil, channels_last, _ = case
    return _C.kernel_name("bwd", [n, c, h, w], [c * m, 1, *k], list(stride), list(pad), list(dil),
                          channels_last)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_backward_matches_reference_and_passes(case, simd_isa):
    """Right against the reference, the same bits for any thread count, and the same bits as
    the two passes apart (grad_input: where those run the same kernels)."""
    layout = "nhwc" if case[9] else "nchw"
    assert _bwd_kernel(case, simd_isa) == f"dw2d_bwd_{layout}_{case[10]}_{simd_isa}"
    x, wt, gy, gx_ref, gw_ref = _problem(case)
    gx_apart, gw_apart = _apart(case, gy, wt, x)
    results = at_thread_counts(lambda: _fused(case, gy, wt, x))
    gx, gw = results[0]
    assert gx.is_contiguous(memory_format=torch.channels_last if case[9]
                            else torch.contiguous_format)
    assert gw.shape == wt.shape and gw.is_contiguous()
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_input")
    assert_close(gw, gw_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_weight")
    if case[0] not in OTHER_GX_BITS:
        assert torch.equal(gx, gx_apart), "grad_input bits differ from dw2d_bwdi"
    assert torch.equal(gw, gw_apart), "grad_weight bits differ from dw2d_bwdw"
    for rgx, rgw in results[1:]:
        assert torch.equal(rgx, gx) and torch.equal(rgw, gw), "bits differ between thread counts"


def test_fused_backward_input_kernels_at_stride_1(simd_isa):
    """With backward-input as a forward off, the fused NCHW path runs the backward-input kernels
    on its tiles (as_fwd null)."""
    case = CASES[1]
    before = _C.get_cpu_bwdi_as_fwd()
    _C.set_cpu_bwdi_as_fwd(False)
    try:
        assert _bwd_kernel(case, simd_isa) == f"dw2d_bwd_nchw_packed_{simd_isa}"
        x, wt, gy, gx_ref, gw_ref = _problem(case)
        gx, gw = _fused(case, gy, wt, x)
        gx_apart, gw_apart = _apart(case, gy, wt, x)
        assert torch.equal(gx, gx_apart) and torch.equal(gw, gw_apart)
        assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what="grad_input")
        assert_close(gw, gw_ref, backend="cpu", dtype=torch.float32, what="grad_weight")
    finally:
        _C.set_cpu_bwdi_as_fwd(before)


# (case, how the call differs) for problems the fused kernels do not take: the two passes run
UNFUSED = [
    pytest.param(CASES[0], dict(m=2), id="multiplier2"),
    pytest.param(CASES[0], dict(dtype=torch.float64), id="float64"),
    pytest.param(CASES[0], dict(dtype=torch.bfloat16), id="bfloat16"),
    pytest.param(CASES[0], dict(gy_layout=True), id="mixed_layouts"),
    pytest.param(("nhwc_small", 2, 19, 9, 21, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, ""),
                 {}, id="nhwc_small"),
    pytest.param(("nhwc_batch1", 1, 40, 100, 100, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True,
                  ""), {}, id="nhwc_batch1"),
]


@pytest.mark.parametrize("case,how", UNFUSED)
def test_unfused_problems_run_the_two_passes(case, how, cpu_isa):
    m = how.get("m", 1)
    if m == 1 and how.get("dtype", torch.float32) == torch.float32 and "gy_layout" not in how:
        assert _bwd_kernel(case, cpu_isa, m) == ""
    x, wt, gy, gx_ref, gw_ref = _problem(case, **how)
    gx, gw = _fused(case, gy, wt, x)
    gx_apart, gw_apart = _apart(case, gy, wt, x)
    assert torch.equal(gx, gx_apart) and torch.equal(gw, gw_apart)
    dtype = how.get("dtype", torch.float32)
    if dtype == torch.bfloat16:
        return  # the two passes' bfloat16 accuracy is tested against PyTorch's (dwcase.HALF)
    assert_close(gx, gx_ref, backend="cpu", dtype=dtype, what="grad_input")
    assert_close(gw, gw_ref, backend="cpu", dtype=dtype, what="grad_weight")


@pytest.mark.parametrize("case", [c for c in CASES if c[10] == "packed"], ids=lambda c: c[0])
def test_packed_path_off_runs_the_two_passes(case, simd_isa, native_kernels):
    """set_cpu_packed(False) also turns off the fused kernel that runs on tiles."""
    assert _bwd_kernel(case, simd_isa) == ""
    x, wt, gy, gx_ref, gw_ref = _problem(case)
    gx, gw = _fused(case, gy, wt, x)
    gx_apart, gw_apart = _apart(case, gy, wt, x)
    assert torch.equal(gx, gx_apart) and torch.equal(gw, gw_apart)
    assert_close(gx, gx_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_input")
    assert_close(gw, gw_ref, backend="cpu", dtype=torch.float32, what=f"{case[0]} grad_weight")


@pytest.mark.parametrize("xs", [(0, 16, 7, 7), (2, 16, 0, 7)], ids=["batch0", "height0"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_empty_input(xs, channels_last):
    """No fused kernel for an empty input: grad_input empty, grad_weight zeros, as the passes."""
    x = torch.randn(xs)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, 1, 1, 1)
    geometry = ([1, 1], [1, 1, 1, 1], [1, 1])
    assert _C.kernel_name("bwd", list(xs), [16, 1, 1, 1], *geometry, channels_last) == ""
    y = torch.ops.dwconv.dw2d_fwd(x, w, None, *geometry)
    gx, gw = torch.ops.dwconv.dw2d_bwd(torch.randn_like(y), x, w, *geometry)
    assert gx.shape == x.shape and gw.shape == w.shape and not gw.any()


def test_scalar_isa_has_no_fused_kernel():
    if "scalar" not in _C.cpu_isas_supported():
        pytest.skip("no scalar kernels in this build")
    before = _C.get_cpu_isa()
    _C.set_cpu_isa("scalar")
    try:
        assert _bwd_kernel(CASES[0], "scalar") == ""
    finally:
        _C.set_cpu_isa(before)


class _OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("wanted", ["both", "input", "weight"])
def test_autograd_calls_the_fused_op_for_both_gradients(wanted):
    x = torch.randn(2, 20, 9, 9, requires_grad=wanted in ("both", "input"))
    w = torch.randn(20, 1, 3, 3, requires_grad=wanted in ("both", "weight"))
    y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
    inputs = [t for t in (x, w) if t.requires_grad]
    gy = torch.randn_like(y)
    with _OpLog() as log:
        grads = torch.autograd.grad(y, inputs, gy)
    called = {op.split(".")[-1] for op in log.ops if "dwconv" in op}
    expected = {"both": {"dw2d_bwd"}, "input": {"dw2d_bwdi"}, "weight": {"dw2d_bwdw"}}[wanted]
    assert called == expected
    refs = [t.detach().double().requires_grad_(t.requires_grad) for t in (x, w)]
    ref = dwconv.reference.depthwise_conv2d(refs[0], refs[1], None, 1, 1)
    ref_grads = torch.autograd.grad(ref, [r for r in refs if r.requires_grad], gy.double())
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, backend="cpu", dtype=torch.float32, what=f"{wanted} gradient")


def test_double_backward_through_fused_raises_clearly():
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    y = dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu")
    gx, gw = torch.autograd.grad(y.sum(), (x, w), create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through dw2d_bwd"):
        (gx.sum() + gw.sum()).backward()


@pytest.mark.parametrize("bad,match", [
    (dict(gy=(2, 20, 8, 9)), r"grad_output must be \[2, 20, 9, 9\]"),
    (dict(w=(20, 2, 3, 3)), r"weight must be \[C\*m, 1, kH, kW\]"),
    (dict(x=(2, 20, 9)), "input must be 4-D"),
    (dict(dtype=torch.float64), "must have the same dtype"),
])
def test_fused_op_rejects_bad_arguments(bad, match):
    gy = torch.randn(bad.get("gy", (2, 20, 9, 9)), dtype=bad.get("dtype", torch.float32))
    x = torch.randn(bad.get("x", (2, 20, 9, 9)))
    w = torch.randn(bad.get("w", (20, 1, 3, 3)))
    with pytest.raises(RuntimeError, match=match):
        torch.ops.dwconv.dw2d_bwd(gy, x, w, [1, 1], [1, 1, 1, 1], [1, 1])
