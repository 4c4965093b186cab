// Backward-weight kernels: gw = sum over batch and space of gy * x.
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T> and
// dw2d_bwdi.h (bwd_* helpers).
//
// Deterministic for any thread count: an item owns whole weight rows (all taps of some channels)
// and sums the batch and space in one fixed order into per-lane vector accumulators, reduced
// across lanes once at the end. Taps are processed in blocks of NT (compile-time, <= kMaxTaps)
// accumulators held in registers while gy and x stream through once per block.
//   NCHW: item = input channel c (its M output channels). Each x plane is copied once into a
//         zero-bordered, column-phase-split scratch plane (stride 2: deinterleaved with vector
//         shuffles), so every tap reads contiguous, unchecked vectors along W.
//   NHWC: item = block of L channels; a thread's range of blocks is swept together row by row.
//         Per (n, oh) up to 3 kernel rows (or chunks of them) are accumulated in registers along
//         W, with checks only at the border; each accumulator takes its terms in the same order
//         however rows are grouped.
#pragma once

template <typename T>
struct Dw2dBwdw {
  using V = Vec<T>;
  static constexpr int L = V::N;
  // accumulators per block: leaves registers for gy, x and addresses (32 zmm, 16 ymm/xmm)
  static constexpr int kMaxTaps = L >= 16 ? 24 : 12;

  // Calls f.template operator()<NT>() for the runtime nt in [1, kMaxTaps].
  template <int NT = kMaxTaps, typename F>
  static void with_nt(int64_t nt, F&& f) {
    if constexpr (NT > 1) {
      if (nt < NT) return with_nt<NT - 1>(nt, f);
    }
    f.template operator()<NT>();
  }

  // count taps split into ceil(count / kMaxTaps) blocks of near-equal size; block b = [first, +n)
  static void tap_block(int64_t count, int64_t b, int64_t& first, int64_t& n) {
    const int64_t nb = (count + kMaxTaps - 1) / kMaxTaps, q = count / nb, r = count % nb;
    first = b * q + min64(b, r);
    n = q + (b < r ? 1 : 0);
  }
  static int64_t tap_blocks(int64_t count) { return (count + kMaxTaps - 1) / kMaxTaps; }

  static const char* variant(const Dw2dShape& s, Layout layout) {
    if (layout == Layout::NCHW) return s.SW == 1 ? "s1" : s.SW == 2 ? "s2" : "generic";
    if (s.M != 1) return "generic";
    return s.KW <= kMaxTaps ? "row" : "tiled";
  }

  static int64_t bwdw_items(const Dw2dShape& s, Layout layout) {
    return layout == Layout::NCHW ? s.C : (s.C + L - 1) / L;
  }

  // ------------------------------------------------------------------------------------------
  // NCHW
  // ------------------------------------------------------------------------------------------

  // Scratch plane: row b = ih + PT, column phase ph, position q hold x[ih][q*SW + ph - PL]
  // (zero outside x); Qw positions per phase, rows RS = SW*Qw apart.
  static void fill_plane(const Dw2dShape& s, const T* xp, int64_t Hx, int64_t Qw, T* buf) {
    const int64_t SW = s.SW, RS = SW * Qw;
    for (int64_t b = 0; b < Hx; ++b) {
      T* dst = buf + b * RS;
      const int64_t ih = b - s.PT;
      int64_t q = 0;
      if (ih >= 0 && ih < s.H) {
        const T* src = xp + ih * s.W;
        if (SW == 1) {
          for (; q < s.PL; ++q) dst[q] = T(0);
          for (; q - s.PL < s.W; q += L) {  // masked loads read zeros past the row end
            V::load(src + q - s.PL, static_cast<int>(min64(L, s.W - (q - s.PL)))).store(dst + q);
          }
        } else if (SW == 2) {
          for (; 2 * q - s.PL < 0; ++q) {
            dst[q] = T(0);
            dst[Qw + q] = (2 * q + 1 - s.PL >= 0 && 2 * q + 1 - s.PL < s.W) ? src[2 * q + 1 - s.PL]
                                                                           : T(0);
          }
          for (; 2 * q - s.PL < s.W; q += L) {
            const int64_t i = 2 * q - s.PL;
            const V a = V::load(src + i, static_cast<int>(min64(L, s.W - i)));
            const V b = V::load(src + i + L, static_cast<int>(max64(0, min64(L, s.W - i - L))));
            V::even(a, b).store(dst + q);
            V::odd(a, b).store(dst + Qw + q);
          }
        } else {
          for (; q < Qw; ++q)
            for (int64_t ph = 0; ph < SW; ++ph) {
              const int64_t iw = q * SW + ph - s.PL;
              dst[ph * Qw + q] = (iw >= 0 && iw < s.W) ? src[iw] : T(0);
            }
        }
      }
      for (int64_t ph = 0; ph < SW; ++ph)
        for (int64_t i = q; i < Qw; ++i) dst[ph * Qw + i] = T(0);
    }
  }

