// Backward-input kernels: gx = conv_transpose(gy, w), computed as a gather (every gx element is
// summed in registers and written once, no read-modify-write passes).
// Part of dw2d_impl.h: included inside namespace dwconv::cpu::(anonymous), after Vec<T>.
//
// Stride is handled by phase decomposition: gx positions i = S*q + r of one phase r see one fixed
// subset of taps, each reading gy at q + (constant offset), so every phase is a stride-1 gather.
//   NCHW: item = (c, n) plane (channel-major, so a thread's items share their tap list). The M gy planes are copied once into a zero-padded scratch plane
//         (no bounds checks in the hot loop); each gx row is a list of (offset, weight) taps over
//         it. Stride 2 along W computes both column phases and interleaves them in registers.
//   NHWC: item = (n, ih) row; vectors along C, a register tile of up to 8 gx positions of one
//         column phase; taps checked only at the border; with dilation 1 the gy vectors of a
//         kernel row are loaded once per tile and reused by every column tap (sliding window). The
//         number of column taps of a phase is a compile-time constant up to kMaxRowTaps
//         ("row": k1..k8 at stride 1, up to k16 at stride 2), run-time beyond ("tiled").
//         Rows and tiles span all channel blocks, so whole gx pixels are written at once.
#pragma once

// Helpers shared by the backward passes (dw2d_bwdw.h too).
// Fully unrolls loops over register tiles so accumulator arrays stay in registers.
#define DWCONV_BWD_UNROLL _Pragma("GCC unroll 32")
// Inlined into the channel loop of its caller, so per-tile set-up is hoisted out of it.
#define DWCONV_BWD_INLINE inline __attribute__((always_inline))
inline int64_t bwd_floor_div(int64_t a, int64_t b) {
  if (b == 1) return a;
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
inline int64_t bwd_floor_mod(int64_t a, int64_t b) { return b == 1 ? 0 : a - bwd_floor_div(a, b) * b; }

// Per-thread scratch that only grows (one buffer per type and slot); contents are not kept
// between calls that use the same slot.
// Plain C allocation, not std::vector: a std template instantiated in this ISA-flagged translation
// unit would be a weak symbol the linker may pick for every other unit too.
template <typename U, int Slot>
U* bwd_scratch(int64_t n) {
  static_assert(alignof(U) <= 64, "scratch is 64-byte aligned");
  struct Buffer {
    U* data = nullptr;
    int64_t size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buf;
  if (buf.size < n) {
    std::free(buf.data);
    // 64-byte aligned: U may be a SIMD vector type (zeroed, like a fresh std::vector)
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(U) + 63) / 64 * 64;
    buf.data = static_cast<U*>(std::aligned_alloc(64, bytes));
    buf.size = buf.data ? n : 0;
    if (!buf.data) throw std::bad_alloc();
    std::memset(static_cast<void*>(buf.data), 0, bytes);
  }
  return buf.data;
}

// Calls f.template operator()<K>() with K = n for 1 <= n <= Max (code specialised for that
// count), and K = 0 (count known only at run time) otherwise.
template <int Max, typename F>
void bwd_dispatch(int64_t n, F&& f) {
  if constexpr (Max > 0) {
    if (n == Max) return f.template operator()<Max>();
    return bwd_dispatch<Max - 1>(n, f);
  } else {
    f.template operator()<0>();
  }
}

template <typename T>
struct Dw2dBwdi {
  using V = Vec<T>;
  static constexpr int L = V::N;

  struct Tap {
    int64_t off;  // offset into the padded scratch plane(s)
    T w;
  };

  // NCHW: by the W stride (s1, s2 interleaved in registers, generic strided stores).
  // NHWC: "row" when every column phase has at most kMaxRowTaps taps (compile-time count),
  // "tiled" otherwise (run-time tap loop); M > 1 runs the gathering generic kernel.
  static const char* variant(const Dw2dShape& s, Layout layout) {
    if (layout == Layout::NCHW) return s.SW == 1 ? "s1" : s.SW == 2 ? "s2" : "generic";
    if (s.M != 1) return "generic";
    return max_phase_taps(s) <= kMaxRowTaps ? "row" : "tiled";
  }

  static int64_t max_phase_taps(const Dw2dShape& s) {
    int64_t most = 0;
    for (int64_t rw = 0; rw < s.SW && rw < s.W; ++rw) {
      int64_t n = 0;
      for (int64_t kw = 0; kw < s.KW; ++kw) n += bwd_floor_mod(rw + s.PL - kw * s.DW, s.SW) == 0;
      most = max64(most, n);
    }
    return most;
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
    // slack: the last vector of a row (and the odd phase at stride 2) reads past it
    g.Wb = g.padL + max64(s.OW, c_hi + 1) + 2 * L;
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

  // acc[r][t] = sum over taps of src[off + r*Wb + t*L ...]: RT rows of one phase, TT vectors
  template <int TT, int RT>
  static void gather_tile(const T* src, int64_t Wb, const Tap* taps, int64_t ntaps, V* acc) {
    DWCONV_BWD_UNROLL
    for (int t = 0; t < TT * RT; ++t) acc[t] = V::zero();
    for (int64_t i = 0; i < ntaps; ++i) {
      const V wv = V::set1(taps[i].w);
      const T* p = src + taps[i].off;
      DWCONV_BWD_UNROLL
      for (int r = 0; r < RT; ++r) {
        DWCONV_BWD_UNROLL
        for (int t = 0; t < TT; ++t)
          acc[r * TT + t] = V::fma(V::load(p + r * Wb + t * L), wv, acc[r * TT + t]);
      }
    }
  }

  // RT gx rows of one row phase (row r at gxrow + r*SH*W, scratch row src + r*Wb), column
  // positions [q0, q0 + TT*L) of every column phase. SWc: 1, 2 (phases interleaved in
  // registers) or 0 (any stride, strided stores). stream: whole aligned vectors of the stride-2
  // interleave are written non-temporally (stream_output).
  template <int SWc, int TT, int RT>
  static void block(const Dw2dShape& s, int64_t Wb, const T* src, const Tap* taps,
                    const int64_t* count, int64_t list0, int64_t per, T* gxrow, int64_t q0,
                    bool stream) {
    const int64_t gstride = s.SH * s.W;
    if constexpr (SWc == 1) {
      V acc[RT * TT];
      gather_tile<TT, RT>(src + q0, Wb, taps + list0 * per, count[list0], acc);
      DWCONV_BWD_UNROLL
      for (int r = 0; r < RT; ++r) {
        DWCONV_BWD_UNROLL
        for (int t = 0; t < TT; ++t) {
          const int64_t q = q0 + t * L;
          if (q < s.W)
            acc[r * TT + t].store(gxrow + r * gstride + q, static_cast<int>(min64(L, s.W - q)));
        }
      }
    } else if constexpr (SWc == 2) {
      V a0[RT * TT], a1[RT * TT];
      gather_tile<TT, RT>(src + q0, Wb, taps + list0 * per, count[list0], a0);
      gather_tile<TT, RT>(src + q0, Wb, taps + (list0 + 1) * per, count[list0 + 1], a1);
      DWCONV_BWD_UNROLL
      for (int r = 0; r < RT; ++r) {
        DWCONV_BWD_UNROLL
        for (int t = 0; t < TT; ++t) {
          V lo, hi;
          V::interleave(a0[r * TT + t], a1[r * TT + t], lo, hi);
          const int64_t i = 2 * (q0 + t * L);
          T* dst = gxrow + r * gstride;
          if (stream && i + 2 * L <= s.W && is_vector_aligned(dst + i)) {
            lo.stream(dst + i);
            hi.stream(dst + i + L);
            continue;
          }
          if (i < s.W) lo.store(dst + i, static_cast<int>(min64(L, s.W - i)));
          if (i + L < s.W) hi.store(dst + i + L, static_cast<int>(min64(L, s.W - i - L)));
        }
      }
    } else {
      for (int64_t rw = 0; rw < s.SW && rw < s.W; ++rw) {
        V acc[RT * TT];
        gather_tile<TT, RT>(src + q0, Wb, taps + (list0 + rw) * per, count[list0 + rw], acc);
        const int64_t nrw = (s.W - rw + s.SW - 1) / s.SW;  // gx columns of this phase
        for (int r = 0; r < RT; ++r)
          for (int t = 0; t < TT; ++t) {
            const int64_t q = q0 + t * L;
            if (q < nrw)
              acc[r * TT + t].scatter(gxrow + r * gstride + rw + q * s.SW, s.SW,
                                      static_cast<int>(min64(L, nrw - q)));
          }
      }
    }
  }

  // rows [i, nr) of a row phase in groups of RT, then RT/2, ... (accumulator chains stay
  // independent even for narrow planes)
  template <int SWc, int TT, int RT>
  static void rows(const Dw2dShape& s, int64_t Wb, const T* src, const Tap* taps,
                   const int64_t* count, int64_t list0, int64_t per, T* gxrow, int64_t q0,
                   int64_t i, int64_t nr, bool stream) {
    for (; i + RT <= nr; i += RT)
      block<SWc, TT, RT>(s, Wb, src + i * Wb, taps, count, list0, per, gxrow + i * s.SH * s.W,
                         q0, stream);
    if constexpr (RT > 1)
      rows<SWc, TT, RT / 2>(s, Wb, src, taps, count, list0, per, gxrow, q0, i, nr, stream);
  }

  static constexpr int kAcc = 8;  // accumulators per block (both column phases at stride 2)

  template <int SWc>
  static void nchw_plane(const Dw2dShape& s, const Plane& g, const T* buf, const Tap* taps,
                         const int64_t* count, T* gxp, bool stream) {
    const int64_t per = s.M * s.KH * s.KW;
    const int64_t nq = (s.W + s.SW - 1) / s.SW;  // column positions q of phase 0
    const int64_t nv = (nq + L - 1) / L;
    constexpr int sets = SWc == 2 ? 2 : 1;
    for (int64_t ph = 0; ph < s.SH; ++ph) {
      const int64_t ih0 = bwd_floor_mod(ph - s.PT, s.SH);  // first gx row of this phase
      if (ih0 >= s.H) continue;
      const int64_t nr = (s.H - ih0 + s.SH - 1) / s.SH;
      const T* src = buf + (ih0 + s.PT) / s.SH * g.Wb;
      T* gxrow = gxp + ih0 * s.W;
      const int64_t list0 = ph * s.SW;
      int64_t v = 0;
      for (; v + 4 <= nv; v += 4)
        rows<SWc, 4, max_int(1, kAcc / 4 / sets)>(s, g.Wb, src, taps, count, list0, per, gxrow,
                                                  v * L, 0, nr, stream);
      for (; v + 2 <= nv; v += 2)
        rows<SWc, 2, kAcc / 2 / sets>(s, g.Wb, src, taps, count, list0, per, gxrow, v * L, 0, nr,
                                      stream);
      for (; v < nv; ++v)
        rows<SWc, 1, kAcc / sets>(s, g.Wb, src, taps, count, list0, per, gxrow, v * L, 0, nr,
                                  stream);
    }
  }

  static constexpr int max_int(int a, int b) { return a > b ? a : b; }

  static void zero_fill(T* p, int64_t n) {
    int64_t i = 0;
    for (; i + L <= n; i += L) V::zero().store(p + i);
    if (i < n) V::zero().store(p + i, static_cast<int>(n - i));
  }

  static constexpr int64_t kPrefetchItems = 2;  // how far ahead bwdi_nchw prefetches gy

  static void bwdi_nchw(const Dw2dShape& s, const T* gy, const T* w, T* gx, int64_t begin,
                        int64_t end) {
    const Plane g = plane_geometry(s);
    const int64_t per = s.M * s.KH * s.KW;
    T* buf = bwd_scratch<T, 0>(s.M * g.Hb * g.Wb);
    Tap* taps = bwd_scratch<Tap, 1>(s.SH * s.SW * per);
    int64_t* count = bwd_scratch<int64_t, 2>(s.SH * s.SW);
    int64_t last_c = -1;
    const bool stream = stream_output<T>(s);
    for (int64_t item = begin; item < end; ++item) {
      // channel-major item order: a thread's consecutive items share their taps
      const int64_t c = item / s.N, n = item % s.N;
      // consecutive items' gy planes are a channel stride apart (a new page each): for small
      // planes prefetch a few items ahead so they do not stall on every miss
      if (item + kPrefetchItems < end && s.M * s.OH * s.OW * int64_t(sizeof(T)) <= 4096) {
        const int64_t pc = (item + kPrefetchItems) / s.N, pn = (item + kPrefetchItems) % s.N;
        prefetch(gy + (pn * s.C + pc) * s.M * s.OH * s.OW, s.M * s.OH * s.OW);
      }
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
            zero_fill(brow, g.Wb);
            continue;
          }
          zero_fill(brow, g.padL);
          const T* grow = gyp + oh * s.OW;
          for (int64_t q = 0; q < s.OW; q += L)
            V::load(grow + q, static_cast<int>(min64(L, s.OW - q))).store(brow + g.padL + q);
          // the copy's last vector wrote zeros up to a multiple of L past the row
          const int64_t done = g.padL + (s.OW + L - 1) / L * L;
          zero_fill(brow + done, g.Wb - done);
        }
      }
      T* gxp = gx + (n * s.C + c) * s.H * s.W;
      if (s.SW == 1)
        nchw_plane<1>(s, g, buf, taps, count, gxp, false);
      else if (s.SW == 2)
        nchw_plane<2>(s, g, buf, taps, count, gxp, stream);
      else
        nchw_plane<0>(s, g, buf, taps, count, gxp, false);
    }
    if (stream) V::stream_fence();
  }

  // ------------------------------------------------------------------------------------------
  // NHWC, M == 1
  // ------------------------------------------------------------------------------------------

  static constexpr int kMaxRowTaps = 8;  // column taps per phase unrolled at compile time
  static constexpr int kMaxTaps8 = 4;    // column taps per phase that 8-position tiles take (AVX2)

  // Column phase rw of the gx row: its taps (kernel column kw, gy column offset off, so gx
  // column rw + S*p reads gy column p + off) and the positions [lo, hi) needing no checks.
  struct Phase {
    int64_t ntaps, lo, hi, np;
  };

  static void build_phases(const Dw2dShape& s, Phase* ph, int64_t* kws, int64_t* offs) {
    for (int64_t rw = 0; rw < s.SW && rw < s.W; ++rw) {
      Phase& P = ph[rw];
      P.np = (s.W - rw + s.SW - 1) / s.SW;
      P.ntaps = 0;
      P.lo = 0;
      P.hi = P.np;
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t b = rw + s.PL - kw * s.DW;
        if (bwd_floor_mod(b, s.SW) != 0) continue;
        kws[rw * s.KW + P.ntaps] = kw;
        offs[rw * s.KW + P.ntaps] = b / s.SW;
        ++P.ntaps;
        P.lo = max64(P.lo, -(b / s.SW));
        P.hi = min64(P.hi, s.OW - b / s.SW);
      }
      P.lo = min64(P.lo, P.np);
      P.hi = max64(min64(P.hi, P.np), P.lo);
    }
  }

  // TT gx positions rw + S*(p + t), channels [c, c + nl); kernel rows khs/ohs, column taps
  // kws/offs (NKW of them, or nkw when NKW == 0); Checked: some taps fall outside gy
  template <bool Full>
  static V ld(const T* p, int nl) {
    if constexpr (Full) return V::load(p);
    else return V::load(p, nl);
  }

  // Full: all L channels are active (no masks)
  template <int NKW, int TT, bool Checked, bool Full>
  DWCONV_BWD_INLINE static void nhwc_tile(const Dw2dShape& s, const int64_t* khs, const T* const* grows,
                        int64_t nkh, const int64_t* kws, const int64_t* offs, int64_t nkw,
                        int64_t p, int64_t c, int nl, const T* wp, T* dst, bool stream) {
    const int64_t C = s.C, cnt = NKW ? NKW : nkw;
    V acc[TT];
    DWCONV_BWD_UNROLL
    for (int t = 0; t < TT; ++t) acc[t] = V::zero();
    if constexpr (NKW > 0 && !Checked) {
      if (s.DW == 1) {
        // no dilation: a phase's taps are S kernel columns apart, so tap u reads gy column
        // p + t + offs[0] - u and the TT + NKW - 1 gy vectors of a kernel row are loaded once
        // and reused by every tap (sliding window)
        for (int64_t i = 0; i < nkh; ++i) {
          const T* wrow = wp + khs[i] * s.KW * C + c;
          const T* g = grows[i] + (p + offs[0] - (NKW - 1)) * C + c;
          V win[TT + NKW - 1];
          // one pointer stepped by C: as g + j*C, GCC kept the window's TT + NKW - 1 offsets
          // in vector registers (out of general ones) and moved each back before its load
          // ([1,144,56,56] 5x5/2, AVX-512, one thread: 153-205 -> 136-171 us; AVX2 -5-8%)
          DWCONV_BWD_UNROLL
          for (int j = 0; j < TT + NKW - 1; ++j, g += C) win[j] = ld<Full>(g, nl);
          DWCONV_BWD_UNROLL
          for (int u = 0; u < NKW; ++u) {
            const V wv = ld<Full>(wrow + kws[u] * C, nl);
            DWCONV_BWD_UNROLL
            for (int t = 0; t < TT; ++t) acc[t] = V::fma(win[t + NKW - 1 - u], wv, acc[t]);
          }
        }
        store_tile<TT, Full>(acc, dst, s.SW * C, nl, stream);
        return;
      }
    }
    for (int64_t i = 0; i < nkh; ++i) {
      const T* wrow = wp + khs[i] * s.KW * C + c;
      for (int64_t u = 0; u < cnt; ++u) {
        const int64_t ow0 = p + offs[u];
        const V wv = ld<Full>(wrow + kws[u] * C, nl);
        const T* g = grows[i] + ow0 * C + c;
        DWCONV_BWD_UNROLL
        for (int t = 0; t < TT; ++t) {
          if (Checked && (ow0 + t < 0 || ow0 + t >= s.OW)) continue;
          acc[t] = V::fma(ld<Full>(g + t * C, nl), wv, acc[t]);
        }
      }
    }
    store_tile<TT, Full>(acc, dst, s.SW * C, nl, stream);
  }

  // acc[t] to dst + t * step; stream: non-temporal where a vector is a whole aligned line
  template <int TT, bool Full>
  DWCONV_BWD_INLINE static void store_tile(const V* acc, T* dst, int64_t step, int nl,
                                           bool stream) {
    DWCONV_BWD_UNROLL
    for (int t = 0; t < TT; ++t) {
      if constexpr (Full) {
        if (stream && is_vector_aligned(dst + t * step)) acc[t].stream(dst + t * step);
        else acc[t].store(dst + t * step);
      } else {
        acc[t].store(dst + t * step, nl);
      }
    }
  }

  static void bwdi_nhwc(const Dw2dShape& s, const T* gy, const T* wp, T* gx, int64_t begin,
                        int64_t end) {
    Phase* ph = bwd_scratch<Phase, 4>(s.SW);
    int64_t* kws = bwd_scratch<int64_t, 5>(s.SW * s.KW);
    int64_t* offs = bwd_scratch<int64_t, 6>(s.SW * s.KW);
    int64_t* khs = bwd_scratch<int64_t, 7>(s.KH);
    const T** grows = bwd_scratch<const T*, 8>(s.KH);
    build_phases(s, ph, kws, offs);
    const int64_t C = s.C;
    const bool stream = stream_output<T>(s);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / s.H, ih = item % s.H;
      int64_t nkh = 0;
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        const int64_t oh = tap_source(ih, s.SH, s.PT, kh, s.DH, s.OH);
        if (oh < 0) continue;
        khs[nkh] = kh;
        grows[nkh++] = gy + (n * s.OH + oh) * s.OW * C;
      }
      T* gxrow = gx + (n * s.H + ih) * s.W * C;
      for (int64_t rw = 0; rw < s.SW && rw < s.W; ++rw) {
        const Phase P = ph[rw];
        const int64_t* kw = kws + rw * s.KW;
        const int64_t* off = offs + rw * s.KW;
        bwd_dispatch<kMaxRowTaps>(P.ntaps, [&]<int NKW>() {
          // one tile of positions across all channel blocks: whole gx pixels written at once
          auto tile = [&]<int TT, bool Checked>(int64_t p) {
            T* dst = gxrow + (rw + p * s.SW) * C;
            int64_t c = 0;
            for (; c + L <= C; c += L)
              nhwc_tile<NKW, TT, Checked, true>(s, khs, grows, nkh, kw, off, P.ntaps, p, c, L, wp,
                                                dst + c, stream);
            if (c < C)
              nhwc_tile<NKW, TT, Checked, false>(s, khs, grows, nkh, kw, off, P.ntaps, p, c,
                                                 static_cast<int>(C - c), wp, dst + c, stream);
          };
          // positions [p, end) in tiles of 8, 4, 2, 1: independent accumulator chains
          auto run = [&]<bool Checked>(int64_t p, int64_t end) {
            // 8 accumulators and the window fit 32 registers, and 16 when the phase has at most
            // kMaxTaps8 column taps: a tile's set-up then covers twice the positions
            // ([1,96,112,112] 3x3/2 AVX2, one thread: 630 -> 490 us; 5x5/2, 7x7/2: -7%)
            if constexpr (L >= 16 || (NKW > 0 && NKW <= kMaxTaps8)) {
              for (; p + 8 <= end; p += 8) tile.template operator()<8, Checked>(p);
            }
            for (; p + 4 <= end; p += 4) tile.template operator()<4, Checked>(p);
            for (; p + 2 <= end; p += 2) tile.template operator()<2, Checked>(p);
            for (; p < end; ++p) tile.template operator()<1, Checked>(p);
          };
          run.template operator()<true>(0, P.lo);
          run.template operator()<false>(P.lo, P.hi);
          run.template operator()<true>(P.hi, P.np);
        });
      }
    }
    if (stream) V::stream_fence();
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
    if (s.M == 1) return bwdi_nhwc(s, gy, w, gx, begin, end);
    for (int64_t item = begin; item < end; ++item)
      nhwc_row_generic(s, item / s.H, item % s.H, gy, w, gx);
  }
};
