// Forward kernels: y = conv(x, w) + b.
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T>.
#pragma once

template <typename T>
struct Dw2dFwd {
  using V = Vec<T>;
  static constexpr int L = V::N;

  static const char* variant(const Dw2dShape&, Layout) { return "generic"; }

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
};
