// Backward-weight kernels: gw = sum over batch and space of gy * x.
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T>.
#pragma once

template <typename T>
struct Dw2dBwdw {
  using V = Vec<T>;
  static constexpr int L = V::N;

  static const char* variant(const Dw2dShape&, Layout) { return "generic"; }

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
};
