// Kernel table for the scalar ISA: dw2d_impl.h compiled with this file's flags (see setup.py).
#include "vec_scalar.h"
#include "dw2d_impl.h"

namespace dwconv {
namespace cpu {

const Dw2dKernels<float>* dw2d_kernels_f32_scalar() {
  static const Dw2dKernels<float> table = Dw2d<float>::table("scalar");
  return &table;
}

const Dw2dKernels<double>* dw2d_kernels_f64() {
  static const Dw2dKernels<double> table = Dw2d<double>::table("scalar");
  return &table;
}

}  // namespace cpu
}  // namespace dwconv
