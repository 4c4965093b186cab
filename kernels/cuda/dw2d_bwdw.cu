// Backward-weight depthwise conv2d: gw[co][kh][kw] = sum over n, oh, ow of gy * x, in two
// deterministic passes and no atomics, so the result is bitwise reproducible:
//   1. dw2d_bwdw_<nchw|nhwc>_<k3|k5|k7|generic>_cuda: the N*OH*OW output pixels of a channel are
//      cut into `splits` contiguous chunks (a function of the shape only); a block sums one chunk
//      of one channel (NCHW: warp shuffles, then the warps in order through shared memory) or of
//      32 channels (NHWC: 8 rows of 32 channel lanes, rows summed in order through shared memory)
//      and writes per-tap partials part[split][co][tap] in the accumulation type.
//      dw2d_bwdw_<nchw|nhwc>_klarge_cuda (k >= 13): a split is a run of output tiles instead; a
//      block keeps each tile's grad_out patch and its input patch plus halo for L channels in
//      shared memory, and each thread sums a fixed set of taps over the tile's pixels.
//   2. dw2d_bwdw_finish_cuda: one thread per (co, tap) adds the splits in order and rounds once.
// Splitting over pixels keeps the GPU busy at batch 1, when the channels alone are too few blocks.
#include "dw2d_klarge.cuh"

