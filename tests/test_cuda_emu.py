"""The CUDA kernels (kernels/cuda) run on CPU tensors under the CUDA emulation (backend cuda_emu):
the same sources nvcc builds, compiled by the host compiler, every thread a fiber, shared memory
bounds- and race-checked, global memory limited to the launch's tensors.

Covers every kernel variant (each compile-time specialisation, generic, klarge, NHWC vector and
scalar paths, multi-split backward-weight) against the float64 reference through tests/tolerances.py,
plus the emulator's own negative tests: deliberately broken kernels it must reject.
"""

import pytest
import torch
import torch.nn.functional as F

import dwconv
from dwconv import _C
from tolerances import assert_close

pytestmark = pytest.mark.skipif(not hasattr(torch.ops.dwconv, "dw2d_fwd_emu"),
                                reason="built without the CUDA emulation (DWCONV_CUDA_EMU=0)")

BACKEND = "cuda_emu"
HALF = (torch.float16, torch.bfloat16)


# ------------------------------------------------------------------- the emulator's own tests
# broken test kernel -> what the emulator must say about it
BROKEN = {
    "stencil_missing_sync": r"no thread wrote|race",
    "stencil_halo_unloaded": r"no thread wrote",
    "stencil_past_tile": r"past the array",
    "stencil_tile_reuse": r"race",
    "shuffle_divergent": r"deadlock|exited",
    "barrier_divergent": r"deadlock",
    "global_out_of_bounds": r"outside every buffer",
    "misaligned_vector": r"misaligned",
}


@pytest.fixture(params=[0, 1, 2], ids=["forward", "reverse", "permuted"])
def schedule(request):
    """Thread order inside each emulated block; a correct kernel's result never depends on it."""
    before = _C.cuda_emu_get_schedule()
    _C.cuda_emu_set_schedule(request.param)
    yield request.param
    _C.cuda_emu_set_schedule(before)


def test_selftest_list_covers_correct_and_broken():
    names = set(_C.cuda_emu_selftest_names())
    assert set(BROKEN) < names
    assert {n for n in names if n.endswith("_ok")} == names - set(BROKEN)


@pytest.mark.parametrize("name", sorted(set(_C.cuda_emu_selftest_names()) - set(BROKEN))
                         if hasattr(_C, "cuda_emu_selftest_names") else [])
def test_correct_kernels_pass(name, schedule):
    assert _C.cuda_emu_selftest(name) == ""


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_kernels_are_caught(name, schedule):
    import re
    error = _C.cuda_emu_selftest(name)
    assert error, f"the emulator accepted the broken kernel {name}"
    assert re.search(BROKEN[name], error), error


def test_unknown_selftest_raises():
    with pytest.raises(ValueError, match="unknown kernel"):
        _C.cuda_emu_selftest("no_such_kernel")


# ------------------------------------------------------------------------- the kernel matrix
# (N, C, H, W, M, (KH, KW), stride, padding (t, b, l, r), dilation, fwd variant expected)
CASES = [
    (2, 5, 9, 11, 1, (3, 3), 1, (1, 1, 1, 1), 1, "k3s1"),
    (1, 8, 10, 12, 1, (3, 3), 2, (1, 1, 1, 1), 1, "k3s2"),
    (2, 3, 11, 9, 1, (5, 5), 1, (2, 2, 2, 2), 1, "k5s1"),
    (1, 4, 12, 13, 2, (5, 5), 2, (2, 1, 0, 3), 1, "k5s2"),
    (1, 8, 13, 10, 1, (7, 7), 1, (3, 3, 3, 3), 1, "k7s1"),
    (2, 3, 15, 14, 1, (7, 7), 2, (3, 3, 3, 3), 1, "k7s2"),
    (2, 6, 9, 10, 1, (3, 3), 1, (2, 2, 2, 2), 2, "generic"),  # dilated
    (1, 3, 10, 11, 1, (3, 3), 3, (0, 2, 1, 0), 1, "generic"),  # stride 3, asymmetric padding
    (2, 4, 8, 9, 3, (1, 1), 1, (0, 0, 0, 0), 1, "generic"),  # multiplier 3
    (1, 5, 7, 12, 1, (1, 7), 1, (0, 0, 3, 3), 1, "generic"),
    (1, 5, 12, 7, 1, (7, 1), (2, 1), (3, 3, 0, 0), 1, "generic"),
    (1, 4, 6, 7, 1, (2, 2), 1, (0, 1, 0, 1), 1, "generic"),  # even kernel, 'same'-like padding
    (2, 3, 1, 13, 1, (3, 3), 1, (1, 1, 1, 1), 1, "k3s1"),  # H = 1
    (1, 3, 11, 1, 1, (3, 3), 1, (1, 1, 1, 1), 1, "k3s1"),  # W = 1
    (2, 3, 24, 24, 1, (3, 3), 1, (1, 1, 1, 1), 1, "k3s1"),  # backward-weight in several splits
    (1, 3, 17, 19, 1, (13, 13), 1, (6, 6, 6, 6), 1, "klarge"),
    (1, 2, 21, 20, 2, (15, 15), 2, (7, 7, 7, 7), 1, "klarge"),  # large, strided, multiplier
    (1, 2, 30, 33, 1, (13, 13), 1, (12, 12, 10, 14), 2, "klarge"),  # large, dilated, asymmetric
    (1, 3, 10, 10, 2, (13, 15), 1, (6, 6, 7, 7), 1, "klarge"),  # large, non-square, multiplier
    # large with several channels per block, the last group partial, multiplier 2
    (1, 301, 7, 6, 2, (13, 13), 1, (6, 6, 5, 6), 1, "klarge"),
]
LAYOUTS = ["nchw", "nhwc"]


