"""`python -m dwconv` smoke tests: info, bench --quick --json, --compare exit codes, explain."""

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dwconv import __main__ as cli

ROOT = Path(__file__).resolve().parent.parent


def _run(*args, timeout=180):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "dwconv", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_info():
    r = _run("info")
    assert r.returncode == 0, r.stderr
    for word in ("cpu", "torch", "triton", "cpu_isa", "threads"):
        assert word in r.stdout
    assert "No CUDA runtime is found" not in r.stderr


@pytest.fixture(scope="module")
def quick_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    r = _run("bench", "--quick", "--threads", "1", "--json", str(path))
    assert r.returncode == 0, r.stderr
    assert "No CUDA runtime is found" not in r.stderr
    assert "summary" in r.stdout and "targets" in r.stdout
    return path


def test_bench_quick_json(quick_json):
    result = json.loads(quick_json.read_text())
    h = result["header"]
    assert h["peak_gflops"] > 0 and h["threads"] == 1 and h["bandwidth_gbs"]
    rows = result["rows"]
    assert len(rows) == 2 * 2 * 2  # quick suite: 2 layers x 2 layouts x 2 passes, batch 1
    for r in rows:
        assert r["check_ok"] and r["backend"] == "cpu"
        assert r["dwconv_ms"] > 0 and r["torch_ms"] > 0
        assert r["speedup"] == pytest.approx(r["torch_ms"] / r["dwconv_ms"])
        assert r["gbs"] == pytest.approx(r["min_bytes"] / r["dwconv_ms"] / 1e6)
        assert r["roofline"] == pytest.approx(r["bound_ms"] / r["dwconv_ms"])
        assert (r["dwconv_out_ms"] is not None) == (r["pass"] == "fwd")
        layout = "nhwc" if r["layout"] == "channels_last" else "nchw"
        # a stride-1 backward-input runs a forward kernel; a fused backward is one kernel for
        # both gradients (docs/kernels.md)
        fused = len(r["kernels"]) == 2 and r["kernels"][1].startswith(f"dw2d_bwd_{layout}")
        runs = [("fwd",), ("bwd",)] if fused else [("fwd",), ("bwdi", "fwd"), ("bwdw",)]
        assert len(r["kernels"]) == (1 if r["pass"] == "fwd" else len(runs))
        assert all(k.startswith(tuple(f"dw2d_{p}_{layout}" for p in ps))
                   for k, ps in zip(r["kernels"], runs))
    assert {t["target"] for t in result["summary"]["targets"]} >= {"geomean speedup fwd"}


def test_compare_exit_codes(quick_json, tmp_path, capsys):
    result = json.loads(quick_json.read_text())
    slower = copy.deepcopy(result)
    slower["rows"][0]["dwconv_ms"] *= 1.5
    new = tmp_path / "new.json"
    new.write_text(json.dumps(slower))
    md = tmp_path / "table.md"
    assert cli.main(["bench", "--load", str(quick_json), "--compare", str(quick_json),
                     "--markdown", str(md)]) == 0
    assert "no regression" in capsys.readouterr().out
    assert md.read_text().count("\n| mobilenet_v2 features.16.conv.1.0 | 1 |") == 4
    assert cli.main(["bench", "--load", str(new), "--compare", str(quick_json)]) == 1
    assert "1 row(s) regressed" in capsys.readouterr().out
    assert cli.main(["bench", "--load", str(new), "--compare", str(quick_json),
                     "--threshold", "1.6"]) == 0
    assert "different machines" not in capsys.readouterr().out
    elsewhere = copy.deepcopy(result)
    elsewhere["header"]["cpu_isa"] = "scalar" if result["header"]["cpu_isa"] != "scalar" else "avx2"
    new.write_text(json.dumps(elsewhere))
    assert cli.main(["bench", "--load", str(new), "--compare", str(quick_json)]) == 0
    assert "different machines or set-ups: cpu_isa" in capsys.readouterr().out


def test_bench_repeat_merges_runs(tmp_path):
    path = tmp_path / "twice.json"
    md = tmp_path / "twice.md"
    r = _run("bench", "--quick", "--threads", "1", "--filter", "/nchw/fwd+bwd", "--repeat", "2",
             "--json", str(path), "--markdown", str(md))
    assert r.returncode == 0, r.stderr
    assert "per-row medians of 2 runs" in r.stdout and "each run:" in r.stdout
    result = json.loads(path.read_text())
    assert result["header"]["repeats"] == 2 and len(result["summary"]["runs"]) == 2
    assert len(result["rows"]) == 2  # quick suite: 2 layers, the filter keeps NCHW fwd+bwd
    each = ", ".join(str(r["targets"][0]["value"]) for r in result["summary"]["runs"])
    assert f"| no row slower than PyTorch | {result['summary']['targets'][0]['value']} | 0 rows" \
        in md.read_text() and f"| {each} |" in md.read_text()
    assert "2 runs of the suite" in md.read_text()
    for row in result["rows"]:
        assert len(row["runs"]["dwconv_ms"]) == 2 and row["check_ok"]
        assert min(row["runs"]["dwconv_ms"]) <= row["dwconv_ms"] <= max(row["runs"]["dwconv_ms"])
    r = _run("bench", "--quick", "--repeat", "0")
    assert r.returncode == 2 and "--repeat must be >= 1, got 0" in r.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_device_errors_clearly(capsys):
    assert cli.main(["bench", "--quick", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_explain_delegates(capsys):
    if importlib.util.find_spec("dwconv.analysis.explain") is None:
        assert cli.main(["explain", "mobilenet_v2"]) == 2
        assert "dwconv.analysis.explain" in capsys.readouterr().err
    else:
        r = _run("explain", "--help")
        assert r.returncode == 0, r.stderr
