"""The benchmark harness: shapes file, byte/flop formulas, timing, summary and --compare logic."""

import math
import os
import re
import time

import pytest
import torch
import torch.nn.functional as F

from dwconv import benchmark as B


def _layer(**kw):
    base = dict(network="net", layer="l", C=4, H=6, W=6, kh=3, kw=3, stride=1, padding=1,
                dilation=1, multiplier=1, bias=False, batches=(2,), suites=("default",))
    return B.Layer(**{**base, **kw})


def test_default_suite_covers_the_issue_layers():
    layers = B.load_layers(suite="default")
    kinds = {(l.network, l.kh, l.stride) for l in layers}
    for kind in [("mobilenet_v2", 3, 1), ("mobilenet_v2", 3, 2), ("efficientnet_b0", 5, 1),
                 ("convnext_tiny", 7, 1), ("replknet31b", 31, 1)]:
        assert kind in kinds
    for l in layers:
        assert l.batches == ((1, 8) if l.kh >= 13 else (1, 32))
    assert set(B.load_layers(suite="full")) > set(layers)
    cases = B.expand(layers)
    assert len(cases) == 2 * 2 * 2 * len(layers)
    assert len({c.id for c in cases}) == len(cases)


def test_shapes_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("# comment\nnetwork,layer,C,H,W,kernel,stride,padding,dilation,multiplier,"
                   "bias,batches,suites\nnet,l,4,6,6,3,one,1,1,1,0,1,default\n")
    with pytest.raises(ValueError, match=r"bad.csv:3"):
        B.load_layers(bad)
    with pytest.raises(FileNotFoundError, match="--shapes"):
        B.load_layers(tmp_path / "missing.csv")


def test_bytes_and_flops_by_hand():
    # N=2, C=4, 6x6, 3x3 s1 p1: x = y = 2*4*36 = 288 elements, w = 36
    fwd = B.Case(_layer(), 2, "nchw", "fwd")
    assert fwd.output_shape == (2, 4, 6, 6)
    assert fwd.min_bytes == 4 * (288 + 36 + 288) == 2448
    assert fwd.flops == 2 * 288 * 9 == 5184
    both = B.Case(_layer(), 2, "nchw", "fwd+bwd")
    # backward: grad_output and x read, grad_input written, w read and grad_weight written
    assert [c[0] for c in both.pass_costs()] == ["fwd", "bwd"]
    assert both.min_bytes == 2448 + 4 * (288 + 288 + 288 + 36 + 36)
    assert both.flops == 3 * 5184
    # C=3, 7x5, 3x3 s2 p1, multiplier 2, bias, N=1: out 4x3; x = 105, w = 54, b = 6, y = 72
    odd = B.Case(_layer(C=3, H=7, W=5, stride=2, multiplier=2, bias=True), 1, "nchw", "fwd+bwd")
    y = F.conv2d(torch.zeros(1, 3, 7, 5), torch.zeros(6, 1, 3, 3), stride=2, padding=1, groups=3)
    assert odd.output_shape == tuple(y.shape) == (1, 6, 4, 3)
    assert odd.pass_costs() == [("fwd", 4 * (105 + 54 + 6 + 72), 2 * 72 * 9),
                                ("bwd", 4 * (72 + 105 + 105 + 54 + 54 + 6), 4 * 72 * 9)]
    assert B.Case(_layer(), 2, "nchw", "fwd", torch.bfloat16).min_bytes == 2448 // 2


def test_measure_times_every_function():
    x = torch.randn(64, 64)
    t = B.measure({"fast": lambda: x + 1, "slow": lambda: x @ x @ x}, 0.01, torch.device("cpu"))
    assert set(t) == {"fast", "slow"}
    assert all(v["median_s"] > 0 and v["spread"] >= 0 for v in t.values())


