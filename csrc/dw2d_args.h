// Argument checks and shape computation shared by every backend's glue for the dw2d ops.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "../kernels/dw2d_shape.h"

namespace dwconv {

// The memory layout a kernel computes in, chosen from a tensor's strides the way PyTorch chooses the
// output format of a convolution (dwconv/ops.py's fake kernels mirror this rule).
inline Layout layout_of(const at::Tensor& t) {
  return t.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? Layout::NHWC
                                                                     : Layout::NCHW;
}

inline at::MemoryFormat memory_format(Layout layout) {
  return layout == Layout::NHWC ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

// Validates the geometry arguments and builds the kernel's shape for input [N,C,H,W] and a
// [C*M,1,KH,KW] weight; padding is (top, bottom, left, right).
inline Dw2dShape make_dw2d_shape(at::IntArrayRef input_size, at::IntArrayRef weight_size,
                                 at::IntArrayRef stride, at::IntArrayRef padding,
                                 at::IntArrayRef dilation) {
  TORCH_CHECK(input_size.size() == 4, "dwconv: input must be 4-D [N, C, H, W], got shape ",
              input_size);
  TORCH_CHECK(weight_size.size() == 4 && weight_size[1] == 1,
              "dwconv: weight must be [C*m, 1, kH, kW], got shape ", weight_size);
  TORCH_CHECK(stride.size() == 2 && stride[0] >= 1 && stride[1] >= 1,
              "dwconv: stride must be two integers >= 1, got ", stride);
  TORCH_CHECK(dilation.size() == 2 && dilation[0] >= 1 && dilation[1] >= 1,
              "dwconv: dilation must be two integers >= 1, got ", dilation);
  TORCH_CHECK(padding.size() == 4 && padding[0] >= 0 && padding[1] >= 0 && padding[2] >= 0 &&
                  padding[3] >= 0,
              "dwconv: padding must be four integers >= 0 (top, bottom, left, right), got ",
              padding);
  const int64_t C = input_size[1], CO = weight_size[0];
  TORCH_CHECK(C >= 1 && CO >= C && CO % C == 0,
              "dwconv: weight out_channels (", CO, ") must be a positive multiple of input channels (",
              C, "); input shape ", input_size, ", weight shape ", weight_size);
  TORCH_CHECK(weight_size[2] >= 1 && weight_size[3] >= 1, "dwconv: empty kernel, weight shape ",
              weight_size);
  Dw2dShape s{};
  s.N = input_size[0];
  s.C = C;
  s.H = input_size[2];
  s.W = input_size[3];
  s.M = CO / C;
  s.KH = weight_size[2];
  s.KW = weight_size[3];
  s.SH = stride[0];
  s.SW = stride[1];
  s.DH = dilation[0];
  s.DW = dilation[1];
  s.PT = padding[0];
  s.PL = padding[2];
  const int64_t eh = s.DH * (s.KH - 1) + 1, ew = s.DW * (s.KW - 1) + 1;
  const int64_t ph = s.H + padding[0] + padding[1], pw = s.W + padding[2] + padding[3];
  TORCH_CHECK(ph >= eh && pw >= ew, "dwconv: output would be empty: padded input ", ph, "x", pw,
              " is smaller than the dilated kernel ", eh, "x", ew, "; input shape ", input_size,
              ", weight shape ", weight_size);
  s.OH = (ph - eh) / s.SH + 1;
  s.OW = (pw - ew) / s.SW + 1;
  return s;
}

inline void check_same(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "dwconv: ", an, " and ", bn,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), "dwconv: ", an, " and ", bn,
              " must be on the same device, got ", a.device(), " and ", b.device());
}

inline Dw2dShape check_fwd(const at::Tensor& input, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                           at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_same(input, "input", weight, "weight");
  const Dw2dShape s = make_dw2d_shape(input.sizes(), weight.sizes(), stride, padding, dilation);
  if (bias) {
    check_same(input, "input", *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.cout(), "dwconv: bias must be [",
                s.cout(), "], got shape ", bias->sizes());
  }
  return s;
}

inline void check_grad_out(const at::Tensor& grad_out, const Dw2dShape& s) {
  TORCH_CHECK(grad_out.dim() == 4 && grad_out.size(0) == s.N && grad_out.size(1) == s.cout() &&
                  grad_out.size(2) == s.OH && grad_out.size(3) == s.OW,
              "dwconv: grad_output must be [", s.N, ", ", s.cout(), ", ", s.OH, ", ", s.OW,
              "], got shape ", grad_out.sizes());
}

}  // namespace dwconv
