// Forward kernels: y = conv(x, w) + b.
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T>.
//
// One register-blocked template, instantiated per variant (Dw2dFwd::pick):
//   k3s1 k3s2 k5s1 k5s2 k7s1 k7s2  square kernel and stride known at compile time, dilation 1:
//                                  the loops inside one tap column (NCHW) or kernel row (NHWC)
//                                  unroll, with that column's/row's weights in registers
//   klarge                         kernel sizes >= 13, dilation 1, sizes read at run time, with
//                                  taller blocks and unguarded inner rows
//   generic                        everything else (any kernel, stride, dilation)
// NCHW: a block of RH output rows x RW vectors of L output columns. For each tap column kw, every
//   input row of the block is loaded once and feeds each output row that uses it (with that row's
//   weight): RH*RW FMAs per RW loads. Stride-2 columns are deinterleaved with permutes
//   (Vec::even/odd), the even and odd halves serving the taps kw and kw + 1.
// NHWC: a block of R output pixels of one channel vector. Taps slide along the input row in
//   groups (all KW taps for fixed sizes): each input pixel is loaded once per group and feeds
//   every (pixel, tap) pair of the group that reads it.
// Borders run the same blocks: NCHW with masked loads (lanes outside the row read zero), NHWC by
// skipping the input pixels outside the row; no padding copy is ever made. A last row or column
// block that would be partial instead overlaps its neighbour inside the same work item (the
// overlapped outputs are written twice by the same thread), so blocks keep their full size.
#pragma once

// Compile-time description of one variant; 0 means "read from the shape at run time".
// SW is 1, 2 or 0 (any stride, gathered columns); D1: dilation 1 in both dimensions.
template <int KH_, int KW_, int SH_, int SW_, bool D1_>
struct FwdSpec {
  static constexpr int KH = KH_, KW = KW_, SH = SH_, SW = SW_;
  static constexpr bool D1 = D1_;
  static constexpr bool kFixed = KH > 0 && KW > 0 && SH > 0 && SW > 0 && D1;
};

// A compile-time flag passed as an argument (this header is included inside a namespace, so it
// cannot include <type_traits>).
template <bool B>
struct FwdFlag {
  static constexpr bool value = B;
};

template <typename T>
struct Dw2dFwd {
  using V = Vec<T>;
  static constexpr int L = V::N;
  static constexpr bool kWide = L >= 16;  // 32 vector registers (AVX-512) rather than 16

  // The variant's sizes: compile-time constants where it has them.
  template <class Sp>
  struct Geo {
    int64_t KH, KW, SH, SW, DH, DW;
    explicit Geo(const Dw2dShape& s)
        : KH(Sp::KH ? Sp::KH : s.KH),
          KW(Sp::KW ? Sp::KW : s.KW),
          SH(Sp::SH ? Sp::SH : s.SH),
          SW(Sp::SW ? Sp::SW : s.SW),
          DH(Sp::D1 ? 1 : s.DH),
          DW(Sp::D1 ? 1 : s.DW) {}
  };

  static int clamp_lane(int64_t i) { return static_cast<int>(i < 0 ? 0 : (i > L ? L : i)); }

  // --------------------------------------------------------------------------------- NCHW
  template <class Sp>
  struct NchwBlocking {
    // output rows per block (7 divides the usual 7, 14, 28, 56, 112), within the registers
    // left by RH*RW accumulators, a column of KH weights and RW input vectors
    static constexpr int RH = kWide ? (Sp::kFixed ? 7 : 8) : (Sp::KH > 0 && Sp::KH <= 5 ? 4 : 3);
    static constexpr int RW = 2;  // vectors per block
  };

  // One tap's column loads for a vector of L outputs: input elements pos + l*SW of a row. CHECKED
  // loads read only the lanes in mask m (for SW == 2: elements m of the first L and m2 of the
  // next L), the others read zero. Made once per tap column, used for every row of a block.
  struct ColTap {
    int64_t pos;
    typename V::Mask m, m2;
  };

