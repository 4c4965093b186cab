// Torch-free interface of the CPU depthwise conv2d kernels.
// Every kernel works on contiguous raw pointers and a range [begin, end) of work items, so the
// caller (csrc/cpu) owns threading; items never overlap in the memory they write, which makes every
// pass (backward-weight included) deterministic whatever the thread count.
#pragma once
#include <cstdint>

#include "../dw2d_shape.h"

namespace dwconv {
namespace cpu {

// Weight layouts the kernels expect (the glue packs them):
//   NCHW passes: w[C*M][KH*KW]          (the nn.Conv2d weight as is)
//   NHWC passes: wp[M][KH*KW][C]        (channels innermost, one row per multiplier index j)
template <typename T>
struct Dw2dKernels {
  const char* isa;
  int vector_width;  // lanes of T per SIMD register
  // forward: y = conv(x, w) + b (b may be null)
  int64_t (*fwd_items)(const Dw2dShape&, Layout);
  void (*fwd)(const Dw2dShape&, Layout, const T* x, const T* w, const T* b, T* y,
              int64_t begin, int64_t end);
  // backward-input: gx = conv_transpose(gy, w)
  int64_t (*bwdi_items)(const Dw2dShape&, Layout);
  void (*bwdi)(const Dw2dShape&, Layout, const T* gy, const T* w, T* gx, int64_t begin,
               int64_t end);
  // backward-weight: gw (laid out like the pass's weight) = sum over batch and space of gy * x.
  // Some problems are summed in bwdw_parts(s) > 1 parts (chunks of the batch, a function of the
  // shape only): the caller then passes that many gw buffers back to back, runs the items, and
  // calls bwdw_reduce, which adds parts 1, 2, ... to part 0 in that order. Deterministic for any
  // thread count either way.
  int64_t (*bwdw_items)(const Dw2dShape&, Layout);
  void (*bwdw)(const Dw2dShape&, Layout, const T* gy, const T* x, T* gw, int64_t begin,
               int64_t end);
  int64_t (*bwdw_parts)(const Dw2dShape&, Layout);
  void (*bwdw_reduce)(const Dw2dShape&, T* gw, int64_t parts);
  // Fused backward: gx and gw of one problem `s` together, each chunk of gy read once for both
  // (dw2d_packed.h says where; bwd_items is 0 elsewhere, and the passes then run apart). w and
  // gw as the backward-input's and backward-weight's; as_fwd: the forward the backward-input
  // runs as (bwdi_as_fwd, its weight rotated), or null. gw takes bwdw_parts(s) buffers as for
  // bwdw. Deterministic as they are; the same bits as bwdi and bwdw apart, but for gx where bwdi
  // would run other kernels (dw2d_packed.h).
  int64_t (*bwd_items)(const Dw2dShape&, Layout);
  void (*bwd)(const Dw2dShape&, const Dw2dShape* as_fwd, Layout, const T* gy, const T* w,
              const T* x, T* gx, T* gw, int64_t begin, int64_t end);
  // The specialisation each pass runs for a shape, as the <specialisation> part of a kernel name
  // (docs/kernels.md), e.g. "k3s1" or "generic".
  const char* (*fwd_variant)(const Dw2dShape&, Layout);
  const char* (*bwdi_variant)(const Dw2dShape&, Layout);
  const char* (*bwdw_variant)(const Dw2dShape&, Layout);
  // the fused backward's ("packed", "parts"), or null where the passes run apart
  const char* (*bwd_variant)(const Dw2dShape&, Layout);
  // FMA-throughput loop for the roofline's compute peak: returns flops done (see peak.h)
  double (*fma_peak)(int64_t iters, T* sink);
  // copy of n elements with non-temporal stores, for the roofline's bandwidth (see peak.h)
  void (*stream_copy)(const T* src, T* dst, int64_t n);
};

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };
constexpr int kNumIsa = 3;
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);  // compiled in and supported by this CPU
bool isa_compiled(Isa isa);   // compiled into this build

// Whether passes may run through the NHWC kernels on L-channel tiles where that pays
// (dw2d_packed.h, "packed": NCHW passes, and NHWC passes of large kernels; on by default). Off:
// always the kernels of the tensor's own layout, which is how the tests reach them and how a
// benchmark compares the two.
void set_packed(bool on);
bool packed_enabled();

// Backward-input at stride 1 with depth multiplier 1 is a forward convolution: grad_output,
// padded by dilation*(k-1) - padding on each side, correlated with the weight rotated 180 degrees.
// The forward kernels are faster than the backward-input ones there (2-2.5x for channels_last 3x3
// and 31x31, 1.2-1.6x for 5x5 and 7x7, measured on AVX-512), so such calls run them. Returns
// whether `s` (a backward-input problem) qualifies and, if so, the forward problem in `fwd`. Off
// (set_bwdi_as_fwd(false)): always the backward-input kernels, which is how the tests reach them.
bool bwdi_as_fwd(const Dw2dShape& s, Dw2dShape* fwd);
void set_bwdi_as_fwd(bool on);
bool bwdi_as_fwd_enabled();

// float32 kernels for one ISA (null when not compiled in); float64 kernels are scalar only.
const Dw2dKernels<float>* dw2d_kernels_f32(Isa isa);
const Dw2dKernels<double>* dw2d_kernels_f64();

}  // namespace cpu
}  // namespace dwconv
