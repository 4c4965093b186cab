// Forward kernels: y = conv(x, w) + b.
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T>.
//
// One register-blocked template, instantiated per variant (see Dw2dFwd::pick):
//   k3s1 k3s2 k5s1 k5s2 k7s1 k7s2  square kernel and stride known at compile time, dilation 1:
//                                  every tap loop unrolls, small kernels keep weights in registers
//   klarge                         kernel size >= 13, dilation 1, sizes read at run time
//   generic                        everything else (any kernel, stride, dilation)
// NCHW: a block of RH output rows x RW vectors of L output columns. Each input row is loaded once
//   per tap column and feeds every output row of the block that uses it (with that row's weight),
//   so a block does RH*RW FMAs per RW loads. Stride-2 columns are deinterleaved with permutes
//   (Vec::even/odd), the even and odd halves serving two neighbouring taps.
// NHWC: a block of R output pixels of one channel vector; each weight vector is loaded once per
//   block (or kept in registers) and feeds R accumulators.
// Borders run the same blocks with masked loads (NCHW: lanes outside the row read zero; NHWC:
// pixels whose tap falls outside are skipped), so no padding copy is ever made. Last row/column
// blocks overlap the previous block instead of running a partial one: the overlapped outputs are
// recomputed with the same instruction sequence, so they are rewritten with identical bits.
#pragma once

// Compile-time description of one variant; 0 means "read from the shape at run time".
// SW is 1, 2 or 0 (any stride, gathered); D1: dilation is 1 in both dimensions.
template <int KH_, int KW_, int SH_, int SW_, bool D1_>
struct FwdSpec {
  static constexpr int KH = KH_, KW = KW_, SH = SH_, SW = SW_;
  static constexpr bool D1 = D1_;
};

template <typename T>
struct Dw2dFwd {
  using V = Vec<T>;
  static constexpr int L = V::N;
  static constexpr bool kWide = L >= 16;  // 32 vector registers (AVX-512) rather than 16
  // Kernels with at most this many taps keep their weights in registers.
  static constexpr int kPreloadTaps = kWide ? 25 : 9;

  // --------------------------------------------------------------------------------- NCHW
  // Column loads of one tap for a vector of L outputs starting at column c: the input elements
  // pos + l*SW, l < L, of row xr, where pos = c*SW - PL + kw*DW.
  template <class Sp>
  struct Cols {
    static constexpr int SW = Sp::SW;
    // every lane inside the row (and, for SW == 2, one element past the last lane too)
    static V load(const T* xr, int64_t pos, int64_t sw) {
      if constexpr (SW == 1) return V::load(xr + pos);
      else if constexpr (SW == 2) return V::even(V::load(xr + pos), V::load(xr + pos + L));
      else return V::gather(xr + pos, sw);
    }
    // lanes < nl whose element lies in [0, W); the others read zero
    static V load_checked(const T* xr, int64_t pos, int64_t sw, int64_t W, int nl) {
      if constexpr (SW == 1) {
        return V::load_range(xr + pos, clamp_lane(-pos), clamp_lane(min64(nl, W - pos)));
      } else if constexpr (SW == 2) {
        V a, b;
        pair_checked(xr, pos, W, nl, a, b);
        return V::even(a, b);
      } else {
        const int64_t lo = pos >= 0 ? 0 : ceil_div_nonneg(-pos, sw);
        const int64_t hi = W - pos <= 0 ? 0 : ceil_div_nonneg(W - pos, sw);
        return V::gather_range(xr + pos, sw, clamp_lane(lo), clamp_lane(min64(nl, hi)));
      }
    }
    // SW == 2: the 2L elements from pos, split into even (tap kw) and odd (tap kw + 1) lanes
    static void pair(const T* xr, int64_t pos, V& ev, V& od) {
      const V a = V::load(xr + pos), b = V::load(xr + pos + L);
      ev = V::even(a, b);
      od = V::odd(a, b);
    }
    static void pair_checked(const T* xr, int64_t pos, int64_t W, int nl, V& a, V& b) {
      const int64_t lo = -pos, hi = min64(2 * nl, W - pos);
      a = V::load_range(xr + pos, clamp_lane(lo), clamp_lane(hi));
      b = V::load_range(xr + pos + L, clamp_lane(lo - L), clamp_lane(hi - L));
    }
    static void pair_checked_split(const T* xr, int64_t pos, int64_t W, int nl, V& ev, V& od) {
      V a, b;
      pair_checked(xr, pos, W, nl, a, b);
      ev = V::even(a, b);
      od = V::odd(a, b);
    }
  };

