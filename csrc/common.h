// Output allocation shared by every backend's glue.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>

namespace dwconv {

// When set (dwconv._C.set_debug_fill_nan, used by the tests), fresh outputs are filled with NaN
// instead of left uninitialised, so an element a kernel forgets to write fails the comparison.
bool debug_fill_nan();

// CPU outputs of kCachedOutputBytes and up come from a cache of blocks kept after their
// tensor dies, so a layer called again does not page-fault its output in again (output_cache.cpp).
constexpr int64_t kCachedOutputBytes = int64_t(1) << 20;
at::Tensor cached_cpu_empty(at::IntArrayRef sizes, const at::TensorOptions& options,
                            at::MemoryFormat format);
void set_cpu_output_cache_limit(std::size_t bytes);  // 0: off (and frees what is cached)
std::size_t cpu_output_cache_limit();
std::size_t cpu_output_cache_bytes();  // held in freed blocks now

inline at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                             at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  int64_t numel = 1;
  for (const int64_t d : sizes) numel *= d;
  const bool cached = options.device().is_cpu() &&
                      numel * static_cast<int64_t>(options.dtype().itemsize()) >= kCachedOutputBytes;
  at::Tensor t = cached ? cached_cpu_empty(sizes, options, format) : at::empty(sizes, options, format);
  if (debug_fill_nan()) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

}  // namespace dwconv
