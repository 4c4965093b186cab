// One-lane "vector": the scalar ISA, and the float64 path of every build.
#pragma once
#include <cstdint>

namespace dwconv {
namespace cpu {
namespace {

template <typename T>
struct Vec {
  static constexpr int N = 1;
  T v;
  static Vec zero() { return {T(0)}; }
  static Vec set1(T a) { return {a}; }
  // n active lanes (0 or 1 here); inactive lanes read as zero and are never written
  static Vec load(const T* p, int n = N) { return {n > 0 ? *p : T(0)}; }
  static Vec gather(const T* p, int64_t stride, int n = N) {
    (void)stride;
    return {n > 0 ? *p : T(0)};
  }
  void store(T* p, int n = N) const {
    if (n > 0) *p = v;
  }
  void scatter(T* p, int64_t stride, int n = N) const {
    (void)stride;
    if (n > 0) *p = v;
  }
  void stream(T* p) const { *p = v; }  // a plain store: see the SIMD versions
  static void stream_fence() {}
  static Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
  T sum() const { return v; }
  // forward kernels (dw2d_fwd.h): lanes [lo, hi) only, zero elsewhere; stride-2 deinterleave
  using Mask = bool;  // lanes [lo, hi), made once and reused by many loads
  static Mask mask_range(int lo, int hi) { return lo <= 0 && hi > 0; }
  static Vec load_mask(const T* p, Mask m) { return {m ? *p : T(0)}; }
  static Vec gather_mask(const T* p, int64_t stride, Mask m) {
    (void)stride;
    return load_mask(p, m);
  }
  static Vec even(Vec a, Vec b) { (void)b; return a; }  // lanes 0, 2, 4.. of the pair [a, b]
  static Vec odd(Vec a, Vec b) { (void)a; return b; }   // lanes 1, 3, 5.. of the pair [a, b]
  Vec pinned() const { return *this; }  // see the SIMD versions
  static void transpose(Vec*) {}  // a 1 x 1 block
  // lo/hi = a0 b0 a1 b1 ...: the 2N elements of a and b interleaved (inverse of even/odd)
  static void interleave(Vec a, Vec b, Vec& lo, Vec& hi) {
    lo = a;
    hi = b;
  }
};

}  // namespace
}  // namespace cpu
}  // namespace dwconv
