// Depthwise conv2d kernels, written once over Vec<T> and compiled once per ISA (dw2d_<isa>.cpp).
// Everything here has internal linkage so code built with one ISA's flags never leaks into another
// translation unit; each ISA file exports only its kernel table.
//
// Conventions: x [N][C][H][W] (NCHW) or [N][H][W][C] (NHWC), y likewise with C*M channels,
// weights as documented in dw2d.h. "Interior" output positions are those whose every tap lies
// inside the input: they run vectorised without bounds checks; the border runs a checked path.
#pragma once
#include <cstdint>

#include "dw2d.h"

namespace dwconv {
namespace cpu {
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceil_div_nonneg(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Output positions o in [0, O) with 0 <= o*S + off < I, as [lo, hi) (empty when lo == hi).
inline void valid_range(int64_t O, int64_t S, int64_t off, int64_t I, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div_nonneg(-off, S);
  hi = (I - 1 - off) < 0 ? 0 : (I - 1 - off) / S + 1;
  lo = min64(lo, O);
  hi = max64(min64(hi, O), lo);
}

// Output positions for which every one of K taps (offsets off + k*D) is inside [0, I).
inline void interior_range(int64_t O, int64_t S, int64_t P, int64_t K, int64_t D, int64_t I,
                           int64_t& lo, int64_t& hi) {
  int64_t lo0, hi0, lo1, hi1;
  valid_range(O, S, -P, I, lo0, hi0);
  valid_range(O, S, -P + (K - 1) * D, I, lo1, hi1);
  lo = max64(lo0, lo1);
  hi = max64(min64(hi0, hi1), lo);
}

// The input row or column index that output position o, tap k reads; -1 when outside [0, I).
inline int64_t tap_index(int64_t o, int64_t S, int64_t P, int64_t k, int64_t D, int64_t I) {
  const int64_t i = o * S - P + k * D;
  return (i >= 0 && i < I) ? i : -1;
}

// The output position that input position i, tap k feeds; -1 when none (stride phase or range).
inline int64_t tap_source(int64_t i, int64_t S, int64_t P, int64_t k, int64_t D, int64_t O) {
  const int64_t t = i + P - k * D;
  if (t < 0 || t % S != 0) return -1;
  const int64_t o = t / S;
  return o < O ? o : -1;
}

template <typename T>
struct Dw2d {
  using V = Vec<T>;
  static constexpr int L = V::N;

  // ---------------------------------------------------------------- forward
  static int64_t fwd_items(const Dw2dShape& s, Layout layout) {
    // NCHW: one (n, output channel) plane; NHWC: one (n, output row)
    return layout == Layout::NCHW ? s.N * s.cout() : s.N * s.OH;
  }

  static void fwd_nchw_plane(const Dw2dShape& s, const T* xp, const T* wp, T bias, T* yp) {
    int64_t lo, hi;
    interior_range(s.OW, s.SW, s.PL, s.KW, s.DW, s.W, lo, hi);
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      T* yrow = yp + oh * s.OW;
      // checked border columns
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        if (ow == lo) ow = hi;
        if (ow >= s.OW) break;
        T acc = bias;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = tap_index(oh, s.SH, s.PT, kh, s.DH, s.H);
          if (ih < 0) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t iw = tap_index(ow, s.SW, s.PL, kw, s.DW, s.W);
            if (iw >= 0) acc += xp[ih * s.W + iw] * wp[kh * s.KW + kw];
          }
        }
        yrow[ow] = acc;
      }
      // vectorised interior columns
      for (int64_t ow = lo; ow < hi; ow += L) {
        const int n = static_cast<int>(min64(L, hi - ow));
        V acc = V::set1(bias);
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = tap_index(oh, s.SH, s.PT, kh, s.DH, s.H);
          if (ih < 0) continue;
          const T* xrow = xp + ih * s.W + ow * s.SW - s.PL;
          for (int64_t kw = 0; kw < s.KW; ++kw)
            acc = V::fma(V::gather(xrow + kw * s.DW, s.SW, n), V::set1(wp[kh * s.KW + kw]), acc);
        }
        acc.store(yrow + ow, n);
      }
    }
  }

  static void fwd_nhwc_row(const Dw2dShape& s, int64_t n, int64_t oh, const T* x, const T* wp,
                           const T* b, T* y) {
    const int64_t C = s.C, M = s.M, KK = s.KH * s.KW, CO = s.cout();
    for (int64_t ow = 0; ow < s.OW; ++ow) {
      T* yo = y + ((n * s.OH + oh) * s.OW + ow) * CO;
      for (int64_t j = 0; j < M; ++j) {
        for (int64_t c = 0; c < C; c += L) {
          const int nl = static_cast<int>(min64(L, C - c));
          V acc = b ? V::gather(b + c * M + j, M, nl) : V::zero();
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t ih = tap_index(oh, s.SH, s.PT, kh, s.DH, s.H);
            if (ih < 0) continue;
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const int64_t iw = tap_index(ow, s.SW, s.PL, kw, s.DW, s.W);
              if (iw < 0) continue;
              const T* xv = x + ((n * s.H + ih) * s.W + iw) * C + c;
              const T* wv = wp + (j * KK + kh * s.KW + kw) * C + c;
              acc = V::fma(V::load(xv, nl), V::load(wv, nl), acc);
            }
          }
          acc.scatter(yo + c * M + j, M, nl);
        }
      }
    }
  }

  static void fwd(const Dw2dShape& s, Layout layout, const T* x, const T* w, const T* b, T* y,
                  int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      if (layout == Layout::NCHW) {
        const int64_t n = item / s.cout(), co = item % s.cout(), c = co / s.M;
        fwd_nchw_plane(s, x + (n * s.C + c) * s.H * s.W, w + co * s.KH * s.KW, b ? b[co] : T(0),
                       y + item * s.OH * s.OW);
      } else {
        fwd_nhwc_row(s, item / s.OH, item % s.OH, x, w, b, y);
      }
    }
  }

  // --------------------------------------------------------- backward-input
  static int64_t bwdi_items(const Dw2dShape& s, Layout layout) {
    // NCHW: one (n, input channel) plane, which owns all M output channels reading it;
    // NHWC: one (n, input row)
    return layout == Layout::NCHW ? s.N * s.C : s.N * s.H;
  }

  // gx plane = sum over j of the transposed conv of gy plane (c*M + j); scattered from outputs
  static void bwdi_nchw_plane(const Dw2dShape& s, const T* gyp, const T* w, T* gxp) {
    for (int64_t i = 0; i < s.H * s.W; ++i) gxp[i] = T(0);
    int64_t lo, hi;
    interior_range(s.OW, s.SW, s.PL, s.KW, s.DW, s.W, lo, hi);
    for (int64_t j = 0; j < s.M; ++j) {
      const T* g = gyp + j * s.OH * s.OW;
      const T* wj = w + j * s.KH * s.KW;
      for (int64_t oh = 0; oh < s.OH; ++oh) {
        const T* grow = g + oh * s.OW;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = tap_index(oh, s.SH, s.PT, kh, s.DH, s.H);
          if (ih < 0) continue;
          T* gxrow = gxp + ih * s.W;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const T wv = wj[kh * s.KW + kw];
            for (int64_t ow = 0; ow < s.OW; ++ow) {
              if (ow == lo) ow = hi;
              if (ow >= s.OW) break;
              const int64_t iw = tap_index(ow, s.SW, s.PL, kw, s.DW, s.W);
              if (iw >= 0) gxrow[iw] += grow[ow] * wv;
            }
            for (int64_t ow = lo; ow < hi; ow += L) {
              const int n = static_cast<int>(min64(L, hi - ow));
              T* dst = gxrow + ow * s.SW - s.PL + kw * s.DW;
              V::fma(V::load(grow + ow, n), V::set1(wv), V::gather(dst, s.SW, n))
                  .scatter(dst, s.SW, n);
            }
          }
        }
      }
    }
  }

  static void bwdi_nhwc_row(const Dw2dShape& s, int64_t n, int64_t ih, const T* gy, const T* wp,
                            T* gx) {
    const int64_t C = s.C, M = s.M, KK = s.KH * s.KW, CO = s.cout();
    for (int64_t iw = 0; iw < s.W; ++iw) {
      T* gxo = gx + ((n * s.H + ih) * s.W + iw) * C;
      for (int64_t c = 0; c < C; c += L) {
        const int nl = static_cast<int>(min64(L, C - c));
        V acc = V::zero();
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t oh = tap_source(ih, s.SH, s.PT, kh, s.DH, s.OH);
          if (oh < 0) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t ow = tap_source(iw, s.SW, s.PL, kw, s.DW, s.OW);
            if (ow < 0) continue;
            const T* gv = gy + ((n * s.OH + oh) * s.OW + ow) * CO + c * M;
            for (int64_t j = 0; j < M; ++j)
              acc = V::fma(V::gather(gv + j, M, nl),
                           V::load(wp + (j * KK + kh * s.KW + kw) * C + c, nl), acc);
          }
        }
        acc.store(gxo + c, nl);
      }
    }
  }

  static void bwdi(const Dw2dShape& s, Layout layout, const T* gy, const T* w, T* gx,
                   int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      if (layout == Layout::NCHW) {
        const int64_t n = item / s.C, c = item % s.C;
        bwdi_nchw_plane(s, gy + (n * s.cout() + c * s.M) * s.OH * s.OW,
                        w + c * s.M * s.KH * s.KW, gx + item * s.H * s.W);
      } else {
        bwdi_nhwc_row(s, item / s.H, item % s.H, gy, w, gx);
      }
    }
  }

  // -------------------------------------------------------- backward-weight
  static constexpr int kTapBlock = 8;  // weight taps accumulated at once (registers)

  static int64_t bwdw_items(const Dw2dShape& s, Layout layout) {
    // NCHW: one output channel; NHWC: one block of L input channels (all M multipliers).
    // Each item sums over the whole batch in a fixed order: deterministic for any thread count.
    return layout == Layout::NCHW ? s.cout() : (s.C + L - 1) / L;
  }

  static void bwdw_nchw_channel(const Dw2dShape& s, int64_t co, const T* gy, const T* x, T* gw) {
    const int64_t c = co / s.M;
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        int64_t lo, hi;
        valid_range(s.OW, s.SW, -s.PL + kw * s.DW, s.W, lo, hi);
        V vacc = V::zero();
        for (int64_t n = 0; n < s.N; ++n) {
          const T* g = gy + (n * s.cout() + co) * s.OH * s.OW;
          const T* xp = x + (n * s.C + c) * s.H * s.W;
          for (int64_t oh = 0; oh < s.OH; ++oh) {
            const int64_t ih = tap_index(oh, s.SH, s.PT, kh, s.DH, s.H);
            if (ih < 0) continue;
            const T* grow = g + oh * s.OW;
            const T* xrow = xp + ih * s.W - s.PL + kw * s.DW;
            for (int64_t ow = lo; ow < hi; ow += L) {
              const int nl = static_cast<int>(min64(L, hi - ow));
              vacc = V::fma(V::load(grow + ow, nl), V::gather(xrow + ow * s.SW, s.SW, nl), vacc);
            }
          }
        }
        gw[co * s.KH * s.KW + kh * s.KW + kw] = vacc.sum();
      }
    }
  }

  static void bwdw_nhwc_block(const Dw2dShape& s, int64_t c, const T* gy, const T* x, T* gwp) {
    const int64_t C = s.C, M = s.M, KK = s.KH * s.KW, CO = s.cout();
    const int nl = static_cast<int>(min64(L, C - c));
    for (int64_t j = 0; j < M; ++j) {
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        for (int64_t kw0 = 0; kw0 < s.KW; kw0 += kTapBlock) {
          const int nt = static_cast<int>(min64(kTapBlock, s.KW - kw0));
          V acc[kTapBlock];
          for (int t = 0; t < kTapBlock; ++t) acc[t] = V::zero();
          for (int64_t n = 0; n < s.N; ++n) {
            for (int64_t oh = 0; oh < s.OH; ++oh) {
              const int64_t ih = tap_index(oh, s.SH, s.PT, kh, s.DH, s.H);
              if (ih < 0) continue;
              const T* xrow = x + (n * s.H + ih) * s.W * C + c;
              const T* grow = gy + (n * s.OH + oh) * s.OW * CO + c * M + j;
              for (int64_t ow = 0; ow < s.OW; ++ow) {
                const V g = V::gather(grow + ow * CO, M, nl);
                for (int t = 0; t < nt; ++t) {
                  const int64_t iw = tap_index(ow, s.SW, s.PL, kw0 + t, s.DW, s.W);
                  if (iw >= 0) acc[t] = V::fma(g, V::load(xrow + iw * C, nl), acc[t]);
                }
              }
            }
          }
          for (int t = 0; t < nt; ++t) acc[t].store(gwp + (j * KK + kh * s.KW + kw0 + t) * C + c, nl);
        }
      }
    }
  }

  static void bwdw(const Dw2dShape& s, Layout layout, const T* gy, const T* x, T* gw,
                   int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      if (layout == Layout::NCHW)
        bwdw_nchw_channel(s, item, gy, x, gw);
      else
        bwdw_nhwc_block(s, item * L, gy, x, gw);
    }
  }

  static Dw2dKernels<T> table(const char* isa) {
    return {isa, L, fwd_items, fwd, bwdi_items, bwdi, bwdw_items, bwdw};
  }
};

}  // namespace
}  // namespace cpu
}  // namespace dwconv