namespace dwconv {
namespace DWCONV_NS {

constexpr int kWarps = kThreads / 32;
constexpr int kNhwcLanes = 32, kNhwcRows = kThreads / kNhwcLanes;
// Blocks the splits aim at: enough to fill an H100 several times. The emulation aims at two per
// emulated block (kMaxBlocks) so that its small shapes also give splits of several klarge tiles.
#if defined(DWCONV_CUDA_EMU)
constexpr i64 kTargetBlocks = 2 * kMaxBlocks;
#else
constexpr i64 kTargetBlocks = 2048;
#endif
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

// Large kernels: the N * tiles_h * tiles_w output tiles (in (col, row, n) order) are cut into
// `splits` runs of `chunk` tiles, a function of the shape only.
struct KlargeBwdw {
  KlargeTile t;
  int KH, KW, SH, SW, DH, DW;
  i64 PT, PL;
  int H, W, OH, OW;
  i64 C, CO, M;
  i64 groups, tiles, splits, chunk;
  FastDiv group_div;  // block item -> (channel group, split)
  Decode3 tile_dec;   // tile -> (col, row, n)
};

inline KlargeBwdw klarge_bwdw_plan(const Dw2dShape& s, DType dt) {
  KlargeBwdw p{};
  if (s.KH < kKlargeMinK || s.KW < kKlargeMinK) return p;
  p.t = klarge_tile(s, true, s.OH, s.OW, s.cout(), acc_bytes(dt));
  if (p.t.L == 0) return p;
  p.KH = int(s.KH), p.KW = int(s.KW), p.SH = int(s.SH), p.SW = int(s.SW);
  p.DH = int(s.DH), p.DW = int(s.DW), p.PT = s.PT, p.PL = s.PL;
  p.H = int(s.H), p.W = int(s.W), p.OH = int(s.OH), p.OW = int(s.OW);
  p.C = s.C, p.CO = s.cout(), p.M = s.M;
  p.groups = ceil_div(s.cout(), p.t.L);
  const i64 tiles_h = ceil_div(s.OH, p.t.TH), tiles_w = ceil_div(s.OW, p.t.TW);
  p.tiles = s.N * tiles_h * tiles_w;
  p.splits = imax(1, imin(p.tiles, ceil_div(kTargetBlocks, p.groups)));
  p.chunk = ceil_div(p.tiles, p.splits);
  p.splits = ceil_div(p.tiles, p.chunk);  // no empty split
  p.group_div = FastDiv(p.groups);
  p.tile_dec = Decode3(tiles_w, tiles_h, s.N);
  return p;
}

// Shared memory: [KH*KW][L] per-tap sums, [TH*TW][L] grad_out tile, [tile_h*tile_w][L] input
// tile. Thread (slot, lane) owns the sums of taps slot, slot + P, ... of channel lane: kKlargeR of
// them per pass over the tile's pixels in registers, added to its shared sums after each pass, so
// no two threads touch one sum and every sum has one fixed order (tiles, rows, columns).
template <typename T, Layout LAYOUT>
__global__ __launch_bounds__(kThreads, kMinBlocks) void dw2d_bwdw_klarge(KlargeBwdw p,
                                                                     const T* __restrict__ gy,
                                                                     const T* __restrict__ x,
                                                                     typename Num<T>::A* __restrict__ part) {
  using A = typename Num<T>::A;
  DW_DYN_SHARED(A, smem);
  const KlargeTile& t = p.t;
  const int L = t.L, P = kThreads >> t.lg_l, KK = p.KH * p.KW;
  const int gs = KK * L, xs = gs + t.TH * t.TW * L;
  const int tid = threadIdx.x, lane = tid & (L - 1), slot = tid >> t.lg_l;
  for (i64 bid = blockIdx.x; bid < p.groups * p.splits; bid += gridDim.x) {
    i64 sp;
    const i64 g = p.group_div.divmod(bid, sp), co = g * L + lane;
    for (int tap = slot; tap < KK; tap += P) smem[tap * L + lane] = A(0);
    const i64 t1 = imin(p.tiles, (sp + 1) * p.chunk);
    for (i64 tile = sp * p.chunk; tile < t1; ++tile) {
      i64 tw, th, n, unused;
      p.tile_dec(tile, tw, th, n, unused);
      const i64 oh0 = th * t.TH, ow0 = tw * t.TW;
      auto chan = [&](int l) -> i64 {
        const i64 c = g * L + l;
        return c < p.CO ? c : -1;
      };
      load_tile<T, LAYOUT>(smem, gs, gy, n, p.CO, p.OH, p.OW, oh0, ow0, t.TH, t.TW, t, chan);
      load_tile<T, LAYOUT>(smem, xs, x, n, p.C, p.H, p.W, oh0 * p.SH - p.PT, ow0 * p.SW - p.PL,
                           t.tile_h, t.tile_w, t, [&](int l) -> i64 {
                             const i64 c = chan(l);
                             return c < 0 ? c : c / p.M;
                           });
      __syncthreads();
      const int rows = int(imin(t.TH, p.OH - oh0)), cols = int(imin(t.TW, p.OW - ow0));
      for (int pass = 0; pass < KK; pass += P * kKlargeR) {
        int off[kKlargeR];  // input tile offset of each tap at pixel (0, 0); -1: none (the last)
        A acc[kKlargeR];
        DW_UNROLL
        for (int i = 0; i < kKlargeR; ++i) {
          const int tap = pass + slot + P * i, kh = tap / p.KW, kw = tap - kh * p.KW;
          off[i] = tap < KK ? xs + (kh * p.DH * t.tile_w + kw * p.DW) * L + lane : -1;
          acc[i] = tap < KK ? static_cast<A>(smem[tap * L + lane]) : A(0);
        }
        for (int r = 0; off[0] >= 0 && r < rows; ++r) {  // taps past the kernel: no work
          DW_UNROLL_BY(2)  // deeper unrolling takes 104 registers instead of 64
          for (int c = 0; c < cols; ++c) {
            const A gv = smem[gs + (r * t.TW + c) * L + lane];
            const int base = (r * p.SH * t.tile_w + c * p.SW) * L;
            DW_UNROLL
            for (int i = 0; i < kKlargeR; ++i)
              if (off[i] >= 0) acc[i] += gv * static_cast<A>(smem[off[i] + base]);
          }
        }
        DW_UNROLL
        for (int i = 0; i < kKlargeR; ++i)
          if (off[i] >= 0) smem[(pass + slot + P * i) * L + lane] = acc[i];
      }
      __syncthreads();  // the next tile overwrites the patches
    }
    if (co < p.CO)
      for (int tap = slot; tap < KK; tap += P) gst(part + (sp * p.CO + co) * KK + tap, smem[tap * L + lane]);
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

const char* bwdw_variant(const Dw2dShape& s, Layout, DType dt) {
  if (klarge_bwdw_plan(s, dt).t.L) return "klarge";
  const char* name = spec_name<Generic>();
  dispatch_k(s, KernelSpecs{}, [&](auto sp) { name = spec_name<decltype(sp)>(); });
  return name;
}

int64_t dw2d_bwdw_workspace_bytes(const Dw2dShape& s, Layout layout, DType dt) {
  const KlargeBwdw kl = klarge_bwdw_plan(s, dt);
  return (kl.t.L ? kl.splits : bwdw_plan(s, layout).splits) * s.cout() * s.KH * s.KW * acc_bytes(dt);
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
    const i64 n = s.cout() * s.KH * s.KW;
    if (const KlargeBwdw p = klarge_bwdw_plan(s, dt); p.t.L) {
      const unsigned grid = static_cast<unsigned>(imin(p.groups * p.splits, kMaxBlocks));
      const int err = static_cast<int>(
          layout == Layout::NCHW
              ? DWCONV_LAUNCH((dw2d_bwdw_klarge<T, Layout::NCHW>), grid, kThreads, p.t.smem,
                              stream, p, gp, xp, part)
              : DWCONV_LAUNCH((dw2d_bwdw_klarge<T, Layout::NHWC>), grid, kThreads, p.t.smem,
                              stream, p, gp, xp, part));
      if (err) return err;
      return static_cast<int>(DWCONV_LAUNCH(dw2d_bwdw_finish<T>, grid_for(n), kThreads, 0, stream,
                                            p.splits, n, part, static_cast<T*>(gw)));
    }
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
    return static_cast<int>(DWCONV_LAUNCH(dw2d_bwdw_finish<T>, grid_for(n), kThreads, 0, stream,
                                          plan.splits, n, part, static_cast<T*>(gw)));
  });
}

}  // namespace DWCONV_NS
}  // namespace dwconv
