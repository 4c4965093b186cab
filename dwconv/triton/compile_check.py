"""Ahead-of-time compilation of the Triton kernels for a GPU architecture, without a GPU.

Used by the compile-only tests (so GPU compile errors and register spills fail CI on GPU-less
machines) and handy for reading the PTX/SASS of one specialisation:

    >>> from dwconv.triton.compile_check import compile_kernel
    >>> k = compile_kernel("fwd", torch.float16, arch=90, KH=3, KW=3, CHANNELS_LAST=True)
    >>> k.registers, k.spill_bytes, k.compiled.asm["ptx"][:200]
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import launch

_POINTERS = {"fwd": ("x", "w", "b", "y"), "bwdi": ("gy", "w", "gx"), "bwdw": ("gy", "x")}
_FP32_POINTERS = {"partial"}
_TRITON_DTYPE = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}

DEFAULT_GEOMETRY = dict(KH=3, KW=3, SH=1, SW=1, DH=1, DW=1, PT=1, PL=1, M=1, CHANNELS_LAST=True,
                        IDX64=False)


@dataclass
class CompiledKernel:
    name: str
    arch: int
    compiled: object  # triton's CompiledKernel: .asm["ptx"], .asm["cubin"], .metadata
    registers: int
    spill_bytes: int  # spill stores + spill loads reported by ptxas


def _ptxas_usage(ptx: str, arch: int) -> tuple[int, int]:
    """(registers, spill bytes) as ptxas -v reports them for this PTX."""
    ptxas = triton.knobs.nvidia.ptxas.path
    with tempfile.TemporaryDirectory() as d:
        src = f"{d}/k.ptx"
        with open(src, "w") as f:
            f.write(ptx)
        # the options triton's own ptxas call uses (triton/backends/nvidia/compiler.py)
        log = subprocess.run([ptxas, "-lineinfo", "-v", "--regAllocOptLevel=2",
                              f"--gpu-name=sm_{arch}{'a' if arch >= 90 else ''}", src, "-o",
                              f"{d}/k.cubin"], check=True, capture_output=True, text=True).stderr
    regs = [int(r) for r in re.findall(r"Used (\d+) registers", log)]
    spills = [int(a) + int(b) for a, b in
              re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)]
    if not regs or not spills:
        raise RuntimeError(f"could not read the register use from ptxas -v:\n{log}")
    return max(regs), max(spills)


def compile_kernel(name: str, dtype: torch.dtype, arch: int, *, config: dict | None = None,
                   **geometry) -> CompiledKernel:
    """Compiles kernel `name` ("fwd", "bwdi", "bwdw") for sm_`arch` with these constexprs
    (DEFAULT_GEOMETRY overridden by `geometry`; block sizes and num_warps from `config`, by
    default the largest autotune configuration for the layout)."""
    fn = launch.COMPILED[name]
    consts = {**DEFAULT_GEOMETRY, **geometry}
    if name == "fwd":
        consts.setdefault("HAS_BIAS", True)
    configs = launch.AUTOTUNED[(name, consts["CHANNELS_LAST"])].configs
    if config is None:
        best = max(configs, key=lambda c: (c.kwargs["BLOCK_P"] * c.kwargs["BLOCK_C"], c.num_warps))
        config = {**best.kwargs, "num_warps": best.num_warps}
    config = dict(config)
    num_warps = config.pop("num_warps", 4)
    consts.update(config)
    signature = {}
    for arg in fn.arg_names:
        if arg in consts:
            signature[arg] = "constexpr"
        elif arg in _FP32_POINTERS:
            signature[arg] = "*fp32"
        elif arg in _POINTERS[name]:
            signature[arg] = f"*{_TRITON_DTYPE[dtype]}"
        else:
            signature[arg] = "i32"
    src = ASTSource(fn=fn, signature=signature, constexprs=consts)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps})
    regs, spills = _ptxas_usage(compiled.asm["ptx"], arch)
    return CompiledKernel(name, arch, compiled, regs, spills)
