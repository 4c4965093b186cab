// CPU implementations of the dw2d ops: checks, layout choice, dtype handling, threading, and raw
// pointers into kernels/cpu. float32 runs the active ISA's kernels, float64 the scalar ones;
// bfloat16 and float16 are computed in float32 and rounded once at the end.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <chrono>
#include <string>
#include <tuple>

#include "../../kernels/cpu/dw2d.h"
#include "../common.h"
#include "../dw2d_args.h"

namespace dwconv {
namespace cpu {
namespace {

Isa best_isa() {
  for (Isa isa : {Isa::avx512, Isa::avx2})
    if (isa_supported(isa)) return isa;
  return Isa::scalar;
}

std::atomic<int> g_isa{static_cast<int>(best_isa())};

template <typename T>
const Dw2dKernels<T>* kernels_for();
template <>
const Dw2dKernels<float>* kernels_for<float>() {
  return dw2d_kernels_f32(static_cast<Isa>(g_isa.load()));
}
template <>
const Dw2dKernels<double>* kernels_for<double>() {
  return dw2d_kernels_f64();
}

bool is_half(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
}

void check_cpu_dtype(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "dwconv cpu backend: ", name, " must be a CPU tensor, got ",
              t.device());
  const auto st = t.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kBFloat16 || st == at::kHalf,
              "dwconv cpu backend: ", name,
              " dtype must be float32, float64, bfloat16 or float16, got ", st);
}

// Half types run in float32: upcast here, round back once by the caller.
at::Tensor compute_dtype(const at::Tensor& t) { return is_half(t) ? t.to(at::kFloat) : t; }

// Weight [C*M,1,KH,KW] as the layout's kernels want it (see kernels/cpu/dw2d.h), its taps
// rotated by 180 degrees when `flip` (a backward-input run as a forward). One loop: ATen's flip,
// permute and contiguous took ~40 us per call here, a third of a batch-1 layer's kernel. NHWC
// [M][KK][C] is written in order, reading each tap down the channels (stride M*KK): written
// channel by channel instead (stores C apart), [128,1,31,31] took ~145 us per call (3% of the
// RepLKNet channels_last forward) against ~65 us now.
at::Tensor pack_weight(const at::Tensor& weight, const Dw2dShape& s, Layout layout,
                       bool flip = false) {
  const at::Tensor w = weight.contiguous();
  if (layout == Layout::NCHW && !flip) return w;
  const int64_t C = s.C, M = s.M, KK = s.KH * s.KW;
  at::Tensor out = layout == Layout::NCHW ? at::empty_like(w) : at::empty({M, KK, C}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "dwconv_pack_weight", [&] {
    const scalar_t* src = w.const_data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    if (layout == Layout::NCHW) {  // flip only
      for (int64_t co = 0; co < C * M; ++co)
        for (int64_t t = 0; t < KK; ++t) dst[co * KK + t] = src[co * KK + KK - 1 - t];
      return;
    }
    // output channel c*M + j, tap t: src[(c*M + j)*KK + t] -> dst[(j*KK + t)*C + c]
    for (int64_t j = 0; j < M; ++j) {
      for (int64_t t = 0; t < KK; ++t) {
        const scalar_t* from = src + j * KK + (flip ? KK - 1 - t : t);
        scalar_t* to = dst + (j * KK + t) * C;
        for (int64_t c = 0; c < C; ++c) to[c] = from[c * M * KK];
      }
    }
  });
  return out;
}

template <typename F>
void run_items(int64_t items, const F& f) {
  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) { f(begin, end); });
}

// flip: run the weight rotated by 180 degrees (a backward-input as a forward)
void fwd_into(const at::Tensor& input, const at::Tensor& weight,
              const std::optional<at::Tensor>& bias, const Dw2dShape& s, Layout layout,
              at::Tensor& y, bool flip = false) {
  const at::Tensor x = input.contiguous(memory_format(layout));
  const at::Tensor w = pack_weight(weight, s, layout, flip);
  const std::optional<at::Tensor> b =
      bias ? std::optional<at::Tensor>(bias->contiguous()) : std::nullopt;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dwconv_dw2d_fwd_cpu", [&] {
    const auto* k = kernels_for<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    const scalar_t* bp = b ? b->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* yp = y.data_ptr<scalar_t>();
    run_items(k->fwd_items(s, layout),
              [&](int64_t begin, int64_t end) { k->fwd(s, layout, xp, wp, bp, yp, begin, end); });
  });
}

std::optional<at::Tensor> compute_bias(const std::optional<at::Tensor>& bias) {
  return bias ? std::optional<at::Tensor>(compute_dtype(*bias)) : std::nullopt;
}

}  // namespace

Isa active_isa() { return static_cast<Isa>(g_isa.load()); }
void set_active_isa(Isa isa) { g_isa.store(static_cast<int>(isa)); }

