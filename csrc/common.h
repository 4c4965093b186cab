// Output allocation shared by every backend's glue.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dwconv {

// When set (dwconv._C.set_debug_fill_nan, used by the tests), fresh outputs are filled with NaN
// instead of left uninitialised, so an element a kernel forgets to write fails the comparison.
bool debug_fill_nan();

// A large fresh CPU buffer comes from mmap and page-faults on first touch, one 4 KiB page at a
// time: for a 38 MB output that costs ~8 ms here, more than the convolution. Asking for
// transparent huge pages before the kernel first writes it cuts that ~4x (a hint: ignored where
// THP is off). Only whole 2 MiB pages inside the buffer are advised.
inline void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t kHuge = std::uintptr_t(1) << 21;
  constexpr int64_t kMinBytes = int64_t(8) << 20;
  const int64_t bytes = static_cast<int64_t>(t.nbytes());
  if (!t.device().is_cpu() || bytes < kMinBytes) return;
  const auto begin = reinterpret_cast<std::uintptr_t>(t.data_ptr());
  const std::uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const std::uintptr_t last = (begin + static_cast<std::uintptr_t>(bytes)) & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

inline at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options,
                             at::MemoryFormat format = at::MemoryFormat::Contiguous) {
  at::Tensor t = at::empty(sizes, options, format);
  advise_huge_pages(t);
  if (debug_fill_nan()) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

}  // namespace dwconv
