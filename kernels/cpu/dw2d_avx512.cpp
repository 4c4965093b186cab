// Kernel table for the avx512 ISA: dw2d_impl.h compiled with this file's flags (see setup.py).
#include "vec_avx512.h"
#include "dw2d_impl.h"

namespace dwconv {
namespace cpu {

const Dw2dKernels<float>* dw2d_kernels_f32_avx512() {
  static const Dw2dKernels<float> table = Dw2d<float>::table("avx512");
  return &table;
}

}  // namespace cpu
}  // namespace dwconv