def test_measure_warms_short_blocks_untimed(monkeypatch):
    """Every timed block of a call shorter than WARM_CALL_S follows untimed calls of the same
    function; a longer call's blocks do not."""
    log, timing = [], [False]
    per_call = B._Clock.per_call

    def timed(self, fn, n):
        timing[0] = True
        log.append("block")
        try:
            return per_call(self, fn, n)
        finally:
            timing[0] = False

    def fn(name, sleep_s):
        def call():
            log.append((name, timing[0]))
            time.sleep(sleep_s)
        return call

    monkeypatch.setattr(B._Clock, "per_call", timed)
    monkeypatch.setattr(B, "WARM_CALL_S", 0.01)  # far above the short call, below the long
    monkeypatch.setattr(B, "WARM_S", 0.0001)
    B.measure({"short": fn("short", 0), "long": fn("long", 0.012)}, 0.01, torch.device("cpu"))
    blocks = [i for i, e in enumerate(log) if e == "block"]
    names = [log[i + 1][0] for i in blocks]
    assert {"short", "long"} <= set(names)
    for i, name in zip(blocks[2:], names[2:]):  # after the two probes of the per-block call count
        assert (log[i - 1] == (name, False)) == (name == "short"), (name, log[i - 1])


def test_case_functions_agree_with_pytorch():
    for pass_ in B.PASSES:
        case = B.Case(_layer(bias=True, multiplier=2), 2, "channels_last", pass_)
        fns, backend = B.case_functions(case)
        assert backend == "cpu"
        assert B._max_rel_err(fns["dwconv"](), fns["torch"]()) < 1e-5
        if pass_ == "fwd":
            out = fns["dwconv_out"]()
            assert out.is_contiguous(memory_format=torch.channels_last)
            assert B._max_rel_err(out, fns["torch"]()) < 1e-5


def test_extra_backends_timed_side_by_side():
    for pass_ in B.PASSES:
        case = B.Case(_layer(), 1, "nchw", pass_)
        row = B.run_case(case, device=torch.device("cpu"), backend="cpu", min_time=0.01,
                         bandwidth=lambda nbytes: 10.0, peak_gflops=100.0,
                         fixed_s={"fwd": 0.0, "fwd+bwd": 0.0}, also=["torch", "cpu"])
        assert set(row["also_ms"]) == {"dwconv[torch]"}  # the row's own backend is not repeated
        assert row["also_ms"]["dwconv[torch]"] > 0 and row["check_ok"]
    with pytest.raises(RuntimeError, match="cuda"):
        B.case_functions(B.Case(_layer(), 1, "nchw", "fwd"), also=["cuda"])


def test_overhead_flag_follows_the_tiny_call_of_the_same_pass():
    case = B.Case(_layer(), 1, "nchw", "fwd+bwd")
    kw = dict(device=torch.device("cpu"), backend="cpu", min_time=0.01,
              bandwidth=lambda nbytes: 10.0, peak_gflops=100.0)
    row = B.run_case(case, fixed_s={"fwd": 0.0, "fwd+bwd": 0.0}, **kw)
    assert not row["overhead_dominated"]
    fixed = B.OVERHEAD_SHARE * row["dwconv_ms"] * 1e-3 * 10  # well above the share of any rerun
    row = B.run_case(case, fixed_s={"fwd": 0.0, "fwd+bwd": fixed}, **kw)
    assert row["overhead_dominated"]


def _row(rid, pass_, speedup, roofline, dwconv_ms=1.0):
    return {"id": rid, "pass": pass_, "speedup": speedup, "roofline": roofline,
            "dwconv_ms": dwconv_ms, "torch_ms": dwconv_ms * speedup, "dwconv_out_ms": None,
            "overhead_dominated": dwconv_ms < 0.05, "check_ok": True}


def test_summary_and_targets():
    rows = [_row("a", "fwd", 2.0, 0.9), _row("b", "fwd", 4.5, 0.7),
            _row("c", "fwd+bwd", 8.0, 0.8), _row("d", "fwd+bwd", 0.5, 0.2, dwconv_ms=0.01)]
    s = B.summarize(rows)
    assert s["geomean_speedup"]["fwd"] == pytest.approx(3.0)
    assert s["geomean_speedup"]["fwd+bwd"] == pytest.approx(2.0)
    assert s["mean_roofline"] == pytest.approx(0.65)
    assert s["slower_than_torch"] == ["d"]
    assert s["under_30pct"] == [{"id": "d", "roofline": 0.2, "overhead_dominated": True}]
    met = {t["target"]: t["met"] for t in s["targets"]}
    assert met == {"no row slower than PyTorch": False, "geomean speedup fwd": True,
                   "geomean speedup fwd+bwd": False, "mean roofline fraction": True,
                   "rows under 30% of roofline, not overhead-dominated": True}