  static int clamp_lane(int64_t i) { return static_cast<int>(i < 0 ? 0 : (i > L ? L : i)); }

  // Block geometry: the variant's blocking, per ISA width.
  template <class Sp>
  struct NchwBlocking {
    static constexpr int RH = kWide ? 4 : 2;  // output rows per block
    static constexpr int RW = 2;              // vectors of L columns per block
  };

  // Weights of one output channel, in registers when the tap count is known and small.
  template <class Sp>
  struct Weights {
    static constexpr int KK = Sp::KH * Sp::KW;
    static constexpr bool kPreload = KK > 0 && KK <= kPreloadTaps;
    V reg[kPreload ? KK : 1];
    const T* w;
    explicit Weights(const T* wp) : w(wp) {
      if constexpr (kPreload) {
#pragma GCC unroll 32
        for (int i = 0; i < KK; ++i) reg[i] = V::set1(wp[i]);
      }
    }
    V operator()(int64_t i) const {
      if constexpr (kPreload) return reg[i];
      else return V::set1(w[i]);
    }
  };

  // RH output rows from oh0 x RW vectors starting at columns col[v]. CHECKED: some lane of some
  // vector reads outside the row, or the vector is partial (nl < L lanes; then RW == 1).
  template <class Sp, int RH, int RW, bool CHECKED>
  [[gnu::always_inline]] static inline void nchw_block(const Dw2dShape& s, const T* xp,
                                                       const Weights<Sp>& wt, V bias, T* yp,
                                                       int64_t oh0, const int64_t* col, int nl) {
    const int64_t KH = Sp::KH ? Sp::KH : s.KH, KW = Sp::KW ? Sp::KW : s.KW;
    const int64_t SH = Sp::SH ? Sp::SH : s.SH, SW = Sp::SW ? Sp::SW : s.SW;
    const int64_t DH = Sp::D1 ? 1 : s.DH, DW = Sp::D1 ? 1 : s.DW;
    const int64_t W = s.W;
    V acc[RH][RW];
#pragma GCC unroll 8
    for (int r = 0; r < RH; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < RW; ++v) acc[r][v] = bias;
    int64_t pos0[RW];
#pragma GCC unroll 4
    for (int v = 0; v < RW; ++v) pos0[v] = col[v] * SW - s.PL;
    // input rows t = 0.. of the block; output row r uses tap kh where t = r*SH + kh*DH
    const int64_t rows = (RH - 1) * SH + (KH - 1) * DH + 1;
    const int64_t ih0 = oh0 * SH - s.PT;
#pragma GCC unroll 16
    for (int64_t t = 0; t < rows; ++t) {
      const int64_t ih = ih0 + t;
      if (ih < 0 || ih >= s.H) continue;
      int64_t kh[RH];
#pragma GCC unroll 8
      for (int r = 0; r < RH; ++r) {
        const int64_t d = t - r * SH;
        kh[r] = (d >= 0 && d % DH == 0 && d / DH < KH) ? d / DH : -1;
      }
      const T* xr = xp + ih * W;
      if constexpr (Sp::SW == 2 && Sp::D1) {
#pragma GCC unroll 16
        for (int64_t kw = 0; kw < KW; kw += 2) {
          V ev[RW], od[RW];
#pragma GCC unroll 4
          for (int v = 0; v < RW; ++v) {
            if constexpr (CHECKED)
              Cols<Sp>::pair_checked_split(xr, pos0[v] + kw, W, nl, ev[v], od[v]);
            else
              Cols<Sp>::pair(xr, pos0[v] + kw, ev[v], od[v]);
          }
          const bool second = kw + 1 < KW;
#pragma GCC unroll 8
          for (int r = 0; r < RH; ++r) {
            if (kh[r] < 0) continue;
            const V w0 = wt(kh[r] * KW + kw);
#pragma GCC unroll 4
            for (int v = 0; v < RW; ++v) acc[r][v] = V::fma(ev[v], w0, acc[r][v]);
            if (second) {
              const V w1 = wt(kh[r] * KW + kw + 1);
#pragma GCC unroll 4
              for (int v = 0; v < RW; ++v) acc[r][v] = V::fma(od[v], w1, acc[r][v]);
            }
          }
        }
      } else {
#pragma GCC unroll 16
        for (int64_t kw = 0; kw < KW; ++kw) {
          V xv[RW];
#pragma GCC unroll 4
          for (int v = 0; v < RW; ++v) {
            const int64_t pos = pos0[v] + kw * DW;
            xv[v] = CHECKED ? Cols<Sp>::load_checked(xr, pos, SW, W, nl)
                            : Cols<Sp>::load(xr, pos, SW);
          }
#pragma GCC unroll 8
          for (int r = 0; r < RH; ++r) {
            if (kh[r] < 0) continue;
            const V wv = wt(kh[r] * KW + kw);
#pragma GCC unroll 4
            for (int v = 0; v < RW; ++v) acc[r][v] = V::fma(xv[v], wv, acc[r][v]);
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RH; ++r) {
      T* yr = yp + (oh0 + r) * s.OW;
#pragma GCC unroll 4
      for (int v = 0; v < RW; ++v) acc[r][v].store(yr + col[v], CHECKED ? nl : L);
    }
  }

  // Whether the L-lane vector at output column c reads only inside the row (see Cols::load).
  static bool column_inside(const Dw2dShape& s, int64_t SW, int64_t DW, int64_t KW, int64_t c) {
    const int64_t first = c * SW - s.PL;
    const int64_t last = (c + L - 1) * SW - s.PL + (KW - 1) * DW + (SW == 2 ? 1 : 0);
    return first >= 0 && last < s.W;
  }

  // One row block (RH rows from oh0) across the whole output width.
  template <class Sp, int RH>
  static void nchw_row_block(const Dw2dShape& s, const T* xp, const Weights<Sp>& wt, V bias,
                             T* yp, int64_t oh0) {
    constexpr int RW = NchwBlocking<Sp>::RW;
    const int64_t KW = Sp::KW ? Sp::KW : s.KW, SW = Sp::SW ? Sp::SW : s.SW;
    const int64_t DW = Sp::D1 ? 1 : s.DW;
    if (s.OW < L) {  // one partial vector
      const int64_t col[1] = {0};
      nchw_block<Sp, RH, 1, true>(s, xp, wt, bias, yp, oh0, col, static_cast<int>(s.OW));
      return;
    }
    // full vectors at columns min(v*L, OW-L): the last one may overlap its neighbour
    const int64_t nvec = ceil_div_nonneg(s.OW, L);
    int64_t v = 0;
    for (; v + RW <= nvec; v += RW) {
      int64_t col[RW];
      bool inside = true;
      for (int u = 0; u < RW; ++u) {
        col[u] = min64((v + u) * L, s.OW - L);
        inside = inside && column_inside(s, SW, DW, KW, col[u]);
      }
      if (inside)
        nchw_block<Sp, RH, RW, false>(s, xp, wt, bias, yp, oh0, col, L);
      else
        nchw_block<Sp, RH, RW, true>(s, xp, wt, bias, yp, oh0, col, L);
    }
    for (; v < nvec; ++v) {
      const int64_t col[1] = {min64(v * L, s.OW - L)};
      if (column_inside(s, SW, DW, KW, col[0]))
        nchw_block<Sp, RH, 1, false>(s, xp, wt, bias, yp, oh0, col, L);
      else
        nchw_block<Sp, RH, 1, true>(s, xp, wt, bias, yp, oh0, col, L);
    }
  }

  // Output rows [oh_begin, oh_end) of one plane.
  template <class Sp>
  static void nchw_rows(const Dw2dShape& s, const T* xp, const T* wp, T b, T* yp,
                        int64_t oh_begin, int64_t oh_end) {
    constexpr int RH = NchwBlocking<Sp>::RH;
    const Weights<Sp> wt(wp);
    const V bias = V::set1(b);
    if (oh_end - oh_begin < RH) {
      for (int64_t oh = oh_begin; oh < oh_end; ++oh)
        nchw_row_block<Sp, 1>(s, xp, wt, bias, yp, oh);
      return;
    }
    for (int64_t oh = oh_begin; oh < oh_end; oh += RH)
      nchw_row_block<Sp, RH>(s, xp, wt, bias, yp, min64(oh, oh_end - RH));
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
    for (int64_t item = begin; item < end; ++item) {
      const int64_t plane = item / bands, band = item % bands;
      const int64_t n = plane / s.cout(), co = plane % s.cout(), c = co / s.M;
      nchw_rows<Sp>(s, x + (n * s.C + c) * s.H * s.W, w + co * KK, b ? b[co] : T(0),
                    y + plane * s.OH * s.OW, band * rows, min64(s.OH, (band + 1) * rows));
    }
  }

  // --------------------------------------------------------------------------------- NHWC
  template <class Sp>
  struct NhwcBlocking {
    static constexpr int R = kWide ? 8 : 4;  // output pixels per block
  };

  // Channel-vector weights of one multiplier index, in registers when the tap count is known and
  // small; TAIL: only nl < L channels remain.
  template <class Sp, bool TAIL>
  struct VecWeights {
    static constexpr int KK = Sp::KH * Sp::KW;
    static constexpr bool kPreload = KK > 0 && KK <= kPreloadTaps;
    V reg[kPreload ? KK : 1];
    const T* w;
    int64_t C;
    int nl;
    VecWeights(const T* wj, int64_t C_, int nl_) : w(wj), C(C_), nl(nl_) {
      if constexpr (kPreload) {
#pragma GCC unroll 32
        for (int i = 0; i < KK; ++i) reg[i] = TAIL ? V::load(wj + i * C, nl) : V::load(wj + i * C);
      }
    }
    V operator()(int64_t i) const {
      if constexpr (kPreload) return reg[i];
      else return TAIL ? V::load(w + i * C, nl) : V::load(w + i * C);
    }
  };

  // R pixels from ow0 of output row oh, one channel vector. xn: input image n at this channel;
  // yo: output pixel (oh, ow0) at this output channel. CHECKED: some tap of some pixel lies
  // outside the input, or only nr < R pixels are wanted; TAIL: nl < L channels.
  template <class Sp, int R, bool CHECKED, bool TAIL>
  [[gnu::always_inline]] static inline void nhwc_block(const Dw2dShape& s, const T* xn,
                                                       const VecWeights<Sp, TAIL>& wt, V bias,
                                                       T* yo, int64_t oh, int64_t ow0, int nr,
                                                       int nl) {
    const int64_t KH = Sp::KH ? Sp::KH : s.KH, KW = Sp::KW ? Sp::KW : s.KW;
    const int64_t SH = Sp::SH ? Sp::SH : s.SH, SW = Sp::SW ? Sp::SW : s.SW;
    const int64_t DH = Sp::D1 ? 1 : s.DH, DW = Sp::D1 ? 1 : s.DW;
    const int64_t C = s.C, W = s.W, CO = s.cout();
    V acc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = bias;
    auto x_at = [&](const T* p) { return TAIL ? V::load(p, nl) : V::load(p); };
#pragma GCC unroll 8
    for (int64_t kh = 0; kh < KH; ++kh) {
      const int64_t ih = oh * SH - s.PT + kh * DH;
      if (ih < 0 || ih >= s.H) continue;
      const T* xr = xn + ih * W * C;
#pragma GCC unroll 8
      for (int64_t kw = 0; kw < KW; ++kw) {
        const int64_t iw0 = ow0 * SW - s.PL + kw * DW;  // input column of pixel 0
        const V wv = wt(kh * KW + kw);
        if constexpr (CHECKED) {
          // pixels r in [lo, hi) read inside the row
          const int64_t lo = iw0 >= 0 ? 0 : ceil_div_nonneg(-iw0, SW);
          const int64_t hi = W - iw0 <= 0 ? 0 : min64(nr, ceil_div_nonneg(W - iw0, SW));
          if (lo == 0 && hi == R) {
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r)
              acc[r] = V::fma(x_at(xr + (iw0 + r * SW) * C), wv, acc[r]);
          } else {
#pragma GCC unroll 16
            for (int r = 0; r < R; ++r)
              if (r >= lo && r < hi) acc[r] = V::fma(x_at(xr + (iw0 + r * SW) * C), wv, acc[r]);
          }
        } else {
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) acc[r] = V::fma(x_at(xr + (iw0 + r * SW) * C), wv, acc[r]);
        }
      }
    }
    const int64_t M = s.M;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      if (CHECKED && r >= nr) break;
      T* yp = yo + r * CO;
      if (M == 1)
        acc[r].store(yp, TAIL ? nl : L);
      else
        acc[r].scatter(yp, M, TAIL ? nl : L);
    }
  }

