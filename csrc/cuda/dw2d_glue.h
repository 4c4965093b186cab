// The torch side of the kernels/cuda launchers, written once for the two places they run:
// csrc/cuda/dw2d.cpp (dwconv::cuda, CUDA tensors) and csrc/emu/dw2d_emu.cpp (dwconv::cuda_emu_kernels
// on CPU tensors). A Target supplies the launchers and what differs: device checks, the device
// guard, the stream, and (emulation) the buffers a launch may touch.
#pragma once
#include <ATen/ATen.h>

#include <initializer_list>
#include <optional>
#include <tuple>
#include <vector>

#include "../../kernels/cuda/dw2d_cuda.h"
#include "../common.h"
#include "../dw2d_args.h"

namespace dwconv {
namespace glue {

inline DType dtype_of(const at::Tensor& t, const char* backend, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat: return DType::f32;
    case at::kDouble: return DType::f64;
    case at::kHalf: return DType::f16;
    case at::kBFloat16: return DType::bf16;
    default:
      TORCH_CHECK(false, "dwconv ", backend, " backend: ", name,
                  " dtype must be float32, float64, float16 or bfloat16, got ", t.scalar_type());
  }
}

// Spatial sizes, paddings and channel counts index with 32-bit arithmetic inside the kernels
// (element offsets are 64-bit): refuse the (absurd) shapes that would overflow it.
inline void check_dims(const Dw2dShape& s, const char* backend) {
  constexpr int64_t lim = int64_t{1} << 30;
  TORCH_CHECK(s.H < lim && s.W < lim && s.OH < lim && s.OW < lim && s.PT < lim && s.PL < lim &&
                  s.KH * s.DH < lim && s.KW * s.DW < lim && s.cout() < (int64_t{1} << 31),
              "dwconv ", backend, " backend: spatial sizes, padding and dilated kernel extent must "
              "be below 2^30 and channels below 2^31, got input ", s.N, "x", s.C, "x", s.H, "x",
              s.W, ", kernel ", s.KH, "x", s.KW);
}

// Weight [C*M,1,KH,KW] as the layout's kernels take it (kernels/cuda/dw2d_cuda.h).
inline at::Tensor pack_weight(const at::Tensor& w, const Dw2dShape& s, Layout layout) {
  if (layout == Layout::NCHW) return w.contiguous();
  return w.reshape({s.cout(), s.KH * s.KW}).t().contiguous();
}

// A tensor a launch reads or writes (null: an absent optional), for Target::buffers.
struct NamedTensor {
  const at::Tensor* t;
  const char* name;
};

template <typename Target>
struct Dw2d {
  static void check_tensor(const at::Tensor& t, const char* name) {
    Target::check_device(t, name);
    dtype_of(t, Target::name, name);
  }

  static void launched(int rc, const char* pass) {
    TORCH_CHECK(rc == 0, "dwconv ", Target::name, " backend: ", pass, " launch failed: ",
                Target::error_string(rc));
  }

  static void fwd_into(const at::Tensor& input, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, const Dw2dShape& s, Layout layout,
                       at::Tensor& y) {
    const at::Tensor x = input.contiguous(memory_format(layout));
    const at::Tensor w = pack_weight(weight, s, layout);
    const std::optional<at::Tensor> b =
        bias ? std::optional<at::Tensor>(bias->contiguous()) : std::nullopt;
    [[maybe_unused]] auto buffers = Target::buffers({{&x, "input"}, {&w, "weight"}, {b ? &*b : nullptr, "bias"},
                                    {&y, "output"}});
    launched(Target::fwd(s, layout, dtype_of(x, Target::name, "input"), x.const_data_ptr(),
                         w.const_data_ptr(), b ? b->const_data_ptr() : nullptr, y.data_ptr(),
                         Target::stream(x)),
             "forward");
  }

  static at::Tensor fwd(const at::Tensor& input, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                        at::IntArrayRef padding, at::IntArrayRef dilation) {
    check_tensor(input, "input");
    const Dw2dShape s = check_fwd(input, weight, bias, stride, padding, dilation);
    check_dims(s, Target::name);
    [[maybe_unused]] auto guard = Target::guard(input);
    const Layout layout = layout_of(input);
    at::Tensor y = new_output({s.N, s.cout(), s.OH, s.OW}, input.options(), memory_format(layout));
    if (y.numel() > 0) fwd_into(input, weight, bias, s, layout, y);
    return y;
  }

