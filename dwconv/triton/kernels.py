"""Triton kernels for depthwise conv2d: forward, backward-input and backward-weight.

Each kernel is written once for both layouts and every geometry; the launcher specialises it
through constexprs (kernel size, stride, dilation, top/left padding, depth multiplier M, layout,
bias, 64-bit indexing), so the compiled code has no runtime branches on any of them.

Tensors are contiguous in their layout (the launcher makes them so):
    NCHW:  offset(n, c, h, w) = ((n * C + c) * H + h) * W + w
    NHWC:  offset(n, c, h, w) = ((n * H + h) * W + w) * C + c
weight is [C*M, 1, KH, KW] contiguous; output channel co reads input channel co // M.

Programs tile (output or input) positions, flattened over H*W, by channels: a [BLOCK_P, BLOCK_C]
tile, accumulated in float32 whatever the storage dtype. The per-image base offset is always int64;
offsets inside an image are int32 unless IDX64 (an image has >= 2**31 elements), since int64
offsets for every element of a tile cost registers.

The functions below are plain Python: launch.py wraps each one twice, as a compiled JITFunction
(GPU) and as an InterpretedFunction (CPU tensors), so neither depends on when TRITON_INTERPRET was
set relative to the import. For the same reason they call only builtins of triton.language, not
its @jit helpers (tl.zeros, tl.cdiv, tl.sum): those are wrapped once, when triton is imported, for
either the compiler or the interpreter, and fail in the other.
"""

from __future__ import annotations

import triton.language as tl

# triton's own combine function for sums: tl.reduce with it is what tl.sum does, and the
# interpreter recognises it and sums with numpy
_sum_combine = tl.standard._sum_combine


