// ISA table: which kernel builds exist and which this CPU can run. Compiled without ISA flags.
#include "dw2d.h"

#include <atomic>

namespace dwconv {
namespace cpu {

const Dw2dKernels<float>* dw2d_kernels_f32_scalar();
#ifdef DWCONV_HAVE_AVX2
const Dw2dKernels<float>* dw2d_kernels_f32_avx2();
#endif
#ifdef DWCONV_HAVE_AVX512
const Dw2dKernels<float>* dw2d_kernels_f32_avx512();
#endif

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

bool isa_compiled(Isa isa) {
  switch (isa) {
    case Isa::scalar: return true;
#ifdef DWCONV_HAVE_AVX2
    case Isa::avx2: return true;
#endif
#ifdef DWCONV_HAVE_AVX512
    case Isa::avx512: return true;
#endif
    default: return false;
  }
}

bool isa_supported(Isa isa) {
  if (!isa_compiled(isa)) return false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512: return __builtin_cpu_supports("avx512f");
  }
  return false;
#else
  return isa == Isa::scalar;
#endif
}

namespace {
std::atomic<bool> g_nchw_packed{true};
}  // namespace
void set_nchw_packed(bool on) { g_nchw_packed.store(on, std::memory_order_relaxed); }
bool nchw_packed() { return g_nchw_packed.load(std::memory_order_relaxed); }

const Dw2dKernels<float>* dw2d_kernels_f32(Isa isa) {
  if (!isa_compiled(isa)) return nullptr;
  switch (isa) {
    case Isa::scalar: return dw2d_kernels_f32_scalar();
#ifdef DWCONV_HAVE_AVX2
    case Isa::avx2: return dw2d_kernels_f32_avx2();
#endif
#ifdef DWCONV_HAVE_AVX512
    case Isa::avx512: return dw2d_kernels_f32_avx512();
#endif
    default: return nullptr;
  }
}

}  // namespace cpu
}  // namespace dwconv
