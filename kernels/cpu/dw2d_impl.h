// Depthwise conv2d kernels, written once over Vec<T> and compiled once per ISA (dw2d_<isa>.cpp).
// Everything here has internal linkage so code built with one ISA's flags never leaks into another
// translation unit; each ISA file exports only its kernel table.
//
// Conventions: x [N][C][H][W] (NCHW) or [N][H][W][C] (NHWC), y likewise with C*M channels,
// weights as documented in dw2d.h. "Interior" output positions are those whose every tap lies
// inside the input: they run vectorised without bounds checks; the border runs a checked path.
#pragma once
#include <cstdint>
#include <cstdlib>  // per-thread scratch of the backward passes
#include <cstring>
#include <new>

#include "dw2d.h"

namespace dwconv {
namespace cpu {
namespace {

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceil_div_nonneg(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Output positions o in [0, O) with 0 <= o*S + off < I, as [lo, hi) (empty when lo == hi).
inline void valid_range(int64_t O, int64_t S, int64_t off, int64_t I, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : ceil_div_nonneg(-off, S);
  hi = (I - 1 - off) < 0 ? 0 : (I - 1 - off) / S + 1;
  lo = min64(lo, O);
  hi = max64(min64(hi, O), lo);
}

// Output positions for which every one of K taps (offsets off + k*D) is inside [0, I).
inline void interior_range(int64_t O, int64_t S, int64_t P, int64_t K, int64_t D, int64_t I,
                           int64_t& lo, int64_t& hi) {
  int64_t lo0, hi0, lo1, hi1;
  valid_range(O, S, -P, I, lo0, hi0);
  valid_range(O, S, -P + (K - 1) * D, I, lo1, hi1);
  lo = max64(lo0, lo1);
  hi = max64(min64(hi0, hi1), lo);
}

// The input row or column index that output position o, tap k reads; -1 when outside [0, I).
inline int64_t tap_index(int64_t o, int64_t S, int64_t P, int64_t k, int64_t D, int64_t I) {
  const int64_t i = o * S - P + k * D;
  return (i >= 0 && i < I) ? i : -1;
}

// The output position that input position i, tap k feeds; -1 when none (stride phase or range).
inline int64_t tap_source(int64_t i, int64_t S, int64_t P, int64_t k, int64_t D, int64_t O) {
  const int64_t t = i + P - k * D;
  if (t < 0 || t % S != 0) return -1;
  const int64_t o = t / S;
  return o < O ? o : -1;
}

// Asks for every line holding the n elements at p, ahead of use: the backward passes read planes
// a channel stride apart, a cache and TLB miss each, which prefetching lets overlap. WRITE: the
// lines are about to be written, so they are asked for with the intent to modify.
template <bool WRITE = false, typename T>
inline void prefetch(const T* p, int64_t n) {
  const uintptr_t end = reinterpret_cast<uintptr_t>(p + n);
  for (uintptr_t at = reinterpret_cast<uintptr_t>(p) & ~uintptr_t(63); at < end; at += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(at), WRITE ? 1 : 0);
}

// Asks for the elements at p, p + stride, ... (n places, run elements from each): the NHWC kernels
// walk a row one channel vector at a time, touching one line every `stride` elements, a pattern
// the hardware prefetchers of some CPUs do not follow (a [32,144,56,56] channels_last forward ran
// at half the memory bandwidth on Zen 3 until it asked for its next input row this way). run: 1
// for the line each place starts in, M*L for an output pixel's outputs at depth multiplier M.
template <bool WRITE = false, typename T>
inline void prefetch_strided(const T* p, int64_t n, int64_t stride, int64_t run = 1) {
  for (int64_t i = 0; i < n; ++i) prefetch<WRITE>(p + i * stride, run);
}

// The r-th (r < SH) of the input rows output row oh + 1 reads and output row oh does not: the rows
// entering the window (exactly so at dilation 1, an approximation of them otherwise); -1 when
// outside the input or when oh is the last output row.
inline int64_t entering_row(const Dw2dShape& s, int64_t oh, int64_t r) {
  if (oh + 1 >= s.OH) return -1;
  const int64_t ih = (oh + 1) * s.SH - s.PT + (s.KH - 1) * s.DH - r;
  return ih >= 0 && ih < s.H ? ih : -1;
}

// The batch the size heuristics below count: the whole problem's when `s` is a chunk of it.
inline int64_t whole_batch(const Dw2dShape& s) { return s.N_whole > 0 ? s.N_whole : s.N; }
// Bytes of a pass's input side (N*C*H*W elements: x, or gx for a backward-input).
template <typename T>
int64_t input_bytes(const Dw2dShape& s) {
  return whole_batch(s) * s.C * s.H * s.W * static_cast<int64_t>(sizeof(T));
}
// Bytes a pass reads and writes: its input side and its output side N*C*M*OH*OW (the forward's x
// and y, the backward-input's gx and gy, the backward-weight's x and gy).
template <typename T>
int64_t pass_bytes(const Dw2dShape& s) {
  return input_bytes<T>(s) +
         whole_batch(s) * s.cout() * s.OH * s.OW * static_cast<int64_t>(sizeof(T));
}

// Whether the NHWC passes should ask for the next row (prefetch_strided): only when the data
// comes from beyond the caches. A batch-1 layer's input sits in the caches, where the prefetches
// only take load slots ([1,96,112,112] 3x3/2 channels_last forward: one per pixel and channel
// vector for 4.5 FMAs). The rule: a pass of at least kPrefetchBytes read and written (its input
// and output sides, pass_bytes). Measured, one thread, without -> with:
//   Zen 4 guest, AVX-512, 1 MiB L2 per core: [4,144,56,56] 3x3 (14 MB) forward 1.7-2.4 -> 1.1-1.3
//     ms, backward-weight 2.5-2.9 -> 1.1-2.6 ms; [8,240,28,28] 5x5 (12 MB) forward 1.2-1.8 ->
//     0.9-1.2 ms, backward-weight 2.7-3.9 -> 1.7-2.3 ms (ten alternating runs each); a toss-up
//     on the rows of 7 pixels of [32,960,7,7] 3x3 (12 MB), whichever way 16 alternating runs
//     went (16-byte-aligned buffers; but see the short rows below). Below it they lose:
//     [1,96,112,112] 3x3/2 (6 MB) forward 185-206 -> 246-318 us,
//     [1,144,56,56] 3x3 (3.6 MB) 126-189 -> 229-243 us,
//     [2,96,56,56] 7x7 (4.8 MB) 567-581 -> 617-655 us. (An earlier rule for AVX-512, an input
//     of 16 MiB, was set on a Xeon with 2 MiB of L2, where the [1,96,112,112] 3x3/2 forward went
//     from 214 to 313 us with them; that shape stays below this threshold.)
//   Zen 3 guest, AVX2, 512 KiB L2 per core: [3,144,56,56] 3x3 (10.8 MB) forward 3.7-4.1 ->
//     0.7-2.3 ms; [32,960,7,7] 3x3 (12 MB) forward 2.5-3.2 -> 2.1-2.6 ms, backward-weight
//     3.7-5.0 -> 2.5-3.9 ms; [1,96,112,112] 3x3/2 forward 0.28 -> 0.5 ms, [2,144,56,56] 3x3
//     (7.2 MB) 0.59-1.39 ms either way.
// The scalar kernels run at 2-5 GFLOP/s, compute-bound: [4,144,56,56] 3x3 forward and
// backward-weight took 7-16 ms with the prefetches or without, the difference within the noise.
// Where a vector is a whole line (AVX-512), rows narrower than kPrefetchMinWidth pixels are not
// prefetched: a row of 7 pixels is 7 prefetches (and 7 more for the next output row) for about
// 60 FMAs per channel vector, and the next row is read within the same work item anyway.
// [32,960,7,7] 3x3 (12 MB), Zen 4, two threads, 64-byte-aligned buffers, eight alternating runs,
// with -> without: forward 465-609 -> 257-478 us, backward-input 511-784 -> 442-573 us,
// backward-weight 530-923 -> 477-817 us; one thread, forward 528-794 -> 405-435 us. Through
// the ops, two threads, four alternating runs: forward 270-282 -> 196-312 us (three of four runs
// under 220), backward-input 273-277 -> 197-310, backward-weight 424-448 -> 384-413. Rows of 14
// keep them: [16,576,14,14] 3x3 forward 447-621 us with, 453-1399 without.
constexpr int64_t kPrefetchBytes = int64_t(8) << 20;
constexpr int64_t kPrefetchMinWidth = 14;
template <typename T>
bool prefetch_rows(const Dw2dShape& s) {
  const bool short_rows = sizeof(Vec<T>) >= 64 && s.W < kPrefetchMinWidth;
  return pass_bytes<T>(s) >= kPrefetchBytes && !short_rows;
}

// Outputs of problems larger than the last-level cache are written with non-temporal stores:
// nothing of them would still be cached for the next layer, and plain stores would first read
// every output line from memory (a quarter of the traffic of a 3x3 forward, more than half of a
// stride-2 backward-input's). `s` is the pass's problem: input side N*C*H*W, output side
// N*C*M*OH*OW (the forward's input and output, the backward-input's gx and gy), together at
// least kStreamBytes: the 32 MiB of L3 of the Zen 4 host (copy bandwidth already falls from 75-84
// to 41 GB/s at 24 MiB). The NHWC kernels and the NCHW packed path (dw2d_packed.h, its unpack)
// stream. Only where a vector is a whole 64-byte line: half-line non-temporal stores a channel
// stride apart (AVX2) leave partial lines in the write-combining buffers, which cost more than
// the reads they save ([32,144,56,56] channels_last forward on Zen 3, one run each: 18.1 ms
// streamed, 15.5 ms not). The threshold was 48 MiB until [32,240,28,28] 5x5 (46 MiB), just
// under it: forward, two threads, four alternating runs, plain -> streamed, channels_last
// 2.9-3.8 -> 2.0-2.7 ms in the kernel harness, 2.0-3.0 -> 1.6-1.75 ms through the op; NCHW
// 3.7-4.5 -> 2.9-3.8 ms in the harness, but 2.8-3.1 ms either way through the op.
constexpr int64_t kStreamBytes = int64_t(32) << 20;
template <typename T>
bool stream_output(const Dw2dShape& s) {
  return sizeof(Vec<T>) >= 64 && pass_bytes<T>(s) >= kStreamBytes;
}
template <typename T>
bool is_vector_aligned(const T* p) {
  return reinterpret_cast<uintptr_t>(p) % sizeof(Vec<T>) == 0;
}

#include "dw2d_fwd.h"
#include "dw2d_bwdi.h"
#include "dw2d_bwdw.h"
#include "dw2d_packed.h"
#include "peak.h"

template <typename T>
struct Dw2d {
  static Dw2dKernels<T> table(const char* isa) {
    return {isa,
            Vec<T>::N,
            Dw2dPacked<T>::fwd_items,
            Dw2dPacked<T>::fwd,
            Dw2dPacked<T>::bwdi_items,
            Dw2dPacked<T>::bwdi,
            Dw2dPacked<T>::bwdw_items,
            Dw2dPacked<T>::bwdw,
            Dw2dPacked<T>::bwdw_parts,
            Dw2dPacked<T>::bwdw_reduce,
            Dw2dPacked<T>::bwd_items,
            Dw2dPacked<T>::bwd,
            Dw2dPacked<T>::fwd_variant,
            Dw2dPacked<T>::bwdi_variant,
            Dw2dPacked<T>::bwdw_variant,
            Dw2dPacked<T>::bwd_variant,
            FmaPeak<T>::run,
            StreamCopy<T>::run};
  }
};

}  // namespace
}  // namespace cpu
}  // namespace dwconv
