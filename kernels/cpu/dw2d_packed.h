// Depthwise passes through the NHWC kernels on L-channel tiles ("packed"). A work item copies a
// tile of L channels of planes up to kMaxPlane pixels into a [pixel][L] scratch that stays in
// cache (backward-weight, and any pass of a large input: up to kMaxBigPlane, past L2), runs the
// NHWC kernel of the same shape on it with C = L, and copies the result back. Every lane of
// every FMA is then a real channel, the tile's pixels are one vector apart, and the NHWC
// specialisations (k3s1, row, tiled, ...) apply as they are.
//   NCHW   the copies are transposes (L x L blocks in registers, Vec::transpose). The NCHW
//          kernels vectorise along a row: a plane narrower than a vector wastes most lanes and
//          pays per-plane set-up for little work (7x7 planes at the end of MobileNet), and their
//          backward passes trail the NHWC ones at every plane size.
//   NHWC   large-kernel forwards only (both sides >= Fwd::kLargeK): the copies load one vector
//          per pixel. With C channels, consecutive pixels' vectors are C elements apart, so a
//          block's input window (31x31: 31 rows of ~45 vectors) and its weights lie on 8x more
//          pages than in a tile, where they are contiguous; the tile ran 31x31 [8,128,56,56]
//          15% faster (40 -> 35 ms, AVX-512, 2 threads) for two passes over it against KH*KW
//          FMAs per element.
// Part of dw2d_impl.h: included after the three passes, whose entry points it wraps; it is what
// the kernel table calls.
//
//   fwd / bwdi  item = (n, channel tile), in memory order: pack x or gy and the tile's weights,
//               one NHWC call, unpack y or gx
//   bwdw        item = channel tile: pack a chunk of batch images of gy and x (chunking is a
//               function of the shape only), one NHWC call per chunk, chunks summed in order:
//               deterministic whatever the thread count
// Only with depth multiplier 1 (the NHWC fast paths need it) and SIMD lanes (L >= 8).
#pragma once

template <typename T>
struct Dw2dPacked {
  using V = Vec<T>;
  static constexpr int L = V::N;
  using Fwd = Dw2dFwd<T>;
  using Bwdi = Dw2dBwdi<T>;
  using Bwdw = Dw2dBwdw<T>;

  // Planes up to kMaxPlane pixels (in and out) can be packed, a tile of L of them staying in L2.
  // Which passes take it (measured on AVX-512 and AVX2, docs/kernels.md), NCHW:
  //   bwdw  always: no NCHW backward-weight kernel beat it at any plane size measured (7..160)
  //   bwdi  always. Stride 2 on wide planes, against the phase-split kernel, one thread: AVX-512
  //         on Zen 4, 5x5/2 [32,144,56,56] 11-13 -> 9-10 ms, [1,672,28,28] 520-580 -> 343-369
  //         us, 3x3/2 [32,144,56,56] 10.4-11.4 -> 7.2-9.3 ms, [8,240,28,28] a tie; AVX2 ties
  //   fwd   planes at most kMaxWidth wide, kernels larger than 3x3, or inputs of at least
  //         kBigInput bytes; a 3x3 forward on wider planes in cache is faster unpacked
  // Larger planes, up to kMaxBigPlane, one image of a tile at a time past L2: backward-weight
  // always, the other passes for inputs of at least kBigInput bytes. Backward-weight, one thread,
  // AVX-512 on Zen 4: 3x3/2 [32,96,112,112] 23-31 -> 17-19 ms, [1,96,112,112] 343-486 -> 326-380
  // us, [2,64,160,160] 1.6-2.4 -> 1.3-2.0 ms; 3x3/1 [8,32,112,112] 2.8-3.7 -> 2.3-3.2 ms; AVX2
  // alike; at 224x224 a tie. Forward and backward-input, two threads, AVX-512 on Zen 4, medians
  // of 6 alternating runs: 3x3/2 [32,96,112,112] fwd 15.3 -> 12.6 ms, bwdi 15.5 -> 11.5 ms;
  // [8,96,112,112] fwd 3.9 -> 3.0, bwdi 4.1 -> 3.3; [16,64,80,80] fwd 2.3 -> 1.8, bwdi 3.1 ->
  // 2.1; 3x3/1 [8,32,112,112] fwd 2.3 -> 1.6, [4,64,160,160] fwd 5.8 -> 4.7; 5x5/2
  // [4,96,112,112] fwd 2.4 -> 1.5, bwdi 2.1 -> 1.7 ms. AVX2: fwd 7-35% faster, bwdi a tie.
  // Below kBigInput the tile's trip past L2 costs more than the NCHW kernels lose: 3x3/2
  // [1,96,112,112] bwdi 306 -> 409 us.
  // NHWC: forwards (backward-inputs run as forwards included) of large kernels with more than L
  //   channels on planes up to kMaxPlane; 31x31 [8,128,56,56]: 40 -> 35 ms. Backward-weight
  //   measured the same either way and keeps its own tiled kernel.
  static constexpr int64_t kMaxPlane = 4096;
  static constexpr int64_t kMaxBigPlane = 32768;
  static constexpr int64_t kMaxWidth = 16;
  static constexpr int64_t kBigInput = int64_t(8) << 20;
  // bwdw: batch images per chunk, sized so one chunk of gy and x tiles stays within ~256 KB
  static constexpr int64_t kBwdwChunkBytes = 256 * 1024;

