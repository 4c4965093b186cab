// FMA-throughput loop: the compute peak a roofline needs, measured with the same Vec<T> the kernels
// use. Part of dw2d_impl.h (internal linkage, one copy per ISA).
#pragma once

template <typename T>
struct FmaPeak {
  using V = Vec<T>;
  static constexpr int kChains = 12;  // independent accumulators: enough to hide FMA latency

  // Runs `iters` rounds of kChains vector FMAs; returns the flops done. `sink` defeats dead-code
  // elimination.
  static double run(int64_t iters, T* sink) {
    V acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = V::set1(T(i) * T(1e-3));
    const V a = V::set1(T(0.999999)), b = V::set1(T(1e-7));
    for (int64_t it = 0; it < iters; ++it)
      for (int i = 0; i < kChains; ++i) acc[i] = V::fma(acc[i], a, b);
    V total = V::zero();
    for (int i = 0; i < kChains; ++i) total = V::fma(acc[i], V::set1(T(1)), total);
    *sink = total.sum();
    return 2.0 * V::N * kChains * static_cast<double>(iters);
  }
};

// A copy whose stores are non-temporal (whole aligned vectors; Vec::stream): the memory
// bandwidth a pass that streams its output (stream_output) can reach. A plain copy understates
// it past the caches, where every destination line is read before it is written (a third of
// its traffic, uncounted). Part of the roofline's bandwidth (dwconv.analysis.machine).
template <typename T>
struct StreamCopy {
  using V = Vec<T>;
  static void run(const T* src, T* dst, int64_t n) {
    int64_t i = 0;
    for (; i < n && !is_vector_aligned(dst + i); ++i) dst[i] = src[i];
    for (; i + V::N <= n; i += V::N) V::load(src + i).stream(dst + i);
    for (; i < n; ++i) dst[i] = src[i];
    V::stream_fence();
  }
};