  template <class Sp, bool CHECKED>
  static ColTap col_tap(int64_t pos, int64_t sw, int64_t W, int nl) {
    ColTap c{pos, {}, {}};
    if constexpr (CHECKED) {
      if constexpr (Sp::SW == 1) {
        c.m = V::mask_range(clamp_lane(-pos), clamp_lane(min64(nl, W - pos)));
      } else if constexpr (Sp::SW == 2) {
        const int64_t hi = min64(2 * nl, W - pos);
        c.m = V::mask_range(clamp_lane(-pos), clamp_lane(hi));
        c.m2 = V::mask_range(clamp_lane(-pos - L), clamp_lane(hi - L));
      } else {
        const int64_t lo = pos >= 0 ? 0 : ceil_div_nonneg(-pos, sw);
        const int64_t hi = W - pos <= 0 ? 0 : ceil_div_nonneg(W - pos, sw);
        c.m = V::mask_range(clamp_lane(lo), clamp_lane(min64(nl, hi)));
      }
    }
    return c;
  }

  // ev: the tap's L lanes; od: the next tap's (stride 2 and dilation 1 only, else unused).
  struct Cols {
    V ev, od;
  };
  template <class Sp, bool CHECKED>
  static Cols load_cols(const T* row, const ColTap& c, int64_t sw) {
    const T* p = row + c.pos;
    if constexpr (Sp::SW == 1) {
      const V a = CHECKED ? V::load_mask(p, c.m) : V::load(p);
      return {a, a};
    } else if constexpr (Sp::SW == 2) {
      const V a = CHECKED ? V::load_mask(p, c.m) : V::load(p);
      const V b = CHECKED ? V::load_mask(p + L, c.m2) : V::load(p + L);
      return {V::even(a, b), Sp::D1 ? V::odd(a, b) : a};
    } else {
      const V a = CHECKED ? V::gather_mask(p, sw, c.m) : V::gather(p, sw);
      return {a, a};
    }
  }

  // Whether the L-lane vector at output column c reads only inside the row, one element past
  // the last lane included for SW == 2 (the deinterleaving loads read 2L elements).
  template <class Sp>
  static bool column_inside(const Dw2dShape& s, const Geo<Sp>& g, int64_t c) {
    const int64_t first = c * g.SW - s.PL;
    const int64_t last = (c + L - 1) * g.SW - s.PL + (g.KW - 1) * g.DW + (Sp::SW == 2 ? 1 : 0);
    return first >= 0 && last < s.W;
  }