  enum class Pass { fwd, bwdi, bwdw };
  static bool applies(const Dw2dShape& s, Layout layout, Pass pass) {
    if (L < 8 || s.M != 1 || !packed_enabled()) return false;
    const int64_t plane = max64(s.H * s.W, s.OH * s.OW);
    if (layout == Layout::NHWC)
      return plane <= kMaxPlane && pass == Pass::fwd && s.C > L && s.KH >= Fwd::kLargeK &&
             s.KW >= Fwd::kLargeK;
    const bool big = input_bytes<T>(s) >= kBigInput;
    if (plane > (pass == Pass::bwdw || big ? kMaxBigPlane : kMaxPlane)) return false;
    if (pass != Pass::fwd) return true;
    const bool narrow = s.W <= kMaxWidth && s.OW <= kMaxWidth;
    return narrow || s.KH * s.KW > 9 || big;
  }

  static int64_t tiles(const Dw2dShape& s) { return ceil_div_nonneg(s.C, L); }

  // The shape of one packed tile: L channels of nb images, laid out NHWC.
  static Dw2dShape tile_shape(const Dw2dShape& s, int64_t nb) {
    Dw2dShape t = s;
    t.N = nb;
    t.C = L;
    t.N_whole = 0;  // scratch in cache, whatever the problem's size
    return t;
  }

  // Offset of channel c0 of image n in a tensor of planes of `plane` pixels.
  static int64_t at(const Dw2dShape& s, Layout layout, int64_t n, int64_t c0, int64_t plane) {
    return layout == Layout::NCHW ? (n * s.C + c0) * plane : n * plane * s.C + c0;
  }

  // NCHW scratch holds whole L-pixel blocks: a plane of `plane` pixels takes padded(plane) of them
  // (the pixels past the plane are don't-care lanes, never stored back).
  static int64_t padded(int64_t plane) { return ceil_div_nonneg(plane, L) * L; }
  // NCHW planes whose last block has at most this many pixels pack and unpack it with a gather
  // or scatter per pixel instead of a transposed block (a 7x7 plane: 3 blocks and one pixel;
  // those pixels are then all the scratch holds). [4,960,7,7] 3x3, one thread, in cache, five
  // alternating runs (10th percentiles): forward 97-100 -> 94-96 us, fused backward 264-267 ->
  // 255-267 us. Through the ops, two threads, the noise was larger than that.
  static constexpr int kGatherTail = L / 8;