def test_compare_flags_rows_beyond_the_threshold():
    old = {"rows": [_row("a", "fwd", 2, 0.5, 1.0), _row("b", "fwd", 2, 0.5, 2.0),
                    _row("gone", "fwd", 2, 0.5)], "models": []}
    new = {"rows": [_row("a", "fwd", 2, 0.5, 1.1), _row("b", "fwd", 2, 0.5, 2.4),
                    _row("new", "fwd", 2, 0.5)], "models": []}
    c = B.compare(old, new, threshold=1.15)
    assert {r["id"]: r["ratio"] for r in c["rows"]} == pytest.approx({"a": 1.1, "b": 1.2})
    assert c["regressions"] == ["b"]
    assert c["only_old"] == ["gone"] and c["only_new"] == ["new"]
    assert B.compare(old, new, threshold=1.25)["regressions"] == []
    assert math.isclose(c["rows"][0]["torch_ratio"], 1.1)


def _run_result(rows, mean_note):
    return {"header": {"cpu": "X", "duration_s": 1.0, "timing": "t", "load_avg": [mean_note]},
            "rows": rows, "models": [], "summary": B.summarize(rows)}


def test_merge_runs_takes_per_row_medians_and_keeps_each_run():
    def row(rid, speedup, roofline, ms, ok=True):
        r = _row(rid, "fwd", speedup, roofline, dwconv_ms=ms)
        r.update(min_bytes=2e6, flops=4e6, max_rel_err=1e-7 if ok else 1.0, check_ok=ok)
        return r
    runs = [_run_result([row("a", 2.0, 0.5, 1.0), row("b", 0.9, 0.2, 0.04)], 0.1),
            _run_result([row("a", 4.0, 0.7, 3.0), row("b", 1.5, 0.4, 0.06, ok=False)], 0.2),
            _run_result([row("a", 3.0, 0.6, 2.0), row("b", 1.1, 0.3, 0.02)], 0.3)]
    m = B.merge_runs(runs)
    a, b = m["rows"]
    assert a["id"] == "a" and a["dwconv_ms"] == 2.0 and a["speedup"] == 3.0
    assert a["roofline"] == 0.6 and a["torch_ms"] == 6.0  # medians of times: 2, 6, 12 -> 6
    assert {k: a["runs"][k] for k in ("dwconv_ms", "torch_ms", "speedup", "roofline")} == {
        "dwconv_ms": [1.0, 3.0, 2.0], "torch_ms": [2.0, 12.0, 6.0],
        "speedup": [2.0, 4.0, 3.0], "roofline": [0.5, 0.7, 0.6]}
    assert a["gbs"] == pytest.approx(2e6 / 2.0 / 1e6) and a["gflops"] == pytest.approx(2.0)
    assert not a["overhead_dominated"]
    assert b["speedup"] == 1.1 and b["overhead_dominated"]  # 2 of 3 runs under 0.05 ms
    assert not b["check_ok"] and b["max_rel_err"] == 1.0  # one bad run fails the row
    assert m["header"]["repeats"] == 3 and m["header"]["duration_s"] == 3.0
    assert m["header"]["load_avg_runs"] == [[0.1], [0.2], [0.3]]
    assert [r["targets"] for r in m["summary"]["runs"]] == [r["summary"]["targets"] for r in runs]
    assert m["summary"]["slower_than_torch"] == []
    assert m["summary"]["mean_roofline"] == pytest.approx(0.45)
    assert B.merge_runs(runs[:1]) is runs[0]
    with pytest.raises(ValueError, match="row b is missing"):
        B.merge_runs([runs[0], _run_result([row("a", 2.0, 0.5, 1.0)], 0.1)])