  // RH output rows from oh0 x RW vectors at output columns col[v]. CHECKED: a vector reads outside
  // its row or has only nl < L lanes (then RW == 1); ROWS: some input row is outside the plane.
  template <class Sp, int RH, int RW, bool CHECKED, bool ROWS>
  [[gnu::always_inline]] static inline void nchw_block(const Dw2dShape& s, const T* xp,
                                                       const T* wp, V bias, T* yp, int64_t oh0,
                                                       const int64_t* col, int nl) {
    const Geo<Sp> g(s);
    const int64_t W = s.W;
    V acc[RH][RW];
#pragma GCC unroll 8
    for (int r = 0; r < RH; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < RW; ++v) acc[r][v] = bias;
    // block input rows t = 0..rows-1 (row ih0 + t); output row r uses tap kh at t = r*SH + kh*DH
    const int64_t ih0 = oh0 * g.SH - s.PT;
    const int64_t rows = (RH - 1) * g.SH + (g.KH - 1) * g.DH + 1;
    const int64_t t_lo = max64(0, -ih0), t_hi = min64(rows, s.H - ih0);
    constexpr bool kPair = Sp::SW == 2 && Sp::D1;  // odd lanes serve tap kw + 1

    // one tap column (kw, and kw + 1 for kPair): every valid input row into every output row
    auto column = [&](int64_t kw) {
      ColTap ct[RW];
#pragma GCC unroll 4
      for (int v = 0; v < RW; ++v)
        ct[v] = col_tap<Sp, CHECKED>(col[v] * g.SW - s.PL + kw * g.DW, g.SW, W, nl);
      const bool second = kPair && kw + 1 < g.KW;
      // input row t into output row r at tap kh, with weights w0 (tap kw) and w1 (tap kw + 1)
      // GUARD false: the caller knows every output row r uses row t
      auto row = [&](int64_t t, auto&& weight, auto guard) {
        Cols xc[RW];
        const T* xr = xp + (ih0 + t) * W;
#pragma GCC unroll 4
        for (int v = 0; v < RW; ++v) {
          xc[v] = load_cols<Sp, CHECKED>(xr, ct[v], g.SW);
          xc[v].ev = xc[v].ev.pinned();
          if (kPair) xc[v].od = xc[v].od.pinned();
        }
#pragma GCC unroll 8
        for (int r = 0; r < RH; ++r) {
          const int64_t d = t - r * g.SH;  // = kh * DH when output row r uses input row t
          if (decltype(guard)::value && (d < 0 || d % g.DH != 0 || d / g.DH >= g.KH)) continue;
          const int64_t kh = d / g.DH;
          const V w0 = weight(kh, 0);
#pragma GCC unroll 4
          for (int v = 0; v < RW; ++v) acc[r][v] = V::fma(xc[v].ev, w0, acc[r][v]);
          if (kPair && second) {
            const V w1 = weight(kh, 1);
#pragma GCC unroll 4
            for (int v = 0; v < RW; ++v) acc[r][v] = V::fma(xc[v].od, w1, acc[r][v]);
          }
        }
      };
      constexpr FwdFlag<true> guarded{};
      constexpr FwdFlag<false> unguarded{};
      if constexpr (Sp::kFixed) {
        // tap columns of weights in registers; rows unrolled, so every kh above is a constant
        constexpr int KH = Sp::KH, KW = Sp::KW;
        V wc[KH], wc1[KH];
#pragma GCC unroll 8
        for (int kh = 0; kh < KH; ++kh) {
          wc[kh] = V::set1(wp[kh * KW + kw]);
          wc1[kh] = kPair && kw + 1 < KW ? V::set1(wp[kh * KW + kw + 1]) : wc[kh];
        }
        auto weight = [&](int64_t kh, int which) { return which ? wc1[kh] : wc[kh]; };
        constexpr int kRows = (RH - 1) * Sp::SH + KH;
#pragma GCC unroll 16
        for (int t = 0; t < kRows; ++t)
          if (!ROWS || (t >= t_lo && t < t_hi)) row(t, weight, guarded);
      } else {
        auto weight = [&](int64_t kh, int which) { return V::set1(wp[kh * g.KW + kw + which]); };
        // with dilation 1, rows [m0, m1) feed every output row of the block
        int64_t m0 = t_hi, m1 = t_hi;
        if (Sp::D1) {
          m0 = min64(max64((RH - 1) * g.SH, t_lo), t_hi);
          m1 = min64(max64(g.KH, m0), t_hi);
        }
        for (int64_t t = t_lo; t < m0; ++t) row(t, weight, guarded);
        for (int64_t t = m0; t < m1; ++t) row(t, weight, unguarded);
        for (int64_t t = m1; t < t_hi; ++t) row(t, weight, guarded);
      }
    };
    // a loop, not unrolled: one unrolled tap column is as much straight-line code as registers hold
#pragma GCC unroll 1
    for (int64_t kw = 0; kw < g.KW; kw += kPair ? 2 : 1) column(kw);
#pragma GCC unroll 8
    for (int r = 0; r < RH; ++r) {
      T* yr = yp + (oh0 + r) * s.OW;
#pragma GCC unroll 4
      for (int v = 0; v < RW; ++v) acc[r][v].store(yr + col[v], CHECKED ? nl : L);
    }
  }

