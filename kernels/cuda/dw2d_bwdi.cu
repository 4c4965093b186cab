// Backward-input depthwise conv2d: gx = conv_transpose(gy, w), NCHW and NHWC, as a gather: each
// thread owns R input positions of a row (x VEC channels in NHWC) and sums every (output, tap) pair
// that read them, over the M output channels of its input channel. Nothing is accumulated in
// memory, so the result is deterministic.
//
// Kernels: dw2d_bwdi_<nchw|nhwc>_<k3s1|...|generic>_cuda (specialisations from DirectSpecs), and
// dw2d_bwdi_<nchw|nhwc>_klarge_cuda for k >= 13 at stride 1: the forward klarge kernel run on
// grad_out with the flipped kernel (dw2d_klarge.cuh), a gather too.
#include "dw2d_klarge.cuh"

namespace dwconv {
namespace DWCONV_NS {

constexpr int kBwdiR = 4;  // input positions per thread along W

// Output index o with o*S - P + k*D == i, or -1 when none (not on the stride grid or outside).
// 32-bit: every spatial size and padding is below 2^30 (dims_fit_int32), and a 64-bit division
// here would be a software routine in the innermost loop.
template <int S>
__device__ __forceinline__ int source_index(int i, int k, int P, int D, const FastDiv32& s_rt,
                                            int O) {
  const int t = i + P - k * D;
  if (t < 0) return -1;
  const int o = S ? t / S : s_rt.div(t);
  if (t != o * (S ? S : static_cast<int>(s_rt.d))) return -1;
  return o < O ? o : -1;
}

template <typename T, typename Sp, int R>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_bwdi_nchw_direct(Dw2dShape s, Decode3 dec, FastDiv32 sh, FastDiv32 sw, const T* __restrict__ gy,
                                                                  const T* __restrict__ w,
                                                                  T* __restrict__ gx) {
  using A = typename Num<T>::A;
  constexpr int K = Sp::K, S = Sp::S;
  const i64 KH = K ? K : s.KH, KW = K ? K : s.KW;
  const i64 DH = K ? 1 : s.DH, DW = K ? 1 : s.DW;
  const i64 CO = s.cout(), WR = ceil_div(s.W, R);
  const i64 items = s.N * s.C * s.H * WR;
  for (i64 it = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<i64>(gridDim.x) * blockDim.x) {
    i64 wr, ih, c, n;
    dec(it, wr, ih, c, n);
    const i64 iw0 = wr * R;
    A acc[R];
    DW_UNROLL
    for (int r = 0; r < R; ++r) acc[r] = A(0);
    for (i64 j = 0; j < s.M; ++j) {
      const i64 co = c * s.M + j;
      const T* gp = gy + (n * CO + co) * s.OH * s.OW;
      const T* wp = w + co * KH * KW;
      for (i64 kh = 0; kh < KH; ++kh) {
        const i64 oh = source_index<S>(int(ih), int(kh), int(s.PT), int(DH), sh, int(s.OH));
        if (oh < 0) continue;
        for (i64 kw = 0; kw < KW; ++kw) {
          const A wv = gld(wp + kh * KW + kw);
          DW_UNROLL
          for (int r = 0; r < R; ++r) {
            const i64 ow = source_index<S>(int(iw0 + r), int(kw), int(s.PL), int(DW), sw, int(s.OW));
            if (ow >= 0) acc[r] += gld(gp + oh * s.OW + ow) * wv;
          }
        }
      }
    }
    T* xp = gx + ((n * s.C + c) * s.H + ih) * s.W;
    DW_UNROLL
    for (int r = 0; r < R; ++r)
      if (iw0 + r < s.W) gst(xp + iw0 + r, acc[r]);
  }
}

template <typename T, typename Sp, int R, int VEC>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_bwdi_nhwc_direct(Dw2dShape s, Decode3 dec, FastDiv32 sh, FastDiv32 sw, const T* __restrict__ gy,
                                                                  const T* __restrict__ w,
                                                                  T* __restrict__ gx) {
  using A = typename Num<T>::A;
  constexpr int K = Sp::K, S = Sp::S;
  const i64 KH = K ? K : s.KH, KW = K ? K : s.KW;
  const i64 DH = K ? 1 : s.DH, DW = K ? 1 : s.DW;
  const i64 CO = s.cout(), CV = s.C / VEC, WR = ceil_div(s.W, R);
  const i64 items = s.N * s.H * WR * CV;
  for (i64 it = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; it < items;
       it += static_cast<i64>(gridDim.x) * blockDim.x) {
    i64 cv, wr, ih, n;
    dec(it, cv, wr, ih, n);
    const i64 c0 = cv * VEC, iw0 = wr * R;
    A acc[R][VEC];
    DW_UNROLL
    for (int r = 0; r < R; ++r) {
      DW_UNROLL
      for (int v = 0; v < VEC; ++v) acc[r][v] = A(0);
    }
    for (i64 j = 0; j < s.M; ++j) {
      const i64 co0 = c0 * s.M + j;  // VEC > 1 only when M == 1
      for (i64 kh = 0; kh < KH; ++kh) {
        const i64 oh = source_index<S>(int(ih), int(kh), int(s.PT), int(DH), sh, int(s.OH));
        if (oh < 0) continue;
        const T* grow = gy + (n * s.OH + oh) * s.OW * CO + co0;
        for (i64 kw = 0; kw < KW; ++kw) {
          A wv[VEC];
          gld_vec<T, VEC>(w + (kh * KW + kw) * CO + co0, wv);
          DW_UNROLL
          for (int r = 0; r < R; ++r) {
            const i64 ow = source_index<S>(int(iw0 + r), int(kw), int(s.PL), int(DW), sw, int(s.OW));
            if (ow < 0) continue;
            A gv[VEC];
            gld_vec<T, VEC>(grow + ow * CO, gv);
            DW_UNROLL
            for (int v = 0; v < VEC; ++v) acc[r][v] += gv[v] * wv[v];
          }
        }
      }
    }
    DW_UNROLL
    for (int r = 0; r < R; ++r)
      if (iw0 + r < s.W) gst_vec<T, VEC>(gx + ((n * s.H + ih) * s.W + iw0 + r) * s.C + c0, acc[r]);
  }
}

// Large kernels at stride 1, both layouts (dw2d_klarge.cuh).
template <typename T, Layout LAYOUT>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_bwdi_klarge(KlargeConv p,
                                                                     const T* __restrict__ gy,
                                                                     const T* __restrict__ w,
                                                                     T* __restrict__ gx) {
  klarge_conv<T, LAYOUT, true>(p, gy, w, nullptr, gx);
}

const char* bwdi_variant(const Dw2dShape& s, Layout layout, DType dt) {
  if (klarge_conv_plan(s, layout, dt, true).t.L) return "klarge";
  const char* name = spec_name<Generic>();
  dispatch_spec(s, DirectSpecs{}, [&](auto sp) { name = spec_name<decltype(sp)>(); });
  return name;
}

int dw2d_bwdi(const Dw2dShape& s, Layout layout, DType dt, const void* gy, const void* w,
              void* gx, void* stream_) {
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  return dispatch_dtype(dt, [&](auto* tag) -> int {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* gp = static_cast<const T*>(gy);
    const T* wp = static_cast<const T*>(w);
    T* xp = static_cast<T*>(gx);
    if (const KlargeConv p = klarge_conv_plan(s, layout, dt, true); p.t.L) {
      const unsigned grid = static_cast<unsigned>(imin(p.items, kMaxBlocks));
      return static_cast<int>(
          layout == Layout::NCHW
              ? DWCONV_LAUNCH((dw2d_bwdi_klarge<T, Layout::NCHW>), grid, kThreads, p.t.smem,
                              stream, p, gp, wp, xp)
              : DWCONV_LAUNCH((dw2d_bwdi_klarge<T, Layout::NHWC>), grid, kThreads, p.t.smem,
                              stream, p, gp, wp, xp));
    }
    const FastDiv32 sh(s.SH), sw(s.SW);
    int err = 0;
    auto run = [&](auto sp) {
      using Sp = decltype(sp);
      if (layout == Layout::NCHW) {
        const unsigned grid = grid_for(s.N * s.C * s.H * ceil_div(s.W, kBwdiR));
        err = static_cast<int>(DWCONV_LAUNCH((dw2d_bwdi_nchw_direct<T, Sp, kBwdiR>), grid,
                                             kThreads, 0, stream, s,
                                             Decode3(ceil_div(s.W, kBwdiR), s.H, s.C), sh, sw, gp, wp, xp));
        return;
      }
      constexpr int VEC = 16 / sizeof(T);
      if (nhwc_vec_ok<T>(s, {gp, wp, xp})) {
        const unsigned grid = grid_for(s.N * s.H * ceil_div(s.W, kBwdiR) * (s.C / VEC));
        err = static_cast<int>(DWCONV_LAUNCH(
            (dw2d_bwdi_nhwc_direct<T, Sp, kBwdiR, VEC>), grid, kThreads, 0, stream, s,
            Decode3(s.C / VEC, ceil_div(s.W, kBwdiR), s.H), sh, sw, gp, wp, xp));
      } else {
        const unsigned grid = grid_for(s.N * s.H * ceil_div(s.W, kBwdiR) * s.C);
        err = static_cast<int>(DWCONV_LAUNCH(
            (dw2d_bwdi_nhwc_direct<T, Sp, kBwdiR, 1>), grid, kThreads, 0, stream, s,
            Decode3(s.C, ceil_div(s.W, kBwdiR), s.H), sh, sw, gp, wp, xp));
      }
    };
    if (!dispatch_spec(s, DirectSpecs{}, run)) run(Generic{});
    return err;
  });
}

}  // namespace DWCONV_NS
}  // namespace dwconv
