// What every CUDA kernel file shares: the device vocabulary that differs between nvcc and the host
// emulation (kernels/cuda_emu), number traits (storage type -> fp32/fp64 accumulation), checked
// memory helpers, and the compile-time specialisation list. Torch-free.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#if defined(DWCONV_CUDA_EMU)
// kernels/cuda_emu/cuda_emu.h is included first by the emulation's translation units
#define DWCONV_NS cuda_emu_kernels
#define DW_UNROLL
#define DW_UNROLL_BY(n)
#define DWCONV_LAUNCH DWCONV_EMU_LAUNCH
#define DW_SHARED(T, name, n)                                                                   \
  const ::cuda_emu::SharedArray<T> name {                                                       \
    ::cuda_emu::shared_static(sizeof(T) * (n), sizeof(T), #name)                                \
  }
#define DW_DYN_SHARED(T, name) \
  const ::cuda_emu::SharedArray<T> name { ::cuda_emu::shared_dynamic(sizeof(T), #name) }
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define DWCONV_NS cuda
#define DW_UNROLL _Pragma("unroll")
#define DW_PRAGMA(x) _Pragma(#x)
#define DW_UNROLL_BY(n) DW_PRAGMA(unroll n)
#define DWCONV_LAUNCH(kernel, grid, block, smem, stream, ...) \
  (kernel<<<(grid), (block), (smem), (stream)>>>(__VA_ARGS__), cudaGetLastError())
#define DW_SHARED(T, name, n) __shared__ T name[n]
#define DW_DYN_SHARED(T, name)                                  \
  extern __shared__ __align__(16) unsigned char dw_dyn_smem[]; \
  T* name = reinterpret_cast<T*>(dw_dyn_smem)
#endif

#include <string>

#include "../dw2d_shape.h"
#include "dw2d_cuda.h"

namespace dwconv {
namespace DWCONV_NS {

using i64 = int64_t;

// Storage type -> accumulation type and conversions (fp32 accumulation for the 16-bit types).
template <typename T>
struct Num;
template <>
struct Num<float> {
  using A = float;
  __device__ __forceinline__ static A load(float v) { return v; }
  __device__ __forceinline__ static float store(A v) { return v; }
};
template <>
struct Num<double> {
  using A = double;
  __device__ __forceinline__ static A load(double v) { return v; }
  __device__ __forceinline__ static double store(A v) { return v; }
};
template <>
struct Num<__half> {
  using A = float;
  __device__ __forceinline__ static A load(__half v) { return __half2float(v); }
  __device__ __forceinline__ static __half store(A v) { return __float2half_rn(v); }
};
template <>
struct Num<__nv_bfloat16> {
  using A = float;
  __device__ __forceinline__ static A load(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ __forceinline__ static __nv_bfloat16 store(A v) { return __float2bfloat16_rn(v); }
};

// Global memory access: plain (read-only path for loads) on the device, checked against the
// launch's buffers in the emulation.
template <typename T>
__device__ __forceinline__ typename Num<T>::A gld(const T* p) {
#if defined(DWCONV_CUDA_EMU)
  ::cuda_emu::check_global(p, sizeof(T), false);
  return Num<T>::load(*p);
#else
  return Num<T>::load(__ldg(p));
#endif
}
template <typename T>
__device__ __forceinline__ void gst(T* p, typename Num<T>::A v) {
#if defined(DWCONV_CUDA_EMU)
  ::cuda_emu::check_global(p, sizeof(T), true);
#endif
  *p = Num<T>::store(v);
}

// 16 bytes of T (VEC = 16 / sizeof(T) elements) in one load; p must be 16-byte aligned.
template <typename T, int VEC>
struct Pack {
  static_assert(VEC * sizeof(T) == 16 || VEC == 1, "a pack is one element or 16 bytes");
  T v[VEC];
};
template <typename T, int VEC>
__device__ __forceinline__ void gld_vec(const T* p, typename Num<T>::A (&out)[VEC]) {
  if constexpr (VEC == 1) {
    out[0] = gld(p);
  } else {
#if defined(DWCONV_CUDA_EMU)
    if (reinterpret_cast<uintptr_t>(p) % 16)
      ::cuda_emu::fail_thread(::cuda_emu::where_now() + ": misaligned 16-byte vector load");
    ::cuda_emu::check_global(p, 16, false);
    uint4 raw = *reinterpret_cast<const uint4*>(p);
#else
    uint4 raw = __ldg(reinterpret_cast<const uint4*>(p));
#endif
    Pack<T, VEC> pk;
    static_assert(sizeof(pk) == sizeof(raw), "pack size");
    memcpy(&pk, &raw, 16);
    DW_UNROLL
    for (int i = 0; i < VEC; ++i) out[i] = Num<T>::load(pk.v[i]);
  }
}
template <typename T, int VEC>
__device__ __forceinline__ void gst_vec(T* p, const typename Num<T>::A (&in)[VEC]) {
  if constexpr (VEC == 1) {
    gst(p, in[0]);
  } else {
    Pack<T, VEC> pk;
    DW_UNROLL
    for (int i = 0; i < VEC; ++i) pk.v[i] = Num<T>::store(in[i]);
    uint4 raw;
    memcpy(&raw, &pk, 16);
#if defined(DWCONV_CUDA_EMU)
    if (reinterpret_cast<uintptr_t>(p) % 16)
      ::cuda_emu::fail_thread(::cuda_emu::where_now() + ": misaligned 16-byte vector store");
    ::cuda_emu::check_global(p, 16, true);
#endif
    *reinterpret_cast<uint4*>(p) = raw;
  }
}

__host__ __device__ __forceinline__ i64 imin(i64 a, i64 b) { return a < b ? a : b; }
__host__ __device__ __forceinline__ i64 imax(i64 a, i64 b) { return a > b ? a : b; }
__host__ __device__ __forceinline__ i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }

// Division of a non-negative 64-bit index by a run-time constant d >= 1 through a multiply-high
// (Granlund & Montgomery, round-up method): a plain 64-bit `/` is a called software routine on
// the GPU, slow and the cause of register spills around the call. Built on the host per launch.
struct FastDiv {
  uint64_t d, m;
  int l;  // ceil(log2(d))
  FastDiv() = default;
  explicit FastDiv(i64 d_) : d(static_cast<uint64_t>(d_)), m(0), l(0) {
    while ((uint64_t{1} << l) < d) ++l;
    if (d > 1)
      m = static_cast<uint64_t>(((static_cast<unsigned __int128>(1) << 64) *
                                 ((static_cast<unsigned __int128>(1) << l) - d)) / d) + 1;
  }
  __host__ __device__ __forceinline__ i64 div(i64 n_) const {
    const uint64_t n = static_cast<uint64_t>(n_);
    if (d == 1) return n_;
#if defined(__CUDA_ARCH__)
    const uint64_t t = __umul64hi(n, m);
#else
    const uint64_t t = static_cast<uint64_t>((static_cast<unsigned __int128>(n) * m) >> 64);
#endif
    return static_cast<i64>((t + ((n - t) >> 1)) >> (l - 1));
  }
  // q = n / d, returns n % d
  __host__ __device__ __forceinline__ i64 divmod(i64 n, i64& q) const {
    q = div(n);
    return n - q * static_cast<i64>(d);
  }
};

// The same for 0 <= n < 2^31 and 1 <= d < 2^31 with 32-bit arithmetic (PyTorch's IntDivider).
struct FastDiv32 {
  uint32_t d, m;
  int l;
  FastDiv32() = default;
  explicit FastDiv32(i64 d_) : d(static_cast<uint32_t>(d_)), m(0), l(0) {
    while ((uint64_t{1} << l) < d) ++l;
    m = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << l) - d)) / d + 1);
  }
  __host__ __device__ __forceinline__ int div(int n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(static_cast<uint32_t>(n), m);
#else
    const uint32_t t = static_cast<uint32_t>((uint64_t{static_cast<uint32_t>(n)} * m) >> 32);
#endif
    return static_cast<int>((t + static_cast<uint32_t>(n)) >> l);
  }
};

// Decodes a flat item index into (r0, r1, r2, rest) for sizes d0 (fastest), d1, d2.
struct Decode3 {
  FastDiv d0, d1, d2;
  Decode3() = default;
  Decode3(i64 a, i64 b, i64 c) : d0(a), d1(b), d2(c) {}
  __device__ __forceinline__ void operator()(i64 it, i64& r0, i64& r1, i64& r2, i64& rest) const {
    i64 t;
    r0 = d0.divmod(it, t);
    r1 = d1.divmod(t, t);
    r2 = d2.divmod(t, rest);
  }
};

// Threads per block of every kernel (the resource table's occupancy assumes it).
constexpr int kThreads = 256;
// Blocks per SM every kernel is compiled to fit (at most 128 registers a thread): at least 25%
// occupancy. ptxas' own choice under a bare __launch_bounds__(256) spills instead.
constexpr int kMinBlocks = 2;
// Grid-stride loops cap the grid here; enough blocks to fill any current GPU several times over.
// The emulation caps it at 3 so that its small test shapes still run every loop (and the barriers
// that guard shared memory reuse between iterations) more than once per block.
#if defined(DWCONV_CUDA_EMU)
constexpr i64 kMaxBlocks = 3;
#else
constexpr i64 kMaxBlocks = 1 << 16;
#endif

// The compile-time specialisations: square kernel K with stride S (both directions), dilation 1.
// Adding a pair here adds its kernels to every pass that uses the list.
template <int K_, int S_>
struct Spec {
  static constexpr int K = K_, S = S_;
};
template <typename... Specs>
struct SpecList {};
using DirectSpecs =
    SpecList<Spec<3, 1>, Spec<3, 2>, Spec<5, 1>, Spec<5, 2>, Spec<7, 1>, Spec<7, 2>>;

// Calls f(Spec{}) for the first specialisation matching the shape; false if none does.
template <typename F, typename... Specs>
bool dispatch_spec(const Dw2dShape& s, SpecList<Specs...>, F&& f) {
  bool done = false;
  ((!done && s.KH == Specs::K && s.KW == Specs::K && s.SH == Specs::S && s.SW == Specs::S &&
            s.DH == 1 && s.DW == 1
        ? (f(Specs{}), done = true)
        : false),
   ...);
  return done;
}

// The generic path: everything at run time.
struct Generic {
  static constexpr int K = 0, S = 0;
};

// Kernel-size-only specialisations (backward-weight: any stride and dilation).
using KernelSpecs = SpecList<Spec<3, 0>, Spec<5, 0>, Spec<7, 0>>;
template <typename F, typename... Specs>
bool dispatch_k(const Dw2dShape& s, SpecList<Specs...>, F&& f) {
  bool done = false;
  ((!done && s.KH == Specs::K && s.KW == Specs::K ? (f(Specs{}), done = true) : false), ...);
  return done;
}

template <typename Sp>
const char* spec_name() {
  static const std::string name =
      Sp::K == 0 ? std::string("generic")
                 : "k" + std::to_string(Sp::K) + (Sp::S ? "s" + std::to_string(Sp::S) : "");
  return name.c_str();
}

// Storage type for a DType; f(tag) with tag a T*-typed null pointer.
template <typename F>
int dispatch_dtype(DType dt, F&& f) {
  switch (dt) {
    case DType::f32: return f(static_cast<float*>(nullptr));
    case DType::f64: return f(static_cast<double*>(nullptr));
    case DType::f16: return f(static_cast<__half*>(nullptr));
    case DType::bf16: return f(static_cast<__nv_bfloat16*>(nullptr));
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

inline int dtype_bytes(DType dt) { return dt == DType::f64 ? 8 : dt == DType::f32 ? 4 : 2; }
inline int acc_bytes(DType dt) { return dt == DType::f64 ? 8 : 4; }

// Grid of a grid-stride loop over items with kThreads threads per block.
inline unsigned grid_for(i64 items) {
  return static_cast<unsigned>(imax(1, imin(ceil_div(items, kThreads), kMaxBlocks)));
}

// NHWC passes load 16 bytes of channels at a time when every channel row starts 16-byte aligned.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
template <typename T>
bool nhwc_vec_ok(const Dw2dShape& s, std::initializer_list<const void*> ptrs) {
  constexpr int VEC = 16 / sizeof(T);
  if (s.M != 1 || s.C % VEC) return false;
  for (const void* p : ptrs)
    if (p && !aligned16(p)) return false;
  return true;
}

// Each pass's kernel choice as the <specialisation> part of its name (dw2d_<pass>.cu).
const char* fwd_variant(const Dw2dShape& s, Layout layout, DType dt);
const char* bwdi_variant(const Dw2dShape& s, Layout layout, DType dt);
const char* bwdw_variant(const Dw2dShape& s, Layout layout, DType dt);

}  // namespace DWCONV_NS
}  // namespace dwconv