at::Tensor dw2d_fwd(const at::Tensor& input, const at::Tensor& weight,
                    const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                    at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_cpu_dtype(input, "input");
  const Dw2dShape s = check_fwd(input, weight, bias, stride, padding, dilation);
  const Layout layout = layout_of(input);
  const at::Tensor x = compute_dtype(input);
  at::Tensor y = new_output({s.N, s.cout(), s.OH, s.OW}, x.options(), memory_format(layout));
  if (y.numel() > 0) fwd_into(x, compute_dtype(weight), compute_bias(bias), s, layout, y);
  return is_half(input) ? y.to(input.scalar_type()) : y;
}

void dw2d_fwd_out(const at::Tensor& input, const at::Tensor& weight,
                  const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                  at::IntArrayRef padding, at::IntArrayRef dilation, at::Tensor& out) {
  check_cpu_dtype(input, "input");
  const Dw2dShape s = check_fwd(input, weight, bias, stride, padding, dilation);
  check_same(input, "input", out, "out");
  TORCH_CHECK(out.dim() == 4 && out.size(0) == s.N && out.size(1) == s.cout() &&
                  out.size(2) == s.OH && out.size(3) == s.OW,
              "dwconv: out must be [", s.N, ", ", s.cout(), ", ", s.OH, ", ", s.OW,
              "], got shape ", out.sizes());
  if (out.numel() == 0) return;
  const Layout layout = layout_of(input);
  if (!is_half(input) && out.is_contiguous(memory_format(layout))) {
    fwd_into(input, weight, bias, s, layout, out);
    return;
  }
  const at::Tensor x = compute_dtype(input);
  at::Tensor y = new_output({s.N, s.cout(), s.OH, s.OW}, x.options(), memory_format(layout));
  fwd_into(x, compute_dtype(weight), compute_bias(bias), s, layout, y);
  out.copy_(y);
}

at::Tensor dw2d_bwdi(const at::Tensor& grad_out, const at::Tensor& weight,
                     c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_cpu_dtype(grad_out, "grad_output");
  check_same(grad_out, "grad_output", weight, "weight");
  const auto in_size = C10_AS_INTARRAYREF_SLOW(input_size);
  const Dw2dShape s = make_dw2d_shape(in_size, weight.sizes(), stride, padding, dilation);
  check_grad_out(grad_out, s);
  const Layout layout = layout_of(grad_out);
  const at::Tensor gy = compute_dtype(grad_out).contiguous(memory_format(layout));
  at::Tensor gx = new_output(in_size, gy.options(), memory_format(layout));
  Dw2dShape f;
  if (bwdi_as_fwd(s, &f)) {
    fwd_into(gy, compute_dtype(weight), std::nullopt, f, layout, gx, /*flip=*/true);
  } else if (gx.numel() > 0) {
    const at::Tensor w = pack_weight(compute_dtype(weight), s, layout);
    AT_DISPATCH_FLOATING_TYPES(gy.scalar_type(), "dwconv_dw2d_bwdi_cpu", [&] {
      const auto* k = kernels_for<scalar_t>();
      const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
      const scalar_t* wp = w.const_data_ptr<scalar_t>();
      scalar_t* gxp = gx.data_ptr<scalar_t>();
      run_items(k->bwdi_items(s, layout),
                [&](int64_t begin, int64_t end) { k->bwdi(s, layout, gyp, wp, gxp, begin, end); });
    });
  }
  return is_half(grad_out) ? gx.to(grad_out.scalar_type()) : gx;
}

