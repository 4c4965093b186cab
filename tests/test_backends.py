"""Backend selection on CPU: what is available and why not, auto's choice, $DWCONV_BACKEND, and the
one clear error when an explicit backend cannot serve a call."""

from __future__ import annotations

import sys

import pytest
import torch

import dwconv

registry = sys.modules["dwconv.backends"]  # dwconv.backends is the function listing them

NAMES = {"cpu", "cuda", "cuda_emu", "triton", "torch"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv("DWCONV_BACKEND", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def _call(dtype=torch.float32, c=4, m=1):
    return torch.randn(1, c, 6, 6, dtype=dtype), torch.randn(c * m, 1, 3, 3, dtype=dtype)


def test_backends_lists_every_backend_with_a_reason():
    listing = dwconv.backends()
    assert set(listing) == NAMES
    assert listing["cpu"] is None and listing["torch"] is None
    for name, reason in listing.items():
        assert reason is None or (isinstance(reason, str) and reason), name
    assert set(dwconv.available_backends()) == {n for n, r in listing.items() if r is None}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the reasons given without a GPU")
def test_reasons_without_gpu():
    listing = dwconv.backends()
    assert "CUDA" in listing["cuda"]
    assert "TRITON_INTERPRET" in listing["triton"]


def test_triton_available_under_interpreter(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert dwconv.backends()["triton"] is None
    info = dwconv.build_info()
    assert info["triton_interpret"] is True
    assert info["triton"] == __import__("triton").__version__


def test_build_info_reports_versions():
    info = dwconv.build_info()
    assert info["torch"] == torch.__version__
    assert info["triton_interpret"] is False
    assert "cpu_isa" in info and "triton" in info


def test_auto_picks_cpu_kernels_on_cpu():
    x, w = _call()
    assert registry.select(None, x, w, None).name == "cpu"
    assert registry.select("auto", x, w, None).name == "cpu"


def test_auto_never_picks_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, w = _call(torch.float16)
    assert registry.select("auto", x, w, None).name == "cpu"


def test_env_selects_backend_and_argument_overrides_it(monkeypatch):
    x, w = _call()
    monkeypatch.setenv("DWCONV_BACKEND", "torch")
    assert registry.select(None, x, w, None).name == "torch"
    assert registry.select("cpu", x, w, None).name == "cpu"
    y = dwconv.depthwise_conv2d(x, w, padding=1)
    torch.testing.assert_close(y, dwconv.depthwise_conv2d(x, w, padding=1, backend="cpu"))


def test_unknown_names_raise_listing_the_choices(monkeypatch):
    x, w = _call()
    with pytest.raises(ValueError, match=r"backend must be 'auto' or one of \[.*'triton'"):
        dwconv.depthwise_conv2d(x, w, backend="cudnn")
    monkeypatch.setenv("DWCONV_BACKEND", "nope")
    with pytest.raises(ValueError, match=r"\$DWCONV_BACKEND must be .* got 'nope'"):
        dwconv.depthwise_conv2d(x, w)


def test_explicit_triton_without_interpreter_gives_the_reason():
    x, w = _call()
    with pytest.raises(RuntimeError, match=r"backend 'triton' .*TRITON_INTERPRET=1"):
        dwconv.depthwise_conv2d(x, w, backend="triton")


def test_explicit_backend_unsupported_dtype_and_sizes(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, w = _call(torch.float64)
    with pytest.raises(RuntimeError, match=r"backend 'triton' .*dtype torch.float64 is not supp"):
        dwconv.depthwise_conv2d(x, w, backend="triton")
    x, w = _call(c=1, m=65)
    with pytest.raises(RuntimeError, match=r"m = 65 exceeds"):
        dwconv.depthwise_conv2d(x, w, backend="triton")
    monkeypatch.setenv("DWCONV_BACKEND", "triton")
    with pytest.raises(RuntimeError, match=r"from \$DWCONV_BACKEND"):
        dwconv.depthwise_conv2d(x, w)


def test_explicit_cuda_backends_on_cpu_tensors_give_the_reason():
    x, w = _call()
    for name in ("cuda", "cuda_emu"):
        reason = registry.explain(x, w)[name]
        if reason is None:  # cuda_emu built: it serves CPU tensors
            assert name == "cuda_emu"
            continue
        with pytest.raises(RuntimeError, match=rf"backend '{name}' cannot run .*: "):
            dwconv.depthwise_conv2d(x, w, backend=name)


def test_explain_gives_every_reason():
    x, w = _call(torch.float64)
    reasons = dwconv.explain_backends(x, w)
    assert set(reasons) == NAMES
    assert reasons["torch"] is None and reasons["cpu"] is None


def test_triton_out_argument(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, w = _call()
    out = torch.empty(1, 4, 6, 6)
    y = dwconv.depthwise_conv2d(x, w, padding=1, backend="triton", out=out)
    assert y is out
    torch.testing.assert_close(out, dwconv.depthwise_conv2d(x, w, padding=1, backend="torch"))