def dw2d_fwd_kernel(x, w, b, y, C, H, W, OH, OW,
                    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                    DH: tl.constexpr, DW: tl.constexpr, PT: tl.constexpr, PL: tl.constexpr,
                    M: tl.constexpr, CHANNELS_LAST: tl.constexpr, HAS_BIAS: tl.constexpr,
                    IDX64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """y[n, co, oh, ow] = b[co] + sum_{kh,kw} x[n, co//M, oh*SH-PT+kh*DH, ow*SW-PL+kw*DW]
    * w[co, kh, kw].

    Grid: (N * cdiv(OH*OW, BLOCK_P), cdiv(C*M, BLOCK_C)).
    """
    CM = C * M
    n_pblocks = (OH * OW + BLOCK_P - 1) // BLOCK_P
    n = tl.program_id(0) // n_pblocks
    p = (tl.program_id(0) % n_pblocks) * BLOCK_P + tl.arange(0, BLOCK_P)
    co = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    if IDX64:
        p = p.to(tl.int64)
        co = co.to(tl.int64)
    p_ok = p < OH * OW
    c_ok = co < CM
    ci = co // M
    oh = p // OW
    ow = p % OW
    x_img = x + n.to(tl.int64) * C * H * W
    if CHANNELS_LAST:
        x_ch = ci[None, :]
    else:
        x_ch = ci[None, :] * (H * W)
    acc = tl.full([BLOCK_P, BLOCK_C], 0.0, tl.float32)
    for kh in range(KH):
        ih = oh * SH - PT + kh * DH
        h_ok = p_ok & (ih >= 0) & (ih < H)
        for kw in tl.static_range(KW):
            iw = ow * SW - PL + kw * DW
            ok = h_ok & (iw >= 0) & (iw < W)
            if CHANNELS_LAST:
                x_pos = (ih * W + iw) * C
            else:
                x_pos = ih * W + iw
            xv = tl.load(x_img + x_pos[:, None] + x_ch, mask=ok[:, None] & c_ok[None, :], other=0.0)
            wv = tl.load(w + co * (KH * KW) + (kh * KW + kw), mask=c_ok, other=0.0)
            acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(b + co, mask=c_ok, other=0.0).to(tl.float32)[None, :]
    y_img = y + n.to(tl.int64) * CM * OH * OW
    if CHANNELS_LAST:
        y_off = p[:, None] * CM + co[None, :]
    else:
        y_off = co[None, :] * (OH * OW) + p[:, None]
    tl.store(y_img + y_off, acc.to(y.dtype.element_ty), mask=p_ok[:, None] & c_ok[None, :])


def dw2d_bwdi_kernel(gy, w, gx, C, H, W, OH, OW,
                     KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                     DH: tl.constexpr, DW: tl.constexpr, PT: tl.constexpr, PL: tl.constexpr,
                     M: tl.constexpr, CHANNELS_LAST: tl.constexpr, IDX64: tl.constexpr,
                     BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """gx[n, c, ih, iw] = sum_{j<M, kh, kw} gy[n, c*M+j, oh, ow] w[c*M+j, kh, kw] over the taps
    where ih = oh*SH - PT + kh*DH and iw = ow*SW - PL + kw*DW land on an output position.

    Gathers per input element (no atomics, deterministic).
    Grid: (N * cdiv(H*W, BLOCK_P), cdiv(C, BLOCK_C)).
    """
    CM = C * M
    n_pblocks = (H * W + BLOCK_P - 1) // BLOCK_P
    n = tl.program_id(0) // n_pblocks
    p = (tl.program_id(0) % n_pblocks) * BLOCK_P + tl.arange(0, BLOCK_P)
    ci = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    if IDX64:
        p = p.to(tl.int64)
        ci = ci.to(tl.int64)
    p_ok = p < H * W
    c_ok = ci < C
    ih = p // W
    iw = p % W
    gy_img = gy + n.to(tl.int64) * CM * OH * OW
    acc = tl.full([BLOCK_P, BLOCK_C], 0.0, tl.float32)
    for j in tl.static_range(M):
        co = ci * M + j
        if CHANNELS_LAST:
            gy_ch = co[None, :]
        else:
            gy_ch = co[None, :] * (OH * OW)
        for kh in range(KH):
            th = ih + PT - kh * DH
            # clamp before dividing: integer division of negatives differs between GPU and numpy
            oh = tl.where(th >= 0, th, 0) // SH
            h_ok = p_ok & (th >= 0) & (oh < OH)
            if SH > 1:
                h_ok = h_ok & (oh * SH == tl.where(th >= 0, th, 0))
            for kw in tl.static_range(KW):
                tw = iw + PL - kw * DW
                ow = tl.where(tw >= 0, tw, 0) // SW
                ok = h_ok & (tw >= 0) & (ow < OW)
                if SW > 1:
                    ok = ok & (ow * SW == tl.where(tw >= 0, tw, 0))
                if CHANNELS_LAST:
                    gy_pos = (oh * OW + ow) * CM
                else:
                    gy_pos = oh * OW + ow
                g = tl.load(gy_img + gy_pos[:, None] + gy_ch, mask=ok[:, None] & c_ok[None, :],
                            other=0.0)
                wv = tl.load(w + co * (KH * KW) + (kh * KW + kw), mask=c_ok, other=0.0)
                acc += g.to(tl.float32) * wv.to(tl.float32)[None, :]
    gx_img = gx + n.to(tl.int64) * C * H * W
    if CHANNELS_LAST:
        gx_off = p[:, None] * C + ci[None, :]
    else:
        gx_off = ci[None, :] * (H * W) + p[:, None]
    tl.store(gx_img + gx_off, acc.to(gx.dtype.element_ty), mask=p_ok[:, None] & c_ok[None, :])


def dw2d_bwdw_kernel(gy, x, partial, N, C, H, W, OH, OW, CHUNK,
                     KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                     DH: tl.constexpr, DW: tl.constexpr, PT: tl.constexpr, PL: tl.constexpr,
                     M: tl.constexpr, CHANNELS_LAST: tl.constexpr, IDX64: tl.constexpr,
                     BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """partial[s, co, kh*KW+kw] = sum over the s-th CHUNK of the N*OH*OW output positions q of
    gy[q, co] x[n, co//M, oh*SH-PT+kh*DH, ow*SW-PL+kw*DW] (float32).

    The launcher sums partial over s in a fixed order, so the result is deterministic.
    Grid: (cdiv(C*M, BLOCK_C), S) with S = cdiv(N*OH*OW, CHUNK).
    """
    CM = C * M
    OHW = OH * OW
    co = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    if IDX64:
        co = co.to(tl.int64)
    c_ok = co < CM
    ci = co // M
    start = tl.program_id(1) * CHUNK
    end = tl.minimum(start + CHUNK, N * OHW)
    if CHANNELS_LAST:
        gy_ch = co[None, :]
        x_ch = ci[None, :]
    else:
        gy_ch = co[None, :] * OHW
        x_ch = ci[None, :] * (H * W)
    part = partial + tl.program_id(1).to(tl.int64) * CM * (KH * KW) + co * (KH * KW)
    for kh in range(KH):
        for kw in range(KW):  # not unrolled: each tap runs a whole loop over the chunk
            acc = tl.full([BLOCK_P, BLOCK_C], 0.0, tl.float32)
            for q0 in range(start, end, BLOCK_P):
                q = q0 + tl.arange(0, BLOCK_P)
                q_ok = q < end
                n = (q // OHW).to(tl.int64)
                p = q % OHW
                if IDX64:
                    p = p.to(tl.int64)
                oh = p // OW
                ow = p % OW
                ih = oh * SH - PT + kh * DH
                iw = ow * SW - PL + kw * DW
                x_ok = q_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                # n is int64: multiply it first, as an image's size may not fit in int32
                if CHANNELS_LAST:
                    gy_pos = n * OHW * CM + p * CM
                    x_pos = n * H * W * C + (ih * W + iw) * C
                else:
                    gy_pos = n * CM * OHW + p
                    x_pos = n * C * H * W + ih * W + iw
                g = tl.load(gy + gy_pos[:, None] + gy_ch, mask=q_ok[:, None] & c_ok[None, :],
                            other=0.0)
                xv = tl.load(x + x_pos[:, None] + x_ch, mask=x_ok[:, None] & c_ok[None, :],
                             other=0.0)
                acc += g.to(tl.float32) * xv.to(tl.float32)
            tl.store(part + (kh * KW + kw), tl.reduce(acc, 0, _sum_combine), mask=c_ok)