  // One output row, one channel vector (nl lanes), one multiplier index j: every pixel.
  template <class Sp, bool TAIL>
  static void nhwc_row_vector(const Dw2dShape& s, const T* xn, const T* wj, V bias, T* yrow,
                              int64_t oh, int nl) {
    constexpr int R = NhwcBlocking<Sp>::R;
    const int64_t KW = Sp::KW ? Sp::KW : s.KW, SW = Sp::SW ? Sp::SW : s.SW;
    const int64_t DW = Sp::D1 ? 1 : s.DW;
    const int64_t CO = s.cout();
    const VecWeights<Sp, TAIL> wt(wj, s.C, nl);
    int64_t lo, hi;  // pixels whose every tap is inside the row
    interior_range(s.OW, SW, s.PL, KW, DW, s.W, lo, hi);
    if (TAIL || hi - lo < R) lo = hi = s.OW;  // all through the checked blocks
    auto checked = [&](int64_t from, int64_t to) {
      for (int64_t ow = from; ow < to; ow += R)
        nhwc_block<Sp, R, true, TAIL>(s, xn, wt, bias, yrow + ow * CO, oh, ow,
                                      static_cast<int>(min64(R, to - ow)), nl);
    };
    checked(0, lo);
    if constexpr (!TAIL) {
      for (int64_t ow = lo; ow < hi; ow += R) {
        const int64_t o = min64(ow, hi - R);  // the last block overlaps its neighbour
        nhwc_block<Sp, R, false, false>(s, xn, wt, bias, yrow + o * CO, oh, o, R, L);
      }
    }
    checked(hi, s.OW);
  }

