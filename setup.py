"""Build of dwconv._C: the torch glue (csrc/) plus the torch-free kernels (kernels/).

Each CPU ISA's kernel file is compiled on its own with that ISA's flags and linked in as an extra
object, so AVX-512 code only runs after the load-time CPU check chose it.

CUDA (kernels/cuda/*.cu by nvcc, csrc/cuda/*.cpp against torch's CUDA headers) is built when this
torch has CUDA and nvcc is found (CUDA_HOME, default /usr/local/cuda), for TORCH_CUDA_ARCH_LIST
(default "8.0;9.0+PTX"); DWCONV_CUDA=0/1 forces it off/on. The CUDA emulation (the same
kernels/cuda sources built by the host compiler, backend cuda_emu) needs neither nvcc nor a GPU and
is always built; DWCONV_CUDA_EMU=0 leaves it out.
"""

import glob
import os
import platform

ROOT = os.path.dirname(os.path.abspath(__file__))

# torch.utils.cpp_extension reads CUDA_HOME when imported; the `nvcc` on PATH may be a wrapper
# outside the toolkit, so prefer the standard location (../shared/research/BUILD_NOTES.md)
if not os.environ.get("CUDA_HOME") and os.path.exists("/usr/local/cuda/bin/nvcc"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"

import torch  # noqa: E402
from setuptools import setup  # noqa: E402
from torch.utils import cpp_extension  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

COMMON_FLAGS = ["-O3", "-std=c++20", "-fopenmp", "-Wall"]

# ISA -> (kernel source, flags); scalar is always built and is the fallback
X86 = platform.machine().lower() in ("x86_64", "amd64")
CPU_ISA_SOURCES = {"scalar": ("kernels/cpu/dw2d_scalar.cpp", [])}
if X86:
    CPU_ISA_SOURCES["avx2"] = ("kernels/cpu/dw2d_avx2.cpp", ["-mavx2", "-mfma"])
    CPU_ISA_SOURCES["avx512"] = ("kernels/cpu/dw2d_avx512.cpp", ["-mavx512f", "-mavx2", "-mfma"])


def _env_switch(name):
    value = os.environ.get(name)
    if value not in (None, "", "0", "1"):
        raise SystemExit(f"{name} must be 0 or 1, got {value!r}")
    return None if value in (None, "") else value == "1"


def _want_cuda():
    """Whether to build the CUDA kernels, and why not when not."""
    forced = _env_switch("DWCONV_CUDA")
    nvcc = cpp_extension.CUDA_HOME and os.path.exists(os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc"))
    missing = [why for ok, why in ((torch.version.cuda, "this torch has no CUDA"),
                                   (nvcc, "nvcc not found (set CUDA_HOME)")) if not ok]
    if forced is False:
        return False
    if forced and missing:
        raise SystemExit("DWCONV_CUDA=1 but the CUDA part cannot be built: " + "; ".join(missing))
    return not missing


def _cuda_include_dirs():
    """torch's CUDA headers include cuSPARSE/cuBLAS headers shipped in the nvidia-* wheels."""
    dirs = []
    try:
        import nvidia
    except ImportError:
        return dirs
    for base in nvidia.__path__:
        dirs += sorted(glob.glob(os.path.join(base, "cu*", "include")))
    return dirs


class BuildWithIsaObjects(BuildExtension):
    """Compiles each ISA's kernel file with its own flags and links the objects into _C."""

    def build_extension(self, ext):
        for isa, (src, flags) in CPU_ISA_SOURCES.items():
            objects = self.compiler.compile(
                [src],
                output_dir=self.build_temp,
                include_dirs=[ROOT],
                extra_postargs=COMMON_FLAGS + ["-fPIC"] + flags,
            )
            ext.extra_objects.extend(objects)
        super().build_extension(ext)


WITH_CUDA = _want_cuda()
WITH_CUDA_EMU = _env_switch("DWCONV_CUDA_EMU") is not False

sources = ["csrc/ops.cpp", "csrc/autograd.cpp", "csrc/output_cache.cpp", "csrc/cpu/dw2d.cpp", "kernels/cpu/isa.cpp"]
macros = [(f"DWCONV_HAVE_{isa.upper()}", None) for isa in CPU_ISA_SOURCES if isa != "scalar"]
if WITH_CUDA_EMU:
    # the kernels/cuda sources, each wrapped for the host compiler, plus the emulator itself
    sources += ["csrc/emu/dw2d_emu.cpp"] + sorted(glob.glob("kernels/cuda_emu/*.cpp", root_dir=ROOT))
    macros.append(("DWCONV_WITH_CUDA_EMU", None))

if WITH_CUDA:
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    archs = os.environ["TORCH_CUDA_ARCH_LIST"].replace(" ", ";").strip(";")
    sources += ["csrc/cuda/dw2d.cpp"] + sorted(glob.glob("kernels/cuda/*.cu", root_dir=ROOT))
    macros.append(("DWCONV_WITH_CUDA", None))
    ext = CUDAExtension(
        "dwconv._C",
        sources=sources,
        include_dirs=[ROOT] + _cuda_include_dirs(),
        define_macros=macros,
        # kernels/cuda is torch-free: nvcc gets no torch flags beyond the arch list
        # the arch list for build_info, ';' as ',' (only the host compiler sees it: nvcc would
        # read a ',' in -D as a list of macros)
        extra_compile_args={"cxx": COMMON_FLAGS + [f"-DDWCONV_CUDA_ARCHS={archs.replace(';', ',')}"],
                            "nvcc": ["-O3", "-std=c++17", "-lineinfo"]},
        extra_link_args=["-fopenmp"],
    )
else:
    ext = CppExtension(
        "dwconv._C",
        sources=sources,
        include_dirs=[ROOT],
        define_macros=macros,
        extra_compile_args={"cxx": COMMON_FLAGS},
        extra_link_args=["-fopenmp"],
    )

setup(
    name="dwconv",
    version="0.1.0",
    packages=["dwconv"],
    ext_modules=[ext],
    cmdclass={"build_ext": BuildWithIsaObjects},
)
