// The emulator's own test kernels: each written the way kernels/cuda writes kernels (DW_SHARED,
// gld/gst, DWCONV_LAUNCH), one correct and the rest each with one classic bug the emulation must
// report. tests/test_cuda_emu.py runs them all.
#define DWCONV_CUDA_EMU
#include "cuda_emu.h"
#include "../cuda/dw2d_common.cuh"

#include <stdexcept>
#include <vector>

namespace dwconv {
namespace DWCONV_NS {
namespace {

constexpr int kT = 64;  // threads per block of the test kernels

// 3-point stencil over a shared tile with a one-element halo on each side.
// bug: 0 correct, 1 no __syncthreads between the tile load and its use, 2 halo never loaded (reads
// elements nobody wrote), 3 reads one past the tile, 4 tile reused by the next iteration
// without a barrier at the end of the loop.
__global__ void stencil(int bug, int n, const float* x, float* y) {
  DW_SHARED(float, tile, kT + 2);
  const int tid = threadIdx.x;
  for (int base = blockIdx.x * kT; base < n; base += gridDim.x * kT) {
    const int i = base + tid;
    tile[tid + 1] = i < n ? gld(x + i) : 0.f;
    if (bug != 2 && tid < 2) {
      const int h = tid == 0 ? base - 1 : base + kT;  // left / right halo
      tile[tid == 0 ? 0 : kT + 1] = h >= 0 && h < n ? gld(x + h) : 0.f;
    }
    if (bug != 1) __syncthreads();
    const int right = bug == 3 ? tid + 3 : tid + 2;
    const float v = tile[tid] + tile[tid + 1] + tile[right];
    if (i < n) gst(y + i, v);
    if (bug != 4) __syncthreads();
  }
}

// Block sum through warp shuffles then shared memory.
// bug: 0 correct, 5 the shuffle only in half the warp (divergent lanes), 6 a __syncthreads only
// some threads reach.
__global__ void block_sum(int bug, const float* x, float* y) {
  DW_SHARED(float, red, kT / 32);
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  float v = gld(x + blockIdx.x * kT + tid);
  if (bug == 5) {
    if (lane < 16) v += __shfl_down_sync(0xffffffffu, v, 16);
  } else {
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  if (lane == 0) red[warp] = v;
  if (bug == 6) {
    if (tid < kT / 2) __syncthreads();
  } else {
    __syncthreads();
  }
  if (tid == 0) {
    float s = 0.f;
    for (int w = 0; w < kT / 32; ++w) s += red[w];
    gst(y + blockIdx.x, s);
  }
}

// Butterfly all-reduce with __shfl_xor_sync and a broadcast with __shfl_sync: every lane must end
// with the warp's sum.
__global__ void butterfly(const float* x, float* y) {
  const int tid = threadIdx.x;
  float v = gld(x + tid);
  for (int m = 16; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
  v = __shfl_sync(0xffffffffu, v, 7);
  gst(y + tid, v);
}

// bug: 7 writes one element past the output buffer, 8 a 16-byte load at a 4-byte offset.
__global__ void memory_bugs(int bug, const float* x, float* y) {
  const int tid = threadIdx.x;
  float v[4];
  gld_vec<float, 4>(x + (bug == 8 ? 1 : 0) + 4 * (tid % 4), v);
  gst(y + tid + (bug == 7 && tid == kT - 1 ? 1 : 0), v[0] + v[1] + v[2] + v[3]);
}

const char* const kNames[] = {"stencil_ok",         "stencil_missing_sync", "stencil_halo_unloaded",
                              "stencil_past_tile",  "stencil_tile_reuse",   "block_sum_ok",
                              "shuffle_divergent",  "barrier_divergent",    "butterfly_ok",
                              "global_out_of_bounds", "misaligned_vector",  "memory_ok",
                              nullptr};

std::string check(bool ok, const std::string& what) {
  return ok ? std::string() : "wrong result (" + what + ") without an emulator error";
}

std::string run(const std::string& name) {
  ::cuda_emu::clear_buffers();
  if (name.rfind("stencil", 0) == 0) {
    const int bug = name == "stencil_ok"              ? 0
                    : name == "stencil_missing_sync"  ? 1
                    : name == "stencil_halo_unloaded" ? 2
                    : name == "stencil_past_tile"     ? 3
                                                      : 4;
    const int n = 3 * kT + 5;
    std::vector<float> x(n), y(n, -1.f);
    for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 7);
    ::cuda_emu::register_buffer(x.data(), n * sizeof(float), "x");
    ::cuda_emu::register_buffer(y.data(), n * sizeof(float), "y");
    // two blocks for four tiles: each block reuses its tile once
    if (DWCONV_LAUNCH(stencil, 2, kT, 0, nullptr, bug, n, x.data(), y.data()) != cudaSuccess)
      return ::cuda_emu::last_error();
    bool ok = true;
    for (int i = 0; i < n; ++i)
      ok &= y[i] == (i > 0 ? x[i - 1] : 0.f) + x[i] + (i + 1 < n ? x[i + 1] : 0.f);
    return check(ok, "stencil");
  }
  if (name == "block_sum_ok" || name == "shuffle_divergent" || name == "barrier_divergent") {
    const int bug = name == "block_sum_ok" ? 0 : name == "shuffle_divergent" ? 5 : 6;
    std::vector<float> x(3 * kT), y(3, -1.f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 5);
    ::cuda_emu::register_buffer(x.data(), x.size() * sizeof(float), "x");
    ::cuda_emu::register_buffer(y.data(), y.size() * sizeof(float), "y");
    if (DWCONV_LAUNCH(block_sum, 3, kT, 0, nullptr, bug, x.data(), y.data()) != cudaSuccess)
      return ::cuda_emu::last_error();
    bool ok = true;
    for (int b = 0; b < 3; ++b) {
      float s = 0.f;
      for (int t = 0; t < kT; ++t) s += x[b * kT + t];
      ok &= y[b] == s;
    }
    return check(ok, "block sum");
  }
  if (name == "butterfly_ok") {
    std::vector<float> x(kT), y(kT, -1.f);
    for (int i = 0; i < kT; ++i) x[i] = static_cast<float>(i);
    ::cuda_emu::register_buffer(x.data(), x.size() * sizeof(float), "x");
    ::cuda_emu::register_buffer(y.data(), y.size() * sizeof(float), "y");
    if (DWCONV_LAUNCH(butterfly, 1, kT, 0, nullptr, x.data(), y.data()) != cudaSuccess)
      return ::cuda_emu::last_error();
    bool ok = true;
    for (int i = 0; i < kT; ++i) ok &= y[i] == (i < 32 ? 496.f : 1520.f);  // 0+..+31, 32+..+63
    return check(ok, "butterfly");
  }
  if (name == "memory_ok" || name == "global_out_of_bounds" || name == "misaligned_vector") {
    const int bug = name == "memory_ok" ? 0 : name == "global_out_of_bounds" ? 7 : 8;
    alignas(16) float x[20];
    alignas(16) float y[kT];
    for (int i = 0; i < 20; ++i) x[i] = static_cast<float>(i);
    ::cuda_emu::register_buffer(x, sizeof x, "x");
    ::cuda_emu::register_buffer(y, sizeof y, "y");
    if (DWCONV_LAUNCH(memory_bugs, 1, kT, 0, nullptr, bug, x, y) != cudaSuccess)
      return ::cuda_emu::last_error();
    bool ok = true;
    for (int t = 0; t < kT; ++t) {
      const int o = 4 * (t % 4);
      ok &= y[t] == x[o] + x[o + 1] + x[o + 2] + x[o + 3];
    }
    return check(ok, "vector sums");
  }
  throw std::invalid_argument("cuda_emu selftest: unknown kernel '" + name + "'");
}

}  // namespace
}  // namespace DWCONV_NS
}  // namespace dwconv

namespace cuda_emu {
std::string run_selftest(const std::string& name) {
  std::string out = dwconv::DWCONV_NS::run(name);
  clear_buffers();
  return out;
}
const char* const* selftest_names() { return dwconv::DWCONV_NS::kNames; }
}  // namespace cuda_emu
