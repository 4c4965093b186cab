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
  static Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
  T sum() const { return v; }
  // (bwd) lo/hi = a0 b0 a1 b1 ... : the 2N elements of a and b interleaved
  static void interleave(Vec a, Vec b, Vec& lo, Vec& hi) {
    lo = a;
    hi = b;
  }
  // (bwd) even/odd elements of the 2N elements a0..a(N-1) b0..b(N-1)
  static void deinterleave(Vec a, Vec b, Vec& even, Vec& odd) {
    even = a;
    odd = b;
  }
};

}  // namespace
}  // namespace cpu
}  // namespace dwconv