def test_compare_names_the_header_fields_that_differ():
    rows = {"rows": [_row("a", "fwd", 2, 0.5, 1.0)], "models": []}
    zen3 = {**rows, "header": {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1 "
                               "stepping 1", "cpu_isa": "avx2", "threads": 2, "torch": "2.14.1"}}
    zen4 = {**rows, "header": {**zen3["header"], "cpu_id": "AuthenticAMD family 25 model 17 "
                               "stepping 0", "cpu_isa": "avx512"}}
    assert B.compare(zen3, zen3, 1.15)["machine_differs"] == []
    assert B.compare(zen3, zen4, 1.15)["machine_differs"] == [
        {"field": "cpu_id", "old": zen3["header"]["cpu_id"], "new": zen4["header"]["cpu_id"]},
        {"field": "cpu_isa", "old": "avx2", "new": "avx512"}]
    # an older result without the field (or without a header) is not a difference
    old = {**rows, "header": {k: v for k, v in zen3["header"].items() if k != "cpu_id"}}
    assert B.compare(old, zen4, 1.15)["machine_differs"] == [
        {"field": "cpu_isa", "old": "avx2", "new": "avx512"}]
    assert B.compare(rows, zen4, 1.15)["machine_differs"] == []


def test_machine_header_identifies_the_cpu():
    from dwconv.analysis import machine
    h = machine.machine_header()
    assert set(h) >= {"cpu", "cpu_id", "cpu_caches", "cpu_flags"}
    if os.path.exists("/proc/cpuinfo"):
        assert re.fullmatch(r"\S+ family \d+ model \d+ stepping \S+", h["cpu_id"])
    assert all(re.fullmatch(r"L\dd?", k) and v > 0 for k, v in h["cpu_caches"].items())
    line = machine.describe_cpu({"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD family 25 model 1 "
                                 "stepping 1", "cpu_caches": {"L1d": 32, "L2": 512, "L3": 32768}})
    assert line == ("AMD EPYC (AuthenticAMD family 25 model 1 stepping 1; L1d 32 KiB, L2 512 KiB, "
                    "L3 32 MiB)")
    assert machine.describe_cpu({"cpu": "AMD EPYC"}) == "AMD EPYC"  # an older result's header


def test_model_rows_compare_converted_model_with_pytorch():
    rows = B.run_models(["mobilenet_v2"], batch=1, size=32, layouts=["channels_last"],
                        passes=["fwd"], device=torch.device("cpu"), backend="auto",
                        min_time=0.001)
    (row,) = rows
    assert row["id"] == "model/mobilenet_v2/N1/32/channels_last/fwd"
    assert row["converted_layers"] == 17 and row["check_ok"]
    assert row["speedup"] == pytest.approx(row["torch_ms"] / row["dwconv_ms"])


@pytest.mark.parametrize("offset,n", [(0, 1 << 16), (3, 70001), (1, 5)])
def test_stream_copy_copies_every_element(offset, n, cpu_isa):
    """_C.stream_copy_ (the non-temporal copy behind the roofline's CPU bandwidth): whole aligned
    vectors streamed, the unaligned head and the tail copied plainly, chunks split over threads."""
    from dwconv import _C
    src = torch.randn(n + offset)[offset:]
    dst = torch.full((n + offset,), float("nan"))[offset:]
    _C.stream_copy_(dst, src)
    assert torch.equal(dst, src)


def test_stream_copy_rejects_bad_tensors():
    from dwconv import _C
    with pytest.raises(RuntimeError, match="stream_copy_"):
        _C.stream_copy_(torch.empty(8), torch.empty(9))
    with pytest.raises(RuntimeError, match="stream_copy_"):
        _C.stream_copy_(torch.empty(8, dtype=torch.float64), torch.empty(8, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="stream_copy_"):
        _C.stream_copy_(torch.empty(8, 2).t(), torch.empty(2, 8))


def test_bandwidth_takes_the_faster_copy(monkeypatch):
    """machine.bandwidth_gbs on the CPU times a plain copy and _C.stream_copy_ and keeps the
    faster: a stream copy that takes 10 ms leaves the plain copy's figure, a no-op one wins."""
    from dwconv import _C
    from dwconv.analysis import machine
    size = 8 << 20
    monkeypatch.setattr(_C, "stream_copy_", lambda dst, src: time.sleep(0.01))
    plain = machine.bandwidth_gbs(size, min_run_time=0.05)
    assert plain > 2 * size / 0.01 / 1e9
    monkeypatch.setattr(_C, "stream_copy_", lambda dst, src: None)
    assert machine.bandwidth_gbs(size, min_run_time=0.05) > 10 * plain
