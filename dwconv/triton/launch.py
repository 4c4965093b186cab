"""Launchers for the Triton kernels: argument checks, layout, output allocation, grid and block
sizes. Called by the registered ops in dwconv/triton/ops.py, never by users directly.

On CUDA tensors the compiled kernels run with autotuned block sizes (one tuning per layout and
geometry, cached by triton). On CPU tensors, when TRITON_INTERPRET=1, the same kernel source runs
under Triton's interpreter with one fixed configuration (autotuning over several configurations
does not work there), chosen large because the interpreter costs ~15-20 ms per program.
"""

from __future__ import annotations

import torch
import triton
from torch._prims_common import suggest_memory_format
from triton.runtime.interpreter import InterpretedFunction
from triton.runtime.jit import JITFunction

from .. import _args
from . import MAX_CHANNELS, MAX_MULTIPLIER, interpreter_enabled, kernels

DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_SOURCES = {"fwd": kernels.dw2d_fwd_kernel, "bwdi": kernels.dw2d_bwdi_kernel,
            "bwdw": kernels.dw2d_bwdw_kernel}
# both wrappers built explicitly, so the choice is made per call, not by TRITON_INTERPRET at import
COMPILED = {name: JITFunction(fn) for name, fn in _SOURCES.items()}
INTERPRETED = {name: InterpretedFunction(fn) for name, fn in _SOURCES.items()}

# Under the interpreter: one configuration per pass. Tests shrink these to cross block edges.
# bwdw's CHUNK (positions per program along N*OH*OW) of None means a single chunk.
INTERPRETER_CONFIG: dict[str, dict] = {
    "fwd": {"BLOCK_P": 128, "BLOCK_C": 16},
    "bwdi": {"BLOCK_P": 128, "BLOCK_C": 16},
    "bwdw": {"BLOCK_P": 128, "BLOCK_C": 16, "CHUNK": None},
}


def _configs(shapes: list[tuple[int, int, int]]) -> list[triton.Config]:
    return [triton.Config({"BLOCK_P": p, "BLOCK_C": c}, num_warps=w) for p, c, w in shapes]


# (BLOCK_P, BLOCK_C, num_warps): channels are contiguous in NHWC, positions in NCHW
_GPU_SHAPES = {
    True: [(16, 32, 4), (32, 32, 4), (16, 64, 4), (8, 128, 4), (64, 32, 8), (32, 64, 8)],
    False: [(128, 4, 4), (256, 4, 4), (64, 8, 4), (128, 8, 8), (256, 2, 4), (512, 2, 8)],
}
_AUTOTUNE_KEY = {
    "fwd": ["C", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "DH", "DW", "M", "HAS_BIAS"],
    "bwdi": ["C", "H", "W", "OH", "OW", "KH", "KW", "SH", "SW", "DH", "DW", "M"],
    "bwdw": ["N", "C", "H", "W", "OH", "OW", "CHUNK", "KH", "KW", "SH", "SW", "DH", "DW", "M"],
}
AUTOTUNED = {(name, cl): triton.autotune(configs=_configs(_GPU_SHAPES[cl]),
                                         key=_AUTOTUNE_KEY[name])(COMPILED[name])
             for name in _SOURCES for cl in (True, False)}

_debug_fill_nan = False


def set_debug_fill_nan(on: bool) -> None:
    """Fill fresh outputs with NaN (tests: an element a kernel never writes then fails)."""
    global _debug_fill_nan
    _debug_fill_nan = bool(on)


def interpreting(device: torch.device) -> bool:
    """Whether a call on `device` runs under the interpreter; raises if it can run nowhere."""
    if interpreter_enabled():
        return True
    if device.type == "cpu":
        raise RuntimeError("dwconv's Triton kernels run on CPU tensors only under the Triton "
                           "interpreter: set TRITON_INTERPRET=1")
    if device.type != "cuda":
        raise RuntimeError(f"dwconv's Triton kernels need CUDA (or CPU with TRITON_INTERPRET=1) "
                           f"tensors, got {device}")
    return False


def _empty(shape, like: torch.Tensor, fmt=torch.contiguous_format, dtype=None) -> torch.Tensor:
    out = torch.empty(shape, dtype=dtype or like.dtype, device=like.device, memory_format=fmt)
    return out.fill_(float("nan")) if _debug_fill_nan else out


