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
