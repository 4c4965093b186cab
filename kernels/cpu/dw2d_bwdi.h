// Backward-input kernels: gx = conv_transpose(gy, w), computed as a gather (every gx element is
// summed in registers and written once, no read-modify-write passes).
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T>.
//
// Stride is handled by phase decomposition: gx positions i = S*q + r of one phase r see one fixed
// subset of taps, each reading gy at q + (constant offset), so every phase is a stride-1 gather.
//   NCHW: item = (n, c) plane. The M gy planes are copied once into a zero-padded scratch plane
//         (no bounds checks in the hot loop); each gx row is a list of (offset, weight) taps over
//         it. Stride 2 along W computes both column phases and interleaves them in registers.
//   NHWC: item = (n, ih) row; vectors along C, a register tile of kTile gx positions of one column
//         phase; taps checked only at the border. Kernel width compile-time for k3/k5/k7.
#pragma once

// Helpers shared by the backward passes (dw2d_bwdw.h too).
inline int64_t bwd_floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t bwd_floor_mod(int64_t a, int64_t b) { return a - bwd_floor_div(a, b) * b; }

// Per-thread scratch that only grows (one buffer per type and slot); contents are not kept
// between calls that use the same slot.
template <typename U, int Slot>
U* bwd_scratch(int64_t n) {
  thread_local std::vector<U> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
  return buf.data();
}

template <typename T>
struct Dw2dBwdi {
  using V = Vec<T>;
  static constexpr int L = V::N;
  static constexpr int kTile = 4;  // vectors of gx per register tile

  struct Tap {
    int64_t off;  // offset into the padded scratch plane(s)
    T w;
  };

  // ---- variant selection: the kernel width compiled in (NHWC) or the W-stride path (NCHW) ----
  static int nhwc_kw(const Dw2dShape& s) {
    return (s.KW == 3 || s.KW == 5 || s.KW == 7) ? static_cast<int>(s.KW) : 0;
  }

  static const char* variant(const Dw2dShape& s, Layout layout) {
    if (layout == Layout::NCHW) return s.SW == 1 ? "s1" : s.SW == 2 ? "s2" : "generic";
    if (s.M != 1) return "generic";
    switch (nhwc_kw(s)) {
      case 3: return "kw3";
      case 5: return "kw5";
      case 7: return "kw7";
      default: return "tiled";
    }
  }

  static int64_t bwdi_items(const Dw2dShape& s, Layout layout) {
    // NCHW: one (n, input channel) plane, which owns all M output channels reading it;
    // NHWC: one (n, input row)
    return layout == Layout::NCHW ? s.N * s.C : s.N * s.H;
  }

  // ------------------------------------------------------------------------------------------
  // NCHW
  // ------------------------------------------------------------------------------------------

  // Scratch geometry: gy rows/cols o that some gx position reads, shifted by a zero border.
  struct Plane {
    int64_t padT, padL, Hb, Wb;
  };
  static Plane plane_geometry(const Dw2dShape& s) {
    Plane g;
    const int64_t r_lo = bwd_floor_div(s.PT - (s.KH - 1) * s.DH, s.SH);
    const int64_t r_hi = bwd_floor_div(s.H - 1 + s.PT, s.SH);
    const int64_t c_lo = bwd_floor_div(s.PL - (s.KW - 1) * s.DW, s.SW);
    const int64_t c_hi = bwd_floor_div(s.W - 1 + s.PL, s.SW);
    g.padT = max64(0, -r_lo);
    g.padL = max64(0, -c_lo);
    g.Hb = g.padT + max64(s.OH, r_hi + 1);
    g.Wb = g.padL + max64(s.OW, c_hi + 1) + kTile * L;  // slack: a tile may read past the row
    return g;
  }

