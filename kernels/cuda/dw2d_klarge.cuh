// Large kernels (both sides >= 13): a block works on an output tile of L channels ("lanes", a power
// of two) and keeps the input tile plus its halo in shared memory, so each input element comes from
// global memory once per tile instead of once per tap. What every pass's klarge kernel shares:
//   klarge_tile    the host's choice of lanes and tile for a problem (or none: generic path)
//   load_tile      a rows x cols patch of L channels into shared memory, zero outside the image
//   klarge_conv    the block body of the forward pass and of backward-input at stride 1, which is a
//                  forward convolution of grad_out with the flipped kernel and padding (K-1)*D - P,
//                  each input channel summing its M output channels (dw2d_fwd.cu, dw2d_bwdi.cu)
// dw2d_bwdw.cu builds its klarge kernel from klarge_tile and load_tile.
//
// Threads: tid = slot * L + lane, lane fastest. Shared arrays are [pixel][lane], so a warp's lanes
// read consecutive words; in NHWC a pixel's L channels are also consecutive in global memory.
#pragma once
#include "dw2d_common.cuh"

namespace dwconv {
namespace DWCONV_NS {

constexpr int kKlargeMinK = 13;                // both kernel sides at least this
constexpr i64 kKlargeMaxSmem = 48 * 1024;      // the dynamic shared memory a launch gets unasked
constexpr int kKlargeR = 4;                    // conv: outputs per thread; bwdw: taps per pass
constexpr int kKlargeMaxLanes = 32, kKlargeMaxSide = 64;

struct KlargeTile {
  int L = 0, lg_l = 0;       // lanes (channels per block), log2; L == 0: no tile fits
  int TH = 0, TW = 0;        // output tile
  int tile_h = 0, tile_w = 0;  // input tile: output tile plus halo
  i64 smem = 0;              // bytes of dynamic shared memory
};

// The lanes and output tile (powers of two) with the most useful work per thread instruction
// slot, then the largest tile, then the most lanes. Per tile and thread, a multiply-add costs a
// slot and a global load into shared memory kKlargeFillCost (the L2 delivers about an eighth of
// the SM's multiply-add rate in words), and a tile's fill latency and barriers kKlargeTileCost. conv: each of the kThreads / L spatial threads of a block
// has kKlargeR output slots, busy or not, and the weights share the tile's memory. bwdw: each
// thread sums kKlargeR taps per pass over the tile's pixels (only those inside the image) into
// accumulators kept in shared memory beside the grad_out tile. Fewer than kKlargeFullGrid blocks
// (tiles x channel groups x images) leave SMs idle, which counts against a choice.
constexpr double kKlargeFillCost = 8, kKlargeTileCost = 512;
constexpr i64 kKlargeFullGrid = 264;  // two blocks on each SM of an H100
inline KlargeTile klarge_tile(const Dw2dShape& s, bool bwdw, i64 out_h, i64 out_w, i64 channels,
                              int acc_bytes_) {
  KlargeTile best;
  double best_score = 0;
  const i64 KK = s.KH * s.KW;
  for (int lg = 0; (1 << lg) <= kKlargeMaxLanes; ++lg) {
    const int L = 1 << lg, P = kThreads >> lg;
    const double ch_util = double(channels) / double(ceil_div(channels, L) * L);
    for (int TH = 1; TH <= kKlargeMaxSide && TH < 2 * out_h; TH *= 2) {
      for (int TW = 1; TW <= kKlargeMaxSide && TW < 2 * out_w; TW *= 2) {
        const i64 px = TH * TW, slots = i64{P} * kKlargeR;
        if (!bwdw && px > slots) continue;
        const i64 th = (TH - 1) * s.SH + (s.KH - 1) * s.DH + 1;
        const i64 tw = (TW - 1) * s.SW + (s.KW - 1) * s.DW + 1;
        const i64 smem = (KK + th * tw + (bwdw ? px : 0)) * L * acc_bytes_;
        if (smem > kKlargeMaxSmem) continue;
        // share of the tiles' pixels inside the output
        const double sp_util =
            double(out_h * out_w) / double(ceil_div(out_h, TH) * TH * ceil_div(out_w, TW) * TW);
        const double useful = ch_util * sp_util * double(px * KK * L) / kThreads;
        const double cost =
            kKlargeTileCost +
            (bwdw ? double(ceil_div(KK, slots) * kKlargeR) * sp_util * double(px) +
                        kKlargeFillCost * double((th * tw + px) * L) / kThreads
                  : double(kKlargeR * KK) + kKlargeFillCost * double((th * tw + KK) * L) / kThreads);
        const i64 blocks =
            s.N * ceil_div(channels, L) * ceil_div(out_h, TH) * ceil_div(out_w, TW);
        const double score = useful / cost * double(imin(blocks, kKlargeFullGrid));
        const bool better =
            score > best_score * (1 + 1e-9) ||
            (score >= best_score * (1 - 1e-9) &&
             (px > best.TH * best.TW || (px == best.TH * best.TW && L > best.L)));
        if (best.L == 0 || better) {
          best = KlargeTile{L, lg, TH, TW, int(th), int(tw), smem};
          best_score = score;
        }
      }
    }
  }
  return best;
}

// smem[dst + (r * cols + c) * L + l] = channel chan(l) (-1: none, stored as 0) of image n at
// (r0 + r, c0 + c), 0 outside the H x W image. src holds C channels in LAYOUT. NCHW walks each
// plane's rows (coalesced along W), NHWC each pixel's lanes (coalesced along C).
template <typename T, Layout LAYOUT, typename Smem, typename Chan>
__device__ __forceinline__ void load_tile(Smem smem, int dst, const T* __restrict__ src, i64 n,
                                          i64 C, int H, int W, i64 r0, i64 c0, int rows, int cols,
                                          const KlargeTile& t, Chan chan) {
  using A = typename Num<T>::A;
  const int px = rows * cols, L = t.L;
  for (int i = threadIdx.x; i < px * L; i += blockDim.x) {
    int l, p;
    if constexpr (LAYOUT == Layout::NCHW) {
      l = i / px;
      p = i - l * px;
    } else {
      l = i & (L - 1);
      p = i >> t.lg_l;
    }
    const int r = p / cols, c = p - r * cols;
    const i64 h = r0 + r, w = c0 + c, ch = chan(l);
    A v = A(0);
    if (ch >= 0 && h >= 0 && h < H && w >= 0 && w < W)
      v = gld(LAYOUT == Layout::NCHW ? src + ((n * C + ch) * H + h) * W + w
                                     : src + ((n * H + h) * W + w) * C + ch);
    smem[dst + p * L + l] = v;
  }
}

// A forward convolution as the klarge conv kernel computes it: dst = conv(src, w') (+ bias),
// where backward-input (stride 1) is the convolution of grad_out with the flipped kernel.
struct KlargeConv {
  KlargeTile t;
  int KH, KW, SH, SW, DH, DW;
  i64 PT, PL;                   // bwdi: (K-1)*D - P, may be negative
  int src_h, src_w, dst_h, dst_w;
  i64 N, src_c, dst_c, M;       // dst channel d reads src d / M (fwd) or d*M .. d*M+M-1 (bwdi)
  i64 items;                    // N * channel groups * tiles
  Decode3 dec;                  // item -> (tile col, tile row, group, n); NHWC: (group, col, row, n)
};

inline KlargeConv klarge_conv_plan(const Dw2dShape& s, Layout layout, DType dt, bool bwdi) {
  KlargeConv p{};
  if (s.KH < kKlargeMinK || s.KW < kKlargeMinK || (bwdi && (s.SH != 1 || s.SW != 1))) return p;
  const i64 dst_h = bwdi ? s.H : s.OH, dst_w = bwdi ? s.W : s.OW, dst_c = bwdi ? s.C : s.cout();
  p.t = klarge_tile(s, false, dst_h, dst_w, dst_c, acc_bytes(dt));
  if (p.t.L == 0) return p;
  p.KH = int(s.KH), p.KW = int(s.KW), p.SH = int(s.SH), p.SW = int(s.SW);
  p.DH = int(s.DH), p.DW = int(s.DW);
  p.PT = bwdi ? (s.KH - 1) * s.DH - s.PT : s.PT;
  p.PL = bwdi ? (s.KW - 1) * s.DW - s.PL : s.PL;
  p.src_h = int(bwdi ? s.OH : s.H), p.src_w = int(bwdi ? s.OW : s.W);
  p.dst_h = int(dst_h), p.dst_w = int(dst_w);
  p.N = s.N, p.src_c = bwdi ? s.cout() : s.C, p.dst_c = dst_c, p.M = s.M;
  const i64 groups = ceil_div(dst_c, p.t.L), tiles_h = ceil_div(dst_h, p.t.TH),
            tiles_w = ceil_div(dst_w, p.t.TW);
  p.items = s.N * groups * tiles_h * tiles_w;
  p.dec = layout == Layout::NCHW ? Decode3(tiles_w, tiles_h, groups) : Decode3(groups, tiles_w, tiles_h);
  return p;
}

// One block of the forward / backward-input klarge kernel, in a grid-stride loop over the items
// (tile x channel group x image). Shared memory: [KH*KW][L] weights (flipped for bwdi), then the
// [tile_h*tile_w][L] input tile. Thread (slot, lane) computes outputs q = slot + P*i (i <
// kKlargeR) of the tile, in registers, over the taps from shared memory; bwdi sums the M grad_out
// channels of its input channel one after another through the same shared arrays.
// w: NCHW [CO][KH*KW], NHWC packed [KH*KW][CO], CO = fwd dst_c = bwdi src_c.
template <typename T, Layout LAYOUT, bool BWDI>
__device__ __forceinline__ void klarge_conv(const KlargeConv& p, const T* __restrict__ src,
                                            const T* __restrict__ w, const T* __restrict__ bias,
                                            T* __restrict__ dst) {
  using A = typename Num<T>::A;
  DW_DYN_SHARED(A, smem);
  const KlargeTile& t = p.t;
  const int L = t.L, P = kThreads >> t.lg_l, KK = p.KH * p.KW, xs = KK * L;
  const int tid = threadIdx.x, lane = tid & (L - 1), slot = tid >> t.lg_l;
  const i64 CO = BWDI ? p.src_c : p.dst_c;  // channels of the weight
  // this thread's outputs: tile offset of their first tap in the input tile, -1 past the tile
  // (the valid ones come first)
  int first[kKlargeR];
  DW_UNROLL
  for (int i = 0; i < kKlargeR; ++i) {
    const int q = slot + P * i, r = q / t.TW, c = q - r * t.TW;
    first[i] = q < t.TH * t.TW ? xs + ((r * p.SH) * t.tile_w + c * p.SW) * L + lane : -1;
  }
  for (i64 it = blockIdx.x; it < p.items; it += gridDim.x) {
    i64 tw, th, g, n;
    if constexpr (LAYOUT == Layout::NCHW)
      p.dec(it, tw, th, g, n);
    else
      p.dec(it, g, tw, th, n);
    const i64 oh0 = th * t.TH, ow0 = tw * t.TW, d = g * L + lane;
    A acc[kKlargeR];
    const A b0 = !BWDI && bias && d < p.dst_c ? gld(bias + d) : A(0);
    DW_UNROLL
    for (int i = 0; i < kKlargeR; ++i) acc[i] = b0;
    for (i64 j = 0; j < (BWDI ? p.M : 1); ++j) {
      // weight channel of lane l: bwdi the j-th grad_out channel of input channel d, fwd d itself
      auto wchan = [&](int l) -> i64 {
        const i64 dl = g * L + l;
        return dl < p.dst_c ? (BWDI ? dl * p.M + j : dl) : -1;
      };
      for (int i = tid; i < xs; i += blockDim.x) {
        const int l = i & (L - 1), tap = i >> t.lg_l, k = BWDI ? KK - 1 - tap : tap;
        const i64 c = wchan(l);
        smem[i] = c < 0 ? A(0)
                        : gld(LAYOUT == Layout::NCHW ? w + c * KK + k : w + i64{k} * CO + c);
      }
      load_tile<T, LAYOUT>(smem, xs, src, n, p.src_c, p.src_h, p.src_w, oh0 * p.SH - p.PT,
                           ow0 * p.SW - p.PL, t.tile_h, t.tile_w, t, [&](int l) -> i64 {
                             const i64 c = wchan(l);
                             return BWDI || c < 0 ? c : c / p.M;
                           });
      __syncthreads();
      for (int kh = 0; first[0] >= 0 && kh < p.KH; ++kh) {  // slots past the tile: no work
        DW_UNROLL_BY(2)
        for (int kw = 0; kw < p.KW; ++kw) {
          const A wv = smem[(kh * p.KW + kw) * L + lane];
          const int off = (kh * p.DH * t.tile_w + kw * p.DW) * L;
          DW_UNROLL
          for (int i = 0; i < kKlargeR; ++i)
            if (first[i] >= 0) acc[i] += static_cast<A>(smem[first[i] + off]) * wv;
        }
      }
      __syncthreads();  // the next channel / tile overwrites the shared arrays
    }
    if (d >= p.dst_c) continue;
    DW_UNROLL
    for (int i = 0; i < kKlargeR; ++i) {
      const int q = slot + P * i, r = q / t.TW;
      const i64 oh = oh0 + r, ow = ow0 + (q - r * t.TW);
      if (first[i] < 0 || oh >= p.dst_h || ow >= p.dst_w) continue;
      gst(LAYOUT == Layout::NCHW ? dst + ((n * p.dst_c + d) * p.dst_h + oh) * p.dst_w + ow
                                 : dst + ((n * p.dst_h + oh) * p.dst_w + ow) * p.dst_c + d,
          acc[i]);
    }
  }
}

}  // namespace DWCONV_NS
}  // namespace dwconv
