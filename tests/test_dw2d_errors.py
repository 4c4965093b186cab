"""Every bad input gets a clear exception naming the argument and the shapes, from the public
function and from the raw ops alike (never a crash or a wrong answer)."""

import os
import subprocess
import sys

import pytest
import torch

import dwconv

X = (2, 4, 8, 8)
W = (4, 1, 3, 3)


def call(x=X, w=W, b=None, **kw):
    """depthwise_conv2d on fresh tensors of the given shapes (tensors passed through as is)."""
    def t(v):
        return torch.randn(v) if isinstance(v, tuple) else v
    return dwconv.depthwise_conv2d(t(x), t(w), t(b), **kw)


BAD_CALLS = [
    # (id, kwargs for call(), exception, message pattern)
    ("input_2d", dict(x=(4, 8)), ValueError, r"input must be \[N, C, H, W\].*\(4, 8\)"),
    ("input_5d", dict(x=(1, 2, 4, 8, 8)), ValueError, r"input must be .*\(1, 2, 4, 8, 8\)"),
    ("input_not_tensor", dict(x=[[1.0]]), TypeError, r"input must be a torch.Tensor, got list"),
    ("weight_not_tensor", dict(w=3.0), TypeError, r"weight must be a torch.Tensor, got float"),
    ("weight_3d", dict(w=(4, 3, 3)), ValueError, r"weight must be a 4-D .*\(4, 3, 3\)"),
    ("weight_not_depthwise", dict(w=(4, 2, 3, 3)), ValueError,
     r"weight must be \[C\*m, 1, kH, kW\].*\(4, 2, 3, 3\)"),
    ("channel_mismatch", dict(w=(6, 1, 3, 3)), ValueError,
     r"weight has 6 output channels.*multiple of the input's 4 channels.*\(2, 4, 8, 8\).*"
     r"\(6, 1, 3, 3\)"),
    ("zero_channels", dict(x=(2, 0, 8, 8), w=(0, 1, 3, 3)), ValueError,
     r"positive multiple.*\(2, 0, 8, 8\)"),
    ("empty_kernel", dict(w=(4, 1, 0, 3)), ValueError, r"weight has an empty kernel.*\(4, 1, 0, 3\)"),
    ("bias_length", dict(b=(5,)), ValueError, r"bias must be \[4\] for weight shape \(4, 1, 3, 3\), "
                                              r"got shape \(5,\)"),
    ("bias_2d", dict(b=(4, 1)), ValueError, r"bias must be \[4\].*got shape \(4, 1\)"),
    ("weight_dtype", dict(w=torch.randn(W, dtype=torch.float64)), TypeError,
     r"weight dtype torch.float64 does not match input dtype torch.float32"),
    ("bias_dtype", dict(b=torch.randn(4, dtype=torch.float16)), TypeError,
     r"bias dtype torch.float16 does not match input dtype torch.float32"),
    ("weight_device", dict(w=torch.randn(W, device="meta")), ValueError,
     r"weight is on meta but input is on cpu"),
    ("bias_device", dict(b=torch.randn(4, device="meta")), ValueError,
     r"bias is on meta but input is on cpu"),
    ("stride_0", dict(stride=0), ValueError, r"stride must be >= 1"),
    ("stride_negative", dict(stride=(1, -1)), ValueError, r"stride must be >= 1, got \(1, -1\)"),
    ("stride_3_values", dict(stride=(1, 2, 3)), TypeError, r"stride must be an int or a pair"),
    ("stride_float", dict(stride=1.5), TypeError, r"stride must be an int or a pair.*1.5"),
    ("dilation_0", dict(dilation=(1, 0)), ValueError, r"dilation must be >= 1, got \(1, 0\)"),
    ("padding_negative", dict(padding=-1), ValueError, r"padding must be >= 0, got -1"),
    ("padding_negative_pair", dict(padding=(1, -2)), ValueError, r"padding must be >= 0"),
    ("padding_unknown", dict(padding="full"), ValueError, r"padding must be 'same', 'valid'.*full"),
    ("same_strided", dict(padding="same", stride=2), ValueError,
     r"padding='same' is not supported for strided convolutions, got stride=\(2, 2\)"),
    ("empty_output", dict(w=(4, 1, 11, 3)), ValueError,
     r"output would be empty.*\(2, 4, 8, 8\).*11x3.*\(4, 1, 11, 3\)"),
    ("empty_output_dilated", dict(dilation=5, padding=1), ValueError,
     r"output would be empty.*dilated kernel 11x11"),
    ("empty_input", dict(x=(2, 4, 0, 8), padding=1), ValueError,
     r"output would be empty.*\(2, 4, 0, 8\)"),
    ("int_dtype_cpu", dict(x=torch.ones(X, dtype=torch.int32), w=torch.ones(W, dtype=torch.int32),
                           backend="cpu"), TypeError, r"input dtype must be one of .*torch.int32"),
    ("complex_dtype", dict(x=torch.ones(X, dtype=torch.complex64),
                           w=torch.ones(W, dtype=torch.complex64)), TypeError,
     r"input dtype must be one of .*complex64"),
    ("unknown_backend", dict(backend="nope"), ValueError,
     r"backend must be 'auto' or one of \[.*'cpu'.*\], got 'nope'"),
    ("cpu_backend_meta", dict(x=torch.randn(X, device="meta"), w=torch.randn(W, device="meta"),
                              backend="cpu"), RuntimeError,
     r"backend 'cpu' cannot run this call \(input \(2, 4, 8, 8\) .*meta.*: needs (CPU )?tensors"),
]