def _ids(case):
    n, c, h, w, m, k, s, p, d, v = case
    return f"{n}x{c}x{h}x{w}_m{m}_k{k[0]}x{k[1]}_s{s}_p{''.join(map(str, p))}_d{d}"


def _make(case, layout, dtype, noncontig=False):
    n, c, h, w, m, (kh, kw), s, p, d, _ = case
    x = torch.randn(n, c, h, w, dtype=torch.float64)
    if layout == "nhwc":
        x = x.to(memory_format=torch.channels_last)
    if noncontig:  # every other column of a wider tensor
        x = torch.randn(n, c, h, 2 * w, dtype=torch.float64)[..., ::2]
    wt = torch.randn(c * m, 1, kh, kw, dtype=torch.float64)
    b = torch.randn(c * m, dtype=torch.float64)
    stride = (s, s) if isinstance(s, int) else s
    return x.to(dtype), wt.to(dtype), b.to(dtype), stride, list(p), [d, d]


def _torch_conv(x, w, b, stride, p, dil):
    return F.conv2d(F.pad(x, (p[2], p[3], p[0], p[1])), w, b, stride, 0, dil, x.shape[1])


def _run_and_check(case, layout, dtype, noncontig=False):
    x, w, b, stride, pad, dil = _make(case, layout, dtype, noncontig)
    leaves = [t.detach().requires_grad_() for t in (x, w, b)]
    y = torch.ops.dwconv.dw2d_fwd_emu(*leaves, list(stride), pad, dil)
    ref_leaves = [t.detach().double().requires_grad_() for t in (x, w, b)]
    ref = _torch_conv(*ref_leaves, stride, pad, dil)
    assert y.dtype == dtype
    if layout == "nhwc" and not noncontig:
        assert y.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(y, leaves, g.to(dtype))
    refs = torch.autograd.grad(ref, ref_leaves, g)
    base, base_grads = None, [None] * 3
    if dtype in HALF:  # PyTorch's own result in that dtype sets the bar
        base_leaves = [t.detach().requires_grad_() for t in (x, w, b)]
        base = _torch_conv(*base_leaves, stride, pad, dil)
        base_grads = torch.autograd.grad(base, base_leaves, g.to(dtype))
    assert_close(y, ref, backend=BACKEND, dtype=dtype, baseline=base)
    for what, a, e, bl in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs, base_grads):
        assert_close(a, e, backend=BACKEND, dtype=dtype, baseline=bl, what=what)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_matrix_float32(case, layout):
    _run_and_check(case, layout, torch.float32)


# every dtype through each kernel family (specialised, generic, klarge, NHWC vectors)
DTYPE_CASES = [CASES[0], CASES[1], CASES[6], CASES[8], CASES[15], CASES[18]]
# large kernels: every pass has a klarge kernel in both layouts (backward-input at stride 1 only)
KLARGE_CASES = [c for c in CASES if c[-1] == "klarge"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16],
                         ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", DTYPE_CASES, ids=_ids)
def test_matrix_dtypes(case, layout, dtype):
    _run_and_check(case, layout, dtype)


def test_noncontiguous_input():
    _run_and_check(CASES[0], "nchw", torch.float32, noncontig=True)


