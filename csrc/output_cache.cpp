// Cache of large CPU output blocks (see new_output in common.h).
//
// A fresh multi-megabyte CPU buffer comes from mmap and page-faults on first touch: for the 58 MB
// output of a [32,144,56,56] layer that is 11 ms with 4 KiB pages here, twice the convolution,
// and PyTorch's own CPU allocator hands such blocks straight back to the OS. Outputs of at least
// kCachedOutputBytes are therefore carved from blocks this cache keeps after their tensor dies (as
// PyTorch's CUDA caching allocator does), so a layer called again reuses memory that is already
// mapped: the cost users see becomes that of the kernel. Blocks of 8 MiB and more get the
// transparent-huge-page hint (a 2 MiB fault instead of 512). Freed blocks are kept up to a limit (default 512 MiB,
// DWCONV_CPU_OUTPUT_CACHE_MB or dwconv._C.set_cpu_output_cache_limit; 0 turns the cache off),
// the newest freed block of a size handed out first, the oldest released first.
#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <mutex>

#include "common.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dwconv {
namespace {

constexpr std::size_t kHuge = std::size_t(1) << 21;  // 2 MiB: huge-page granularity
constexpr std::size_t kPage = std::size_t(1) << 16;  // sizes below kHugeFrom round to 64 KiB
constexpr std::size_t kHugeFrom = std::size_t(8) << 20;

std::size_t block_bytes(std::size_t n) {
  const std::size_t g = n >= kHugeFrom ? kHuge : kPage;
  return (n + g - 1) / g * g;
}

struct Block {
  void* ptr;
  std::size_t bytes;
};

class OutputCache final : public at::Allocator {
 public:
  OutputCache() {
    const char* env = std::getenv("DWCONV_CPU_OUTPUT_CACHE_MB");
    limit_ = (env ? static_cast<std::size_t>(std::strtoull(env, nullptr, 10)) : 512) << 20;
  }

  at::DataPtr allocate(std::size_t n) override {
    const std::size_t bytes = block_bytes(n);
    Block* b = take(bytes);
    if (!b) {
      void* p = bytes ? std::aligned_alloc(bytes >= kHugeFrom ? kHuge : kPage, bytes) : nullptr;
      if (bytes && !p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      if (p && bytes >= kHugeFrom) madvise(p, bytes, MADV_HUGEPAGE);
#endif
      b = new Block{p, bytes};
    }
    return {b->ptr, b, &OutputCache::release, at::Device(at::kCPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void set_limit(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    trim_locked();
  }
  std::size_t limit() const { return limit_; }
  std::size_t cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_;
  }

  static OutputCache& get() {
    static OutputCache* cache = new OutputCache();  // never destroyed: tensors may outlive statics
    return *cache;
  }

 private:
  // The most recently freed block of the size: the one whose lines are likeliest still cached.
  // Handing out the oldest instead rotates through every cached block of a size (a forward and a
  // backward leave two of a layer's): [1,144,56,56] 3x3 channels_last forward on Zen 3, 2 threads,
  // with 5 such blocks cached: 372-457 us against 220-294 us into one reused out= tensor.
  Block* take(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.rbegin(); it != free_.rend(); ++it) {
      if ((*it)->bytes == bytes) {
        Block* b = *it;
        free_.erase(std::next(it).base());
        cached_ -= b->bytes;
        return b;
      }
    }
    return nullptr;
  }

  static void release(void* ctx) {
    Block* b = static_cast<Block*>(ctx);
    OutputCache& c = get();
    std::lock_guard<std::mutex> lock(c.mutex_);
    c.free_.push_back(b);
    c.cached_ += b->bytes;
    c.trim_locked();
  }

  void trim_locked() {
    while (cached_ > limit_ && !free_.empty()) {
      Block* b = free_.front();
      free_.pop_front();
      cached_ -= b->bytes;
      std::free(b->ptr);
      delete b;
    }
  }

  std::mutex mutex_;
  std::deque<Block*> free_;  // oldest first
  std::size_t cached_ = 0, limit_ = 0;
};

}  // namespace

at::Tensor cached_cpu_empty(at::IntArrayRef sizes, const at::TensorOptions& options,
                            at::MemoryFormat format) {
  OutputCache& cache = OutputCache::get();
  if (cache.limit() == 0) return at::empty(sizes, options, format);
  return at::Tensor(at::detail::empty_generic(sizes, &cache,
                                              c10::DispatchKeySet(c10::DispatchKey::CPU),
                                              options.dtype().toScalarType(), format));
}

void set_cpu_output_cache_limit(std::size_t bytes) { OutputCache::get().set_limit(bytes); }
std::size_t cpu_output_cache_limit() { return OutputCache::get().limit(); }
std::size_t cpu_output_cache_bytes() { return OutputCache::get().cached(); }

}  // namespace dwconv
