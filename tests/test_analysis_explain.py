"""The explain CLI (counts only, and one timed tiny run) and the plots it writes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from dwconv.analysis import explain
from dwconv.analysis.profile import profile
from dwconv.analysis.roofline import Roofline, place_cost

pytest.importorskip("matplotlib")
pytest.importorskip("rich")
from dwconv.analysis import plots  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == PNG and os.path.getsize(path) > 1000


def _tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.Conv2d(8, 16, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))


def test_explain_counts_only(tmp_path, capsys):
    rc = explain.main(["mobilenet_v1", "--no-time", "--plot", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "568,740,352" in out and "4,231,976" in out
    assert "94.86%" in out and "3.06%" in out  # pointwise and depthwise shares of MACs
    assert "Why is depthwise slow?" in out
    assert os.listdir(tmp_path) == ["mobilenet_v1_shares.png"]
    assert _is_png(tmp_path / "mobilenet_v1_shares.png")


def test_explain_timed_tiny_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(explain.MODELS, "tiny", _tiny)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"name": "dw 3x3 56x56", "speedup": 1.7},
                                 {"name": "dw 5x5", "torch_ms": 2.0, "dwconv_ms": 4.0}]))
    rc = explain.main(["tiny", "--input-size", "16", "--batch", "2", "--min-run-time", "0.002",
                       "--plot", str(tmp_path / "plots"), "--bench-json", str(bench),
                       "--json", str(tmp_path / "out.json"), "--layers"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "dwconv.convert replaced 1 depthwise layers" in out
    assert "ridge point" in out and "achieved / attainable" in out
    for name in ("tiny_shares.png", "tiny_roofline.png", "bench_speedup.png"):
        assert _is_png(tmp_path / "plots" / name), name
    result = json.loads((tmp_path / "out.json").read_text())
    assert set(result["profiles"]) == {"PyTorch", "dwconv"}
    dw = next(r for r in result["profiles"]["PyTorch"]["by_type"] if r["kind"] == "depthwise")
    assert dw["fwd_s"] > 0 and dw["bwd_s"] > 0
    assert result["roofline"]["peak_gflops"] > 0


def test_explain_model_paths(capsys):
    assert isinstance(explain.build_model("torchvision.models.mobilenet_v3_small"), nn.Module)
    assert isinstance(explain.build_model("dwconv.models:mobilenet_v1_fullconv"), nn.Module)
    assert isinstance(explain.build_model("resnet18"), nn.Module)  # a torchvision name
    assert explain.main(["no_such_module.net"]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().out
    assert explain.main(["torchvision.models:no_such_net"]) == 2
    assert "has no attribute 'no_such_net'" in capsys.readouterr().out


def test_explain_runs_as_a_module(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", "dwconv.analysis.explain",
                        "dwconv.models:mobilenet_v1", "--no-time", "--input-size", "64"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "depthwise" in r.stdout


def _roof():
    return Roofline("cpu", "float32", 100.0, [(64 << 10, 80.0), (64 << 20, 10.0)], threads=2)


def test_roofline_plot(tmp_path):
    roof = _roof()
    pts = {"PyTorch": [place_cost("a", "depthwise", 10**6, 10**6, 1e-3, roof),
                       place_cost("b", "pointwise", 10**8, 10**6, 2e-3, roof)],
           "dwconv": [place_cost("a", "depthwise", 10**6, 10**6, 5e-4, roof)]}
    assert _is_png(plots.roofline_plot(roof, pts, str(tmp_path / "r.png")))


def test_share_plot_without_timings(tmp_path):
    p = profile(_tiny(), (1, 3, 16, 16))
    assert _is_png(plots.share_plot({"PyTorch": p}, str(tmp_path / "s.png")))


def test_bench_speedups_tolerates_row_layouts():
    rows = [{"name": "a", "speedup": 2.0},
            {"name": "b", "torch_us": 30, "dwconv_us": 10, "pass": "fwd"},
            {"case": "c", "torch": {"median_s": 0.004}, "dwconv": {"median_s": 0.002}},
            {"name": "d", "backend": "torch", "time_ms": 3.0},
            {"name": "d", "backend": "cpu", "time_ms": 1.5},
            {"name": "e", "note": "no timing"}]
    assert plots.bench_speedups(rows) == [("a", 2.0), ("b fwd", 3.0), ("c", 2.0), ("d", 2.0)]


def test_speedup_plot_reads_json(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"rows": [{"name": "x", "speedup": 0.5},
                                         {"name": "y", "speedup": 3.0}]}))
    assert _is_png(plots.speedup_plot(str(path), str(tmp_path / "sp.png")))
    path.write_text(json.dumps({"rows": [{"name": "x"}]}))
    with pytest.raises(ValueError, match="no benchmark row"):
        plots.speedup_plot(str(path), str(tmp_path / "sp2.png"))


def test_plots_say_matplotlib_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plots.share_plot({"PyTorch": profile(_tiny(), (1, 3, 8, 8))}, "/nonexistent/x.png")


def test_profile_cuda_device_rejected_without_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    assert explain.main(["mobilenet_v1", "--device", "cuda", "--no-time"]) == 2