def test_matrix_covers_every_forward_variant():
    """Each case names the forward kernel it must run, so every specialisation is exercised."""
    seen = set()
    for case in CASES:
        n, c, h, w, m, (kh, kw), s, p, d, expected = case
        stride = [s, s] if isinstance(s, int) else list(s)
        name = _C.cuda_kernel_name("fwd", [n, c, h, w], [c * m, 1, kh, kw], stride, list(p),
                                   [d, d], False)
        assert name == f"dw2d_fwd_nchw_{expected}_cuda"
        seen.add(expected)
    assert seen == {"k3s1", "k3s2", "k5s1", "k5s2", "k7s1", "k7s2", "generic", "klarge"}
    assert _C.cuda_kernel_name("bwdw", [1, 4, 9, 9], [4, 1, 5, 5], [2, 2], [0] * 4, [1, 1],
                               True) == "dw2d_bwdw_nhwc_k5_cuda"


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", KLARGE_CASES, ids=_ids)
def test_matrix_runs_the_large_kernel_path(case, layout, dtype):
    """The large-kernel cases above run the klarge kernels, not the generic ones they fall back to."""
    n, c, h, w, m, (kh, kw), s, p, d, _ = case
    stride = [s, s] if isinstance(s, int) else list(s)
    for pass_ in ("fwd", "bwdi", "bwdw"):
        name = _C.cuda_kernel_name(pass_, [n, c, h, w], [c * m, 1, kh, kw], stride, list(p),
                                   [d, d], layout == "nhwc", dtype)
        variant = "generic" if pass_ == "bwdi" and stride != [1, 1] else "klarge"
        assert name == f"dw2d_{pass_}_{layout}_{variant}_cuda"


def test_batch_zero_and_empty():
    x = torch.randn(0, 3, 8, 8, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, requires_grad=True)
    y = torch.ops.dwconv.dw2d_fwd_emu(x, w, None, [1, 1], [1, 1, 1, 1], [1, 1])
    assert y.shape == (0, 3, 8, 8)
    gx, gw = torch.autograd.grad(y, (x, w), torch.randn_like(y))
    assert gx.shape == x.shape and torch.equal(gw, torch.zeros_like(gw))


@pytest.mark.parametrize("case", [CASES[14], CASES[15]], ids=["several_splits", "klarge"])
def test_backward_weight_is_bitwise_reproducible_across_schedules(case):
    """Partials and their reduction run in a fixed order: no thread order changes a bit."""
    x, w, b, stride, pad, dil = _make(case, "nchw", torch.float32)
    gy = torch.randn_like(_torch_conv(x, w, b, stride, pad, dil))
    results = []
    for order in (0, 1, 2):
        _C.cuda_emu_set_schedule(order)
        try:
            for layout in ("nchw", "nhwc"):
                xx = x.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else x
                gg = gy.contiguous(memory_format=torch.channels_last) if layout == "nhwc" else gy
                results.append((layout, torch.ops.dwconv.dw2d_bwdw_emu(gg, xx, list(w.shape[2:]),
                                                                        stride, pad, dil)))
        finally:
            _C.cuda_emu_set_schedule(0)
    for layout in ("nchw", "nhwc"):
        same = [r for lay, r in results if lay == layout]
        assert all(torch.equal(same[0], r) for r in same[1:])


def test_opcheck():
    x = torch.randn(1, 4, 7, 8, requires_grad=True)
    w = torch.randn(8, 1, 3, 3, requires_grad=True)
    b = torch.randn(8, requires_grad=True)
    torch.library.opcheck(torch.ops.dwconv.dw2d_fwd_emu, (x, w, b, [1, 2], [1, 0, 1, 1], [1, 1]))
    gy = torch.randn(1, 8, 6, 4)
    torch.library.opcheck(torch.ops.dwconv.dw2d_bwdi_emu,
                          (gy, w.detach(), [1, 4, 7, 8], [1, 2], [1, 0, 1, 1], [1, 1]))
    torch.library.opcheck(torch.ops.dwconv.dw2d_bwdw_emu,
                          (gy, x.detach(), [3, 3], [1, 2], [1, 0, 1, 1], [1, 1]))


def test_bad_arguments_raise_clear_errors():
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match="dtype must be"):
        torch.ops.dwconv.dw2d_fwd_emu(x.int(), torch.ones(3, 1, 3, 3, dtype=torch.int32), None,
                                      [1, 1], [0] * 4, [1, 1])
    with pytest.raises(RuntimeError, match="same dtype"):
        torch.ops.dwconv.dw2d_fwd_emu(x, torch.randn(3, 1, 3, 3).double(), None, [1, 1], [0] * 4,
                                      [1, 1])
    with pytest.raises(RuntimeError, match="multiple of input channels"):
        torch.ops.dwconv.dw2d_fwd_emu(x, torch.randn(4, 1, 3, 3), None, [1, 1], [0] * 4, [1, 1])


def test_build_info_reports_cuda_parts():
    info = dwconv.build_info()
    assert info["cuda_emu_built"] is True
    assert isinstance(info["cuda_built"], bool)
    assert bool(info["cuda_archs"]) == info["cuda_built"]
