"""What this machine can do, measured now: memory bandwidth at a working-set size, compute peak,
and the header every benchmark report starts with."""

from __future__ import annotations

import functools
import os
import platform
import subprocess

import torch


from torch.utils.benchmark import Timer

__all__ = ["bandwidth_gbs", "peak_gflops", "measure_peak_gflops", "machine_header", "cpu_model",
           "cpu_id", "cpu_caches", "cpu_flags", "describe_cpu"]


def bandwidth_gbs(working_set_bytes: int, min_run_time: float = 0.2,
                  device: str | torch.device = "cpu") -> float:
    """Copy bandwidth in GB/s (bytes read + bytes written per second) with a working set of about
    `working_set_bytes` (half source, half destination), on all torch threads (or on `device`'s
    GPU); median of runs.

    A depthwise convolution reads its input once and writes its output once at best, so a copy of
    the same footprint is the bandwidth it could reach. On the CPU, the better of a plain copy and
    one with non-temporal stores (`_C.stream_copy_`): past the caches a plain copy also reads
    every destination line before writing it, traffic it does not count, which the kernels avoid
    by streaming large outputs (a plain copy alone let them reach 110% of the bound).
    """
    n = max(working_set_bytes // 8, 1024)  # float32 elements per buffer (two buffers)
    src = torch.ones(n, device=device)
    dst = torch.empty(n, device=device)
    dst.copy_(src)  # first touch outside the timing
    names = {"dst": dst, "src": src}
    copies = ["dst.copy_(src)"]
    if torch.device(device).type == "cpu":
        from .. import _C
        names["_C"] = _C
        copies.append("_C.stream_copy_(dst, src)")
    best = min(Timer(stmt, globals=names).blocked_autorange(
        min_run_time=min_run_time / len(copies)).median for stmt in copies)
    return 2 * n * 4 / best / 1e9


@functools.lru_cache(maxsize=None)
def peak_gflops(dtype: torch.dtype = torch.float32, device: str = "cpu") -> float:
    """measure_peak_gflops, measured once per process."""
    return measure_peak_gflops(dtype, device)


def measure_peak_gflops(dtype: torch.dtype = torch.float32, device: str = "cpu") -> float:
    """Compute peak in GFLOP/s: the larger of an FMA-throughput loop (dwconv's own, on the active
    ISA) and torch's sgemm, both on all torch threads. On a GPU device: its matmul throughput."""
    if torch.device(device).type != "cpu":
        a = torch.randn(4096, 4096, dtype=dtype, device=device)
        t = Timer("a @ a", globals={"a": a}).blocked_autorange(min_run_time=0.2)
        return 2 * 4096**3 / t.median / 1e9
    from .. import _C
    fma = _C.fma_peak_gflops(0.2)
    a = torch.randn(1024, 1024, dtype=dtype)
    t = Timer("a @ a", globals={"a": a}).blocked_autorange(min_run_time=0.2)
    return max(fma, 2 * 1024**3 / t.median / 1e9)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_id() -> str | None:
    """Vendor, family, model and stepping from /proc/cpuinfo ('AuthenticAMD family 25 model 1
    stepping 1'). Virtual machines often report a generic model name ('AMD EPYC' for a Zen 3 and
    a Zen 4 host alike); these numbers tell the hosts apart."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return None
    if "cpu family" not in fields or "model" not in fields:
        return None
    return (f"{fields.get('vendor_id', '?')} family {fields['cpu family']} model {fields['model']}"
            f" stepping {fields.get('stepping', '?')}")


def cpu_caches() -> dict[str, int]:
    """Data and unified cache sizes of CPU 0 in KiB, by level ('L1d', 'L2', 'L3'), from sysfs
    (per core for L1/L2, per cache instance for L3); empty where sysfs does not say."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    out = {}
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            def read(name):
                with open(os.path.join(base, entry, name)) as f:
                    return f.read().strip()
            kind, level, size = read("type"), read("level"), read("size")
        except OSError:
            continue
        if kind == "Instruction" or not size.endswith("K"):
            continue
        out[f"L{level}{'d' if kind == 'Data' else ''}"] = int(size[:-1])
    return out


def describe_cpu(header: dict) -> str:
    """The CPU of a machine header in one line: model name, then family/model and the caches
    where the header has them ('AMD EPYC (AuthenticAMD family 25 model 1 stepping 1; L1d 32 KiB,
    L2 512 KiB, L3 32 MiB)')."""
    extra = [header["cpu_id"]] if header.get("cpu_id") else []
    caches = header.get("cpu_caches") or {}
    if caches:
        extra.append(", ".join(f"{k} {v // 1024} MiB" if v >= 1024 and v % 1024 == 0
                               else f"{k} {v} KiB" for k, v in caches.items()))
    return f"{header.get('cpu')}" + (f" ({'; '.join(extra)})" if extra else "")


def cpu_flags() -> list[str]:
    """The SIMD-relevant CPU flags (avx*, fma, amx*)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
    except OSError:
        pass
    return []


def _git_commit() -> str:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_header() -> dict:
    """CPU model, identity, caches and flags, threads, versions and commit: what a benchmark
    number depends on."""
    import dwconv
    try:
        cpu_isa = dwconv.build_info().get("cpu_isa")
    except ImportError:  # extension not built: the header still describes the machine
        cpu_isa = None
    header = {
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_caches": cpu_caches(),
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dwconv": dwconv.__version__,
        "commit": _git_commit(),
        "cpu_isa": cpu_isa,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        header["gpu"] = torch.cuda.get_device_name()
    return header
