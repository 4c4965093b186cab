"""Build of dwconv._C: the torch glue (csrc/) plus the torch-free kernels (kernels/).

Each CPU ISA's kernel file is compiled on its own with that ISA's flags and linked in as an extra
object, so AVX-512 code only runs after the load-time CPU check chose it.
"""

import os
import platform

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

ROOT = os.path.dirname(os.path.abspath(__file__))
COMMON_FLAGS = ["-O3", "-std=c++20", "-fopenmp", "-Wall"]

# ISA -> (kernel source, flags); scalar is always built and is the fallback
X86 = platform.machine().lower() in ("x86_64", "amd64")
CPU_ISA_SOURCES = {"scalar": ("kernels/cpu/dw2d_scalar.cpp", [])}
if X86:
    CPU_ISA_SOURCES["avx2"] = ("kernels/cpu/dw2d_avx2.cpp", ["-mavx2", "-mfma"])
    CPU_ISA_SOURCES["avx512"] = ("kernels/cpu/dw2d_avx512.cpp", ["-mavx512f", "-mavx2", "-mfma"])


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


isa_macros = [(f"DWCONV_HAVE_{isa.upper()}", None) for isa in CPU_ISA_SOURCES if isa != "scalar"]

ext_modules = [
    CppExtension(
        "dwconv._C",
        sources=["csrc/ops.cpp", "csrc/cpu/dw2d.cpp", "kernels/cpu/isa.cpp"],
        include_dirs=[ROOT],
        define_macros=isa_macros,
        extra_compile_args={"cxx": COMMON_FLAGS},
        extra_link_args=["-fopenmp"],
    )
]

setup(
    name="dwconv",
    version="0.1.0",
    packages=["dwconv"],
    ext_modules=ext_modules,
    cmdclass={"build_ext": BuildWithIsaObjects},
)
