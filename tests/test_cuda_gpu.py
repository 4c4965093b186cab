"""The CUDA backend on a real GPU: outputs and gradients of every kernel family against the float64
reference (tests/tolerances.py) and against PyTorch (cuDNN or its native kernels) in each dtype,
both layouts. Skipped where there is no GPU or the extension was built without CUDA; the same
kernels run on CPU under the emulation in test_cuda_emu.py.
"""

import pytest
import torch
import torch.nn.functional as F

import dwconv
from tolerances import assert_close

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or not dwconv.build_info().get("cuda_built", False),
    reason="needs a CUDA GPU and dwconv built with CUDA")

BACKEND = "cuda"
HALF = (torch.float16, torch.bfloat16)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
# (N, C, H, W, M, (KH, KW), stride, padding (t, b, l, r), dilation): each kernel family
CASES = [
    (2, 16, 20, 22, 1, (3, 3), 1, (1, 1, 1, 1), 1),      # k3s1, NHWC vectors
    (2, 24, 21, 19, 1, (3, 3), 2, (1, 1, 1, 1), 1),      # k3s2
    (1, 8, 17, 18, 1, (5, 5), 1, (2, 2, 2, 2), 1),       # k5s1
    (2, 8, 23, 20, 2, (5, 5), 2, (2, 1, 0, 3), 1),       # k5s2, multiplier
    (1, 32, 14, 14, 1, (7, 7), 1, (3, 3, 3, 3), 1),      # k7s1
    (1, 16, 15, 16, 1, (7, 7), 2, (3, 3, 3, 3), 1),      # k7s2
    (2, 5, 19, 21, 1, (3, 3), 1, (2, 2, 2, 2), 2),       # generic (dilated), scalar NHWC
    (1, 7, 16, 15, 1, (1, 7), 3, (0, 0, 3, 3), 1),       # generic
    (1, 6, 40, 41, 1, (13, 13), 1, (6, 6, 6, 6), 1),     # klarge
    (1, 4, 45, 43, 1, (31, 31), 1, (15, 15, 15, 15), 1), # klarge, RepLKNet size
    (1, 96, 20, 20, 2, (13, 15), 1, (6, 6, 7, 7), 1),    # klarge, several channels a block
    (2, 8, 33, 30, 1, (15, 15), 2, (7, 7, 7, 7), 1),     # klarge fwd, bwdw; generic bwdi
    (32, 16, 28, 28, 1, (3, 3), 1, (1, 1, 1, 1), 1),     # batch 32: several bwdw splits
]


def _torch_conv(x, w, b, stride, p, dil):
    return F.conv2d(F.pad(x, (p[2], p[3], p[0], p[1])), w, b, stride, 0, dil, x.shape[1])


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[-1])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"_k{c[5][0]}x{c[5][1]}_s{c[6]}")
def test_matches_reference_and_pytorch(case, dtype, layout):
    n, c, h, w, m, (kh, kw), s, p, d = case
    x = torch.randn(n, c, h, w, device="cuda", dtype=torch.float64)
    if layout == "nhwc":
        x = x.to(memory_format=torch.channels_last)
    wt = torch.randn(c * m, 1, kh, kw, device="cuda", dtype=torch.float64)
    b = torch.randn(c * m, device="cuda", dtype=torch.float64)
    leaves = [t.to(dtype).detach().requires_grad_() for t in (x, wt, b)]
    y = torch.ops.dwconv.dw2d_fwd(*leaves, [s, s], list(p), [d, d])
    ref_leaves = [t.detach().requires_grad_() for t in (x, wt, b)]
    ref = _torch_conv(*ref_leaves, (s, s), p, (d, d))
    base_leaves = [t.to(dtype).detach().requires_grad_() for t in (x, wt, b)]
    base = _torch_conv(*base_leaves, (s, s), p, (d, d))
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(y, leaves, g.to(dtype))
    refs = torch.autograd.grad(ref, ref_leaves, g)
    base_grads = torch.autograd.grad(base, base_leaves, g.to(dtype))
    half = dtype in HALF
    assert_close(y, ref, backend=BACKEND, dtype=dtype, baseline=base if half else None)
    for what, a, e, bl in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs, base_grads):
        assert_close(a, e, backend=BACKEND, dtype=dtype, baseline=bl if half else None, what=what)
    # and against PyTorch in the same dtype, through the same table (PyTorch as the reference)
    if not half:
        assert_close(y, base.double(), backend=BACKEND, dtype=dtype, what="output vs PyTorch")


@pytest.mark.parametrize("k", [3, 13])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_backward_weight_is_deterministic(k, layout):
    x = torch.randn(8, 32, 56, 56, device="cuda")
    gy = torch.randn(8, 32, 56, 56, device="cuda")
    if layout == "nhwc":
        x, gy = (t.contiguous(memory_format=torch.channels_last) for t in (x, gy))
    args = ([k, k], [1, 1], [k // 2] * 4, [1, 1])
    first = torch.ops.dwconv.dw2d_bwdw(gy, x, *args)
    for _ in range(3):
        again = torch.ops.dwconv.dw2d_bwdw(gy, x, *args)
        assert torch.equal(first, again)


def test_uses_current_stream_and_device_guard():
    x = torch.randn(2, 8, 16, 16, device="cuda")
    w = torch.randn(8, 1, 3, 3, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        y = torch.ops.dwconv.dw2d_fwd(x, w, None, [1, 1], [1, 1, 1, 1], [1, 1])
    s.synchronize()
    ref = dwconv.reference.depthwise_conv2d(x, w, padding=1)
    assert_close(y, ref, backend=BACKEND, dtype=torch.float32)


def test_cpu_tensor_is_rejected_clearly():
    with pytest.raises(RuntimeError, match="must be on the same device|CUDA tensor"):
        torch.ops.dwconv.dw2d_fwd(torch.randn(1, 2, 5, 5, device="cuda"), torch.randn(2, 1, 3, 3),
                                  None, [1, 1], [0] * 4, [1, 1])
