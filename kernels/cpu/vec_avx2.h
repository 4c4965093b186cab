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
  // non-temporal store of all N lanes (p 32-byte aligned), see vec_avx512.h
  void stream(float* p) const { _mm256_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  float sum() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // forward kernels (dw2d_fwd.h): lanes [lo, hi) only, zero elsewhere; stride-2 deinterleave
  using Mask = __m256i;  // lanes [lo, hi), made once for many loads
  static Mask mask_range(int lo, int hi) {
    return _mm256_andnot_si256(lanes_below(lo), lanes_below(hi));
  }
  static Vec load_mask(const float* p, Mask m) { return {_mm256_maskload_ps(p, m)}; }
  static Vec gather_mask(const float* p, int64_t stride, Mask m) {
    return {_mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, offsets(stride),
                                     _mm256_castsi256_ps(m), 4)};
  }
  static Vec even(Vec a, Vec b) {  // lanes 0, 2, 4.. of the 16-lane pair [a, b]
    const __m256 s = _mm256_shuffle_ps(a.v, b.v, _MM_SHUFFLE(2, 0, 2, 0));
    return {_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)))};
  }
  static Vec odd(Vec a, Vec b) {  // lanes 1, 3, 5.. of the 16-lane pair [a, b]
    const __m256 s = _mm256_shuffle_ps(a.v, b.v, _MM_SHUFFLE(3, 1, 3, 1));
    return {_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)))};
  }
  // the value in a register: stops the compiler re-loading it from memory for every use
  Vec pinned() const {
    Vec r = *this;
    asm("" : "+v"(r.v));
    return r;
  }
  // r[i] lane j <-> r[j] lane i: an N x N block transposed in registers (3 shuffle stages)
  static void transpose(Vec* r) {
    __m256 a[N], b[N];
    for (int i = 0; i < N; i += 2) {
      a[i] = _mm256_unpacklo_ps(r[i].v, r[i + 1].v);
      a[i + 1] = _mm256_unpackhi_ps(r[i].v, r[i + 1].v);
    }
    for (int i = 0; i < N; i += 4) {  // b[i + j]: column j (and j + 4) of rows i..i+3
      b[i] = _mm256_shuffle_ps(a[i], a[i + 2], 0x44);
      b[i + 1] = _mm256_shuffle_ps(a[i], a[i + 2], 0xEE);
      b[i + 2] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0x44);
      b[i + 3] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      r[j].v = _mm256_permute2f128_ps(b[j], b[4 + j], 0x20);
      r[j + 4].v = _mm256_permute2f128_ps(b[j], b[4 + j], 0x31);
    }
  }
  // lo/hi = a0 b0 a1 b1 ...: the 2N elements of a and b interleaved (inverse of even/odd)
  static void interleave(Vec a, Vec b, Vec& lo, Vec& hi) {
    const __m256 l = _mm256_unpacklo_ps(a.v, b.v), h = _mm256_unpackhi_ps(a.v, b.v);
    lo = {_mm256_permute2f128_ps(l, h, 0x20)};
    hi = {_mm256_permute2f128_ps(l, h, 0x31)};
  }
};

}  // namespace
}  // namespace cpu
}  // namespace dwconv
