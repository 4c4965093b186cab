// 8-lane float vector on AVX2 + FMA. Double falls back to the one-lane template.
#pragma once
#include <immintrin.h>
#include "vec_scalar.h"

namespace dwconv {
namespace cpu {
namespace {

template <>
struct Vec<float> {
  static constexpr int N = 8;
  __m256 v;
  static __m256i lanes_below(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static __m256i offsets(int64_t stride) {
    const __m256i s = _mm256_set1_epi32(static_cast<int>(stride));
    return _mm256_mullo_epi32(s, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec set1(float a) { return {_mm256_set1_ps(a)}; }
  static Vec load(const float* p, int n = N) {
    return {n == N ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes_below(n))};
  }
  // stride * 7 must fit in int32: callers only gather along small strides (stride, multiplier)
  static Vec gather(const float* p, int64_t stride, int n = N) {
    if (stride == 1) return load(p, n);
    return {_mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, offsets(stride),
                                     _mm256_castsi256_ps(lanes_below(n)), 4)};
  }
  void store(float* p, int n = N) const {
    if (n == N)
      _mm256_storeu_ps(p, v);
    else
      _mm256_maskstore_ps(p, lanes_below(n), v);
  }
  void scatter(float* p, int64_t stride, int n = N) const {
    if (stride == 1) return store(p, n);
    alignas(32) float t[N];
    _mm256_store_ps(t, v);
    for (int i = 0; i < n; ++i) p[i * stride] = t[i];
  }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  float sum() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // (bwd) lo/hi = a0 b0 a1 b1 ... : the 2N elements of a and b interleaved
  static void interleave(Vec a, Vec b, Vec& lo, Vec& hi) {
    const __m256 l = _mm256_unpacklo_ps(a.v, b.v), h = _mm256_unpackhi_ps(a.v, b.v);
    lo = {_mm256_permute2f128_ps(l, h, 0x20)};
    hi = {_mm256_permute2f128_ps(l, h, 0x31)};
  }
  // (bwd) even/odd elements of the 2N elements a0..a(N-1) b0..b(N-1)
  static void deinterleave(Vec a, Vec b, Vec& even, Vec& odd) {
    even = {_mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a.v, b.v, 0x88)), 0xD8))};
    odd = {_mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(a.v, b.v, 0xDD)), 0xD8))};
  }
};

}  // namespace
}  // namespace cpu
}  // namespace dwconv