@pytest.mark.parametrize("kwargs,exc,pattern", [c[1:] for c in BAD_CALLS],
                         ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_clearly(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(**kwargs)


def test_module_rejects_non_multiple_out_channels():
    with pytest.raises(ValueError, match=r"out_channels \(6\) must be a positive multiple of "
                                         r"in_channels \(4\)"):
        dwconv.nn.DepthwiseConv2d(4, 6, 3)


_x, _w, _g = torch.randn(X), torch.randn(W), torch.randn(2, 4, 6, 6)
P0, P1 = [0, 0, 0, 0], [1, 1, 1, 1]
RAW_BAD = [
    # (id, op name, args, kwargs, message pattern); padding is (top, bottom, left, right)
    ("fwd_input_3d", "dw2d_fwd", (torch.randn(4, 8, 8), _w, None, [1, 1], P0, [1, 1]), {},
     r"input must be 4-D.*\[4, 8, 8\]"),
    ("fwd_weight_3d", "dw2d_fwd", (_x, torch.randn(4, 1, 3), None, [1, 1], P0, [1, 1]), {},
     r"weight must be \[C\*m, 1, kH, kW\].*\[4, 1, 3\]"),
    ("fwd_channels", "dw2d_fwd", (_x, torch.randn(5, 1, 3, 3), None, [1, 1], P0, [1, 1]), {},
     r"weight out_channels \(5\).*input channels \(4\)"),
    ("fwd_bias", "dw2d_fwd", (_x, _w, torch.randn(3), [1, 1], P0, [1, 1]), {},
     r"bias must be \[4\], got shape \[3\]"),
    ("fwd_dtype", "dw2d_fwd", (_x, _w.double(), None, [1, 1], P0, [1, 1]), {},
     r"input and weight must have the same dtype"),
    ("fwd_int", "dw2d_fwd", (_x.int(), _w.int(), None, [1, 1], P0, [1, 1]), {},
     r"input dtype must be float32, float64, bfloat16 or float16, got Int"),
    ("fwd_stride", "dw2d_fwd", (_x, _w, None, [0, 1], P0, [1, 1]), {}, r"stride must be"),
    ("fwd_stride_len", "dw2d_fwd", (_x, _w, None, [1], P0, [1, 1]), {}, r"stride must be two"),
    ("fwd_dilation", "dw2d_fwd", (_x, _w, None, [1, 1], P0, [1, -1]), {}, r"dilation must be"),
    ("fwd_padding", "dw2d_fwd", (_x, _w, None, [1, 1], [0, -1, 0, 0], [1, 1]), {},
     r"padding must be four integers >= 0"),
    ("fwd_padding_len", "dw2d_fwd", (_x, _w, None, [1, 1], [1, 1], [1, 1]), {},
     r"padding must be four integers"),
    ("fwd_empty", "dw2d_fwd", (_x, torch.randn(4, 1, 9, 9), None, [1, 1], P0, [1, 1]), {},
     r"output would be empty.*9x9"),
    ("fwd_out_shape", "dw2d_fwd_out", (_x, _w, None, [1, 1], P1, [1, 1]),
     {"out": torch.empty(2, 4, 7, 8)}, r"out must be \[2, 4, 8, 8\], got shape \[2, 4, 7, 8\]"),
    ("fwd_out_dtype", "dw2d_fwd_out", (_x, _w, None, [1, 1], P1, [1, 1]),
     {"out": torch.empty(X, dtype=torch.float64)}, r"input and out must have the same dtype"),
    ("bwdi_grad_shape", "dw2d_bwdi", (torch.randn(2, 4, 5, 5), _w, list(X), [1, 1], P0, [1, 1]),
     {}, r"grad_output must be \[2, 4, 6, 6\], got shape \[2, 4, 5, 5\]"),
    ("bwdi_input_size", "dw2d_bwdi", (_g, _w, [2, 4, 8], [1, 1], P0, [1, 1]), {},
     r"input must be 4-D"),
    ("bwdi_negative_size", "dw2d_bwdi", (_g, _w, [2, 4, -1, 8], [1, 1], [5, 5, 0, 0], [1, 1]),
     {}, r"grad_output must be|negative"),
    ("bwdi_dtype", "dw2d_bwdi", (_g, _w.double(), list(X), [1, 1], P0, [1, 1]), {},
     r"grad_output and weight must have the same dtype"),
    ("bwdw_grad_shape", "dw2d_bwdw", (torch.randn(3, 4, 6, 6), _x, [3, 3], [1, 1], P0, [1, 1]),
     {}, r"grad_output must be \[2, 4, 6, 6\], got shape \[3, 4, 6, 6\]"),
    ("bwdw_grad_3d", "dw2d_bwdw", (torch.randn(4, 6, 6), _x, [3, 3], [1, 1], P0, [1, 1]), {},
     r"grad_output and input must be 4-D"),
    ("bwdw_kernel_size", "dw2d_bwdw", (_g, _x, [3], [1, 1], P0, [1, 1]), {},
     r"kernel_size must be two integers"),
    ("bwdw_empty_kernel", "dw2d_bwdw", (_g, _x, [0, 3], [1, 1], P0, [1, 1]), {},
     r"empty kernel"),
    ("bwdw_channels", "dw2d_bwdw", (torch.randn(2, 3, 6, 6), _x, [3, 3], [1, 1], P0, [1, 1]), {},
     r"out_channels \(3\) must be a positive multiple of input channels \(4\)"),
    ("bwdw_dtype", "dw2d_bwdw", (_g, _x.double(), [3, 3], [1, 1], P0, [1, 1]), {},
     r"grad_output and input must have the same dtype"),
]


@pytest.mark.parametrize("op,args,kwargs,pattern", [c[1:] for c in RAW_BAD],
                         ids=[c[0] for c in RAW_BAD])
def test_raw_ops_reject_bad_shapes(op, args, kwargs, pattern):
    with pytest.raises(RuntimeError, match=pattern):
        getattr(torch.ops.dwconv, op)(*args, **kwargs)


@pytest.mark.parametrize("op,args,kwargs,pattern", [c[1:] for c in RAW_BAD if c[0] in (
    "fwd_channels", "fwd_bias", "fwd_empty", "bwdi_grad_shape", "bwdw_grad_shape")],
    ids=["fwd_channels", "fwd_bias", "fwd_empty", "bwdi_grad_shape", "bwdw_grad_shape"])
def test_fake_kernels_reject_bad_shapes(op, args, kwargs, pattern):
    """On the meta device (what torch.compile traces with) the same calls fail too."""
    meta = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in args]
    with pytest.raises((RuntimeError, ValueError)):
        getattr(torch.ops.dwconv, op)(*meta, **kwargs)


def _import_with_isa(value):
    env = dict(os.environ, DWCONV_CPU_ISA=value)
    return subprocess.run(
        [sys.executable, "-c", "import dwconv; print(dwconv.build_info()['cpu_isa'])"],
        env=env, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
            os.path.abspath(dwconv.__file__))), timeout=120)


def test_env_forces_isa():
    result = _import_with_isa("scalar")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "scalar"


def test_env_unknown_isa_fails_at_import():
    result = _import_with_isa("sse9")
    assert result.returncode != 0
    assert "unknown ISA 'sse9' (expected scalar, avx2 or avx512)" in result.stderr


_UNUSABLE = [isa for isa in ("scalar", "avx2", "avx512")
             if isa not in dwconv._C.cpu_isas_supported()]


@pytest.mark.skipif(not _UNUSABLE, reason="this CPU and build support every ISA")
def test_env_unsupported_isa_fails_at_import():
    result = _import_with_isa(_UNUSABLE[0])
    assert result.returncode != 0
    assert f"'{_UNUSABLE[0]}' is not available on this CPU/build" in result.stderr