  // dst[p][l] = channel l of pixel p of src (at the tile's first channel), zero for lanes >= nc.
  // NCHW: L x L blocks loaded along the planes and transposed in registers, every block stored
  // whole (dst holds padded(plane) pixels; a next plane packed right after overwrites the extra
  // ones). A partial store count would make the compiler turn the stores into a memcpy of the
  // block array (rep movsq: a fifth of a 7x7 packed forward). NHWC: a vector per pixel, C apart.
  static void pack(const T* src, int64_t plane, int nc, T* dst, Layout layout, int64_t C) {
    if (layout == Layout::NHWC) {
      for (int64_t p = 0; p < plane; ++p) V::load(src + p * C, nc).store(dst + p * L);
      return;
    }
    for (int64_t p = 0; p < plane; p += L) {
      const int n = static_cast<int>(min64(L, plane - p));
      if (n <= kGatherTail) {  // a few last pixels: a gather each
        for (int j = 0; j < n; ++j) V::gather(src + p + j, plane, nc).store(dst + (p + j) * L);
        break;
      }
      V r[L];
      for (int l = 0; l < L; ++l) r[l] = l < nc ? V::load(src + l * plane + p, n) : V::zero();
      V::transpose(r);
      for (int j = 0; j < L; ++j) r[j].store(dst + (p + j) * L);
    }
  }
  // channel l of pixel p of dst = src[p][l], for l < nc. NCHW: src holds padded(plane) pixels,
  // the ones past the plane read and dropped; stream: whole aligned vectors are written
  // non-temporally (stream_output). Two threads, four alternating runs, NCHW forward, plain ->
  // streamed, kernel harness: [32,144,56,56] 3x3 6.6-9.1 -> 5.4-7.3 ms, [32,96,112,112] 3x3/2
  // 11.1-12.2 -> 9.6-10.5 ms, [32,96,56,56] 7x7 7.2-11.8 -> 6.9-9.4 ms; [32,144,56,56] 5x5/2 (a
  // quarter of the output) a tie. Through the op: [32,144,56,56] 5.5-5.9 -> 4.9-5.1 ms,
  // [32,96,112,112] 3x3/2 9.5-10.7 -> 8.5-9.0 ms, its backward-input 9.3-11.8 -> 7.7-9.7 ms.
  static void unpack(const T* src, int64_t plane, int nc, T* dst, Layout layout, int64_t C,
                     bool stream = false) {
    if (layout == Layout::NHWC) {
      for (int64_t p = 0; p < plane; ++p) V::load(src + p * L).store(dst + p * C, nc);
      return;
    }
    for (int64_t p = 0; p < plane; p += L) {
      const int n = static_cast<int>(min64(L, plane - p));
      if (n <= kGatherTail) {  // a few last pixels: a scatter each
        for (int j = 0; j < n; ++j) V::load(src + (p + j) * L).scatter(dst + p + j, plane, nc);
        break;
      }
      V r[L];
      for (int j = 0; j < L; ++j) r[j] = V::load(src + (p + j) * L);
      V::transpose(r);
      for (int l = 0; l < nc; ++l) {
        T* to = dst + l * plane + p;
        if (stream && n == L && is_vector_aligned(to))
          r[l].stream(to);
        else
          r[l].store(to, n);
      }
    }
  }
  // wp[tap][l]: the NHWC weight layout of the tile at channel c0 (M == 1), from the pass's
  // weight layout (dw2d.h): NCHW w[C][KK], the tile's L rows of KK taps transposed like a plane
  // of KK pixels (wp holds padded(KK) taps); NHWC w[KK][C]
  static void pack_weight(const T* w, int64_t KK, int64_t c0, int nc, T* wp, Layout layout,
                          int64_t C) {
    if (layout == Layout::NCHW) return pack(w + c0 * KK, KK, nc, wp, layout, C);
    for (int64_t t = 0; t < KK; ++t) V::load(w + t * C + c0, nc).store(wp + t * L);
  }
  static int channels(const Dw2dShape& s, int64_t tile) {
    return static_cast<int>(min64(L, s.C - tile * L));
  }

