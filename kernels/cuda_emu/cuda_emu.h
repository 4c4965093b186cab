// A small emulation of the CUDA execution model, so the torch-free kernels/cuda sources compile with
// the host C++ compiler (no nvcc) and run on CPU memory in the tests.
//
// What it models, and checks:
// - grid/block indices: every thread of a block is a cooperative fiber (ucontext); blocks run one
//   after another. threadIdx/blockIdx/blockDim/gridDim read the running fiber's state.
// - __syncthreads(): a fiber waits until every thread of its block has arrived; a barrier that some
//   threads never reach (they returned, or diverged) is reported as an error, as is a deadlock.
// - warp shuffles (__shfl_down_sync, __shfl_xor_sync, __shfl_sync) and __syncwarp(): lanes wait
//   until every lane named in the mask arrived, then exchange; a mask lane that never arrives (it
//   exited or diverged) is an error.
// - shared memory (DW_SHARED / DW_DYN_SHARED in kernels/cuda/dw2d_common.cuh): per block, poisoned
//   with 0xff bytes (NaN) at block start, every index bounds-checked, every element shadowed with its
//   last writer and readers per barrier epoch: a read of an element never written, a read of an
//   element another thread wrote since the last __syncthreads (missing barrier, RAW), and a write to
//   an element another thread wrote (WAW) or read (WAR) since the last barrier are all errors.
// - global memory accessed through gld/gst/gld_vec16: checked against the buffers the launcher's
//   caller registered (emu_register_buffer), and 16-byte vector accesses for 16-byte alignment.
// The first error stops the launch; the launcher then returns cudaErrorLaunchFailure and
// cuda_emu::last_error() says what happened (which kernel, block, thread, element).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

#include "cuda_emu_api.h"

// ----------------------------------------------------------------------------- CUDA vocabulary
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

typedef struct CUstream_st* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorLaunchFailure = 719 };

// 16-bit floating types with the device types' bit layout; conversions round to nearest even.
struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};
float __half2float(__half h);
__half __float2half_rn(float f);
float __bfloat162float(__nv_bfloat16 h);
__nv_bfloat16 __float2bfloat16_rn(float f);

namespace cuda_emu {

// Fiber-local state of the running emulated thread.
struct ThreadCtx {
  dim3 thread_idx;
  int linear;  // x + y*bx + z*bx*by
  int shared_decl;  // how many DW_SHARED declarations this thread has executed
};
struct LaunchCtx {
  dim3 grid, block, block_idx;
};
extern thread_local ThreadCtx* tl_thread;
extern thread_local LaunchCtx* tl_launch;

void syncthreads();
void syncwarp(unsigned mask);
// mode 0: down, 1: xor, 2: idx; the value travels as 8 raw bytes
uint64_t shfl_raw(unsigned mask, uint64_t value, int mode, int arg, int width);
[[noreturn]] void fail_thread(const std::string& what);  // records the error, ends this thread
std::string where_now();  // "kernel block (x,y,z) thread (x,y,z)" of the running thread
void report(const std::string& what);                     // records the error (first one wins)

void check_global(const void* p, size_t bytes, bool write);

// Runs body once per thread of every block; returns false (and sets last_error) on an error.
bool launch(const char* kernel, dim3 grid, dim3 block, size_t dyn_shared_bytes,
            const std::function<void()>& body);

// Shared memory: per block, by declaration order.
struct SharedInfo {
  unsigned char* data;
  size_t bytes;
  size_t elem;
  struct Shadow* shadow;
  const char* name;
};
SharedInfo* shared_static(size_t bytes, size_t elem, const char* name);
SharedInfo* shared_dynamic(size_t elem, const char* name);
void shared_access(SharedInfo* s, int64_t index, bool write);

template <typename T>
struct SharedRef {
  SharedInfo* s;
  int64_t i;
  operator T() const {
    shared_access(s, i, false);
    T v;
    std::memcpy(&v, s->data + i * sizeof(T), sizeof(T));
    return v;
  }
  SharedRef& operator=(const T& v) {
    shared_access(s, i, true);
    std::memcpy(s->data + i * sizeof(T), &v, sizeof(T));
    return *this;
  }
  SharedRef& operator=(const SharedRef& o) { return *this = static_cast<T>(o); }
  SharedRef& operator+=(const T& v) { return *this = static_cast<T>(*this) + v; }
};

// A checked view of a block's shared array (what __shared__ T name[n] is on the device).
template <typename T>
struct SharedArray {
  SharedInfo* s;
  SharedRef<T> operator[](int64_t i) const { return SharedRef<T>{s, i}; }
};

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::tl_thread->thread_idx)
#define blockIdx (::cuda_emu::tl_launch->block_idx)
#define blockDim (::cuda_emu::tl_launch->block)
#define gridDim (::cuda_emu::tl_launch->grid)
#define warpSize 32

inline void __syncthreads() { ::cuda_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::cuda_emu::syncwarp(mask); }

template <typename T>
T emu_shfl(unsigned mask, T v, int mode, int arg, int width) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t raw = 0;
  std::memcpy(&raw, &v, sizeof(T));
  raw = ::cuda_emu::shfl_raw(mask, raw, mode, arg, width);
  T out;
  std::memcpy(&out, &raw, sizeof(T));
  return out;
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return emu_shfl(mask, v, 0, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return emu_shfl(mask, v, 1, lane_mask, width);
}
template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return emu_shfl(mask, v, 2, src, width);
}

// Kernel launch: DWCONV_LAUNCH(kernel, grid, block, dyn_smem, stream, args...) in kernels/cuda.
#define DWCONV_EMU_LAUNCH(kernel, grid, block, smem, stream, ...)                             \
  ((void)(stream), ::cuda_emu::launch(#kernel, (grid), (block), (smem),                       \
                                     [&] { kernel(__VA_ARGS__); })                           \
       ? cudaSuccess                                                                          \
       : cudaErrorLaunchFailure)