  // Tap lists per (row phase, column phase): offsets relative to scratch row u and column q,
  // where gx[ih = S*u + ph - PT][iw = S*q + rw] reads scratch[u*Wb + q + off].
  static void build_taps(const Dw2dShape& s, const Plane& g, const T* w, Tap* taps,
                         int64_t* count) {
    const int64_t per = s.M * s.KH * s.KW, KK = s.KH * s.KW;
    for (int64_t ph = 0; ph < s.SH; ++ph) {
      for (int64_t rw = 0; rw < s.SW; ++rw) {
        const int64_t list = ph * s.SW + rw;
        int64_t n = 0;
        for (int64_t j = 0; j < s.M; ++j) {
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t a = ph - kh * s.DH;
            if (bwd_floor_mod(a, s.SH) != 0) continue;
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              const int64_t b = rw + s.PL - kw * s.DW;
              if (bwd_floor_mod(b, s.SW) != 0) continue;
              taps[list * per + n++] = {j * g.Hb * g.Wb + (a / s.SH + g.padT) * g.Wb +
                                            b / s.SW + g.padL,
                                        w[j * KK + kh * s.KW + kw]};
            }
          }
        }
        count[list] = n;
      }
    }
  }

  // acc[t] = sum over taps of src[off + t*L ...]
  template <int TT>
  static void gather_tile(const T* src, const Tap* taps, int64_t ntaps, V* acc) {
    for (int t = 0; t < TT; ++t) acc[t] = V::zero();
    for (int64_t i = 0; i < ntaps; ++i) {
      const V wv = V::set1(taps[i].w);
      const T* p = src + taps[i].off;
      for (int t = 0; t < TT; ++t) acc[t] = V::fma(V::load(p + t * L), wv, acc[t]);
    }
  }

  // gx row from the scratch rows starting at src; SWc: 1, 2 or 0 (any stride, strided stores)
  template <int SWc, int TT>
  static int64_t row_tiles(const Dw2dShape& s, const T* src, const Tap* taps,
                           const int64_t* count, int64_t list0, int64_t per, T* gxrow,
                           int64_t q0, int64_t nq) {
    const int64_t step = TT * L;
    for (; q0 + step <= nq || (TT == 1 && q0 < nq); q0 += step) {
      if constexpr (SWc == 1) {
        V acc[TT];
        gather_tile<TT>(src + q0, taps + list0 * per, count[list0], acc);
        for (int t = 0; t < TT; ++t) {
          const int64_t q = q0 + t * L;
          acc[t].store(gxrow + q, static_cast<int>(min64(L, s.W - q)));
        }
      } else if constexpr (SWc == 2) {
        V a0[TT], a1[TT];
        gather_tile<TT>(src + q0, taps + list0 * per, count[list0], a0);
        gather_tile<TT>(src + q0, taps + (list0 + 1) * per, count[list0 + 1], a1);
        for (int t = 0; t < TT; ++t) {
          V lo, hi;
          V::interleave(a0[t], a1[t], lo, hi);
          const int64_t i = 2 * (q0 + t * L);
          if (i < s.W) lo.store(gxrow + i, static_cast<int>(min64(L, s.W - i)));
          if (i + L < s.W) hi.store(gxrow + i + L, static_cast<int>(min64(L, s.W - i - L)));
        }
      } else {
        for (int64_t rw = 0; rw < s.SW && rw < s.W; ++rw) {
          V acc[TT];
          gather_tile<TT>(src + q0, taps + (list0 + rw) * per, count[list0 + rw], acc);
          const int64_t nrw = (s.W - rw + s.SW - 1) / s.SW;  // gx columns of this phase
          for (int t = 0; t < TT; ++t) {
            const int64_t q = q0 + t * L;
            if (q < nrw)
              acc[t].scatter(gxrow + rw + q * s.SW, s.SW, static_cast<int>(min64(L, nrw - q)));
          }
        }
      }
    }
    return q0;
  }

  template <int SWc>
  static void nchw_plane(const Dw2dShape& s, const Plane& g, const T* buf, const Tap* taps,
                         const int64_t* count, T* gxp) {
    const int64_t per = s.M * s.KH * s.KW;
    const int64_t nq = (s.W + s.SW - 1) / s.SW;  // column positions q of phase 0
    for (int64_t ih = 0; ih < s.H; ++ih) {
      const int64_t u = (ih + s.PT) / s.SH, ph = (ih + s.PT) % s.SH;
      const T* src = buf + u * g.Wb;
      T* gxrow = gxp + ih * s.W;
      int64_t q = row_tiles<SWc, kTile>(s, src, taps, count, ph * s.SW, per, gxrow, 0, nq);
      q = row_tiles<SWc, 2>(s, src, taps, count, ph * s.SW, per, gxrow, q, nq);
      row_tiles<SWc, 1>(s, src, taps, count, ph * s.SW, per, gxrow, q, nq);
    }
  }

  static void bwdi_nchw(const Dw2dShape& s, const T* gy, const T* w, T* gx, int64_t begin,
                        int64_t end) {
    const Plane g = plane_geometry(s);
    const int64_t per = s.M * s.KH * s.KW;
    T* buf = bwd_scratch<T, 0>(s.M * g.Hb * g.Wb);
    Tap* taps = bwd_scratch<Tap, 1>(s.SH * s.SW * per);
    int64_t* count = bwd_scratch<int64_t, 2>(s.SH * s.SW);
    int64_t last_c = -1;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / s.C, c = item % s.C;
      if (c != last_c) build_taps(s, g, w + c * per, taps, count);
      last_c = c;
      // zero-bordered copy of the M gy planes
      for (int64_t j = 0; j < s.M; ++j) {
        const T* gyp = gy + ((n * s.C + c) * s.M + j) * s.OH * s.OW;
        T* bj = buf + j * g.Hb * g.Wb;
        for (int64_t r = 0; r < g.Hb; ++r) {
          T* brow = bj + r * g.Wb;
          const int64_t oh = r - g.padT;
          if (oh < 0 || oh >= s.OH) {
            for (int64_t q = 0; q < g.Wb; ++q) brow[q] = T(0);
            continue;
          }
          for (int64_t q = 0; q < g.padL; ++q) brow[q] = T(0);
          const T* grow = gyp + oh * s.OW;
          for (int64_t q = 0; q < s.OW; ++q) brow[g.padL + q] = grow[q];
          for (int64_t q = g.padL + s.OW; q < g.Wb; ++q) brow[q] = T(0);
        }
      }
      T* gxp = gx + item * s.H * s.W;
      if (s.SW == 1)
        nchw_plane<1>(s, g, buf, taps, count, gxp);
      else if (s.SW == 2)
        nchw_plane<2>(s, g, buf, taps, count, gxp);
      else
        nchw_plane<0>(s, g, buf, taps, count, gxp);
    }
  }

  // ------------------------------------------------------------------------------------------
  // NHWC, M == 1
  // ------------------------------------------------------------------------------------------

  // kTT gx positions iw = rw + S*(p + t) (t < TT), channels [c, c + nl); Checked: some taps of
  // some positions fall outside gy
  template <int KWc, int TT, bool Checked>
  static void nhwc_tile(const Dw2dShape& s, int64_t n, int64_t ih, int64_t rw, int64_t p,
                        int64_t c, int nl, const T* gy, const T* wp, T* gx) {
    const int64_t KW = KWc ? KWc : s.KW, C = s.C;
    V acc[TT];
    for (int t = 0; t < TT; ++t) acc[t] = V::zero();
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t oh = tap_source(ih, s.SH, s.PT, kh, s.DH, s.OH);
      if (oh < 0) continue;
      const T* grow = gy + (n * s.OH + oh) * s.OW * C + c;
      const T* wrow = wp + kh * KW * C + c;
      for (int64_t kw = 0; kw < KW; ++kw) {
        const int64_t b = rw + s.PL - kw * s.DW;
        if (bwd_floor_mod(b, s.SW) != 0) continue;
        const int64_t ow0 = b / s.SW + p;
        const V wv = V::load(wrow + kw * C, nl);
        const T* g = grow + ow0 * C;
        for (int t = 0; t < TT; ++t) {
          if (Checked && (ow0 + t < 0 || ow0 + t >= s.OW)) continue;
          acc[t] = V::fma(V::load(g + t * C, nl), wv, acc[t]);
        }
      }
    }
    T* dst = gx + ((n * s.H + ih) * s.W + rw + p * s.SW) * C + c;
    for (int t = 0; t < TT; ++t) acc[t].store(dst + t * s.SW * C, nl);
  }

  template <int KWc>
  static void nhwc_row(const Dw2dShape& s, int64_t n, int64_t ih, const T* gy, const T* wp,
                       T* gx) {
    const int64_t KW = KWc ? KWc : s.KW;
    for (int64_t rw = 0; rw < s.SW && rw < s.W; ++rw) {
      const int64_t np = (s.W - rw + s.SW - 1) / s.SW;  // gx columns of this phase
      // interior: positions p whose every tap of this phase lies inside gy
      int64_t lo = 0, hi = np;
      for (int64_t kw = 0; kw < KW; ++kw) {
        const int64_t b = rw + s.PL - kw * s.DW;
        if (bwd_floor_mod(b, s.SW) != 0) continue;
        lo = max64(lo, -(b / s.SW));
        hi = min64(hi, s.OW - b / s.SW);
      }
      lo = min64(lo, np);
      hi = max64(min64(hi, np), lo);
      for (int64_t c = 0; c < s.C; c += L) {
        const int nl = static_cast<int>(min64(L, s.C - c));
        int64_t p = 0;
        for (; p < lo && p < np; ++p) nhwc_tile<KWc, 1, true>(s, n, ih, rw, p, c, nl, gy, wp, gx);
        for (; p + kTile <= hi; p += kTile)
          nhwc_tile<KWc, kTile, false>(s, n, ih, rw, p, c, nl, gy, wp, gx);
        for (; p < hi; ++p) nhwc_tile<KWc, 1, false>(s, n, ih, rw, p, c, nl, gy, wp, gx);
        for (; p < np; ++p) nhwc_tile<KWc, 1, true>(s, n, ih, rw, p, c, nl, gy, wp, gx);
      }
    }
  }

  // NHWC with depth multiplier M > 1: output channels c*M + j are interleaved, so gy is gathered
  static void nhwc_row_generic(const Dw2dShape& s, int64_t n, int64_t ih, const T* gy,
                               const T* wp, T* gx) {
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
    if (layout == Layout::NCHW) return bwdi_nchw(s, gy, w, gx, begin, end);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / s.H, ih = item % s.H;
      if (s.M != 1) {
        nhwc_row_generic(s, n, ih, gy, w, gx);
        continue;
      }
      switch (nhwc_kw(s)) {
        case 3: nhwc_row<3>(s, n, ih, gy, w, gx); break;
        case 5: nhwc_row<5>(s, n, ih, gy, w, gx); break;
        case 7: nhwc_row<7>(s, n, ih, gy, w, gx); break;
        default: nhwc_row<0>(s, n, ih, gy, w, gx); break;
      }
    }
  }
};
