// Output allocation shared by every backend's glue.
#pragma once
#include <ATen/ATen.h>

namespace dwconv {

// When set (dwconv._C.set_debug_fill_nan, used by the tests), fresh outputs are filled with NaN
// instead of left uninitialised, so an element a kernel forgets to write fails the comparison.
bool debug_fill_nan();

inline at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                             at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  at::Tensor t = at::empty(sizes, options, format);
  if (debug_fill_nan()) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

}  // namespace dwconv
