"""``python -m dwconv explain MODEL``: where a model's time goes, per layer type, on this machine,
and why its depthwise layers are slower than their MACs suggest.

    python -m dwconv.analysis.explain mobilenet_v2 --plot out/
    python -m dwconv explain torchvision.models.resnet18 --no-time
    python -m dwconv explain mypkg.nets:build_net --input-size 160 --batch 8

Prints the per-type table (params, MACs, minimum bytes, intensity; with timing, forward and
backward time of each type for PyTorch and after ``dwconv.convert`` on a copy), the roofline
summary and the answer in numbers; ``--plot DIR`` writes the roofline, the share-of-MACs vs
share-of-time chart and, with ``--bench-json``, the speedup per benchmark row.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import statistics
import sys

import torch
from torch import nn

from .profile import Profile, profile, time_model
from .roofline import Roofline, by_kind, measure, place

__all__ = ["main", "build_model", "MODELS"]

# short name -> "module:callable" (or a callable) building an untrained model
MODELS = {
    "mobilenet_v1": "dwconv.models:mobilenet_v1",
    "mobilenet_v1_fullconv": "dwconv.models:mobilenet_v1_fullconv",
    "mobilenet_v2": "torchvision.models:mobilenet_v2",
    "efficientnet_b0": "torchvision.models:efficientnet_b0",
    "convnext_tiny": "torchvision.models:convnext_tiny",
}


def build_model(spec: str) -> nn.Module:
    """A model from a short name (see MODELS), a torchvision.models name, a dotted path to a
    constructor (``torchvision.models.resnet18``) or ``module:callable`` (``timm:create_model`` is
    not enough: the callable is called without arguments). Built untrained (no weights download)."""
    path = MODELS.get(spec, spec)
    if callable(path):
        return path()
    if ":" in path:
        module_name, attr = path.split(":", 1)
    elif "." in path:
        module_name, attr = path.rsplit(".", 1)
    else:
        module_name, attr = "torchvision.models", path
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"model {spec!r}: cannot import {module_name!r} ({e}); give one of "
                         f"{sorted(MODELS)}, a torchvision.models name or 'module:callable'") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"model {spec!r}: {module_name!r} has no attribute {attr!r}; give one "
                             f"of {sorted(MODELS)}, a torchvision.models name or 'module:callable'")
        obj = getattr(obj, part)
    model = obj() if callable(obj) and not isinstance(obj, nn.Module) else obj
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {spec!r}: {path} gave a {type(model).__name__}, not an nn.Module")
    return model


def _parse_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}") from None
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}")
    return size


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dwconv explain",
        description="Where a model's time goes per layer type, and why depthwise layers are slow: "
                    "cost model, per-layer timing (PyTorch and after dwconv.convert) and this "
                    "machine's roofline.")
    p.add_argument("model", help=f"one of {', '.join(MODELS)}; a torchvision.models name; a "
                                 "dotted constructor path (torchvision.models.resnet18); or "
                                 "module:callable")
    p.add_argument("--input-size", type=_parse_size, default=None, metavar="N|HxW",
                   help="input height and width (default: the model's input_size, else 224)")
    p.add_argument("--channels", type=int, default=3, help="input channels (default 3)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="float32",
                   choices=["float32", "float64", "float16", "bfloat16"], help="default float32")
    p.add_argument("--channels-last", action="store_true", help="run in NHWC memory format")
    p.add_argument("--backend", default=None,
                   help="dwconv backend for the converted copy (default: auto / $DWCONV_BACKEND)")
    p.add_argument("--no-time", action="store_true",
                   help="counts only: no timing, no roofline measurement, no dwconv comparison")
    p.add_argument("--no-backward", action="store_true", help="time forward only")
    p.add_argument("--no-dwconv", action="store_true", help="skip the dwconv.convert comparison")
    p.add_argument("--min-run-time", type=float, default=0.05,
                   help="seconds of repeated runs per measurement (default 0.05)")
    p.add_argument("--layers", action="store_true", help="also print every layer")
    p.add_argument("--plot", metavar="DIR", default=None, help="write PNG plots to DIR")
    p.add_argument("--bench-json", metavar="FILE", default=None,
                   help="a `dwconv bench --json` file: adds the speedup-per-row plot")
    p.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON")
    return p


def _fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{1e3 * s:.3f}"


def _fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _gflops(flops: int, s: float | None) -> float | None:
    return flops / s / 1e9 if s else None


def _type_table(profiles: dict[str, Profile], backward: bool):
    from rich.table import Table
    first_label, first = next(iter(profiles.items()))
    table = Table(title=f"per layer type ({first.info['input_shape']}, {first.info['dtype']})",
                  title_justify="left")
    for col in ("type", "layers", "params", "params %", "MMACs", "MACs %", "min MB", "FLOP/B"):
        table.add_column(col, justify="left" if col == "type" else "right")
    timed = [label for label, p in profiles.items() if p.timed]
    for label in timed:
        table.add_column(f"{label}\nfwd ms", justify="right")
        table.add_column(f"{label}\nfwd %", justify="right")
        table.add_column(f"{label}\nGFLOP/s", justify="right")
        if backward:
            table.add_column(f"{label}\nbwd ms", justify="right")
            table.add_column(f"{label}\nbwd %", justify="right")
    summaries = {label: {r.kind: r for r in p.by_type()} for label, p in profiles.items()}
    for r in first.by_type():
        cells = [r.kind, str(r.layers), f"{r.params:,}", _fmt_pct(r.params_share),
                 f"{r.macs / 1e6:,.2f}", _fmt_pct(r.macs_share), f"{r.min_bytes / 1e6:,.2f}",
                 f"{r.intensity:.2f}" if r.macs else "-"]
        for label in timed:
            s = summaries[label].get(r.kind)
            cells += [_fmt_ms(s and s.fwd_s), _fmt_pct(s and s.fwd_share)]
            g = _gflops(2 * r.macs, s and s.fwd_s) if r.macs else None
            cells.append("-" if g is None else f"{g:.1f}")
            if backward:
                cells += [_fmt_ms(s and s.bwd_s), _fmt_pct(s and s.bwd_share)]
        table.add_row(*cells)
    total = [f"total ({first_label})", str(len(first.layers)), f"{first.params:,}", "",
             f"{first.macs / 1e6:,.2f}", "",
             f"{sum(x.cost.min_bytes for x in first.layers) / 1e6:,.2f}", ""]
    for label in timed:
        p = profiles[label]
        total += [_fmt_ms(p.fwd_s), "", f"{_gflops(p.flops, p.fwd_s):.1f}"]
        if backward:
            total += [_fmt_ms(p.bwd_s), ""]
    table.add_section()
    table.add_row(*total)
    return table


def _layer_table(p: Profile, label: str, roof: Roofline | None):
    from rich.table import Table
    table = Table(title=f"layers ({label})", title_justify="left")
    cols = ["layer", "module", "type", "input", "output", "params", "MMACs", "min KB", "FLOP/B",
            "fwd ms", "bwd ms"]
    if roof is not None:
        cols += ["GFLOP/s", "roof GFLOP/s", "of roof"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("layer", "module", "type") else "right")
    for x in p.layers:
        c = x.cost
        cells = [x.name, x.module_type, x.kind, "x".join(map(str, c.in_shape)),
                 "x".join(map(str, c.out_shape)), f"{c.params:,}", f"{c.macs / 1e6:.2f}",
                 f"{c.min_bytes / 1e3:,.1f}", f"{c.intensity:.2f}" if c.macs else "-",
                 _fmt_ms(x.fwd_s), _fmt_ms(x.bwd_s)]
        if roof is not None:
            pl = place([x], roof)
            cells += [f"{pl[0].achieved_gflops:.1f}", f"{pl[0].attainable_gflops:.1f}",
                      f"{100 * pl[0].efficiency:.1f}%"] if pl else ["-"] * 3
        table.add_row(*cells)
    return table


def _roofline_table(profiles: dict[str, Profile], roof: Roofline):
    from rich.table import Table
    table = Table(title="forward on the roofline, per layer type (attainable: each layer at "
                        "min(peak, intensity x bandwidth at its working set))",
                  title_justify="left")
    for col in ("", "type", "layers", "FLOP/B", "bound", "GFLOP/s", "roof GFLOP/s", "of roof",
                "ms", "roof ms"):
        table.add_column(col, justify="left" if col in ("", "type", "bound") else "right")
    for label, q in profiles.items():
        for k in by_kind(place(q, roof)):
            table.add_row(label, k.kind, str(k.layers), f"{k.intensity:.2f}",
                          "memory" if k.intensity < roof.ridge else "compute",
                          f"{k.achieved_gflops:.1f}", f"{k.attainable_gflops:.1f}",
                          f"{100 * k.efficiency:.1f}%", _fmt_ms(k.seconds),
                          _fmt_ms(k.seconds * k.efficiency))
        table.add_section()
    return table


def _roofline_lines(roof: Roofline) -> list[str]:
    bw = ", ".join(f"{size / 1024:g} KiB: {gbs:.1f}" if size < 1 << 20 else
                   f"{size / (1 << 20):g} MiB: {gbs:.1f}" for size, gbs in roof.bandwidth)
    return [f"roofline ({roof.device}, {roof.dtype}, {roof.threads} threads): peak "
            f"{roof.peak_gflops:.1f} GFLOP/s; copy bandwidth GB/s by working set: {bw}",
            f"ridge point: {roof.ridge:.1f} FLOP/byte (peak / DRAM bandwidth); a layer left of it "
            f"is memory-bound"]


def _kind_rate(p: Profile, kind: str) -> tuple[int, float | None]:
    layers = [x for x in p.layers if x.kind == kind and x.fwd_s]
    return sum(x.cost.flops for x in layers), sum(x.fwd_s for x in layers) or None


def answer(profiles: dict[str, Profile], roof: Roofline | None) -> list[str]:
    """'Why is depthwise slow' for this model, in numbers: one sentence a line."""
    label, p = next(iter(profiles.items()))
    dw = p.summary("depthwise")
    if dw is None:
        return ["This model has no depthwise convolution."]
    dw_layers = [x for x in p.layers if x.kind == "depthwise"]
    intens = [x.cost.intensity for x in dw_layers]
    lines = [f"Depthwise layers ({dw.layers}) do {100 * dw.macs_share:.2f}% of the MACs and hold "
             f"{100 * dw.params_share:.2f}% of the parameters; their arithmetic intensity is "
             f"{dw.intensity:.2f} FLOP/byte overall ({min(intens):.2f} to {max(intens):.2f} per "
             f"layer), against {p.summary('pointwise').intensity:.1f} for the pointwise layers."
             if p.summary("pointwise") else
             f"Depthwise layers ({dw.layers}) do {100 * dw.macs_share:.2f}% of the MACs; their "
             f"arithmetic intensity is {dw.intensity:.2f} FLOP/byte."]
    if roof is None:
        lines.append("(Run without --no-time to measure this machine's ridge point and time.)")
    if roof is not None:
        attain = roof.attainable_gflops(dw.intensity)
        lines.append(
            f"This machine's ridge point is {roof.ridge:.1f} FLOP/byte, so depthwise is "
            f"memory-bound: at DRAM bandwidth ({roof.dram_gbs:.1f} GB/s) it can reach at most "
            f"{attain:.1f} GFLOP/s, {100 * attain / roof.peak_gflops:.1f}% of the "
            f"{roof.peak_gflops:.0f} GFLOP/s peak; its time follows bytes, not FLOPs.")
    if p.timed and dw.fwd_s:
        lines.append(
            f"Measured ({label}): depthwise takes {100 * (dw.fwd_share or 0):.1f}% of the forward "
            f"time of the layers" + (f" and {100 * dw.bwd_share:.1f}% of the backward time"
                                     if dw.bwd_share else "")
            + f" for {100 * dw.macs_share:.2f}% of the MACs.")
        dw_flops, dw_s = _kind_rate(p, "depthwise")
        pw_flops, pw_s = _kind_rate(p, "pointwise")
        if pw_s:
            dw_rate, pw_rate = dw_flops / dw_s / 1e9, pw_flops / pw_s / 1e9
            lines.append(
                f"It runs at {dw_rate:.1f} GFLOP/s against {pw_rate:.1f} for pointwise: "
                f"{pw_rate / dw_rate:.1f}x more time per MAC; at pointwise's rate it would take "
                f"{1e3 * dw_flops / pw_rate / 1e9:.3f} ms instead of {1e3 * dw_s:.3f} ms.")
        if roof is not None:
            eff = [pl.efficiency for pl in place(dw_layers, roof)]
            if eff:
                lines.append(f"Per depthwise layer, achieved / attainable on the roofline: median "
                             f"{100 * statistics.median(eff):.1f}% (range {100 * min(eff):.1f}% "
                             f"to {100 * max(eff):.1f}%).")
    for other_label, q in list(profiles.items())[1:]:
        dq = q.summary("depthwise")
        if q.timed and dq and dq.fwd_s and dw.fwd_s:
            line = (f"With {other_label}: depthwise forward {1e3 * dw.fwd_s:.3f} -> "
                    f"{1e3 * dq.fwd_s:.3f} ms ({dw.fwd_s / dq.fwd_s:.2f}x), "
                    f"{100 * (dw.fwd_share or 0):.1f}% -> {100 * (dq.fwd_share or 0):.1f}% of the "
                    f"layers' forward time")
            if dw.bwd_s and dq.bwd_s:
                line += f"; backward {1e3 * dw.bwd_s:.3f} -> {1e3 * dq.bwd_s:.3f} ms " \
                        f"({dw.bwd_s / dq.bwd_s:.2f}x)"
            if p.model_fwd_s and q.model_fwd_s:
                line += (f"; whole model forward {1e3 * p.model_fwd_s:.2f} -> "
                         f"{1e3 * q.model_fwd_s:.2f} ms")
            if p.model_train_s and q.model_train_s:
                line += (f", forward+backward {1e3 * p.model_train_s:.2f} -> "
                         f"{1e3 * q.model_train_s:.2f} ms")
            lines.append(line + ".")
    return lines


def _profile_json(p: Profile) -> dict:
    return {
        "info": p.info, "params": p.params, "macs": p.macs,
        "model_fwd_s": p.model_fwd_s, "model_train_s": p.model_train_s,
        "by_type": [dict(vars(r), intensity=r.intensity) for r in p.by_type()],
        "layers": [{"name": x.name, "module": x.module_type, "kind": x.kind,
                    "in_shape": list(x.cost.in_shape), "out_shape": list(x.cost.out_shape),
                    "params": x.cost.params, "macs": x.cost.macs, "min_bytes": x.cost.min_bytes,
                    "intensity": x.cost.intensity, "fwd_s": x.fwd_s, "bwd_s": x.bwd_s}
                   for x in p.layers],
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rich.console import Console
    console = Console(width=None if sys.stdout.isatty() else 200)

    import dwconv
    from .machine import describe_cpu, machine_header

    try:
        model = build_model(args.model)
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    dtype = getattr(torch, args.dtype)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        console.print("[red]error:[/red] --device cuda but CUDA is not available here")
        return 2
    h, w = args.input_size or (getattr(model, "input_size", 224),) * 2
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.eval().to(device=device, dtype=dtype, memory_format=fmt)
    x = torch.randn(args.batch, args.channels, h, w, device=device, dtype=dtype).contiguous(
        memory_format=fmt)
    timed = not args.no_time
    backward = timed and not args.no_backward

    try:
        header = machine_header()
    except ImportError:  # a source checkout without the compiled extension
        header = {"cpu": "unknown", "threads": torch.get_num_threads(), "torch": torch.__version__,
                  "dwconv": dwconv.__version__, "commit": "unknown"}
    console.print(f"[bold]dwconv explain[/bold] {args.model}: input {tuple(x.shape)} {args.dtype} "
                  f"on {device}{' channels_last' if args.channels_last else ''}; "
                  f"{describe_cpu(header)}, {header['threads']} threads, torch {header['torch']}, "
                  f"dwconv {header['dwconv']} ({header['commit']})")
    profiles = {"PyTorch": profile(model, x, time=timed, backward=backward,
                                   min_run_time=args.min_run_time, model_time=False)}
    models = {"PyTorch": model}
    if timed and not args.no_dwconv:
        converted = copy.deepcopy(model)
        n = dwconv.convert(converted, backend=args.backend)
        if n:
            console.print(f"dwconv.convert replaced {n} depthwise layers (backend: "
                          f"{_backend_name(args.backend, converted, x)})")
            profiles["dwconv"] = profile(converted, x, time=True, backward=backward,
                                         min_run_time=args.min_run_time, model_time=False)
            models["dwconv"] = converted
    if timed:
        _time_models(models, profiles, x, args.min_run_time, backward)
    p = profiles["PyTorch"]
    console.print(f"params {p.params:,}; MACs {p.macs:,} ({p.macs / 1e6:,.1f}M; FLOPs = 2 x MACs);"
                  f" counted: multiply-adds of conv and linear layers (padding taps included), "
                  f"params = weights + biases + norm affine")
    console.print(_type_table(profiles, backward))
    for label, q in profiles.items():
        if q.model_fwd_s is not None:
            line = (f"{label} whole model: forward {1e3 * q.model_fwd_s:.3f} ms (layers' sum "
                    f"{1e3 * q.fwd_s:.3f} ms)")
            if q.model_train_s is not None:
                line += f"; forward+backward {1e3 * q.model_train_s:.3f} ms"
            console.print(line)
    if len(profiles) > 1 and timed:
        console.print("(whole-model times: the models take turns, median of 3; layer times: "
                      "each profile in turn, each layer alone)")

    roof = None
    if timed:
        roof = measure(device, dtype, min_run_time=max(2 * args.min_run_time, 0.02))
    if args.layers:
        for label, q in profiles.items():
            console.print(_layer_table(q, label, roof))
    if roof is not None:
        for line in _roofline_lines(roof):
            console.print(line)
        console.print(_roofline_table(profiles, roof))
        for label, q in profiles.items():
            pl = place(q, roof)
            mem_s = sum(x.seconds for x in pl if x.bound == "memory")
            all_s = sum(x.seconds for x in pl) or 1
            console.print(f"{label}: {sum(x.bound == 'memory' for x in pl)} of {len(pl)} layers "
                          f"with MACs are memory-bound, {100 * mem_s / all_s:.1f}% of their "
                          f"forward time")
    console.print("\n[bold]Why is depthwise slow?[/bold]")
    for line in answer(profiles, roof):
        console.print(line)

    if args.plot:
        from . import plots
        name = args.model.replace(":", "_").replace("/", "_")
        written = [plots.share_plot(profiles, os.path.join(args.plot, f"{name}_shares.png"),
                                    f"{args.model}: share of MACs vs share of time per layer type",
                                    backward)]
        if roof is not None:
            written.append(plots.roofline_plot(
                roof, {label: place(q, roof) for label, q in profiles.items()},
                os.path.join(args.plot, f"{name}_roofline.png"),
                f"{args.model} forward layers on this machine's roofline ({roof.device}, "
                f"{roof.dtype}, {roof.threads} threads)"))
        if args.bench_json:
            written.append(plots.speedup_plot(args.bench_json,
                                              os.path.join(args.plot, "bench_speedup.png")))
        console.print("plots written: " + ", ".join(written))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "model": args.model,
                       "roofline": roof.to_dict() if roof else None,
                       "profiles": {k: _profile_json(v) for k, v in profiles.items()}}, f, indent=1)
    return 0


def _time_models(models: dict[str, nn.Module], profiles: dict[str, Profile], x: torch.Tensor,
                 min_run_time: float, backward: bool, rounds: int = 3) -> None:
    """Whole-model times, the models taking turns so that a change in the machine's load hits
    them alike; the median of `rounds` medians."""
    times = {label: [] for label in models}
    for _ in range(rounds):
        for label, m in models.items():
            times[label].append(time_model(m, x, min_run_time, backward))
    for label, ts in times.items():
        profiles[label].model_fwd_s = statistics.median(t[0] for t in ts)
        if ts[0][1] is not None:
            profiles[label].model_train_s = statistics.median(t[1] for t in ts)


def _backend_name(backend: str | None, model: nn.Module, x: torch.Tensor) -> str:
    """The backend the first converted layer gets for its real input."""
    import dwconv
    from ..backends import select
    found = {}

    def hook(module, args):
        found.setdefault("name", select(backend, args[0], module.weight, module.bias).name)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, dwconv.DepthwiseConv2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found.get("name", "?")


if __name__ == "__main__":
    sys.exit(main())
