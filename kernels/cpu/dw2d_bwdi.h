// Backward-input kernels: gx = conv_transpose(gy, w).
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T>.
#pragma once

template <typename T>
struct Dw2dBwdi {
  using V = Vec<T>;
  static constexpr int L = V::N;

  static const char* variant(const Dw2dShape&, Layout) { return "generic"; }

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
};