def _check_dtype(t: torch.Tensor, name: str) -> None:
    if t.dtype not in DTYPES:
        raise TypeError(f"dwconv Triton kernels support float32, float16 and bfloat16 (float32 "
                        f"accumulation), got {name} of dtype {t.dtype}")


def _consts(weight_shape, c, stride, padding, dilation, cl, tensors) -> dict:
    cm, _, kh, kw = weight_shape
    # the kernels offset each image from an int64 base; offsets inside one image need int64 only
    # when an image has 2**31 elements or more
    image = max(t.numel() // max(t.shape[0], 1) for t in tensors)
    return dict(KH=kh, KW=kw, SH=stride[0], SW=stride[1], DH=dilation[0], DW=dilation[1],
                PT=padding[0], PL=padding[2], M=cm // c, CHANNELS_LAST=cl, IDX64=image >= 2**31)


def _launch(name, grid, args, consts, device, cl) -> None:
    if interpreting(device):
        meta = {k: v for k, v in INTERPRETER_CONFIG[name].items() if k.startswith("BLOCK")}
        INTERPRETED[name][grid({**consts, **meta})](*args, **consts, **meta)
        return
    with torch.cuda.device(device):
        AUTOTUNED[(name, cl)][grid](*args, **consts)


def _check_geometry(weight, c, stride, padding, dilation, what) -> None:
    if c < 1 or weight.dim() != 4 or weight.shape[1] != 1 or weight.shape[0] % c or \
            weight.shape[0] == 0:
        raise ValueError(f"{what}: weight must be [C*m, 1, kH, kW] with C={c}, got shape "
                         f"{tuple(weight.shape)}")
    if weight.shape[0] // c > MAX_MULTIPLIER or weight.shape[0] > MAX_CHANNELS:
        raise ValueError(f"{what}: the Triton kernels support C*m <= {MAX_CHANNELS} and "
                         f"m <= {MAX_MULTIPLIER}, got weight shape {tuple(weight.shape)}")
    _args.check_positive(tuple(stride), "stride")
    _args.check_positive(tuple(dilation), "dilation")
    if len(padding) != 4 or min(padding) < 0:
        raise ValueError(f"{what}: padding must be 4 ints >= 0 (top, bottom, left, right), got "
                         f"{tuple(padding)}")


def _out_hw(h, w, kh, kw, stride, padding, dilation) -> tuple[int, int]:
    return (_args.output_size(h, kh, stride[0], dilation[0], padding[0], padding[1]),
            _args.output_size(w, kw, stride[1], dilation[1], padding[2], padding[3]))


def _check_grad_out(grad_out, expected, what) -> None:
    if tuple(grad_out.shape) != tuple(expected):
        raise ValueError(f"{what}: grad_out must have shape {tuple(expected)}, got "
                         f"{tuple(grad_out.shape)}")


def _check_same(t, ref, name, what) -> None:
    if t.dtype != ref.dtype or t.device != ref.device:
        raise ValueError(f"{what}: {name} is {t.dtype} on {t.device} but grad_out is {ref.dtype} "
                         f"on {ref.device}")


def fwd(input, weight, bias, stride, padding, dilation) -> torch.Tensor:
    """Forward pass; output in the input's memory format."""
    oh, ow = _args.check_depthwise(input, weight, bias, tuple(stride), tuple(padding),
                                   tuple(dilation))
    _check_dtype(input, "input")
    _check_geometry(weight, input.shape[1], stride, padding, dilation, "dw2d_fwd_triton")
    fmt = suggest_memory_format(input)
    x = input.contiguous(memory_format=fmt)
    w = weight.contiguous()
    b = w if bias is None else bias.contiguous()  # an unused pointer when HAS_BIAS is False
    n, c, h, wd = x.shape
    cm = w.shape[0]
    y = _empty((n, cm, oh, ow), x, fmt)
    if y.numel() == 0:
        return y
    cl = fmt == torch.channels_last
    consts = _consts(w.shape, c, stride, padding, dilation, cl, (x, y))
    consts["HAS_BIAS"] = bias is not None

    def grid(meta):
        return (n * triton.cdiv(oh * ow, meta["BLOCK_P"]), triton.cdiv(cm, meta["BLOCK_C"]))

    _launch("fwd", grid, (x, w, b, y, c, h, wd, oh, ow), consts, x.device, cl)
    return y


def bwdi(grad_out, weight, input_size, stride, padding, dilation) -> torch.Tensor:
    """Gradient with respect to the input, in grad_out's memory format."""
    what = "dw2d_bwdi_triton"
    if len(input_size) != 4:
        raise ValueError(f"{what}: input_size must be [N, C, H, W], got {list(input_size)}")
    n, c, h, wd = (int(s) for s in input_size)
    _check_dtype(grad_out, "grad_out")
    _check_same(weight, grad_out, "weight", what)
    _check_geometry(weight, c, stride, padding, dilation, what)
    kh, kw = weight.shape[2:]
    oh, ow = _out_hw(h, wd, kh, kw, stride, padding, dilation)
    _check_grad_out(grad_out, (n, weight.shape[0], oh, ow), what)
    fmt = suggest_memory_format(grad_out)
    gy = grad_out.contiguous(memory_format=fmt)
    w = weight.contiguous()
    gx = _empty((n, c, h, wd), gy, fmt)
    if gx.numel() == 0:
        return gx
    cl = fmt == torch.channels_last
    consts = _consts(w.shape, c, stride, padding, dilation, cl, (gy, gx))

    def grid(meta):
        return (n * triton.cdiv(h * wd, meta["BLOCK_P"]), triton.cdiv(c, meta["BLOCK_C"]))

    _launch("bwdi", grid, (gy, w, gx, c, h, wd, oh, ow), consts, gy.device, cl)
    return gx


def _chunk(npos: int, cm: int, device: torch.device) -> int:
    """Positions per bwdw program: enough programs to fill the GPU, each with real work."""
    if interpreting(device):
        return INTERPRETER_CONFIG["bwdw"]["CHUNK"] or npos
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    splits = max(1, min(triton.cdiv(4 * sms, triton.cdiv(cm, 32)), triton.cdiv(npos, 2048)))
    return triton.cdiv(triton.cdiv(npos, splits), 256) * 256


def bwdw(grad_out, input, kernel_size, stride, padding, dilation) -> torch.Tensor:
    """Gradient with respect to the weight, [C*m, 1, kH, kW] contiguous, deterministic."""
    what = "dw2d_bwdw_triton"
    if input.dim() != 4 or grad_out.dim() != 4 or len(kernel_size) != 2:
        raise ValueError(f"{what}: expected 4-D input and grad_out and a pair kernel_size, got "
                         f"{tuple(input.shape)}, {tuple(grad_out.shape)}, {list(kernel_size)}")
    _check_dtype(grad_out, "grad_out")
    _check_same(input, grad_out, "input", what)
    n, c, h, wd = input.shape
    cm = grad_out.shape[1]
    kh, kw = (int(k) for k in kernel_size)
    _check_geometry(input.new_empty((cm, 1, kh, kw), device="meta"), c, stride, padding,
                    dilation, what)
    oh, ow = _out_hw(h, wd, kh, kw, stride, padding, dilation)
    _check_grad_out(grad_out, (n, cm, oh, ow), what)
    fmt = suggest_memory_format(input)
    x = input.contiguous(memory_format=fmt)
    gy = grad_out.contiguous(memory_format=fmt)
    npos = n * oh * ow
    if npos == 0:
        return torch.zeros((cm, 1, kh, kw), dtype=input.dtype, device=input.device)
    chunk = _chunk(npos, cm, x.device)
    partial = _empty((triton.cdiv(npos, chunk), cm, kh * kw), x, dtype=torch.float32)
    cl = fmt == torch.channels_last
    consts = _consts((cm, 1, kh, kw), c, stride, padding, dilation, cl, (gy, x))

    def grid(meta):
        return (triton.cdiv(cm, meta["BLOCK_C"]), partial.shape[0])

    _launch("bwdw", grid, (gy, x, partial, n, c, h, wd, oh, ow, chunk), consts, x.device, cl)
    return partial.sum(0).view(cm, 1, kh, kw).to(input.dtype)