  // Vectors [a, b) of one row block (RH rows from oh0), in blocks of RW; a last partial block
  // overlaps its neighbour when the range allows, else runs vector by vector.
  template <class Sp, int RH, bool CHECKED, bool ROWS>
  static void nchw_cover(const Dw2dShape& s, const T* xp, const T* wp, V bias, T* yp, int64_t oh0,
                         int64_t a, int64_t b) {
    constexpr int RW = NchwBlocking<Sp>::RW;
    auto start = [&](int64_t v) { return min64(v * L, s.OW - L); };
    int64_t v = a;
    for (; v + RW <= b; v += RW) {
      int64_t col[RW];
      for (int u = 0; u < RW; ++u) col[u] = start(v + u);
      nchw_block<Sp, RH, RW, CHECKED, ROWS>(s, xp, wp, bias, yp, oh0, col, L);
    }
    if (v == b) return;
    if (b - a >= RW) {
      int64_t col[RW];
      for (int u = 0; u < RW; ++u) col[u] = start(b - RW + u);
      nchw_block<Sp, RH, RW, CHECKED, ROWS>(s, xp, wp, bias, yp, oh0, col, L);
      return;
    }
    for (; v < b; ++v) {
      const int64_t col[1] = {start(v)};
      nchw_block<Sp, RH, 1, CHECKED, ROWS>(s, xp, wp, bias, yp, oh0, col, L);
    }
  }

  // The vectors of an output row: full vectors at columns min(v*L, OW - L) (the last may overlap
  // its neighbour); [f0, f1) read inside the row.
  struct NchwCols {
    int64_t nvec, f0, f1;
  };
  template <class Sp>
  static NchwCols nchw_cols(const Dw2dShape& s) {
    const Geo<Sp> g(s);
    NchwCols c{ceil_div_nonneg(s.OW, L), 0, 0};
    if (s.OW < L) return c;
    while (c.f0 < c.nvec && !column_inside(s, g, min64(c.f0 * L, s.OW - L))) ++c.f0;
    for (c.f1 = c.f0; c.f1 < c.nvec && column_inside(s, g, min64(c.f1 * L, s.OW - L));) ++c.f1;
    return c;
  }

  // One row block (RH rows from oh0) across the whole output width.
  template <class Sp, int RH, bool ROWS>
  static void nchw_row_block(const Dw2dShape& s, const NchwCols& cols, const T* xp, const T* wp,
                             V bias, T* yp, int64_t oh0) {
    if (s.OW < L) {  // one partial vector
      const int64_t col[1] = {0};
      nchw_block<Sp, RH, 1, true, ROWS>(s, xp, wp, bias, yp, oh0, col, static_cast<int>(s.OW));
      return;
    }
    nchw_cover<Sp, RH, true, ROWS>(s, xp, wp, bias, yp, oh0, 0, cols.f0);
    nchw_cover<Sp, RH, false, ROWS>(s, xp, wp, bias, yp, oh0, cols.f0, cols.f1);
    nchw_cover<Sp, RH, true, ROWS>(s, xp, wp, bias, yp, oh0, cols.f1, cols.nvec);
  }

