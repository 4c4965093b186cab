"""Plots (matplotlib, an optional dependency; written with the Agg canvas, no display needed):
the roofline with layers placed on it, share of MACs vs share of time per layer type, and speedup
per benchmark row."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from .profile import Profile
from .roofline import Placement, Roofline

__all__ = ["roofline_plot", "share_plot", "speedup_plot", "load_bench_rows", "bench_speedups"]

_KIND_COLORS = {"depthwise": "tab:red", "pointwise": "tab:blue", "standard": "tab:green",
                "grouped": "tab:purple", "channelwise": "tab:pink", "fc": "tab:orange",
                "norm": "tab:gray", "activation": "tab:olive", "pool": "tab:cyan",
                "other": "tab:brown"}
_MARKERS = "o^sDv*"


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("dwconv's plots need matplotlib (pip install matplotlib); "
                          f"importing it failed: {e}") from e
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


def roofline_plot(roof: Roofline, placements: Mapping[str, Sequence[Placement]], path: str,
                  title: str = "") -> str:
    """The roofline (one roof per measured working-set size, DRAM's solid) with each set of
    placements (label -> layers: e.g. 'PyTorch' and 'dwconv') as points coloured by layer kind.
    Returns `path`."""
    fig = _figure(8, 5.5)
    ax = fig.add_subplot()
    points = [p for ps in placements.values() for p in ps]
    lo = min([p.intensity for p in points] + [0.1]) / 2
    hi = max([p.intensity for p in points] + [roof.ridge * 4]) * 2
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    for i, (size, gbs) in enumerate(roof.bandwidth):
        dram = i == len(roof.bandwidth) - 1
        ax.plot(xs, [min(roof.peak_gflops, x * gbs) for x in xs], color="black",
                lw=1.6 if dram else 0.8, ls="-" if dram else ":", alpha=1 if dram else 0.6,
                label=f"DRAM ({_size(size)}): {gbs:.1f} GB/s" if dram else None)
        if not dram:
            ax.annotate(f"{_size(size)}: {gbs:.0f} GB/s", (lo * 1.1, lo * 1.1 * gbs),
                        fontsize=7, alpha=0.7)
    ax.axvline(roof.ridge, color="gray", lw=0.8, ls="--")
    ax.annotate(f"ridge {roof.ridge:.1f} FLOP/B\npeak {roof.peak_gflops:.0f} GFLOP/s",
                (roof.ridge * 1.25, roof.peak_gflops * 0.55), fontsize=8)
    kinds_shown = set()
    for marker, (label, ps) in zip(_MARKERS, placements.items()):
        ax.scatter([], [], marker=marker, color="black", facecolors="none", label=label)
        for kind in sorted({p.kind for p in ps}):
            sel = [p for p in ps if p.kind == kind]
            ax.scatter([p.intensity for p in sel], [p.achieved_gflops for p in sel], s=22,
                       marker=marker, color=_KIND_COLORS.get(kind, "black"), alpha=0.75,
                       label=kind if kind not in kinds_shown else None)
            kinds_shown.add(kind)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte of minimum traffic)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title(title or f"roofline: {roof.device} {roof.dtype}, {roof.threads} threads")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def share_plot(profiles: Mapping[str, Profile], path: str, title: str = "",
               backward: bool = True) -> str:
    """Per layer kind: share of MACs next to share of forward (and forward+backward) time of each
    profile (label -> Profile, e.g. 'PyTorch' and 'dwconv'; they should be the same model).
    Without timings only the MACs and params shares are drawn. Returns `path`."""
    first = next(iter(profiles.values()))
    summaries = {label: {r.kind: r for r in p.by_type()} for label, p in profiles.items()}
    ref = summaries[next(iter(profiles))]
    # the kinds with MACs, plus any that takes a visible share of some profile's time
    kinds = [r.kind for r in first.by_type()
             if r.macs or any(k.get(r.kind) and (k[r.kind].fwd_share or 0) > 0.005
                              for k in summaries.values())]
    bars = [("MACs", [ref[k].macs_share for k in kinds])]
    if not first.timed:
        bars.append(("params", [ref[k].params_share for k in kinds]))
    for label, s in summaries.items():
        p = profiles[label]
        if not p.timed:
            continue
        bars.append((f"{label} fwd time", [(s[k].fwd_share or 0) if k in s else 0 for k in kinds]))
        if backward and p.bwd_s:
            total = p.fwd_s + p.bwd_s
            bars.append((f"{label} fwd+bwd time",
                         [(s[k].train_s or 0) / total if k in s else 0 for k in kinds]))
    fig = _figure(8, 1.2 + 0.35 * len(kinds) * len(bars) / 2 + 1)
    ax = fig.add_subplot()
    height = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars):
        ys = [j + (i - (len(bars) - 1) / 2) * height for j in range(len(kinds))]
        rects = ax.barh(ys, [100 * v for v in values], height, label=label)
        ax.bar_label(rects, [f"{100 * v:.1f}%" for v in values], fontsize=7, padding=2)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.invert_yaxis()
    ax.set_xlabel("share of the model's total (%)")
    ax.set_xlim(0, 112)
    ax.set_title(title or "share of MACs vs share of time per layer type")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


_TIME_KEYS = ("median_s", "time_s", "seconds", "median_ms", "time_ms", "ms", "median_us",
              "time_us", "us")
_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _row_time(row: Mapping) -> float | None:
    for key in _TIME_KEYS:
        if isinstance(row.get(key), (int, float)):
            return row[key] * _SCALE[key.rsplit("_", 1)[-1] if "_" in key else
                                     {"seconds": "s"}.get(key, key)]
    return None


def _row_label(row: Mapping) -> str:
    for key in ("name", "label", "case", "row", "shape", "model"):
        if row.get(key) not in (None, ""):
            label = str(row[key])
            extra = [str(row[k]) for k in ("pass", "direction", "layout", "dtype") if row.get(k)]
            return " ".join([label] + [e for e in extra if e not in label])
    return json.dumps({k: v for k, v in row.items() if isinstance(v, (str, int))}, sort_keys=True)


def load_bench_rows(path: str) -> list[dict]:
    """The rows of a ``dwconv bench --json`` file: a list of row objects, or an object with them
    under 'rows', 'results' or 'benchmarks'."""
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, Mapping):
        data = next((data[k] for k in ("rows", "results", "benchmarks") if k in data), None)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of benchmark rows, or an object with 'rows'")
    return [r for r in data if isinstance(r, Mapping)]


def bench_speedups(rows: Sequence[Mapping], baseline: str = "torch") -> list[tuple[str, float]]:
    """(label, speedup) per row, tolerant of the row layout:

    - a row with ``speedup`` (a number, > 1 means dwconv is faster);
    - a row with the baseline's and dwconv's times side by side: ``torch_s``/``dwconv_s`` (also
      ``_ms``, ``_us``, or ``torch``/``dwconv`` objects holding one of ``median_s``,
      ``time_ms``...);
    - one row per backend (``backend`` field plus a time such as ``median_s`` or ``time_ms``):
      rows with the same label are grouped and each non-baseline backend gets baseline/its time.
    The label is ``name`` (or ``label``, ``case``, ``shape``, ``model``) plus ``pass``/``layout``/
    ``dtype`` when given. Rows that fit none of these are skipped.
    """
    out: list[tuple[str, float]] = []
    per_backend: dict[str, dict[str, float]] = {}
    for row in rows:
        label = _row_label(row)
        if isinstance(row.get("speedup"), (int, float)):
            out.append((label, float(row["speedup"])))
            continue
        base = other = None
        for unit, scale in _SCALE.items():
            b, d = row.get(f"{baseline}_{unit}"), row.get(f"dwconv_{unit}")
            if isinstance(b, (int, float)) and isinstance(d, (int, float)):
                base, other = b * scale, d * scale
                break
        if base is None and isinstance(row.get(baseline), Mapping) and \
                isinstance(row.get("dwconv"), Mapping):
            base, other = _row_time(row[baseline]), _row_time(row["dwconv"])
        if base and other:
            out.append((label, base / other))
            continue
        t = _row_time(row)
        if row.get("backend") and t:
            per_backend.setdefault(label, {})[str(row["backend"])] = t
    for label, times in per_backend.items():
        if baseline in times:
            out += [(f"{label} [{b}]" if len(times) > 2 else label, times[baseline] / t)
                    for b, t in times.items() if b != baseline]
    return out


def speedup_plot(rows: Sequence[Mapping] | str, path: str, title: str = "",
                 baseline: str = "torch") -> str:
    """Horizontal bars of speedup over `baseline` per benchmark row (`rows` or a JSON file's path;
    see :func:`bench_speedups` for the fields read), log scale, 1x marked. Returns `path`."""
    if isinstance(rows, str):
        rows = load_bench_rows(rows)
    speedups = bench_speedups(rows, baseline)
    if not speedups:
        raise ValueError("no benchmark row has a speedup, a baseline/dwconv time pair or a "
                         "per-backend time (see dwconv.analysis.plots.bench_speedups)")
    fig = _figure(8, 1.5 + 0.28 * len(speedups))
    ax = fig.add_subplot()
    values = [s for _, s in speedups]
    rects = ax.barh(range(len(speedups)), values,
                    color=["tab:green" if v >= 1 else "tab:red" for v in values])
    ax.bar_label(rects, [f"{v:.2f}x" for v in values], fontsize=7, padding=2)
    ax.set_yticks(range(len(speedups)), [label for label, _ in speedups], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    lo, hi = min(values + [1.0]), max(values + [1.0])
    ax.set_xlim(lo / 1.3, hi * 1.6)
    ax.xaxis.set_major_formatter("{x:g}x")
    ax.set_xlabel(f"speedup over {baseline} (higher is better)")
    ax.set_title(title or f"dwconv speedup over {baseline} per benchmark row")
    return _save(fig, path)
