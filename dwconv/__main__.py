"""Command line: ``python -m dwconv {bench,info,explain} ...``.

    python -m dwconv bench                       # default suite, table + summary on the terminal
    python -m dwconv bench --json out.json       # also write every number as JSON
    python -m dwconv bench --compare old.json    # per-row ratio; exit 1 on a regression
    python -m dwconv bench --models              # whole torchvision models, before/after convert()
    python -m dwconv info                        # backends, build, versions, machine
    python -m dwconv explain mobilenet_v2        # cost model and roofline (dwconv.analysis.explain)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys


def _bench_parser(sub) -> argparse.ArgumentParser:
    from .benchmark import LAYOUTS, MODELS, PASSES, SUITES
    p = sub.add_parser("bench", help="benchmark dwconv against PyTorch on real network layers",
                       description="Times dwconv and PyTorch's F.conv2d(groups=C) on depthwise "
                       "layers of real networks in the same run; places each row on this "
                       "machine's roofline.")
    p.add_argument("--suite", choices=SUITES, default="default",
                   help="rows of bench/shapes/layers.csv to run (default: %(default)s)")
    p.add_argument("--shapes", metavar="FILE", help="another shapes file (same columns)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    p.add_argument("--backend", default="auto", help="dwconv backend to time (default: auto)")
    p.add_argument("--also", nargs="*", metavar="BACKEND",
                   help="more dwconv backends to time side by side in the same run (default on "
                        "CUDA: triton; on CUDA, NCHW rows also time PyTorch on a channels_last "
                        "copy, i.e. cuDNN)")
    p.add_argument("--layout", choices=[*LAYOUTS, "all"], default="all")
    p.add_argument("--pass", dest="pass_", choices=[*PASSES, "all"], default="all")
    p.add_argument("--batch", type=int, nargs="+", metavar="N",
                   help="batch sizes instead of each layer's own (1 and 32, 8 for large kernels)")
    p.add_argument("--filter", nargs="+", metavar="TEXT",
                   help="only rows whose id (network/layer/N/layout/pass) contains every TEXT")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "float64"],
                   default="float32")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--min-time", type=float, default=0.3,
                   help="seconds each implementation runs per row, at least (default: 0.3)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="run the suite N times, one run after another, and report per-row "
                        "medians over the runs, with each run's targets (default: 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: the 'quick' suite at batch 1 with short timings")
    p.add_argument("--models", nargs="*", choices=MODELS, metavar="MODEL",
                   help=f"also time whole models (default when given bare: {', '.join(MODELS)})")
    p.add_argument("--model-batch", type=int, default=1, help="model batch size (default 1)")
    p.add_argument("--model-size", type=int, default=224, help="model input H=W (default 224)")
    p.add_argument("--no-layers", action="store_true", help="skip the layer rows (with --models)")
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as Markdown (README)")
    p.add_argument("--load", metavar="PATH",
                   help="show (and --compare) an earlier JSON result instead of running")
    p.add_argument("--compare", metavar="OLD.json",
                   help="ratio of every row's dwconv time to OLD.json's; exit 1 if any regresses")
    p.add_argument("--threshold", type=float, default=1.15,
                   help="--compare: a row regresses when new/old > this (default 1.15)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "explain":
        return _explain(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m dwconv",
                                     description="dwconv command line: bench, info, explain")
    sub = parser.add_subparsers(dest="command", required=True)
    _bench_parser(sub)
    sub.add_parser("info", help="backends (and why not), build, versions, machine")
    sub.add_parser("explain", help="why depthwise is slow: cost model and roofline of a model "
                   "(python -m dwconv explain --help)", add_help=False)
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info()
    return _bench(args, parser)


# ---------------------------------------------------------------------------------- explain
def _explain(argv: list[str]) -> int:
    if importlib.util.find_spec("dwconv.analysis.explain") is None:
        print("python -m dwconv explain: dwconv.analysis.explain is not part of this checkout yet",
              file=sys.stderr)
        return 2
    from .analysis import explain
    return explain.main(argv) or 0


# ------------------------------------------------------------------------------------- info
def _info() -> int:
    import platform

    import torch
    from rich.console import Console
    from rich.table import Table

    import dwconv
    from .analysis import machine
    console = Console()
    table = Table(title="dwconv backends", show_lines=False)
    table.add_column("backend")
    table.add_column("available")
    table.add_column("why not")
    for name, reason in dwconv.backends().items():
        table.add_row(name, "yes" if reason is None else "no", reason or "")
    console.print(table)
    versions = {"dwconv": dwconv.__version__, "torch": torch.__version__,
                "torch CUDA": torch.version.cuda, "python": platform.python_version()}
    try:
        import triton
        versions["triton"] = triton.__version__
    except ImportError as e:
        versions["triton"] = f"not importable ({e})"
    sections = {"versions": versions, "build": _try(dwconv.build_info),
                "machine": machine.machine_header()}
    for title, d in sections.items():
        console.print(f"[bold]{title}[/bold]")
        for k, v in d.items():
            console.print(f"  {k}: {', '.join(map(str, v)) if isinstance(v, list) else v}",
                          markup=False, highlight=False)
    return 0


def _try(fn):
    try:
        return fn()
    except ImportError as e:
        return {"error": str(e)}


# ------------------------------------------------------------------------------------ bench
def _bench(args, parser) -> int:
    import torch
    from rich.console import Console

    from . import benchmark as B
    console = Console()
    if not console.is_terminal:  # a file or pipe: no width to fit, keep table rows on one line
        console = Console(width=220)
    err = Console(stderr=True)
    if not err.is_terminal:
        err = Console(stderr=True, width=220)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.load:
        result = B.load_json(args.load)
    else:
        try:
            result = _run(args, B, err)
        except (RuntimeError, ValueError, FileNotFoundError) as e:
            err.print(f"[red]error:[/red] {e}", markup=True, highlight=False)
            return 2
    _print_result(console, result, B)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        console.print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(B.to_markdown(result))
        console.print(f"wrote {args.markdown}")
    if args.compare:
        cmp = B.compare(B.load_json(args.compare), result, args.threshold)
        _print_compare(console, cmp, args.compare)
        return 1 if cmp["regressions"] else 0
    return 0


def _run(args, B, err) -> dict:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    suite = "quick" if args.quick else args.suite
    layouts = B.LAYOUTS if args.layout == "all" else (args.layout,)
    passes = B.PASSES if args.pass_ == "all" else (args.pass_,)
    dtype = getattr(torch, args.dtype)
    batches = args.batch or ([1] if args.quick else None)
    cases = [] if args.no_layers else B.expand(B.load_layers(args.shapes, suite), batches,
                                               layouts, passes, dtype)
    cases = [c for c in cases if all(t in c.id for t in args.filter or ())]
    models = () if args.models is None else (args.models or B.MODELS)
    if args.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {args.repeat}")
    total = (len(cases) + len(models) * len(layouts) * len(passes)) * args.repeat
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("starting", total=total)

        def progress(desc, advance=0):
            bar.update(task, description=desc, advance=advance)
            if advance and not err.is_terminal:  # a log file: one line per finished row
                err.print(f"[{int(bar.tasks[0].completed)}/{total}] {desc}", highlight=False)
        also = args.also
        if also is None:
            also = ["triton"] if args.device.startswith("cuda") else []
        runs = []
        for i in range(args.repeat):
            def progress_i(desc, advance=0, i=i):
                progress(f"run {i + 1}/{args.repeat}: {desc}" if args.repeat > 1 else desc,
                         advance)
            runs.append(B.run(cases, device=args.device, backend=args.backend, also=also,
                              min_time=0.03 if args.quick else args.min_time,
                              bandwidth_time=0.03 if args.quick else 0.2, models=models,
                              model_batch=args.model_batch, model_size=args.model_size,
                              model_layouts=layouts, model_passes=passes, progress=progress_i))
        return B.merge_runs(runs)


def _size(nbytes) -> str:
    nbytes = int(nbytes)
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.0f} KiB"


def _ms(v):
    return "-" if v is None else f"{v:.3f}" if v < 10 else f"{v:.1f}"


NOISY = 0.25
LIST_MAX = 12  # summary lines per kind of finding; the JSON has them all


def _noisy(row) -> bool:
    return max(row["spread"].values()) > NOISY


def _kernel_short(row) -> str:
    """'k3s1 avx512' for a forward row, 'fwd/bwdi/bwdw specialisations isa' for fwd+bwd."""
    parts = [k.split("_") for k in row["kernels"]]
    if any(len(p) < 5 for p in parts):
        return ", ".join(row["kernels"])
    return "/".join("_".join(p[3:-1]) for p in parts) + " " + parts[0][-1]


def _print_result(console, result, B) -> None:
    from rich.table import Table

    from .analysis import machine
    h = result["header"]
    console.print(f"[bold]dwconv bench[/bold]  {machine.describe_cpu(h)}  "
                  f"threads={h.get('threads')}  isa={h.get('cpu_isa')}  torch {h.get('torch')}  "
                  f"dwconv {h.get('dwconv')} ({h.get('commit')})  device={h.get('device')}"
                  f"{'  runs=' + str(h['repeats']) if h.get('repeats') else ''}", highlight=False)
    bw = h.get("bandwidth_gbs") or {}
    pc, nan = h.get("per_call_us") or {}, float("nan")  # older results lack the fwd+bwd entries
    if bw:
        sizes = sorted(bw, key=int)
        console.print(f"peak {h['peak_gflops']:.0f} GFLOP/s; copy bandwidth "
                      f"{bw[sizes[0]]:.0f} GB/s at {_size(sizes[0])} .. "
                      f"{bw[sizes[-1]]:.0f} GB/s at {_size(sizes[-1])}; per-call "
                      f"overhead (tiny call, fwd / fwd+bwd) dwconv "
                      f"{pc.get('dwconv', nan):.1f} / {pc.get('dwconv_fwd+bwd', nan):.0f} us, "
                      f"torch {pc.get('torch', nan):.1f} / {pc.get('torch_fwd+bwd', nan):.0f} us; "
                      f"took {h['duration_s']:.0f} s",
                      highlight=False)
    load = h.get("load_avg")
    if load and load[0] > (h.get("cpus") or 1):
        console.print(f"[yellow]load average {load[0]:.1f} on {h.get('cpus')} CPUs at the start: "
                      f"other processes share the cores, timings are noisy[/yellow]")
    tiny_us = (h.get("per_call_us") or {}).get("dwconv", 0)
    if tiny_us > 1000:
        console.print(f"[yellow]a tiny call takes {tiny_us:.0f} us (normally ~10-20): threads are "
                      f"being descheduled, so short rows measure the machine's load, not the "
                      f"kernels; rerun on an idle machine or with --threads 1[/yellow]")
    rows = result["rows"]
    if rows:
        t = Table(title="depthwise layers: median ms per call (output allocation included)")
        for col, just in [("network", "left"), ("layer", "left"), ("N", "right"),
                          ("CxHxW k/s", "left"), ("layout", "left"), ("pass", "left"),
                          ("torch", "right"), ("dwconv", "right"), ("out=", "right"),
                          ("speedup", "right"), ("GB/s", "right"), ("GFLOP/s", "right"),
                          ("roofline", "right"), ("kernel", "left")]:
            t.add_column(col, justify=just)
        for r in rows:
            roof = f"{r['roofline']:.0%}" + (" (ovh)" if r["overhead_dominated"] else "")
            style = None if r["check_ok"] else "red"
            t.add_row(r["network"], r["layer"], str(r["N"]),
                      f"{r['C']}x{r['H']}x{r['W']} {r['kh']}x{r['kw']}/{r['stride']}",
                      "CL" if r["layout"] == "channels_last" else "NCHW", r["pass"],
                      _ms(r["torch_ms"]), _ms(r["dwconv_ms"]), _ms(r["dwconv_out_ms"]),
                      f"{r['speedup']:.2f}x" + ("~" if _noisy(r) else ""), f"{r['gbs']:.1f}",
                      f"{r['gflops']:.1f}", roof,
                      _kernel_short(r) + ("" if r["check_ok"] else " MISMATCH"), style=style)
        console.print(t)
        console.print(f"(ovh): dominated by per-call overhead (a tiny call of the same pass "
                      f"takes >= {B.OVERHEAD_SHARE:.0%} of the row's time). out=: dwconv "
                      "writing a preallocated output (no allocation / page faults). ~: noisy, "
                      f"the interquartile range of a time exceeds {NOISY:.0%} of its median.")
    extra = sorted({k for r in rows for k in r.get("also_ms", {})})
    if extra:
        t = Table(title="the same rows, other implementations (median ms per call)")
        for col in ("network", "layer", "N", "layout", "pass", "torch", "dwconv", *extra):
            t.add_column(col)
        for r in rows:
            t.add_row(r["network"], r["layer"], str(r["N"]), r["layout"], r["pass"],
                      _ms(r["torch_ms"]), f"{_ms(r['dwconv_ms'])} ({r['backend']})",
                      *[_ms(r["also_ms"].get(k)) for k in extra])
        console.print(t)
    if result.get("models"):
        t = Table(title="whole models: PyTorch vs dwconv.convert(), median ms per call")
        for col in ("model", "N", "input", "layout", "pass", "converted", "torch", "dwconv",
                    "speedup"):
            t.add_column(col)
        for r in result["models"]:
            t.add_row(r["model"], str(r["N"]), str(r["input_size"]), r["layout"], r["pass"],
                      str(r["converted_layers"]), _ms(r["torch_ms"]), _ms(r["dwconv_ms"]),
                      f"{r['speedup']:.2f}x" + ("~" if _noisy(r) else "")
                      + ("" if r["check_ok"] else " MISMATCH"))
        console.print(t)
    if rows:
        _print_summary(console, result["summary"])


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _print_summary(console, s) -> None:
    geo = s["geomean_speedup"]
    console.print(f"[bold]summary[/bold] ({s['rows']} rows): geomean speedup fwd "
                  f"{_fmt(geo['fwd'])}x, fwd+bwd {_fmt(geo['fwd+bwd'])}x, fwd with out= "
                  f"{_fmt(s['geomean_speedup_fwd_out'])}x; mean roofline fraction "
                  f"{_fmt(s['mean_roofline'] and 100 * s['mean_roofline'])}%", highlight=False)
    under = [f"{u['id']} {u['roofline']:.0%}" + (" (overhead-dominated)" if
                                                  u["overhead_dominated"] else "")
             for u in s["under_30pct"]]
    for what, items in [("under 30% of roofline", under),
                        ("slower than PyTorch", s["slower_than_torch"]),
                        ("[red]result differs from PyTorch[/red]", s["check_failures"])]:
        for item in items[:LIST_MAX]:
            console.print(f"  {what}: {item}", highlight=False)
        if len(items) > LIST_MAX:
            console.print(f"  {what}: ... and {len(items) - LIST_MAX} more rows (all in --json)")
    runs = s.get("runs") or []
    console.print("targets (issue 2; meant for the default suite on CPU)"
                  + (f", on the per-row medians of {len(runs)} runs:" if runs else ":"))

    def value(t):
        return f"{100 * t['value']:.0f}%" if "fraction" in t["target"] and t["value"] else \
            _fmt(t["value"])
    for i, t in enumerate(s["targets"]):
        mark = "[green]met[/green]" if t["met"] else "[red]not met[/red]"
        each = f"; each run: {', '.join(value(r['targets'][i]) for r in runs)}" if runs else ""
        console.print(f"  {t['target']}: {value(t)} (goal {t['goal']}): {mark}{each}",
                      highlight=False)


def _print_compare(console, cmp, old_path) -> None:
    from rich.table import Table
    t = Table(title=f"dwconv time vs {old_path} (ratio new/old; regression above "
              f"{cmp['threshold']:.2f})")
    for col in ("row", "old ms", "new ms", "ratio", "torch ratio"):
        t.add_column(col)
    for r in cmp["rows"]:
        t.add_row(r["id"], _ms(r["old_ms"]), _ms(r["new_ms"]), f"{r['ratio']:.2f}",
                  f"{r['torch_ratio']:.2f}", style="red" if r["regressed"] else None)
    console.print(t)
    for d in cmp.get("machine_differs", []):
        console.print(f"[yellow]the results come from different machines or set-ups: {d['field']} "
                      f"{d['old']!r} (old) vs {d['new']!r} (new); the ratios measure both[/yellow]",
                      highlight=False)
    if cmp["only_old"] or cmp["only_new"]:
        console.print(f"rows only in the old result: {len(cmp['only_old'])}, only in the new: "
                      f"{len(cmp['only_new'])}")
    if cmp["regressions"]:
        console.print(f"[red]{len(cmp['regressions'])} row(s) regressed beyond "
                      f"{cmp['threshold']:.2f}x[/red]")
    else:
        console.print("no regression")


if __name__ == "__main__":
    sys.exit(main())