namespace {

// grad_weight as the kernels write it: NCHW [CO,1,KH,KW]; NHWC packed [M][KH*KW][C]. A problem
// summed in parts (bwdw_parts) gets one such buffer per part, part 0 holding the sum in the end
// (finish_gw). Returns the buffer and the number of parts.
template <typename T>
std::pair<at::Tensor, int64_t> new_gw(const Dw2dShape& s, Layout layout,
                                      const at::TensorOptions& options) {
  const int64_t parts =
      s.N > 0 && s.OH * s.OW > 0 ? kernels_for<T>()->bwdw_parts(s, layout) : int64_t(1);
  at::Tensor gw = layout == Layout::NCHW
                      ? new_output({parts * s.cout(), 1, s.KH, s.KW}, options)
                      : new_output({parts * s.M, s.KH * s.KW, s.C}, options);
  return {gw, parts};
}

// Adds the parts into part 0 and gives grad_weight its [CO,1,KH,KW] shape, contiguous like
// PyTorch's (not a view into the parts).
template <typename T>
at::Tensor finish_gw(const Dw2dShape& s, Layout layout, at::Tensor gw, int64_t parts) {
  if (parts > 1) {
    kernels_for<T>()->bwdw_reduce(s, gw.data_ptr<T>(), parts);
    gw = gw.narrow(0, 0, gw.size(0) / parts);
  }
  if (layout == Layout::NHWC) gw = gw.permute({2, 0, 1}).reshape({s.cout(), 1, s.KH, s.KW});
  return gw.contiguous();
}

Dw2dShape bwdw_shape(const at::Tensor& grad_out, const at::Tensor& input,
                     at::IntArrayRef kernel_size, at::IntArrayRef stride, at::IntArrayRef padding,
                     at::IntArrayRef dilation) {
  TORCH_CHECK(kernel_size.size() == 2, "dwconv: kernel_size must be two integers, got ",
              kernel_size);
  TORCH_CHECK(grad_out.dim() == 4 && input.dim() == 4,
              "dwconv: grad_output and input must be 4-D, got shapes ", grad_out.sizes(), " and ",
              input.sizes());
  const Dw2dShape s = make_dw2d_shape(input.sizes(), {grad_out.size(1), 1, kernel_size[0],
                                                      kernel_size[1]},
                                      stride, padding, dilation);
  check_grad_out(grad_out, s);
  return s;
}

}  // namespace

at::Tensor dw2d_bwdw(const at::Tensor& grad_out, const at::Tensor& input,
                     c10::SymIntArrayRef kernel_size, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_cpu_dtype(grad_out, "grad_output");
  check_same(grad_out, "grad_output", input, "input");
  const Dw2dShape s = bwdw_shape(grad_out, input, C10_AS_INTARRAYREF_SLOW(kernel_size), stride,
                                 padding, dilation);
  const Layout layout = layout_of(input);
  const at::Tensor x = compute_dtype(input).contiguous(memory_format(layout));
  const at::Tensor gy = compute_dtype(grad_out).contiguous(memory_format(layout));
  at::Tensor gw;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dwconv_dw2d_bwdw_cpu", [&] {
    auto [buf, parts] = new_gw<scalar_t>(s, layout, x.options());
    if (s.N == 0 || s.OH * s.OW == 0) {
      buf.zero_();
    } else {
      const auto* k = kernels_for<scalar_t>();
      const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      scalar_t* gwp = buf.data_ptr<scalar_t>();
      run_items(k->bwdw_items(s, layout),
                [&](int64_t begin, int64_t end) { k->bwdw(s, layout, gyp, xp, gwp, begin, end); });
    }
    gw = finish_gw<scalar_t>(s, layout, buf, parts);
  });
  return is_half(grad_out) ? gw.to(grad_out.scalar_type()) : gw;
}

// Both gradients: fused (one read of grad_output for both, kernels/cpu/dw2d.h) where the kernels
// have a fused path for the problem and both tensors share a layout; the two ops otherwise.
std::tuple<at::Tensor, at::Tensor> dw2d_bwd(const at::Tensor& grad_out, const at::Tensor& input,
                                            const at::Tensor& weight, at::IntArrayRef stride,
                                            at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_cpu_dtype(grad_out, "grad_output");
  check_same(grad_out, "grad_output", input, "input");
  check_same(grad_out, "grad_output", weight, "weight");
  const Dw2dShape s = make_dw2d_shape(input.sizes(), weight.sizes(), stride, padding, dilation);
  check_grad_out(grad_out, s);
  const Layout layout = layout_of(input);
  int64_t items = 0;
  if (!is_half(grad_out) && layout_of(grad_out) == layout && input.numel() > 0 &&
      grad_out.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "dwconv_dw2d_bwd_cpu", [&] {
      items = kernels_for<scalar_t>()->bwd_items(s, layout);
    });
  }
  if (items == 0) {
    const std::vector<c10::SymInt> in_size(input.sizes().begin(), input.sizes().end());
    const std::vector<c10::SymInt> ks{weight.size(2), weight.size(3)};
    return {dw2d_bwdi(grad_out, weight, in_size, stride, padding, dilation),
            dw2d_bwdw(grad_out, input, ks, stride, padding, dilation)};
  }
  Dw2dShape f;
  const bool as_fwd = bwdi_as_fwd(s, &f);
  const at::Tensor x = input.contiguous(memory_format(layout));
  const at::Tensor gy = grad_out.contiguous(memory_format(layout));
  const at::Tensor w = pack_weight(weight, s, layout, /*flip=*/as_fwd);
  at::Tensor gx = new_output(input.sizes(), x.options(), memory_format(layout));
  at::Tensor gw;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "dwconv_dw2d_bwd_cpu", [&] {
    const auto* k = kernels_for<scalar_t>();
    auto [buf, parts] = new_gw<scalar_t>(s, layout, x.options());
    const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
    const scalar_t* wp = w.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* gxp = gx.data_ptr<scalar_t>();
    scalar_t* gwp = buf.data_ptr<scalar_t>();
    run_items(items, [&](int64_t begin, int64_t end) {
      k->bwd(s, as_fwd ? &f : nullptr, layout, gyp, wp, xp, gxp, gwp, begin, end);
    });
    gw = finish_gw<scalar_t>(s, layout, buf, parts);
  });
  return {gx, gw};
}

