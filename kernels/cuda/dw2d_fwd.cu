// Forward depthwise conv2d: y = conv(x, w) + b, NCHW and NHWC.
//
// Kernels (docs/kernels.md names):
//   dw2d_fwd_nchw_<k3s1|...|generic>_cuda  one thread: R consecutive outputs of a row; the
//       specialised ones keep the (R-1)*S+K input columns of a kernel row in registers
//   dw2d_fwd_<nchw|nhwc>_klarge_cuda       k >= 13: a block computes an output tile of L channels
//       from its input tile plus halo and the weights in shared memory (dw2d_klarge.cuh)
//   dw2d_fwd_nhwc_<...>_cuda                one thread: R outputs along W x VEC channels, 16-byte
//       channel loads (VEC = 16 / sizeof(T)) when M == 1 and rows are 16-byte aligned
// Every loop runs over 64-bit item indices in a grid-stride loop, so the grid adapts to any size.
#include "dw2d_klarge.cuh"

namespace dwconv {
namespace DWCONV_NS {

constexpr int kFwdR = 4;  // outputs per thread along W
// NHWC float64: 2 vectors of 2 doubles per output already; 4 outputs would not fit 128 registers
template <typename T>
constexpr int kNhwcR = sizeof(T) == 8 ? 2 : 4;

template <typename T, typename Sp, int R>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_fwd_nchw_direct(Dw2dShape s, Decode3 dec, const T* __restrict__ x,
                                                                 const T* __restrict__ w,
                                                                 const T* __restrict__ b,
                                                                 T* __restrict__ y) {
  using A = typename Num<T>::A;
  constexpr int K = Sp::K, S = Sp::S;
  const i64 KH = K ? K : s.KH, KW = K ? K : s.KW, SH = S ? S : s.SH, SW = S ? S : s.SW;
  const i64 DH = K ? 1 : s.DH, DW = K ? 1 : s.DW;
  const i64 CO = s.cout(), OWR = ceil_div(s.OW, R);
  const i64 items = s.N * CO * s.OH * OWR;
  for (i64 it = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<i64>(gridDim.x) * blockDim.x) {
    i64 owr, oh, co, n;
    dec(it, owr, oh, co, n);
    const T* xp = x + (n * s.C + int(co) / int(s.M)) * s.H * s.W;
    const T* wp = w + co * KH * KW;
    const i64 ow0 = owr * R, ih0 = oh * SH - s.PT, iw0 = ow0 * SW - s.PL;
    const A bias = b ? gld(b + co) : A(0);
    A acc[R];
    DW_UNROLL
    for (int r = 0; r < R; ++r) acc[r] = bias;
    if constexpr (K != 0) {
      constexpr int SPAN = (R - 1) * S + K;
      DW_UNROLL
      for (int kh = 0; kh < K; ++kh) {
        const i64 ih = ih0 + kh;
        if (ih < 0 || ih >= s.H) continue;
        A xv[SPAN];
        DW_UNROLL
        for (int i = 0; i < SPAN; ++i) {
          const i64 iw = iw0 + i;
          xv[i] = iw >= 0 && iw < s.W ? gld(xp + ih * s.W + iw) : A(0);
        }
        DW_UNROLL
        for (int kw = 0; kw < K; ++kw) {
          const A wv = gld(wp + kh * K + kw);
          DW_UNROLL
          for (int r = 0; r < R; ++r) acc[r] += xv[r * S + kw] * wv;
        }
      }
    } else {
      for (i64 kh = 0; kh < KH; ++kh) {
        const i64 ih = ih0 + kh * DH;
        if (ih < 0 || ih >= s.H) continue;
        for (i64 kw = 0; kw < KW; ++kw) {
          const A wv = gld(wp + kh * KW + kw);
          DW_UNROLL
          for (int r = 0; r < R; ++r) {
            const i64 iw = iw0 + r * SW + kw * DW;
            if (iw >= 0 && iw < s.W) acc[r] += gld(xp + ih * s.W + iw) * wv;
          }
        }
      }
    }
    T* yp = y + ((n * CO + co) * s.OH + oh) * s.OW;
    DW_UNROLL
    for (int r = 0; r < R; ++r)
      if (ow0 + r < s.OW) gst(yp + ow0 + r, acc[r]);
  }
}

// Large kernels, both layouts (dw2d_klarge.cuh).
template <typename T, Layout LAYOUT>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_fwd_klarge(KlargeConv p,
                                                                    const T* __restrict__ x,
                                                                    const T* __restrict__ w,
                                                                    const T* __restrict__ b,
                                                                    T* __restrict__ y) {
  klarge_conv<T, LAYOUT, false>(p, x, w, b, y);
}

template <typename T, typename Sp, int R, int VEC>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_fwd_nhwc_direct(Dw2dShape s, Decode3 dec, const T* __restrict__ x,
                                                                 const T* __restrict__ w,
                                                                 const T* __restrict__ b,
                                                                 T* __restrict__ y) {
  using A = typename Num<T>::A;
  constexpr int K = Sp::K, S = Sp::S;
  const i64 KH = K ? K : s.KH, KW = K ? K : s.KW, SH = S ? S : s.SH, SW = S ? S : s.SW;
  const i64 DH = K ? 1 : s.DH, DW = K ? 1 : s.DW;
  const i64 CO = s.cout(), CV = CO / VEC, OWR = ceil_div(s.OW, R);
  const i64 items = s.N * s.OH * OWR * CV;
  for (i64 it = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<i64>(gridDim.x) * blockDim.x) {
    i64 cv, owr, oh, n;
    dec(it, cv, owr, oh, n);
    const i64 co0 = cv * VEC, c0 = int(co0) / int(s.M);  // VEC > 1 only when M == 1
    const i64 ow0 = owr * R, ih0 = oh * SH - s.PT, iw0 = ow0 * SW - s.PL;
    A acc[R][VEC];
    A bias[VEC];
    if (b) {
      gld_vec<T, VEC>(b + co0, bias);
    } else {
      DW_UNROLL
      for (int v = 0; v < VEC; ++v) bias[v] = A(0);
    }
    DW_UNROLL
    for (int r = 0; r < R; ++r) {
      DW_UNROLL
      for (int v = 0; v < VEC; ++v) acc[r][v] = bias[v];
    }
    for (i64 kh = 0; kh < KH; ++kh) {
      const i64 ih = ih0 + kh * DH;
      if (ih < 0 || ih >= s.H) continue;
      const T* xrow = x + (n * s.H + ih) * s.W * s.C + c0;
      for (i64 kw = 0; kw < KW; ++kw) {
        A wv[VEC];
        gld_vec<T, VEC>(w + (kh * KW + kw) * CO + co0, wv);
        DW_UNROLL
        for (int r = 0; r < R; ++r) {
          const i64 iw = iw0 + r * SW + kw * DW;
          if (iw < 0 || iw >= s.W) continue;
          A xv[VEC];
          gld_vec<T, VEC>(xrow + iw * s.C, xv);
          DW_UNROLL
          for (int v = 0; v < VEC; ++v) acc[r][v] += xv[v] * wv[v];
        }
      }
    }
    DW_UNROLL
    for (int r = 0; r < R; ++r)
      if (ow0 + r < s.OW) gst_vec<T, VEC>(y + ((n * s.OH + oh) * s.OW + ow0 + r) * CO + co0, acc[r]);
  }
}

const char* fwd_variant(const Dw2dShape& s, Layout layout, DType dt) {
  if (klarge_conv_plan(s, layout, dt, false).t.L) return "klarge";
  const char* name = spec_name<Generic>();
  dispatch_spec(s, DirectSpecs{}, [&](auto sp) { name = spec_name<decltype(sp)>(); });
  return name;
}

int dw2d_fwd(const Dw2dShape& s, Layout layout, DType dt, const void* x, const void* w,
             const void* b, void* y, void* stream_) {
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  return dispatch_dtype(dt, [&](auto* tag) -> int {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* xp = static_cast<const T*>(x);
    const T* wp = static_cast<const T*>(w);
    const T* bp = static_cast<const T*>(b);
    T* yp = static_cast<T*>(y);
    if (const KlargeConv p = klarge_conv_plan(s, layout, dt, false); p.t.L) {
      const unsigned grid = static_cast<unsigned>(imin(p.items, kMaxBlocks));
      return static_cast<int>(
          layout == Layout::NCHW
              ? DWCONV_LAUNCH((dw2d_fwd_klarge<T, Layout::NCHW>), grid, kThreads, p.t.smem, stream,
                              p, xp, wp, bp, yp)
              : DWCONV_LAUNCH((dw2d_fwd_klarge<T, Layout::NHWC>), grid, kThreads, p.t.smem, stream,
                              p, xp, wp, bp, yp));
    }
    if (layout == Layout::NCHW) {
      const unsigned grid = grid_for(s.N * s.cout() * s.OH * ceil_div(s.OW, kFwdR));
      int err = 0;
      auto run = [&](auto sp) {
        using Sp = decltype(sp);
        err = static_cast<int>(DWCONV_LAUNCH((dw2d_fwd_nchw_direct<T, Sp, kFwdR>), grid, kThreads,
                                             0, stream, s,
                                             Decode3(ceil_div(s.OW, kFwdR), s.OH, s.cout()), xp,
                                             wp, bp, yp));
      };
      if (!dispatch_spec(s, DirectSpecs{}, run)) run(Generic{});
      return err;
    }
    int err = 0;
    auto run = [&](auto sp) {
      using Sp = decltype(sp);
      constexpr int VEC = 16 / sizeof(T), R = kNhwcR<T>;
      if (nhwc_vec_ok<T>(s, {xp, wp, bp, yp})) {
        const unsigned grid = grid_for(s.N * s.OH * ceil_div(s.OW, R) * (s.cout() / VEC));
        err = static_cast<int>(DWCONV_LAUNCH(
            (dw2d_fwd_nhwc_direct<T, Sp, R, VEC>), grid, kThreads, 0, stream, s,
            Decode3(s.cout() / VEC, ceil_div(s.OW, R), s.OH), xp, wp, bp, yp));
      } else {
        const unsigned grid = grid_for(s.N * s.OH * ceil_div(s.OW, R) * s.cout());
        err = static_cast<int>(DWCONV_LAUNCH(
            (dw2d_fwd_nhwc_direct<T, Sp, R, 1>), grid, kThreads, 0, stream, s,
            Decode3(s.cout(), ceil_div(s.OW, R), s.OH), xp, wp, bp, yp));
      }
    };
    if (!dispatch_spec(s, DirectSpecs{}, run)) run(Generic{});
    return err;
  });
}

}  // namespace DWCONV_NS
}  // namespace dwconv
