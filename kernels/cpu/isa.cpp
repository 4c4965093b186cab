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
std::atomic<bool> g_packed{true};
}  // namespace
void set_packed(bool on) { g_packed.store(on, std::memory_order_relaxed); }
bool packed_enabled() { return g_packed.load(std::memory_order_relaxed); }

namespace {
std::atomic<bool> g_bwdi_as_fwd{true};
}  // namespace
void set_bwdi_as_fwd(bool on) { g_bwdi_as_fwd.store(on, std::memory_order_relaxed); }
bool bwdi_as_fwd_enabled() { return g_bwdi_as_fwd.load(std::memory_order_relaxed); }

bool bwdi_as_fwd(const Dw2dShape& s, Dw2dShape* fwd) {
  if (!bwdi_as_fwd_enabled() || s.SH != 1 || s.SW != 1 || s.M != 1 || s.N == 0 ||
      s.OH == 0 || s.OW == 0 || s.H == 0 || s.W == 0)
    return false;
  const int64_t eh = s.DH * (s.KH - 1), ew = s.DW * (s.KW - 1);  // kernel extent - 1
  Dw2dShape f = s;
  f.H = s.OH;
  f.W = s.OW;
  f.OH = s.H;
  f.OW = s.W;
  f.PT = eh - s.PT;
  f.PL = ew - s.PL;
  // bottom / right padding the forward implies; negative when the backward's padding exceeds the
  // kernel's extent (output rows made of padding only): those keep the backward-input kernels
  const int64_t pb = f.OH - 1 + eh + 1 - f.H - f.PT, pr = f.OW - 1 + ew + 1 - f.W - f.PL;
  if (f.PT < 0 || f.PL < 0 || pb < 0 || pr < 0) return false;
  *fwd = f;
  return true;
}

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