  // ---------------------------------------------------------------- fwd, bwdi: (n, tile) items
  // src [N][C] planes of src_plane pixels -> dst planes of dst_plane pixels (in `layout`)
  // through the NHWC entry point `run`. Items go through memory in order (the hardware
  // prefetcher follows them), so the tile's weights are re-packed per item: KK loads, next to
  // the plane's pixels.
  template <typename Run>
  static void per_image(const Dw2dShape& s, Layout layout, int64_t src_plane, int64_t dst_plane,
                        const T* src, const T* w, const T* b, T* dst, int64_t begin, int64_t end,
                        Run run) {
    const int64_t KK = s.KH * s.KW;
    const Dw2dShape t = tile_shape(s, 1);
    T* in = bwd_scratch<T, 10>(padded(src_plane) * L);
    T* out = bwd_scratch<T, 11>(padded(dst_plane) * L);
    T* wp = bwd_scratch<T, 12>(padded(KK) * L + L);  // the tile's weights, then its bias
    T* bp = wp + padded(KK) * L;
    const int64_t nt = tiles(s);
    const bool stream = stream_output<T>(s);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t n = item / nt, tile = item % nt;
      const int nc = channels(s, tile);
      const int64_t c0 = tile * L;
      pack_weight(w, KK, c0, nc, wp, layout, s.C);
      if (b) V::load(b + c0, nc).store(bp);
      // the next item's planes follow these: gathers alone do not start the prefetcher
      if (layout == Layout::NCHW && item + 1 < end)
        prefetch(src + at(s, layout, n, c0 + nc, src_plane), L * src_plane);
      pack(src + at(s, layout, n, c0, src_plane), src_plane, nc, in, layout, s.C);
      run(t, in, wp, b ? bp : nullptr, out);
      unpack(out, dst_plane, nc, dst + at(s, layout, n, c0, dst_plane), layout, s.C, stream);
    }
    if (stream) V::stream_fence();
  }

  static void fwd_packed(const Dw2dShape& s, Layout layout, const T* x, const T* w, const T* b,
                         T* y, int64_t begin, int64_t end) {
    per_image(s, layout, s.H * s.W, s.OH * s.OW, x, w, b, y, begin, end,
              [](const Dw2dShape& t, const T* in, const T* wp, const T* bp, T* out) {
                Fwd::fwd(t, Layout::NHWC, in, wp, bp, out, 0, Fwd::fwd_items(t, Layout::NHWC));
              });
  }

  static void bwdi_packed(const Dw2dShape& s, Layout layout, const T* gy, const T* w, T* gx,
                          int64_t begin, int64_t end) {
    per_image(s, layout, s.OH * s.OW, s.H * s.W, gy, w, nullptr, gx, begin, end,
              [](const Dw2dShape& t, const T* in, const T* wp, const T*, T* out) {
                Bwdi::bwdi(t, Layout::NHWC, in, wp, out, 0, Bwdi::bwdi_items(t, Layout::NHWC));
              });
  }

  // total[i] += part[i] for i < n (x * 1 + y: one rounding, an add): the backward-weights' sums
  // of chunks, in the order the callers add them
  static void add_into(T* total, const T* part, int64_t n) {
    const V one = V::set1(T(1));
    int64_t i = 0;
    for (; i + L <= n; i += L) V::fma(V::load(part + i), one, V::load(total + i)).store(total + i);
    if (i < n) {
      const int r = static_cast<int>(n - i);
      V::fma(V::load(part + i, r), one, V::load(total + i, r)).store(total + i, r);
    }
  }

  // ---------------------------------------------------------------------- bwdw: tile items
  static int64_t bwdw_chunk(const Dw2dShape& s) {
    const int64_t per_image = (s.H * s.W + s.OH * s.OW) * L * static_cast<int64_t>(sizeof(T));
    return max64(1, min64(s.N, kBwdwChunkBytes / per_image));
  }

  // The backward-input a fused backward (bwd) runs on each packed chunk of gy: the NCHW weight
  // of the pass ([C][KK], rotated by 180 degrees when it runs as the forward `as_fwd`), and gx.
  struct BwdiOnChunk {
    const T* w;
    const Dw2dShape* as_fwd;
    T* gx;
  };

  // NCHW only: applies() keeps NHWC backward-weights on their own kernels. With `bwdi`, also the
  // backward-input from the same packed gy (the fused backward): each chunk's gy tile is read
  // and transposed once for both passes instead of once each.
  static void bwdw_packed(const Dw2dShape& s, const T* gy, const T* x, T* gw, int64_t begin,
                          int64_t end, const BwdiOnChunk* bwdi = nullptr) {
    constexpr Layout layout = Layout::NCHW;
    const int64_t KK = s.KH * s.KW, xp = s.H * s.W, yp = s.OH * s.OW, nb = bwdw_chunk(s);
    // images packed back to back, the last one's padding past the end
    T* xs = bwd_scratch<T, 10>(((nb - 1) * xp + padded(xp)) * L);
    T* ys = bwd_scratch<T, 11>(((nb - 1) * yp + padded(yp)) * L);
    // this chunk's sums, then the running total: [tap][l], whole blocks for unpack()
    T* part = bwd_scratch<T, 12>(2 * padded(KK) * L);
    T* total = part + padded(KK) * L;
    // the fused backward-input's tile weights and its chunk of packed gx
    T* wp = bwdi ? bwd_scratch<T, 13>(padded(KK) * L) : nullptr;
    T* gxs = bwdi ? bwd_scratch<T, 14>(((nb - 1) * xp + padded(xp)) * L) : nullptr;
    const bool stream = bwdi && stream_output<T>(s);
    for (int64_t tile = begin; tile < end; ++tile) {
      const int nc = channels(s, tile);
      const int64_t c0 = tile * L;
      if (bwdi) pack_weight(bwdi->w, KK, c0, nc, wp, layout, s.C);
      for (int64_t n0 = 0; n0 < s.N; n0 += nb) {
        const int64_t cnt = min64(nb, s.N - n0);
        for (int64_t i = 0; i < cnt; ++i) {
          const int64_t n = n0 + i;
          if (n + 1 < s.N) {  // images are a batch stride apart: a miss each, unprefetched
            prefetch(x + at(s, layout, n + 1, c0, xp), nc * xp);
            prefetch(gy + at(s, layout, n + 1, c0, yp), nc * yp);
          }
          pack(x + at(s, layout, n, c0, xp), xp, nc, xs + i * xp * L, layout, s.C);
          pack(gy + at(s, layout, n, c0, yp), yp, nc, ys + i * yp * L, layout, s.C);
        }
        if (bwdi) {
          if (bwdi->as_fwd) {
            const Dw2dShape t = tile_shape(*bwdi->as_fwd, cnt);
            Fwd::fwd(t, Layout::NHWC, ys, wp, nullptr, gxs, 0, Fwd::fwd_items(t, Layout::NHWC));
          } else {
            const Dw2dShape t = tile_shape(s, cnt);
            Bwdi::bwdi(t, Layout::NHWC, ys, wp, gxs, 0, Bwdi::bwdi_items(t, Layout::NHWC));
          }
          for (int64_t i = 0; i < cnt; ++i)
            unpack(gxs + i * xp * L, xp, nc, bwdi->gx + at(s, layout, n0 + i, c0, xp), layout,
                   s.C, stream);
        }
        const Dw2dShape t = tile_shape(s, cnt);
        Bwdw::bwdw(t, Layout::NHWC, ys, xs, n0 == 0 ? total : part, 0,
                   Bwdw::bwdw_items(t, Layout::NHWC));
        if (n0 > 0) add_into(total, part, KK * L);
      }
      unpack(total, KK, nc, gw + c0 * KK, layout, s.C);
    }
    if (stream) V::stream_fence();
  }

  // ------------------------------------------------------------ entry points of the table
  static int64_t fwd_items(const Dw2dShape& s, Layout layout) {
    return applies(s, layout, Pass::fwd) ? tiles(s) * s.N : Fwd::fwd_items(s, layout);
  }
  static void fwd(const Dw2dShape& s, Layout layout, const T* x, const T* w, const T* b, T* y,
                  int64_t begin, int64_t end) {
    if (applies(s, layout, Pass::fwd)) return fwd_packed(s, layout, x, w, b, y, begin, end);
    Fwd::fwd(s, layout, x, w, b, y, begin, end);
  }
  static const char* fwd_variant(const Dw2dShape& s, Layout layout) {
    return applies(s, layout, Pass::fwd) ? "packed" : Fwd::variant(s, layout);
  }

  static int64_t bwdi_items(const Dw2dShape& s, Layout layout) {
    return applies(s, layout, Pass::bwdi) ? tiles(s) * s.N : Bwdi::bwdi_items(s, layout);
  }
  static void bwdi(const Dw2dShape& s, Layout layout, const T* gy, const T* w, T* gx,
                   int64_t begin, int64_t end) {
    if (applies(s, layout, Pass::bwdi)) return bwdi_packed(s, layout, gy, w, gx, begin, end);
    Bwdi::bwdi(s, layout, gy, w, gx, begin, end);
  }
  static const char* bwdi_variant(const Dw2dShape& s, Layout layout) {
    return applies(s, layout, Pass::bwdi) ? "packed" : Bwdi::variant(s, layout);
  }

  // ------------------------------------------- NHWC bwdw: chunks of the batch, summed after
  // A memory-bound NHWC backward-weight (a pass of at least kPrefetchBytes) with a batch runs
  // as parts: item p sums its own chunk of images over every channel into part p, and
  // bwdw_reduce adds the parts in order. Each thread then reads whole images, one contiguous
  // run, instead of its channel blocks of every pixel of every image. Through the op, two
  // threads, five alternating runs of the old and new builds, medians of the runs, ms:
  // [32,144,56,56] 3x3 12.1 -> 10.8, 5x5/2 8.5 -> 6.6, [32,96,56,56] 7x7 15.3 -> 11.3,
  // [32,96,112,112] 3x3/2 17.2 -> 14.9, [32,960,7,7] 3x3 0.77 -> 0.66; [32,240,28,28] 5x5
  // 6.4 -> 6.7, until its chunks (6 MB) kept the whole problem's row prefetches: then, four
  // more alternating runs, 6.0-6.9 -> 4.2-5.4 ms.
  // (large kernels are compute-bound and keep the channel-block items)
  static constexpr int64_t kBwdwParts = 8, kBwdwPartsMaxK = 7;
  static int64_t bwdw_chunk_images(const Dw2dShape& s) {
    return ceil_div_nonneg(s.N, min64(s.N, kBwdwParts));
  }
  static int64_t bwdw_parts(const Dw2dShape& s, Layout layout) {
    const bool split = layout == Layout::NHWC && L >= 8 && s.M == 1 && s.N >= 2 &&
                       s.KH <= kBwdwPartsMaxK && s.KW <= kBwdwPartsMaxK &&
                       pass_bytes<T>(s) >= kPrefetchBytes;
    return split ? ceil_div_nonneg(s.N, bwdw_chunk_images(s)) : 1;
  }
  static void bwdw_reduce(const Dw2dShape& s, T* gw, int64_t parts) {
    const int64_t n = s.cout() * s.KH * s.KW;
    for (int64_t p = 1; p < parts; ++p) add_into(gw, gw + p * n, n);
  }

  // Part `part` of a backward-weight in parts: its chunk of images into gw + part * (C*KK).
  static void bwdw_part(const Dw2dShape& s, const T* gy, const T* x, T* gw, int64_t part) {
    const int64_t n0 = part * bwdw_chunk_images(s);
    const Dw2dShape t = sub_batch(s, min64(bwdw_chunk_images(s), s.N - n0));
    Bwdw::bwdw_nhwc(t, gy + n0 * s.OH * s.OW * s.C, x + n0 * s.H * s.W * s.C,
                    gw + part * s.cout() * s.KH * s.KW, 0, Bwdw::bwdw_items(t, Layout::NHWC));
  }
  // n images of `s`, as a chunk of the whole problem (N_whole): it comes from memory as the
  // whole problem does, so its kernels prefetch and stream as the whole problem's would.
  static Dw2dShape sub_batch(const Dw2dShape& s, int64_t n) {
    Dw2dShape t = s;
    t.N = n;
    t.N_whole = whole_batch(s);
    return t;
  }

  static int64_t bwdw_items(const Dw2dShape& s, Layout layout) {
    if (bwdw_parts(s, layout) > 1) return bwdw_parts(s, layout);
    return applies(s, layout, Pass::bwdw) ? tiles(s) : Bwdw::bwdw_items(s, layout);
  }
  static void bwdw(const Dw2dShape& s, Layout layout, const T* gy, const T* x, T* gw,
                   int64_t begin, int64_t end) {
    if (bwdw_parts(s, layout) > 1) {
      for (int64_t part = begin; part < end; ++part) bwdw_part(s, gy, x, gw, part);
      return;
    }
    if (applies(s, layout, Pass::bwdw)) return bwdw_packed(s, gy, x, gw, begin, end);
    Bwdw::bwdw(s, layout, gy, x, gw, begin, end);
  }
  static const char* bwdw_variant(const Dw2dShape& s, Layout layout) {
    return applies(s, layout, Pass::bwdw) ? "packed" : Bwdw::variant(s, layout);
  }

  // ------------------------------- bwd: backward-input and backward-weight over one read of gy
  // Where both passes go through chunks of the batch, the fused backward (dw2d.h) runs a chunk's
  // backward-input and backward-weight back to back, so the second reads gy from cache:
  //   NCHW  a packed backward-weight: item = channel tile, as bwdw_packed, whose packed chunks
  //         of gy (transposed once instead of once per pass) also feed the backward-input,
  //         also where apart it would run its NCHW kernels (3x3 on wide planes in cache, planes
  //         past 4096 pixels on inputs under kBigInput): fused then, forward plus backward of
  //         [1,144,56,56] 3x3 0.32 -> 0.30 ms, [8,32,112,112] 3x3 3.9 -> 3.5 ms, [1,96,112,112]
  //         3x3/2 0.60 either way (two threads, 200 alternating calls)
  //   NHWC  a backward-weight in parts: item = part, its chunk image by image, each image's
  //         backward-input, then its backward-weight added to the part's sums
  // Same kernels, same sums in the same order as the two passes apart: the same bits, but for
  // gx where apart it comes from the NCHW kernels (their sums run in another order).
  static int64_t bwd_items(const Dw2dShape& s, Layout layout) {
    if (layout == Layout::NHWC) return bwdw_parts(s, layout) > 1 ? bwdw_parts(s, layout) : 0;
    return applies(s, layout, Pass::bwdw) ? tiles(s) : 0;
  }
  static const char* bwd_variant(const Dw2dShape& s, Layout layout) {
    if (bwd_items(s, layout) == 0) return nullptr;
    return layout == Layout::NCHW ? "packed" : "parts";
  }
  static void bwd(const Dw2dShape& s, const Dw2dShape* as_fwd, Layout layout, const T* gy,
                  const T* w, const T* x, T* gx, T* gw, int64_t begin, int64_t end) {
    if (layout == Layout::NCHW) {
      const BwdiOnChunk bwdi{w, as_fwd, gx};
      return bwdw_packed(s, gy, x, gw, begin, end, &bwdi);
    }
    const Dw2dShape img = sub_batch(s, 1);  // one image, as the backward-weight's
    for (int64_t part = begin; part < end; ++part) {
      const int64_t n0 = part * bwdw_chunk_images(s), n1 = min64(s.N, n0 + bwdw_chunk_images(s));
      for (int64_t n = n0; n < n1; ++n) {
        const T* gyn = gy + n * s.OH * s.OW * s.C;
        T* gxn = gx + n * s.H * s.W * s.C;
        if (as_fwd) {
          const Dw2dShape f = sub_batch(*as_fwd, 1);
          Fwd::fwd(f, layout, gyn, w, nullptr, gxn, 0, Fwd::fwd_items(f, layout));
        } else {
          Bwdi::bwdi(img, layout, gyn, w, gxn, 0, Bwdi::bwdi_items(img, layout));
        }
        Bwdw::bwdw_nhwc(img, gyn, x + n * s.H * s.W * s.C, gw + part * s.cout() * s.KH * s.KW,
                        0, Bwdw::bwdw_items(img, layout), /*accumulate=*/n > n0);
      }
    }
  }
};
