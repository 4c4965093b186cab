// 16-lane float vector on AVX-512F. Double falls back to the one-lane template.
#pragma once
#include <immintrin.h>
#include "vec_scalar.h"

namespace dwconv {
namespace cpu {
namespace {

template <>
struct Vec<float> {
  static constexpr int N = 16;
  __m512 v;
  static __mmask16 lanes_below(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static __m512i offsets(int64_t stride) {
    return _mm512_mullo_epi32(_mm512_set1_epi32(static_cast<int>(stride)),
                              _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                                14, 15));
  }
  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec set1(float a) { return {_mm512_set1_ps(a)}; }
  static Vec load(const float* p, int n = N) {
    return {n == N ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lanes_below(n), p)};
  }
  // stride * 15 must fit in int32: callers only gather along small strides (stride, multiplier)
  static Vec gather(const float* p, int64_t stride, int n = N) {
    if (stride == 1) return load(p, n);
    return {_mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes_below(n), offsets(stride), p, 4)};
  }
  void store(float* p, int n = N) const {
    if (n == N)
      _mm512_storeu_ps(p, v);
    else
      _mm512_mask_storeu_ps(p, lanes_below(n), v);
  }
  void scatter(float* p, int64_t stride, int n = N) const {
    if (stride == 1) return store(p, n);
    _mm512_mask_i32scatter_ps(p, lanes_below(n), offsets(stride), v, 4);
  }
  // non-temporal store of all N lanes (p 64-byte aligned): no read-for-ownership, bypasses cache;
  // stream_fence() orders such stores before the data is handed to another thread
  void stream(float* p) const { _mm512_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
  float sum() const { return _mm512_reduce_add_ps(v); }
  // forward kernels (dw2d_fwd.h): lanes [lo, hi) only, zero elsewhere; stride-2 deinterleave
  using Mask = __mmask16;  // lanes [lo, hi) with 0 <= lo, hi <= N, made once for many loads
  static Mask mask_range(int lo, int hi) {
    return lo >= hi ? Mask(0) : static_cast<Mask>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
  }
  static Vec load_mask(const float* p, Mask m) { return {_mm512_maskz_loadu_ps(m, p)}; }
  static Vec gather_mask(const float* p, int64_t stride, Mask m) {
    return {_mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, offsets(stride), p, 4)};
  }
  static Vec even(Vec a, Vec b) {  // lanes 0, 2, 4.. of the 32-lane pair [a, b]
    const __m512i i = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return {_mm512_permutex2var_ps(a.v, i, b.v)};
  }
  static Vec odd(Vec a, Vec b) {  // lanes 1, 3, 5.. of the 32-lane pair [a, b]
    const __m512i i = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return {_mm512_permutex2var_ps(a.v, i, b.v)};
  }
  // the value in a register: stops the compiler re-loading it from memory for every use
  Vec pinned() const {
    Vec r = *this;
    asm("" : "+v"(r.v));
    return r;
  }
  // r[i] lane j <-> r[j] lane i: an N x N block transposed in registers (4 shuffle stages)
  static void transpose(Vec* r) {
    __m512 a[N], b[N];
    for (int i = 0; i < N; i += 2) {
      a[i] = _mm512_unpacklo_ps(r[i].v, r[i + 1].v);
      a[i + 1] = _mm512_unpackhi_ps(r[i].v, r[i + 1].v);
    }
    for (int i = 0; i < N; i += 4) {  // b[i + j]: column j (+4, +8, +12) of rows i..i+3
      b[i] = _mm512_shuffle_ps(a[i], a[i + 2], 0x44);
      b[i + 1] = _mm512_shuffle_ps(a[i], a[i + 2], 0xEE);
      b[i + 2] = _mm512_shuffle_ps(a[i + 1], a[i + 3], 0x44);
      b[i + 3] = _mm512_shuffle_ps(a[i + 1], a[i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
      const __m512 lo01 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0x88);
      const __m512 hi01 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0xDD);
      const __m512 lo23 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0x88);
      const __m512 hi23 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0xDD);
      r[j].v = _mm512_shuffle_f32x4(lo01, lo23, 0x88);
      r[j + 8].v = _mm512_shuffle_f32x4(lo01, lo23, 0xDD);
      r[j + 4].v = _mm512_shuffle_f32x4(hi01, hi23, 0x88);
      r[j + 12].v = _mm512_shuffle_f32x4(hi01, hi23, 0xDD);
    }
  }
  // lo/hi = a0 b0 a1 b1 ...: the 2N elements of a and b interleaved (inverse of even/odd)
  static void interleave(Vec a, Vec b, Vec& lo, Vec& hi) {
    const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i ih = _mm512_add_epi32(il, _mm512_set1_epi32(8));
    lo = {_mm512_permutex2var_ps(a.v, il, b.v)};
    hi = {_mm512_permutex2var_ps(a.v, ih, b.v)};
  }
};

}  // namespace
}  // namespace cpu
}  // namespace dwconv
