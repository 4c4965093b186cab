"""The roofline of this machine, measured now, and layers placed on it.

Attainable GFLOP/s at arithmetic intensity I (FLOP/byte) with a working set of B bytes is
``min(peak, I * bandwidth(B))``. Bandwidth is measured at several working-set sizes, from cache to
DRAM; a layer gets the best rate measured at a size that holds its minimum traffic (see
:mod:`.cost`). The ridge point is ``peak / DRAM bandwidth``: layers left of it are memory-bound,
and their time follows bytes, not FLOPs.

    >>> roof = measure()
    >>> roof.ridge, roof.attainable_gflops(2.25)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.benchmark import Timer

from . import machine
from .profile import LayerProfile, Profile

__all__ = ["Roofline", "Placement", "KindPlacement", "measure", "place", "place_cost", "by_kind",
           "WORKING_SETS"]

KiB, MiB = 1 << 10, 1 << 20
# L1, L2, L3-sized and DRAM-sized working sets of a current x86 server core
WORKING_SETS = (16 * KiB, 256 * KiB, 2 * MiB, 16 * MiB, 256 * MiB)


@dataclass
class Roofline:
    """Measured peak (GFLOP/s) and copy bandwidth (GB/s) per working-set size (bytes)."""

    device: str
    dtype: str
    peak_gflops: float
    bandwidth: list[tuple[int, float]]  # (working-set bytes, GB/s), increasing size
    threads: int = field(default_factory=torch.get_num_threads)

    @property
    def dram_gbs(self) -> float:
        """Bandwidth at the largest working set measured."""
        return self.bandwidth[-1][1]

    @property
    def ridge(self) -> float:
        """FLOP/byte where DRAM bandwidth stops limiting: peak / DRAM bandwidth."""
        return self.peak_gflops / self.dram_gbs

    def bandwidth_at(self, working_set: int | None) -> float:
        """GB/s a working set can reach: the best measured at any size that holds it (small copies
        pay per-call overhead, so a small set is not held to its own size's figure); DRAM's for
        None or a set larger than every size measured."""
        if working_set is None:
            return self.dram_gbs
        return max((gbs for size, gbs in self.bandwidth if working_set <= size),
                   default=self.dram_gbs)

    def attainable_gflops(self, intensity: float, working_set: int | None = None) -> float:
        """min(peak, intensity x bandwidth at `working_set`); DRAM bandwidth when it is None."""
        return min(self.peak_gflops, intensity * self.bandwidth_at(working_set))

    def to_dict(self) -> dict:
        return {"device": self.device, "dtype": self.dtype, "threads": self.threads,
                "peak_gflops": self.peak_gflops, "ridge_flop_per_byte": self.ridge,
                "bandwidth_gbs": [{"working_set_bytes": s, "gbs": g} for s, g in self.bandwidth]}


def _cuda_bandwidth_gbs(working_set: int, device, min_run_time: float) -> float:
    n = max(working_set // 8, 1024)
    src = torch.ones(n, device=device)
    dst = torch.empty(n, device=device)
    dst.copy_(src)
    t = Timer("dst.copy_(src)", globals={"dst": dst, "src": src}).blocked_autorange(
        min_run_time=min_run_time)
    return 2 * n * 4 / t.median / 1e9


def _matmul_gflops(dtype: torch.dtype, device, n: int, min_run_time: float) -> float:
    a = torch.randn(n, n, device=device).to(dtype)
    t = Timer("a @ a", globals={"a": a}).blocked_autorange(min_run_time=min_run_time)
    return 2 * n**3 / t.median / 1e9


def measure(device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
            working_sets: tuple[int, ...] = WORKING_SETS, min_run_time: float = 0.2) -> Roofline:
    """Measures peak and bandwidth on `device` (CPU: :mod:`.machine`; CUDA: a device copy and a
    4096^2 matmul), on all torch threads. About 1.5 s on CPU at the default min_run_time."""
    device = torch.device(device)
    sizes = sorted(working_sets)
    if device.type == "cuda":
        bw = [(s, _cuda_bandwidth_gbs(s, device, min_run_time)) for s in sizes]
        peak = _matmul_gflops(dtype, device, 4096, min_run_time)
    elif device.type == "cpu":
        bw = [(s, machine.bandwidth_gbs(s, min_run_time)) for s in sizes]
        try:
            peak = machine.peak_gflops(dtype)
        except ImportError:  # no compiled extension, so no FMA loop: the matmul alone
            peak = _matmul_gflops(dtype, device, 1024, min_run_time)
    else:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device}")
    return Roofline(str(device), str(dtype).removeprefix("torch."), peak, bw)


@dataclass
class Placement:
    """A layer (or kernel) on the roofline: intensity in FLOP/byte, rates in GFLOP/s and GB/s."""

    name: str
    kind: str
    intensity: float
    achieved_gflops: float
    attainable_gflops: float
    achieved_gbs: float
    seconds: float
    bound: str  # 'memory' or 'compute', by where the intensity sits against the ridge point

    @property
    def efficiency(self) -> float:
        """Achieved / attainable (can pass 1 when the data was still in a faster cache)."""
        return self.achieved_gflops / self.attainable_gflops if self.attainable_gflops else 0.0


def place_cost(name: str, kind: str, flops: int, min_bytes: int, seconds: float,
               roof: Roofline) -> Placement:
    """One measured kernel: `flops` and `min_bytes` done in `seconds`."""
    intensity = flops / min_bytes
    return Placement(name, kind, intensity, flops / seconds / 1e9,
                     roof.attainable_gflops(intensity, min_bytes), min_bytes / seconds / 1e9,
                     seconds, "memory" if intensity < roof.ridge else "compute")


def place(layers: Profile | list[LayerProfile], roof: Roofline,
          pass_: str = "fwd") -> list[Placement]:
    """Every timed layer with MACs, placed for its forward (`pass_='fwd'`) or backward ('bwd')."""
    if isinstance(layers, Profile):
        layers = layers.layers
    out = []
    for layer in layers:
        seconds = layer.fwd_s if pass_ == "fwd" else layer.bwd_s
        if not seconds or not layer.cost.macs:
            continue
        c = layer.cost if pass_ == "fwd" else layer.cost.backward()
        out.append(place_cost(layer.name, layer.kind, c.flops, c.min_bytes, seconds, roof))
    return out


@dataclass
class KindPlacement:
    """The placed layers of one kind together: intensity = FLOPs / bytes, achieved = FLOPs / time,
    attainable = FLOPs / the sum of each layer's roofline time (so efficiency = roofline time /
    measured time)."""

    kind: str
    layers: int
    intensity: float
    achieved_gflops: float
    attainable_gflops: float
    seconds: float

    @property
    def efficiency(self) -> float:
        return self.achieved_gflops / self.attainable_gflops if self.attainable_gflops else 0.0


def by_kind(placements: list[Placement]) -> list[KindPlacement]:
    """Placements summed per layer kind, most time first."""
    groups: dict[str, list[Placement]] = {}
    for p in placements:
        groups.setdefault(p.kind, []).append(p)
    out = []
    for kind, ps in groups.items():
        flops = sum(p.achieved_gflops * p.seconds for p in ps)  # GFLOP
        nbytes = sum(p.achieved_gbs * p.seconds for p in ps)  # GB
        seconds = sum(p.seconds for p in ps)
        roof_s = sum(p.achieved_gflops * p.seconds / p.attainable_gflops for p in ps)
        out.append(KindPlacement(kind, len(ps), flops / nbytes, flops / seconds, flops / roof_s,
                                 seconds))
    out.sort(key=lambda k: -k.seconds)
    return out