  // Output rows [oh_begin, oh_end) of one plane.
  template <class Sp>
  static void nchw_rows(const Dw2dShape& s, const NchwCols& cols, const T* xp, const T* wp, T b,
                        T* yp, int64_t oh_begin, int64_t oh_end) {
    constexpr int RH = NchwBlocking<Sp>::RH;
    const Geo<Sp> g(s);
    const V bias = V::set1(b);
    // whether the input rows of RH output rows from oh0 all lie inside the plane
    auto inside = [&](int64_t oh0, int64_t rh) {
      const int64_t ih0 = oh0 * g.SH - s.PT;
      return ih0 >= 0 && ih0 + (rh - 1) * g.SH + (g.KH - 1) * g.DH < s.H;
    };
    if (oh_end - oh_begin < RH) {
      for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
        if (inside(oh, 1))
          nchw_row_block<Sp, 1, false>(s, cols, xp, wp, bias, yp, oh);
        else
          nchw_row_block<Sp, 1, true>(s, cols, xp, wp, bias, yp, oh);
      }
      return;
    }
    for (int64_t oh = oh_begin; oh < oh_end; oh += RH) {
      const int64_t oh0 = min64(oh, oh_end - RH);  // the last block overlaps its neighbour
      if (inside(oh0, RH))
        nchw_row_block<Sp, RH, false>(s, cols, xp, wp, bias, yp, oh0);
      else
        nchw_row_block<Sp, RH, true>(s, cols, xp, wp, bias, yp, oh0);
    }
  }

  // NCHW work items: (n, output channel) planes, split into bands of rows when there are too few
  // planes to keep every thread busy.
  static constexpr int64_t kMinItems = 32;
  static int64_t nchw_band_rows(const Dw2dShape& s) {
    const int64_t planes = s.N * s.cout();
    if (planes == 0 || planes >= kMinItems || s.OH <= 1) return max64(s.OH, 1);
    const int64_t bands = min64(ceil_div_nonneg(kMinItems, planes), ceil_div_nonneg(s.OH, 4));
    return ceil_div_nonneg(s.OH, bands);
  }

  template <class Sp>
  static void nchw(const Dw2dShape& s, const T* x, const T* w, const T* b, T* y, int64_t begin,
                   int64_t end) {
    const int64_t rows = nchw_band_rows(s), bands = ceil_div_nonneg(s.OH, rows);
    const int64_t KK = s.KH * s.KW;
    const NchwCols cols = nchw_cols<Sp>(s);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t plane = item / bands, band = item % bands;
      const int64_t n = plane / s.cout(), co = plane % s.cout(), c = co / s.M;
      nchw_rows<Sp>(s, cols, x + (n * s.C + c) * s.H * s.W, w + co * KK, b ? b[co] : T(0),
                    y + plane * s.OH * s.OW, band * rows, min64(s.OH, (band + 1) * rows));
    }
  }

  // --------------------------------------------------------------------------------- NHWC
  template <class Sp>
  struct NhwcBlocking {
    // taps slide along the input row (each input pixel loaded once per group of KC taps) when
    // the column stride is known and the dilation is 1
    static constexpr bool kSlide = Sp::D1 && (Sp::SW == 1 || Sp::SW == 2);
    // output pixels per block (7 and 14 divide the usual 7, 14, 28, 56, 112; stride 2 reads
    // twice the input pixels per block, so its blocks are shorter)
    static constexpr int R =
        kWide ? (!Sp::kFixed ? 14 : Sp::SW == 2 ? 7 : 14) : (Sp::kFixed ? 7 : 8);
    static constexpr int KC = Sp::kFixed ? Sp::KW : (kWide ? 8 : 4);  // taps per group
  };

  // Taps kw0..kw0+KC-1 of one kernel row into the R pixel accumulators: input pixel q (column
  // iw + q, iw being pixel 0's column at tap kw0) feeds pixel r through tap kw0 + k when
  // q = r*SW + k. xw: the input at column iw; wk: the weights of tap kw0 (taps C apart).
  template <int R, int KC, int SW, bool CHECKED, bool TAIL>
  [[gnu::always_inline]] static inline void nhwc_slide(V* acc, const T* xw, const T* wk,
                                                       int64_t C, int64_t iw, int64_t W, int nl) {
    auto ld = [&](const T* p) { return TAIL ? V::load(p, nl) : V::load(p); };
    V wv[KC];
#pragma GCC unroll 16
    for (int k = 0; k < KC; ++k) wv[k] = ld(wk + k * C);
    constexpr int Q = (R - 1) * SW + KC;
    const int64_t q_lo = CHECKED ? max64(0, -iw) : 0;
    const int64_t q_hi = CHECKED ? min64(Q, W - iw) : Q;
#pragma GCC unroll 64
    for (int q = 0; q < Q; ++q) {
      if (CHECKED && (q < q_lo || q >= q_hi)) continue;
      const V xq = ld(xw + q * C).pinned();
#pragma GCC unroll 16
      for (int k = 0; k < KC; ++k) {
        const int d = q - k;
        if (d >= 0 && d % SW == 0 && d / SW < R) acc[d / SW] = V::fma(xq, wv[k], acc[d / SW]);
      }
    }
  }

  // R pixels from ow0 of output row oh, one channel vector of multiplier index j. xn: image n at
  // this channel; wj: packed weights at (j, tap 0, this channel); yo: output (oh, ow0) at this
  // output channel. CHECKED: some tap of some pixel lies outside the row, or only nr < R pixels
  // are wanted (the others are computed from in-row pixels and dropped); TAIL: nl < L channels.
  template <class Sp, bool CHECKED, bool TAIL>
  [[gnu::always_inline]] static inline void nhwc_block(const Dw2dShape& s, const T* xn,
                                                       const T* wj, V bias, T* yo, int64_t oh,
                                                       int64_t ow0, int nr, int nl, bool stream) {
    using B = NhwcBlocking<Sp>;
    constexpr int R = B::R;
    const Geo<Sp> g(s);
    const int64_t C = s.C, W = s.W;
    V acc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = bias;
    const int64_t iw0 = ow0 * g.SW - s.PL;  // input column of pixel 0, tap 0
#pragma GCC unroll 1
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.SH - s.PT + kh * g.DH;
      if (ih < 0 || ih >= s.H) continue;
      const T* xr = xn + (ih * W + iw0) * C;  // may point outside the row; reads stay inside
      const T* wr = wj + kh * g.KW * C;
      if constexpr (B::kSlide) {
        int64_t kw = 0;
#pragma GCC unroll 1
        for (; kw + B::KC <= g.KW; kw += B::KC)
          nhwc_slide<R, B::KC, Sp::SW, CHECKED, TAIL>(acc, xr + kw * C, wr + kw * C, C, iw0 + kw,
                                                      W, nl);
#pragma GCC unroll 1
        for (; kw < g.KW; ++kw)
          nhwc_slide<R, 1, Sp::SW, CHECKED, TAIL>(acc, xr + kw * C, wr + kw * C, C, iw0 + kw, W,
                                                  nl);
      } else {
        auto ld = [&](const T* p) { return TAIL ? V::load(p, nl) : V::load(p); };
        const int64_t step = g.SW * C;
#pragma GCC unroll 1
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const V wv = ld(wr + kw * C);
          const int64_t iw = iw0 + kw * g.DW;  // input column of pixel 0 at this tap
          const T* xk = xr + kw * g.DW * C;
          if (CHECKED) {  // pixels [lo, hi) read inside the row
            const int64_t lo = iw >= 0 ? 0 : ceil_div_nonneg(-iw, g.SW);
            const int64_t hi = W - iw <= 0 ? 0 : min64(nr, ceil_div_nonneg(W - iw, g.SW));
            if (lo != 0 || hi != R) {
#pragma GCC unroll 16
              for (int r = 0; r < R; ++r)
                if (r >= lo && r < hi) acc[r] = V::fma(ld(xk + r * step), wv, acc[r]);
              continue;
            }
          }
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) acc[r] = V::fma(ld(xk + r * step), wv, acc[r]);
        }
      }
    }
    const int64_t CO = s.cout(), M = s.M;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      if (CHECKED && r >= nr) break;
      if (M == 1 && !TAIL && stream && is_vector_aligned(yo + r * CO))
        acc[r].stream(yo + r * CO);
      else if (M == 1)
        acc[r].store(yo + r * CO, TAIL ? nl : L);
      else
        acc[r].scatter(yo + r * CO, M, TAIL ? nl : L);
    }
  }

  // One output row, one channel vector (nl lanes), one multiplier index: every pixel, in blocks
  // of R (the last overlapping its neighbour); [lo, hi): the pixels whose taps are all in the row.
  template <class Sp, bool TAIL>
  static void nhwc_row_vector(const Dw2dShape& s, const T* xn, const T* wj, V bias, T* yrow,
                              int64_t oh, int64_t lo, int64_t hi, int nl, bool stream) {
    constexpr int R = NhwcBlocking<Sp>::R;
    const int64_t CO = s.cout();
    if (s.OW < R) {
      nhwc_block<Sp, true, TAIL>(s, xn, wj, bias, yrow, oh, 0, static_cast<int>(s.OW), nl,
                                 stream);
      return;
    }
    for (int64_t ow = 0; ow < s.OW; ow += R) {
      const int64_t o = min64(ow, s.OW - R);
      if (o >= lo && o + R <= hi)
        nhwc_block<Sp, false, TAIL>(s, xn, wj, bias, yrow + o * CO, oh, o, R, nl, stream);
      else
        nhwc_block<Sp, true, TAIL>(s, xn, wj, bias, yrow + o * CO, oh, o, R, nl, stream);
    }
  }

  // NHWC work items: (n, band of output rows, chunk of channel vectors). Within an item each
  // channel vector runs its band's rows in order, so the KH-1 input rows consecutive output rows
  // share are still in L1 (a vector's column of KH rows is KH*W lines; a row of every channel
  // vector is far more than L1 holds: [1,240,28,28] 5x5 reads 5 rows x 28 pixels x 15 vectors).
  // Only for inputs that fit in L2 (a batch-1 layer, a packed tile): when rows come from L3 or
  // memory, a channel vector's walk down a band (lines C elements apart) defeats the hardware
  // prefetchers, while a row of every channel vector is one contiguous run ([32,960,7,7] 3x3:
  // 0.6 ms as rows, 1.1 ms as bands). Rows are split into channel chunks only when there are too
  // few bands to keep every thread busy.
  static constexpr int64_t kBandRows = 8;
  static constexpr int64_t kBandInputBytes = int64_t(2) << 20;
  static int64_t nhwc_band_rows(const Dw2dShape& s) {
    if (input_bytes<T>(s) > kBandInputBytes || s.OH <= 1) return 1;
    return ceil_div_nonneg(s.OH, ceil_div_nonneg(s.OH, kBandRows));  // balanced, at most 8
  }
  static int64_t nhwc_bands(const Dw2dShape& s) {
    return s.N * ceil_div_nonneg(s.OH, nhwc_band_rows(s));
  }
  static int64_t nhwc_chunk_vectors(const Dw2dShape& s) {
    const int64_t bands = nhwc_bands(s), cvec = max64(ceil_div_nonneg(s.C, L), 1);
    if (bands >= kMinItems || bands == 0) return cvec;
    return ceil_div_nonneg(cvec, min64(cvec, ceil_div_nonneg(kMinItems, bands)));
  }

  template <class Sp>
  static void nhwc(const Dw2dShape& s, const T* x, const T* w, const T* b, T* y, int64_t begin,
                   int64_t end) {
    const int64_t C = s.C, M = s.M, KK = s.KH * s.KW, CO = s.cout();
    const int64_t per = nhwc_chunk_vectors(s), band_rows = nhwc_band_rows(s);
    const int64_t chunks = ceil_div_nonneg(ceil_div_nonneg(C, L), per);
    const int64_t bands = ceil_div_nonneg(s.OH, band_rows);
    int64_t lo, hi;  // output columns whose taps are all inside the row
    interior_range(s.OW, s.SW, s.PL, s.KW, s.DW, s.W, lo, hi);
    const bool stream = stream_output<T>(s), ask_next = prefetch_rows<T>(s);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t band = item / chunks, chunk = item % chunks;
      const int64_t n = band / bands, oh0 = band % bands * band_rows;
      const int64_t oh1 = min64(s.OH, oh0 + band_rows);
      const T* xn = x + n * s.H * s.W * C;
      const int64_t c_end = min64(C, (chunk + 1) * per * L);
      for (int64_t c = chunk * per * L; c < c_end; c += L) {
        const int nl = static_cast<int>(min64(L, C - c));
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          T* yrow = y + (n * s.OH + oh) * s.OW * CO;
          // the input rows entering the next output row's window, at these channels
          for (int64_t r = 0; ask_next && r < s.SH; ++r) {
            const int64_t ih = entering_row(s, oh, r);
            if (ih >= 0) prefetch_strided(xn + ih * s.W * C + c, s.W, C);
          }
          // and the next output row's lines at these channels (each pixel's M*L outputs),
          // unless streamed (no reads): their read-for-ownership misses otherwise stall the
          // stores ([32,240,28,28] 5x5 channels_last forward on Zen 3, one thread: 18-20 -> 12-13 ms)
          if (ask_next && !stream && oh + 1 < s.OH)
            prefetch_strided<true>(yrow + s.OW * CO + c * M, s.OW, CO, M * L);
          for (int64_t j = 0; j < M; ++j) {
            const V bias = b ? V::gather(b + c * M + j, M, nl) : V::zero();
            const T* wj = w + j * KK * C + c;
            if (nl == L)
              nhwc_row_vector<Sp, false>(s, xn + c, wj, bias, yrow + c * M + j, oh, lo, hi, nl,
                                         stream);
            else
              nhwc_row_vector<Sp, true>(s, xn + c, wj, bias, yrow + c * M + j, oh, lo, hi, nl,
                                        stream);
          }
        }
      }
    }
    if (stream) V::stream_fence();
  }

  // ---------------------------------------------------------------------------- dispatch
  using Fn = void (*)(const Dw2dShape&, const T*, const T*, const T*, T*, int64_t, int64_t);
  struct Variant {
    const char* name;
    Fn nchw, nhwc;
  };
  template <class Sp>
  static constexpr Variant make(const char* name) {
    return {name, &Dw2dFwd::nchw<Sp>, &Dw2dFwd::nhwc<Sp>};
  }
  static constexpr int64_t kLargeK = 13;

  static const Variant& pick(const Dw2dShape& s) {
    static constexpr Variant k3s1 = make<FwdSpec<3, 3, 1, 1, true>>("k3s1");
    static constexpr Variant k3s2 = make<FwdSpec<3, 3, 2, 2, true>>("k3s2");
    static constexpr Variant k5s1 = make<FwdSpec<5, 5, 1, 1, true>>("k5s1");
    static constexpr Variant k5s2 = make<FwdSpec<5, 5, 2, 2, true>>("k5s2");
    static constexpr Variant k7s1 = make<FwdSpec<7, 7, 1, 1, true>>("k7s1");
    static constexpr Variant k7s2 = make<FwdSpec<7, 7, 2, 2, true>>("k7s2");
    // run-time sizes; the column stride still picks plain, deinterleaved or gathered loads
    static constexpr Variant large[3] = {make<FwdSpec<0, 0, 0, 0, true>>("klarge"),
                                         make<FwdSpec<0, 0, 0, 1, true>>("klarge"),
                                         make<FwdSpec<0, 0, 0, 2, true>>("klarge")};
    static constexpr Variant generic[3] = {make<FwdSpec<0, 0, 0, 0, false>>("generic"),
                                           make<FwdSpec<0, 0, 0, 1, false>>("generic"),
                                           make<FwdSpec<0, 0, 0, 2, false>>("generic")};
    const bool d1 = s.DH == 1 && s.DW == 1;
    if (d1 && s.KH == s.KW && s.SH == s.SW) {
      const int64_t k = s.KH, st = s.SH;
      if (k == 3 && st == 1) return k3s1;
      if (k == 3 && st == 2) return k3s2;
      if (k == 5 && st == 1) return k5s1;
      if (k == 5 && st == 2) return k5s2;
      if (k == 7 && st == 1) return k7s1;
      if (k == 7 && st == 2) return k7s2;
    }
    const int sw = s.SW == 1 ? 1 : s.SW == 2 ? 2 : 0;
    if (d1 && s.KH >= kLargeK && s.KW >= kLargeK) return large[sw];
    return generic[sw];
  }

  static const char* variant(const Dw2dShape& s, Layout) { return pick(s).name; }

  static int64_t fwd_items(const Dw2dShape& s, Layout layout) {
    if (layout == Layout::NCHW) return s.N * s.cout() * ceil_div_nonneg(s.OH, nchw_band_rows(s));
    const int64_t per = nhwc_chunk_vectors(s);
    return nhwc_bands(s) * ceil_div_nonneg(ceil_div_nonneg(s.C, L), per);
  }

  static void fwd(const Dw2dShape& s, Layout layout, const T* x, const T* w, const T* b, T* y,
                  int64_t begin, int64_t end) {
    const Variant& v = pick(s);
    (layout == Layout::NCHW ? v.nchw : v.nhwc)(s, x, w, b, y, begin, end);
  }
};
