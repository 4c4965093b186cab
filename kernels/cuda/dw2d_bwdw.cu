// Backward-weight depthwise conv2d: gw[co][kh][kw] = sum over n, oh, ow of gy * x, in two
// deterministic passes and no atomics, so the result is bitwise reproducible:
//   1. dw2d_bwdw_<nchw|nhwc>_<k3|k5|k7|generic>_cuda: the N*OH*OW output pixels of a channel are
//      cut into `splits` contiguous chunks (a function of the shape only); a block sums one chunk
//      of one channel (NCHW: warp shuffles, then the warps in order through shared memory) or of
//      32 channels (NHWC: 8 rows of 32 channel lanes, rows summed in order through shared memory)
//      and writes per-tap partials part[split][co][tap] in the accumulation type.
//   2. dw2d_bwdw_finish_cuda: one thread per (co, tap) adds the splits in order and rounds once.
// Splitting over pixels keeps the GPU busy at batch 1, when the channels alone are too few blocks.
#include "dw2d_common.cuh"

namespace dwconv {
namespace DWCONV_NS {

constexpr int kWarps = kThreads / 32;
constexpr int kNhwcLanes = 32, kNhwcRows = kThreads / kNhwcLanes;
constexpr i64 kTargetBlocks = 2048;   // enough blocks to fill an H100 several times
constexpr i64 kMinSplitPixels = 512;  // below this a split costs more than it saves

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  DW_UNROLL
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

struct BwdwPlan {
  i64 channel_blocks, splits, chunk;
};
inline BwdwPlan bwdw_plan(const Dw2dShape& s, Layout layout) {
  const i64 P = s.N * s.OH * s.OW;
  const i64 cb = layout == Layout::NCHW ? s.cout() : ceil_div(s.cout(), kNhwcLanes);
  const i64 splits = imax(1, imin(ceil_div(kTargetBlocks, cb), ceil_div(P, kMinSplitPixels)));
  return BwdwPlan{cb, splits, ceil_div(P, splits)};
}

template <typename T, typename Sp>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_bwdw_nchw_partial(Dw2dShape s, i64 splits, i64 chunk, FastDiv channels, Decode3 pixel,
                                                                   const T* __restrict__ gy,
                                                                   const T* __restrict__ x,
                                                                   typename Num<T>::A* __restrict__ part) {
  using A = typename Num<T>::A;
  // taps summed per pixel sweep: one kernel row when K is known (K accumulators), else one tap
  constexpr int K = Sp::K, TAPS = K ? K : 1;
  DW_SHARED(A, red, kWarps * TAPS);
  const i64 CO = s.cout(), KW = K ? K : s.KW, KK = K ? K * K : s.KH * s.KW;
  const i64 P = s.N * s.OH * s.OW;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  for (i64 bid = blockIdx.x; bid < CO * splits; bid += gridDim.x) {
    i64 sp;
    const i64 co = channels.divmod(bid, sp);
    const i64 p0 = sp * chunk, p1 = imin(P, p0 + chunk);
    const T* xc = x + int(co) / int(s.M) * s.H * s.W;
    A* out = part + (sp * CO + co) * KK;
    // taps [t0, t0 + TAPS)
    for (i64 t0 = 0; t0 < KK; t0 += TAPS) {
      A acc[TAPS];
      DW_UNROLL
      for (int q = 0; q < TAPS; ++q) acc[q] = A(0);
      for (i64 p = p0 + tid; p < p1; p += blockDim.x) {
        i64 ow, oh, unused, n;
        pixel(p, ow, oh, unused, n);
        const A g = gld(gy + ((n * CO + co) * s.OH + oh) * s.OW + ow);
        const T* xp = xc + n * s.C * s.H * s.W;
        DW_UNROLL
        for (int q = 0; q < TAPS; ++q) {
          const int tap = int(t0) + q, kh = tap / int(KW), kw = tap % int(KW);
          const i64 ih = oh * s.SH - s.PT + kh * s.DH, iw = ow * s.SW - s.PL + kw * s.DW;
          if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) acc[q] += g * gld(xp + ih * s.W + iw);
        }
      }
      DW_UNROLL
      for (int q = 0; q < TAPS; ++q) {
        const A v = warp_sum(acc[q]);
        if (lane == 0) red[warp * TAPS + q] = v;
      }
      __syncthreads();
      for (int q = tid; q < TAPS; q += blockDim.x) {
        A sum = A(0);
        for (int w = 0; w < kWarps; ++w) sum += red[w * TAPS + q];
        gst(out + t0 + q, sum);
      }
      __syncthreads();  // red is reused by the next taps / block
    }
  }
}

template <typename T, typename Sp>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_bwdw_nhwc_partial(Dw2dShape s, i64 splits, i64 chunk, FastDiv channels, Decode3 pixel,
                                                                   const T* __restrict__ gy,
                                                                   const T* __restrict__ x,
                                                                   typename Num<T>::A* __restrict__ part) {
  using A = typename Num<T>::A;
  constexpr int K = Sp::K, TAPS = K ? K : 1;
  DW_SHARED(A, red, kThreads);  // [row][lane]
  const i64 CO = s.cout(), KW = K ? K : s.KW, KK = K ? K * K : s.KH * s.KW;
  const i64 P = s.N * s.OH * s.OW, CB = ceil_div(CO, kNhwcLanes);
  const int tid = threadIdx.x, lane = tid % kNhwcLanes, row = tid / kNhwcLanes;
  for (i64 bid = blockIdx.x; bid < CB * splits; bid += gridDim.x) {
    i64 sp;
    const i64 cb = channels.divmod(bid, sp);
    const i64 co = cb * kNhwcLanes + lane;
    const bool valid = co < CO;
    const i64 c = int(co) / int(s.M);
    const i64 p0 = sp * chunk, p1 = imin(P, p0 + chunk);
    for (i64 t0 = 0; t0 < KK; t0 += TAPS) {
      A acc[TAPS];
      DW_UNROLL
      for (int q = 0; q < TAPS; ++q) acc[q] = A(0);
      for (i64 p = p0 + row; valid && p < p1; p += kNhwcRows) {
        i64 ow, oh, unused, n;
        pixel(p, ow, oh, unused, n);
        const A g = gld(gy + p * CO + co);
        DW_UNROLL
        for (int q = 0; q < TAPS; ++q) {
          const int tap = int(t0) + q, kh = tap / int(KW), kw = tap % int(KW);
          const i64 ih = oh * s.SH - s.PT + kh * s.DH, iw = ow * s.SW - s.PL + kw * s.DW;
          if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
            acc[q] += g * gld(x + ((n * s.H + ih) * s.W + iw) * s.C + c);
        }
      }
      for (int q = 0; q < TAPS; ++q) {
        red[tid] = acc[q];
        __syncthreads();
        if (row == 0 && valid) {
          A sum = A(0);
          for (int r = 0; r < kNhwcRows; ++r) sum += red[r * kNhwcLanes + lane];
          gst(part + (sp * CO + co) * KK + t0 + q, sum);
        }
        __syncthreads();
      }
    }
  }
}

template <typename T>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_bwdw_finish(i64 splits, i64 n,
                                                             const typename Num<T>::A* __restrict__ part,
                                                             T* __restrict__ gw) {
  using A = typename Num<T>::A;
  for (i64 i = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<i64>(gridDim.x) * blockDim.x) {
    A sum = A(0);
    for (i64 sp = 0; sp < splits; ++sp) sum += gld(part + sp * n + i);
    gst(gw + i, sum);
  }
}

const char* bwdw_variant(const Dw2dShape& s, Layout, DType) {
  const char* name = spec_name<Generic>();
  dispatch_k(s, KernelSpecs{}, [&](auto sp) { name = spec_name<decltype(sp)>(); });
  return name;
}

int64_t dw2d_bwdw_workspace_bytes(const Dw2dShape& s, Layout layout, DType dt) {
  return bwdw_plan(s, layout).splits * s.cout() * s.KH * s.KW * acc_bytes(dt);
}

int dw2d_bwdw(const Dw2dShape& s, Layout layout, DType dt, const void* gy, const void* x, void* gw,
              void* workspace, void* stream_) {
  const cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  const BwdwPlan plan = bwdw_plan(s, layout);
  return dispatch_dtype(dt, [&](auto* tag) -> int {
    using T = std::remove_pointer_t<decltype(tag)>;
    using A = typename Num<T>::A;
    const T* gp = static_cast<const T*>(gy);
    const T* xp = static_cast<const T*>(x);
    A* part = static_cast<A*>(workspace);
    const unsigned grid = static_cast<unsigned>(imin(plan.channel_blocks * plan.splits, kMaxBlocks));
    const FastDiv channels(plan.channel_blocks);
    const Decode3 pixel(s.OW, s.OH, 1);
    int err = 0;
    auto run = [&](auto sp) {
      using Sp = decltype(sp);
      err = layout == Layout::NCHW
                ? static_cast<int>(DWCONV_LAUNCH((dw2d_bwdw_nchw_partial<T, Sp>), grid, kThreads, 0,
                                                 stream, s, plan.splits, plan.chunk, channels,
                                                 pixel, gp, xp, part))
                : static_cast<int>(DWCONV_LAUNCH((dw2d_bwdw_nhwc_partial<T, Sp>), grid, kThreads, 0,
                                                 stream, s, plan.splits, plan.chunk, channels,
                                                 pixel, gp, xp, part));
    };
    if (!dispatch_k(s, KernelSpecs{}, run)) run(Generic{});
    if (err) return err;
    const i64 n = s.cout() * s.KH * s.KW;
    return static_cast<int>(DWCONV_LAUNCH(dw2d_bwdw_finish<T>, grid_for(n), kThreads, 0, stream,
                                          plan.splits, n, part, static_cast<T*>(gw)));
  });
}

}  // namespace DWCONV_NS
}  // namespace dwconv