  // acc[t] += sum over the plane of gy * x at tap offset off[t]
  template <int NT>
  static void nchw_block(const Dw2dShape& s, const T* g, const T* buf, int64_t RS,
                         const int64_t* off, V* vacc) {
    V acc[NT];
    DWCONV_BWD_UNROLL
    for (int t = 0; t < NT; ++t) acc[t] = vacc[t];
    int64_t o[NT];
    DWCONV_BWD_UNROLL
    for (int t = 0; t < NT; ++t) o[t] = off[t];
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      const T* grow = g + oh * s.OW;
      const T* xrow = buf + oh * s.SH * RS;
      int64_t ow = 0;
      for (; ow + L <= s.OW; ow += L) {
        const V gv = V::load(grow + ow);
        DWCONV_BWD_UNROLL
        for (int t = 0; t < NT; ++t) acc[t] = V::fma(gv, V::load(xrow + o[t] + ow), acc[t]);
      }
      if (ow < s.OW) {
        const int n = static_cast<int>(s.OW - ow);
        const V gv = V::load(grow + ow, n);
        DWCONV_BWD_UNROLL
        for (int t = 0; t < NT; ++t) acc[t] = V::fma(gv, V::load(xrow + o[t] + ow, n), acc[t]);
      }
    }
    DWCONV_BWD_UNROLL
    for (int t = 0; t < NT; ++t) vacc[t] = acc[t];
  }

  static constexpr int64_t kFillBytes = int64_t(16) << 10;  // scratch planes filled at once

  static void bwdw_nchw(const Dw2dShape& s, const T* gy, const T* x, T* gw, int64_t begin,
                        int64_t end) {
    const int64_t KK = s.KH * s.KW;
    const int64_t Hx = (s.OH - 1) * s.SH + (s.KH - 1) * s.DH + 1;
    const int64_t Wx = (s.OW - 1) * s.SW + (s.KW - 1) * s.DW + 1;
    // positions per phase: every tap's reach and every x column, plus a vector of slack
    const int64_t Qw = max64(Wx, s.PL + s.W) / s.SW + 1 + L;
    const int64_t RS = s.SW * Qw;
    // Small planes are copied several at a time before any is read: reading a plane right after
    // its copy stalls on store forwarding (masked loads over fresh stores), which dominated
    // 7x7 maps. Same summation order as one plane at a time.
    const int64_t plane = Hx * RS;
    const int64_t batch = max64(1, min64(s.N, kFillBytes / static_cast<int64_t>(plane * sizeof(T))));
    T* buf = bwd_scratch<T, 0>(batch * plane);
    V* vacc = bwd_scratch<V, 3>(s.M * KK);
    int64_t* off = bwd_scratch<int64_t, 2>(KK);
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw)
        off[kh * s.KW + kw] = kh * s.DH * RS + (kw * s.DW) % s.SW * Qw + (kw * s.DW) / s.SW;
    for (int64_t c = begin; c < end; ++c) {
      for (int64_t i = 0; i < s.M * KK; ++i) vacc[i] = V::zero();
      for (int64_t n0 = 0; n0 < s.N; n0 += batch) {
        const int64_t nb = min64(batch, s.N - n0);
        // the batch's x and gy planes are a channel stride apart (a new page each): ask for all
        // of them first, so their misses overlap instead of stalling one plane at a time
        if (nb > 1)
          for (int64_t i = 0; i < nb; ++i) {
            prefetch(x + ((n0 + i) * s.C + c) * s.H * s.W, s.H * s.W);
            prefetch(gy + ((n0 + i) * s.C + c) * s.M * s.OH * s.OW, s.M * s.OH * s.OW);
          }
        for (int64_t i = 0; i < nb; ++i)
          fill_plane(s, x + ((n0 + i) * s.C + c) * s.H * s.W, Hx, Qw, buf + i * plane);
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t n = n0 + i;
          for (int64_t j = 0; j < s.M; ++j) {
            const T* g = gy + ((n * s.C + c) * s.M + j) * s.OH * s.OW;
            for (int64_t b = 0; b < tap_blocks(KK); ++b) {
              int64_t t0, nt;
              tap_block(KK, b, t0, nt);
              with_nt(nt, [&]<int NT>() {
                nchw_block<NT>(s, g, buf + i * plane, RS, off + t0, vacc + j * KK + t0);
              });
            }
          }
        }
      }
      for (int64_t i = 0; i < s.M * KK; ++i) gw[c * s.M * KK + i] = vacc[i].sum();
    }
  }

  // ------------------------------------------------------------------------------------------
  // NHWC, M == 1
  // ------------------------------------------------------------------------------------------

  template <bool Full>
  static V ld(const T* p, int nl) {
    if constexpr (Full) return V::load(p);
    else return V::load(p, nl);
  }

  // Output columns shared per block at unit dilation: U columns of gy at once, so x column
  // u*SW + t serves tap t of output u and is loaded once for every (u, t) it serves:
  // (U-1)*SW + NT loads of x for U*NT FMAs instead of U*NT. Each accumulator still takes its
  // terms in increasing ow (the same sum, bit for bit). Returns the first column not done.
  static constexpr int kBlockCols = L >= 16 ? 4 : 2;  // registers: NR*NT accumulators + U gy
  template <int NR, int NT, int SWc, bool Full>
  DWCONV_BWD_INLINE static int64_t nhwc_block(const Dw2dShape& s, const T* const* xrows,
                                              const T* grow, int64_t lo, int64_t hi, int64_t kw0,
                                              int nl, V* acc) {
    constexpr int U = kBlockCols, NJ = (U - 1) * SWc + NT;
    const int64_t C = s.C;
    int64_t ow = lo;
    for (; ow + U <= hi; ow += U) {
      V g[U];
      DWCONV_BWD_UNROLL
      for (int u = 0; u < U; ++u) g[u] = ld<Full>(grow + (ow + u) * C, nl);
      const int64_t iw0 = ow * SWc - s.PL + kw0;
      DWCONV_BWD_UNROLL
      for (int r = 0; r < NR; ++r) {
        const T* xp = xrows[r] + iw0 * C;
        DWCONV_BWD_UNROLL
        for (int j = 0; j < NJ; ++j) {
          const V xv = ld<Full>(xp + j * C, nl);
          DWCONV_BWD_UNROLL
          for (int u = 0; u < U; ++u) {
            const int t = j - u * SWc;
            if (t >= 0 && t < NT) acc[r * NT + t] = V::fma(g[u], xv, acc[r * NT + t]);
          }
        }
      }
    }
    return ow;
  }

  // taps kw0 .. kw0+NT-1 of NR kernel rows (x rows xrows[r], accumulators KW apart) over
  // output columns [lo, hi); Full: all L channels are active (no masks)
  template <int NR, int NT, bool Checked, bool Full>
  static void nhwc_chunk(const Dw2dShape& s, const T* const* xrows, const T* grow, int64_t lo,
                         int64_t hi, int64_t kw0, int nl, V* vacc) {
    const int64_t C = s.C;
    V acc[NR * NT];
    DWCONV_BWD_UNROLL
    for (int r = 0; r < NR; ++r) {
      DWCONV_BWD_UNROLL
      for (int t = 0; t < NT; ++t) acc[r * NT + t] = vacc[r * s.KW + t];
    }
    int64_t ow = lo;
    if constexpr (!Checked) {
      if (s.DW == 1 && s.SW == 1)
        ow = nhwc_block<NR, NT, 1, Full>(s, xrows, grow, lo, hi, kw0, nl, acc);
      else if (s.DW == 1 && s.SW == 2)
        ow = nhwc_block<NR, NT, 2, Full>(s, xrows, grow, lo, hi, kw0, nl, acc);
    }
    for (; ow < hi; ++ow) {
      const V g = ld<Full>(grow + ow * C, nl);
      const int64_t iw0 = ow * s.SW - s.PL + kw0 * s.DW;
      DWCONV_BWD_UNROLL
      for (int r = 0; r < NR; ++r) {
        const T* xp = xrows[r] + iw0 * C;
        DWCONV_BWD_UNROLL
        for (int t = 0; t < NT; ++t) {
          if (Checked && (iw0 + t * s.DW < 0 || iw0 + t * s.DW >= s.W)) continue;
          acc[r * NT + t] = V::fma(g, ld<Full>(xp + t * s.DW * C, nl), acc[r * NT + t]);
        }
      }
    }
    DWCONV_BWD_UNROLL
    for (int r = 0; r < NR; ++r) {
      DWCONV_BWD_UNROLL
      for (int t = 0; t < NT; ++t) vacc[r * s.KW + t] = acc[r * NT + t];
    }
  }

  // Kernel rows swept together (gy loaded once for all of them): as many as keep their NR * NT
  // accumulators in registers, at most 3.
  static constexpr int rows_per_sweep(int nt) {
    return 3 * nt <= kMaxTaps ? 3 : 2 * nt <= kMaxTaps ? 2 : 1;
  }

  // Rows the next output row reads for the first time: its gy row and the SH x rows entering
  // its window (fewer at the borders); the first sweep of a row asks for them block by block.
  struct NextRows {
    const T* rows[3];  // row starts, at channel 0
    int64_t len[3];    // pixels
    int n = 0;
  };

  // chunk over all columns of every channel block in [begin, end): border columns checked
  template <int NR, int NT>
  static void nhwc_sweep(const Dw2dShape& s, const T* const* xrows, const T* grow, int64_t lo,
                         int64_t hi, int64_t kw0, int64_t begin, int64_t end, V* vacc,
                         const NextRows& next) {
    const int64_t C = s.C, KK = s.KH * s.KW;
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c = cb * L;
      const int nl = static_cast<int>(min64(L, C - c));
      for (int i = 0; i < next.n; ++i) prefetch_strided(next.rows[i] + c, next.len[i], C);
      const T* xr[NR];
      for (int r = 0; r < NR; ++r) xr[r] = xrows[r] + c;
      V* acc = vacc + (cb - begin) * KK + kw0;
      if (nl == L) {
        nhwc_chunk<NR, NT, true, true>(s, xr, grow + c, 0, lo, kw0, nl, acc);
        nhwc_chunk<NR, NT, false, true>(s, xr, grow + c, lo, hi, kw0, nl, acc);
        nhwc_chunk<NR, NT, true, true>(s, xr, grow + c, hi, s.OW, kw0, nl, acc);
      } else {
        nhwc_chunk<NR, NT, true, false>(s, xr, grow + c, 0, lo, kw0, nl, acc);
        nhwc_chunk<NR, NT, false, false>(s, xr, grow + c, lo, hi, kw0, nl, acc);
        nhwc_chunk<NR, NT, true, false>(s, xr, grow + c, hi, s.OW, kw0, nl, acc);
      }
    }
  }

  // Channel blocks [begin, end) together, so each (n, oh) row is read as one contiguous run;
  // every channel's sum still runs in the same order whatever the item range. accumulate: the
  // sums continue from gwp's (a batch summed image by image gives the same bits as at once).
  static void bwdw_nhwc(const Dw2dShape& s, const T* gy, const T* x, T* gwp, int64_t begin,
                        int64_t end, bool accumulate = false) {
    const bool ask_next = prefetch_rows<T>(s);
    const int64_t C = s.C, KK = s.KH * s.KW, nblk = tap_blocks(s.KW);
    V* vacc = bwd_scratch<V, 3>((end - begin) * KK);
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c = cb * L;
      const int nl = static_cast<int>(min64(L, C - c));
      for (int64_t i = 0; i < KK; ++i)
        vacc[(cb - begin) * KK + i] = accumulate ? V::load(gwp + i * C + c, nl) : V::zero();
    }
    int64_t* chunk = bwd_scratch<int64_t, 2>(4 * nblk);  // kw0, nt, lo, hi per chunk
    for (int64_t b = 0; b < nblk; ++b) {
      int64_t* ch = chunk + 4 * b;
      tap_block(s.KW, b, ch[0], ch[1]);
      // columns where every tap of the chunk is inside x
      interior_range(s.OW, s.SW, s.PL - ch[0] * s.DW, ch[1], s.DW, s.W, ch[2], ch[3]);
    }
    for (int64_t n = 0; n < s.N; ++n) {
      for (int64_t oh = 0; oh < s.OH; ++oh) {
        const T* grow = gy + (n * s.OH + oh) * s.OW * C;
        NextRows next;
        if (ask_next && oh + 1 < s.OH && s.SH <= 2) {
          next.rows[next.n] = grow + s.OW * C;
          next.len[next.n++] = s.OW;
          for (int64_t r = 0; r < s.SH; ++r) {
            const int64_t ih = entering_row(s, oh, r);
            if (ih >= 0) {
              next.rows[next.n] = x + (n * s.H + ih) * s.W * C;
              next.len[next.n++] = s.W;
            }
          }
        }
        // the kernel rows inside x: a contiguous range [kh0, kh1)
        int64_t kh0 = 0;
        while (kh0 < s.KH && tap_index(oh, s.SH, s.PT, kh0, s.DH, s.H) < 0) ++kh0;
        int64_t kh1 = kh0;
        while (kh1 < s.KH && tap_index(oh, s.SH, s.PT, kh1, s.DH, s.H) >= 0) ++kh1;
        for (int64_t b = 0; b < nblk; ++b) {
          const int64_t *ch = chunk + 4 * b, kw0 = ch[0], lo = ch[2], hi = ch[3];
          with_nt(ch[1], [&]<int NT>() {
            constexpr int kRows = rows_per_sweep(NT);
            for (int64_t kh = kh0; kh < kh1;) {
              const int nr = static_cast<int>(min64(kRows, kh1 - kh));
              const T* xr[3];
              for (int r = 0; r < nr; ++r)
                xr[r] = x + (n * s.H + oh * s.SH - s.PT + (kh + r) * s.DH) * s.W * C;
              V* acc = vacc + kh * s.KW;
              if (nr == 3) {
                if constexpr (kRows >= 3)
                  nhwc_sweep<3, NT>(s, xr, grow, lo, hi, kw0, begin, end, acc, next);
              } else if (nr == 2) {
                if constexpr (kRows >= 2)
                  nhwc_sweep<2, NT>(s, xr, grow, lo, hi, kw0, begin, end, acc, next);
              } else {
                nhwc_sweep<1, NT>(s, xr, grow, lo, hi, kw0, begin, end, acc, next);
              }
              next.n = 0;  // asked for once per output row
              kh += nr;
            }
          });
        }
      }
    }
    for (int64_t cb = begin; cb < end; ++cb) {
      const int64_t c = cb * L;
      const int nl = static_cast<int>(min64(L, C - c));
      for (int64_t i = 0; i < KK; ++i) vacc[(cb - begin) * KK + i].store(gwp + i * C + c, nl);
    }
  }

  // NHWC with depth multiplier M > 1: output channels c*M + j are interleaved, so gy is gathered
  static void bwdw_nhwc_generic(const Dw2dShape& s, int64_t c, const T* gy, const T* x,
                                T* gwp) {
    const int64_t C = s.C, M = s.M, KK = s.KH * s.KW, CO = s.cout();
    const int nl = static_cast<int>(min64(L, C - c));
    for (int64_t j = 0; j < M; ++j) {
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          V acc = V::zero();
          for (int64_t n = 0; n < s.N; ++n) {
            for (int64_t oh = 0; oh < s.OH; ++oh) {
              const int64_t ih = tap_index(oh, s.SH, s.PT, kh, s.DH, s.H);
              if (ih < 0) continue;
              const T* xrow = x + (n * s.H + ih) * s.W * C + c;
              const T* grow = gy + (n * s.OH + oh) * s.OW * CO + c * M + j;
              for (int64_t ow = 0; ow < s.OW; ++ow) {
                const int64_t iw = tap_index(ow, s.SW, s.PL, kw, s.DW, s.W);
                if (iw >= 0)
                  acc = V::fma(V::gather(grow + ow * CO, M, nl), V::load(xrow + iw * C, nl), acc);
              }
            }
          }
          acc.store(gwp + (j * KK + kh * s.KW + kw) * C + c, nl);
        }
      }
    }
  }

  static void bwdw(const Dw2dShape& s, Layout layout, const T* gy, const T* x, T* gw,
                   int64_t begin, int64_t end) {
    if (layout == Layout::NCHW) return bwdw_nchw(s, gy, x, gw, begin, end);
    if (s.M == 1) return bwdw_nhwc(s, gy, x, gw, begin, end);
    for (int64_t item = begin; item < end; ++item) bwdw_nhwc_generic(s, item * L, gy, x, gw);
  }
};
