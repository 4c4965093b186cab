"""Static resources of the CUDA kernels, from ptxas: registers, shared memory, spills and
theoretical occupancy per kernel, for sm_80 and sm_90. Needs nvcc, not a GPU.

    python scripts/cuda_resources.py            # rewrites docs/cuda_resources.md
    python scripts/cuda_resources.py --check    # exit 1 if the doc is stale or a kernel spills

tests/test_cuda_resources.py runs the same check.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "cuda_resources.md")
ARCHS = ("80", "90")
# the flags setup.py's CUDAExtension gives nvcc, minus include paths (the kernels are torch-free)
NVCC_FLAGS = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-D__CUDA_NO_HALF_OPERATORS__",
              "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
              "-D__CUDA_NO_HALF2_OPERATORS__"]
THREADS = 256          # kThreads in kernels/cuda/dw2d_common.cuh
KLARGE_DYN_SMEM = 48 * 1024  # the most dynamic shared memory the klarge launcher asks for
# per SM: registers, shared memory usable by blocks, max warps, max blocks
SM_LIMITS = {"80": (65536, 164 * 1024, 64, 32), "90": (65536, 228 * 1024, 64, 32)}


@dataclass
class Kernel:
    mangled: str
    name: str        # docs/kernels.md grammar, plus the template's type and vector width
    regs: int
    smem: int        # static shared memory, bytes
    stack: int       # stack frame, bytes
    spill: int       # spill stores + loads, bytes


def nvcc() -> str | None:
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    path = os.path.join(home, "bin", "nvcc")
    return path if os.path.exists(path) else shutil.which("nvcc")


def sources() -> list[str]:
    d = os.path.join(ROOT, "kernels", "cuda")
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".cu"))


def _demangle(names: list[str]) -> list[str]:
    tool = shutil.which("c++filt")
    if not tool or not names:
        return names
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def _short_name(demangled: str) -> str:
    """void dwconv::cuda::dw2d_fwd_nhwc_direct<float, dwconv::cuda::Spec<3, 1>, 4, 4>(...)
    -> dw2d_fwd_nhwc_k3s1_cuda<float, vec 4>;
    void dwconv::cuda::dw2d_bwdi_klarge<float, (dwconv::Layout)1>(...) -> dw2d_bwdi_nhwc_klarge_cuda<float>"""
    m = re.match(r"(?:void )?dwconv::cuda::(\w+)<(.*)>\(", demangled)
    if not m:
        return demangled
    base, args = m.groups()
    dtype = args.split(",")[0].strip().replace("__nv_bfloat16", "bf16").replace("__half", "f16")
    spec = re.search(r"Spec<(\d+), (\d+)>", args)
    if spec:
        k, s = spec.groups()
        variant = f"k{k}" + (f"s{s}" if s != "0" else "")
    elif "klarge" in base:
        variant = "klarge"
    else:
        variant = "generic"
    stem = re.sub(r"_(direct|partial|klarge)$", "", base)
    layout = re.search(r"\(dwconv::Layout\)(\d)", args)  # klarge kernels: layout as a template argument
    if layout:
        stem += ("_nchw", "_nhwc")[int(layout.group(1))]
    nums = re.findall(r"(?:^|, )(\d+)(?=,|$)", args)
    vec = nums[-1] if base.endswith("nhwc_direct") and nums else None
    if base == "dw2d_bwdw_finish":
        return f"dw2d_bwdw_finish_cuda<{dtype}>"
    return f"{stem}_{variant}_cuda<{dtype}" + (f", vec {vec}" if vec else "") + ">"


def _parse(log: str) -> list[Kernel]:
    kernels, cur = [], None
    for line in log.splitlines():
        if m := re.search(r"Compiling entry function '(\w+)'", line):
            cur = {"mangled": m.group(1), "stack": 0, "spill": 0, "smem": 0, "regs": 0}
        elif cur and (m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                                     r"(\d+) bytes spill loads", line)):
            cur["stack"], cur["spill"] = int(m.group(1)), int(m.group(2)) + int(m.group(3))
        elif cur and (m := re.search(r"Used (\d+) registers", line)):
            cur["regs"] = int(m.group(1))
            if s := re.search(r"(\d+) bytes smem", line):
                cur["smem"] = int(s.group(1))
            kernels.append(cur)
            cur = None
    names = _demangle([k["mangled"] for k in kernels])
    return [Kernel(name=_short_name(n), **k) for k, n in zip(kernels, names)]


def _compile(src: str, arch: str, tool: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([tool, *NVCC_FLAGS, f"-arch=sm_{arch}", "-Xptxas", "-v", "-c", src,
                              "-o", os.path.join(tmp, "k.o")], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"nvcc failed on {src} for sm_{arch}:\n{out.stderr[-4000:]}")
    return out.stderr


def _cache_key(tool: str) -> str:
    h = hashlib.sha256()
    h.update(subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.encode())
    h.update(" ".join(NVCC_FLAGS).encode())
    d = os.path.join(ROOT, "kernels")
    for base in ("dw2d_shape.h",):
        h.update(open(os.path.join(d, base), "rb").read())
    for f in sorted(os.listdir(os.path.join(d, "cuda"))):
        h.update(f.encode() + open(os.path.join(d, "cuda", f), "rb").read())
    return h.hexdigest()[:16]


def collect(jobs: int = 2) -> dict[str, list[Kernel]]:
    """arch -> kernels, compiled (or read from build/cuda_resources/<hash>/ when unchanged)."""
    tool = nvcc()
    if tool is None:
        raise FileNotFoundError("nvcc not found (set CUDA_HOME)")
    cache = os.path.join(ROOT, "build", "cuda_resources", _cache_key(tool))
    os.makedirs(cache, exist_ok=True)

    def log_for(src, arch):
        path = os.path.join(cache, f"{os.path.basename(src)}.sm_{arch}.log")
        if not os.path.exists(path):
            text = _compile(src, arch, tool)
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
        return open(path).read()

    work = [(src, arch) for arch in ARCHS for src in sources()]
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        logs = list(pool.map(lambda w: log_for(*w), work))
    out: dict[str, list[Kernel]] = {a: [] for a in ARCHS}
    for (src, arch), log in zip(work, logs):
        out[arch] += _parse(log)
    for arch in ARCHS:
        out[arch].sort(key=lambda k: k.name)
    return out


def occupancy(regs: int, smem: int, arch: str) -> float:
    """Theoretical occupancy (active warps / max warps) of a kThreads-thread block."""
    reg_sm, smem_sm, max_warps, max_blocks = SM_LIMITS[arch]
    warps = THREADS // 32
    regs_per_warp = -(-regs * 32 // 256) * 256  # allocated per warp in units of 256
    by_regs = reg_sm // (regs_per_warp * warps) if regs else max_blocks
    by_smem = smem_sm // (smem + 1024) if smem else max_blocks  # 1 KB reserved per block
    blocks = min(by_regs, by_smem, max_warps // warps, max_blocks)
    return blocks * warps / max_warps


def render(res: dict[str, list[Kernel]]) -> str:
    lines = [
        "# CUDA kernel resources",
        "",
        "Generated by `python scripts/cuda_resources.py` from `nvcc -Xptxas -v` (do not edit; "
        "tests/test_cuda_resources.py fails when it is stale or a kernel spills).",
        f"Blocks of {THREADS} threads. Occupancy is theoretical (active warps / 64) from registers "
        "and shared memory; `klarge` also takes up to "
        f"{KLARGE_DYN_SMEM // 1024} KB of dynamic shared memory, counted in its occupancy.",
        "",
        "| kernel | regs sm_80 | regs sm_90 | smem (B) | spill+stack (B) | occupancy sm_80 | "
        "occupancy sm_90 |",
        "|---|---|---|---|---|---|---|",
    ]
    by90 = {k.mangled: k for k in res["90"]}
    for k80 in res["80"]:
        k90 = by90[k80.mangled]
        dyn = KLARGE_DYN_SMEM if "klarge" in k80.name else 0
        lines.append(
            f"| `{k80.name}` | {k80.regs} | {k90.regs} | {k80.smem}{' + dyn' if dyn else ''} | "
            f"{k80.spill + k80.stack + k90.spill + k90.stack} | "
            f"{occupancy(k80.regs, k80.smem + dyn, '80'):.0%} | "
            f"{occupancy(k90.regs, k90.smem + dyn, '90'):.0%} |")
    return "\n".join(lines) + "\n"


def problems(res: dict[str, list[Kernel]]) -> list[str]:
    """Kernels that spill registers or use local memory (a stack frame)."""
    return [f"sm_{arch} {k.name}: {k.spill} bytes spilled, {k.stack} bytes stack"
            for arch, ks in res.items() for k in ks if k.spill or k.stack]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the doc is stale or a kernel spills")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    res = collect(args.jobs)
    text = render(res)
    bad = problems(res)
    for p in bad:
        print("spill/local memory:", p, file=sys.stderr)
    if args.check:
        current = open(DOC).read() if os.path.exists(DOC) else ""
        if current != text:
            print(f"{DOC} is stale: run python scripts/cuda_resources.py", file=sys.stderr)
            return 1
        return 1 if bad else 0
    with open(DOC, "w") as f:
        f.write(text)
    print(f"wrote {DOC} ({len(res['80'])} kernels)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