  // NHWC work items: (n, output row, chunk of channel vectors); rows are split into channel
  // chunks only when there are too few rows to keep every thread busy.
  static int64_t nhwc_chunk_vectors(const Dw2dShape& s) {
    const int64_t rows = s.N * s.OH, cvec = max64(ceil_div_nonneg(s.C, L), 1);
    if (rows >= kMinItems || rows == 0) return cvec;
    return ceil_div_nonneg(cvec, min64(cvec, ceil_div_nonneg(kMinItems, rows)));
  }

  template <class Sp>
  static void nhwc(const Dw2dShape& s, const T* x, const T* w, const T* b, T* y, int64_t begin,
                   int64_t end) {
    const int64_t C = s.C, M = s.M, KK = s.KH * s.KW, CO = s.cout();
    const int64_t per = nhwc_chunk_vectors(s);
    const int64_t chunks = ceil_div_nonneg(ceil_div_nonneg(C, L), per);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t row = item / chunks, chunk = item % chunks;
      const int64_t n = row / s.OH, oh = row % s.OH;
      const T* xn = x + n * s.H * s.W * C;
      T* yrow = y + row * s.OW * CO;
      const int64_t c_end = min64(C, (chunk + 1) * per * L);
      for (int64_t c = chunk * per * L; c < c_end; c += L) {
        const int nl = static_cast<int>(min64(L, C - c));
        for (int64_t j = 0; j < M; ++j) {
          const V bias = b ? V::gather(b + c * M + j, M, nl) : V::zero();
          const T* wj = w + j * KK * C + c;
          if (nl == L)
            nhwc_row_vector<Sp, false>(s, xn + c, wj, bias, yrow + c * M + j, oh, nl);
          else
            nhwc_row_vector<Sp, true>(s, xn + c, wj, bias, yrow + c * M + j, oh, nl);
        }
      }
    }
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
    return s.N * s.OH * ceil_div_nonneg(ceil_div_nonneg(s.C, L), per);
  }

  static void fwd(const Dw2dShape& s, Layout layout, const T* x, const T* w, const T* b, T* y,
                  int64_t begin, int64_t end) {
    const Variant& v = pick(s);
    (layout == Layout::NCHW ? v.nchw : v.nhwc)(s, x, w, b, y, begin, end);
  }
};