std::string kernel_name(const std::string& pass, const std::vector<int64_t>& input_size,
                        const std::vector<int64_t>& weight_size,
                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                        const std::vector<int64_t>& dilation, bool channels_last, bool float64) {
  TORCH_CHECK(pass == "fwd" || pass == "bwdi" || pass == "bwdw" || pass == "bwd",
              "dwconv: pass must be fwd, bwdi, bwdw or bwd, got '", pass, "'");
  Dw2dShape s = make_dw2d_shape(input_size, weight_size, stride, padding, dilation);
  const Layout layout = channels_last ? Layout::NHWC : Layout::NCHW;
  const char* variant = nullptr;
  const char* isa = nullptr;
  std::string runs = pass;  // the pass whose kernel runs: a backward-input may run a forward one
  if (pass == "bwdi" && bwdi_as_fwd(s, &s)) runs = "fwd";
  auto pick = [&](const auto* k) {
    isa = k->isa;
    if (runs == "fwd") variant = k->fwd_variant(s, layout);
    if (runs == "bwdi") variant = k->bwdi_variant(s, layout);
    if (runs == "bwdw") variant = k->bwdw_variant(s, layout);
    // (dw2d_bwd runs the two passes on empty tensors)
    if (runs == "bwd" && s.N * s.H * s.W > 0) variant = k->bwd_variant(s, layout);
  };
  if (float64)
    pick(kernels_for<double>());
  else
    pick(kernels_for<float>());
  if (!variant) return std::string();  // "bwd" without a fused kernel: bwdi and bwdw run
  return std::string("dw2d_") + runs + (channels_last ? "_nhwc_" : "_nchw_") + variant + "_" + isa;
}

double fma_peak_gflops(double seconds) {
  const auto* k = kernels_for<float>();
  const int threads = at::get_num_threads();
  auto timed = [&](int64_t iters) {
    const auto t0 = std::chrono::steady_clock::now();
    double flops = 0;
    std::vector<float> sink(threads);
    at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const double f = k->fma_peak(iters, &sink[t]);
#pragma omp atomic
        flops += f;
      }
    });
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_pair(flops, dt);
  };
  int64_t iters = 1 << 16;
  auto [flops, dt] = timed(iters);
  while (dt < seconds / 4) {  // grow until one run is long enough to time
    iters *= 4;
    std::tie(flops, dt) = timed(iters);
  }
  double best = flops / dt;
  for (int rep = 0; rep < 3; ++rep) {
    std::tie(flops, dt) = timed(iters);
    best = std::max(best, flops / dt);
  }
  return best * 1e-9;
}

void stream_copy_(at::Tensor& dst, const at::Tensor& src) {
  TORCH_CHECK(dst.device().is_cpu() && src.device().is_cpu() &&
                  dst.scalar_type() == at::kFloat && src.scalar_type() == at::kFloat &&
                  dst.is_contiguous() && src.is_contiguous() && dst.numel() == src.numel(),
              "dwconv: stream_copy_ takes two contiguous float32 CPU tensors of one size, got ",
              dst.scalar_type(), " ", dst.sizes(), " and ", src.scalar_type(), " ", src.sizes());
  const auto* k = kernels_for<float>();
  const float* from = src.const_data_ptr<float>();
  float* to = dst.data_ptr<float>();
  // 256 KiB per chunk; each chunk streams its whole aligned vectors and copies its ends plainly
  constexpr int64_t kChunk = int64_t(1) << 16;
  at::parallel_for(0, (dst.numel() + kChunk - 1) / kChunk, 1, [&](int64_t begin, int64_t end) {
    const int64_t lo = begin * kChunk, hi = std::min(dst.numel(), end * kChunk);
    k->stream_copy(from + lo, to + lo, hi - lo);
  });
}

}  // namespace cpu
}  // namespace dwconv

TORCH_LIBRARY_IMPL(dwconv, CPU, m) {
  m.impl("dw2d_fwd", &dwconv::cpu::dw2d_fwd);
  m.impl("dw2d_fwd_out", &dwconv::cpu::dw2d_fwd_out);
  m.impl("dw2d_bwdi", &dwconv::cpu::dw2d_bwdi);
  m.impl("dw2d_bwdw", &dwconv::cpu::dw2d_bwdw);
  m.impl("dw2d_bwd", &dwconv::cpu::dw2d_bwd);
}