  static void fwd_out(const at::Tensor& input, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation, at::Tensor& out) {
    check_tensor(input, "input");
    const Dw2dShape s = check_fwd(input, weight, bias, stride, padding, dilation);
    check_dims(s, Target::name);
    check_same(input, "input", out, "out");
    TORCH_CHECK(out.dim() == 4 && out.size(0) == s.N && out.size(1) == s.cout() &&
                    out.size(2) == s.OH && out.size(3) == s.OW,
                "dwconv: out must be [", s.N, ", ", s.cout(), ", ", s.OH, ", ", s.OW,
                "], got shape ", out.sizes());
    if (out.numel() == 0) return;
    [[maybe_unused]] auto guard = Target::guard(input);
    const Layout layout = layout_of(input);
    if (out.is_contiguous(memory_format(layout))) {
      fwd_into(input, weight, bias, s, layout, out);
      return;
    }
    at::Tensor y = new_output({s.N, s.cout(), s.OH, s.OW}, input.options(), memory_format(layout));
    fwd_into(input, weight, bias, s, layout, y);
    out.copy_(y);
  }

  static at::Tensor bwdi(const at::Tensor& grad_out, const at::Tensor& weight,
                         c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation) {
    check_tensor(grad_out, "grad_output");
    check_same(grad_out, "grad_output", weight, "weight");
    const auto in_size = C10_AS_INTARRAYREF_SLOW(input_size);
    const Dw2dShape s = make_dw2d_shape(in_size, weight.sizes(), stride, padding, dilation);
    check_grad_out(grad_out, s);
    check_dims(s, Target::name);
    [[maybe_unused]] auto guard = Target::guard(grad_out);
    const Layout layout = layout_of(grad_out);
    const at::Tensor gy = grad_out.contiguous(memory_format(layout));
    const at::Tensor w = pack_weight(weight, s, layout);
    at::Tensor gx = new_output(in_size, gy.options(), memory_format(layout));
    if (gx.numel() == 0) return gx;
    if (gy.numel() == 0) return gx.zero_();
    [[maybe_unused]] auto buffers = Target::buffers({{&gy, "grad_output"}, {&w, "weight"}, {&gx, "grad_input"}});
    launched(Target::bwdi(s, layout, dtype_of(gy, Target::name, "grad_output"),
                          gy.const_data_ptr(), w.const_data_ptr(), gx.data_ptr(),
                          Target::stream(gy)),
             "backward-input");
    return gx;
  }

  static at::Tensor bwdw(const at::Tensor& grad_out, const at::Tensor& input,
                         c10::SymIntArrayRef kernel_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation) {
    check_tensor(grad_out, "grad_output");
    check_same(grad_out, "grad_output", input, "input");
    const auto ks = C10_AS_INTARRAYREF_SLOW(kernel_size);
    TORCH_CHECK(ks.size() == 2, "dwconv: kernel_size must be two integers, got ", ks);
    TORCH_CHECK(grad_out.dim() == 4 && input.dim() == 4,
                "dwconv: grad_output and input must be 4-D, got shapes ", grad_out.sizes(),
                " and ", input.sizes());
    const int64_t CO = grad_out.size(1);
    const Dw2dShape s =
        make_dw2d_shape(input.sizes(), {CO, 1, ks[0], ks[1]}, stride, padding, dilation);
    check_grad_out(grad_out, s);
    check_dims(s, Target::name);
    [[maybe_unused]] auto guard = Target::guard(input);
    const Layout layout = layout_of(input);
    const at::Tensor x = input.contiguous(memory_format(layout));
    const at::Tensor gy = grad_out.contiguous(memory_format(layout));
    at::Tensor gw = new_output({CO, 1, s.KH, s.KW}, x.options());
    if (s.N == 0 || s.OH * s.OW == 0) return gw.zero_();
    const DType dt = dtype_of(x, Target::name, "input");
    const at::Tensor ws = at::empty({Target::bwdw_workspace_bytes(s, layout, dt)},
                                    x.options().dtype(at::kByte));
    [[maybe_unused]] auto buffers = Target::buffers(
        {{&gy, "grad_output"}, {&x, "input"}, {&gw, "grad_weight"}, {&ws, "workspace"}});
    launched(Target::bwdw(s, layout, dt, gy.const_data_ptr(), x.const_data_ptr(), gw.data_ptr(),
                          ws.data_ptr(), Target::stream(x)),
             "backward-weight");
    return gw;
  }

  // both gradients (dw2d_bwd): the two passes, one after the other
  static std::tuple<at::Tensor, at::Tensor> bwd(const at::Tensor& grad_out,
                                                const at::Tensor& input, const at::Tensor& weight,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef dilation) {
    TORCH_CHECK(input.dim() == 4 && weight.dim() == 4,
                "dwconv: input must be 4-D [N, C, H, W] and weight [C*m, 1, kH, kW], got shapes ",
                input.sizes(), " and ", weight.sizes());
    const std::vector<c10::SymInt> in_size(input.sizes().begin(), input.sizes().end());
    const std::vector<c10::SymInt> ks{weight.size(2), weight.size(3)};
    return {bwdi(grad_out, weight, in_size, stride, padding, dilation),
            bwdw(grad_out, input, ks, stride, padding, dilation)};
  }
};

}  // namespace glue
}  // namespace dwconv
