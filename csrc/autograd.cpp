// Autograd of dwconv::dw2d_fwd (and the first-order-only autograd of dw2d_bwdi / dw2d_bwdw /
// dw2d_bwd) in C++, for every backend the op family "" dispatches to (CPU, CUDA). Python's
// torch.library.register_autograd costs about 40 us per forward+backward, more than the kernels
// of a batch-1 layer; this costs a few. The backward is made of the registered ops: dw2d_bwd
// when both input and weight need gradients, dw2d_bwdi or dw2d_bwdw when one does (their own
// autograd, below, refuses double backward), so torch.compile and torch.export trace it through
// their fake kernels. The other op families (_emu, _triton) keep the Python registration in
// dwconv/ops.py.
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>

namespace dwconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const c10::TypedOperatorHandle<at::Tensor(const at::Tensor&, const at::Tensor&,
                                          const std::optional<at::Tensor>&, at::IntArrayRef,
                                          at::IntArrayRef, at::IntArrayRef)>&
fwd_op() {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("dwconv::dw2d_fwd", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            at::IntArrayRef, at::IntArrayRef, at::IntArrayRef)>();
  return op;
}

// bwdi and bwdw share a signature: (grad_out, tensor, sizes, stride, padding, dilation)
using BwdSig = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymIntArrayRef,
                          at::IntArrayRef, at::IntArrayRef, at::IntArrayRef);
const c10::TypedOperatorHandle<BwdSig>& bwd_op(const char* name) {
  static const auto bwdi =
      c10::Dispatcher::singleton().findSchemaOrThrow("dwconv::dw2d_bwdi", "").typed<BwdSig>();
  static const auto bwdw =
      c10::Dispatcher::singleton().findSchemaOrThrow("dwconv::dw2d_bwdw", "").typed<BwdSig>();
  return name[3] == 'i' ? bwdi : bwdw;
}

using BwdBothSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                      const at::Tensor&, at::IntArrayRef,
                                                      at::IntArrayRef, at::IntArrayRef);
const c10::TypedOperatorHandle<BwdBothSig>& bwd_both_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("dwconv::dw2d_bwd", "").typed<BwdBothSig>();
  return op;
}

[[noreturn]] void refuse_double_backward(const char* name) {
  TORCH_CHECK(false, "dwconv: double backward through ", name,
              " is not supported; use backend='torch' for higher-order gradients");
}

class Dw2dFwdFunction : public torch::autograd::Function<Dw2dFwdFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& input,
                               const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                               at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation) {
    const bool has_bias = bias.has_value() && bias->defined();
    // keep only what a backward can use (no activation held for frozen weights)
    const bool need_gi = input.requires_grad(), need_gw = weight.requires_grad();
    ctx->save_for_backward({need_gw ? input : at::Tensor(), need_gi ? weight : at::Tensor()});
    for (int64_t d = 0; d < 4; ++d) ctx->saved_data["in" + std::to_string(d)] = input.sym_size(d);
    ctx->saved_data["kh"] = weight.sym_size(2);
    ctx->saved_data["kw"] = weight.sym_size(3);
    ctx->saved_data["stride"] = stride.vec();
    ctx->saved_data["padding"] = padding.vec();
    ctx->saved_data["dilation"] = dilation.vec();
    ctx->saved_data["has_bias"] = has_bias;
    at::AutoDispatchBelowADInplaceOrView below;
    return {fwd_op().call(input, weight, bias, stride, padding, dilation)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& input = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& gy = grads[0];
    const auto stride = ctx->saved_data["stride"].toIntVector();
    const auto padding = ctx->saved_data["padding"].toIntVector();
    const auto dilation = ctx->saved_data["dilation"].toIntVector();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    at::Tensor gi, gw, gb;
    // gradient edges are numbered over the tensor arguments present: input, weight, [bias]
    if (ctx->needs_input_grad(0) && ctx->needs_input_grad(1)) {
      // both: one op, which reads grad_output once for both where it can
      std::tie(gi, gw) = bwd_both_op().call(gy, input, weight, stride, padding, dilation);
    } else if (ctx->needs_input_grad(0)) {
      std::vector<c10::SymInt> size;
      for (int64_t d = 0; d < 4; ++d) size.push_back(ctx->saved_data["in" + std::to_string(d)].toSymInt());
      gi = bwd_op("bwdi").call(gy, weight, size, stride, padding, dilation);
    } else if (ctx->needs_input_grad(1)) {
      const std::vector<c10::SymInt> k{ctx->saved_data["kh"].toSymInt(),
                                       ctx->saved_data["kw"].toSymInt()};
      gw = bwd_op("bwdw").call(gy, input, k, stride, padding, dilation);
    }
    if (has_bias && ctx->needs_input_grad(2)) gb = gy.sum({0, 2, 3});
    // one entry per forward argument (undefined for the non-tensors and an absent bias)
    return {gi, gw, gb, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// dw2d_bwdi (Which = 'i') and dw2d_bwdw ('w') are first-order only: their autograd records a
// node whose backward refuses a double backward with a clear error. In C++ for the same reason
// as the forward's: torch.library.register_autograd's Python wrapper cost ~100 us per
// backward-input call of a batch-1 layer, inside every backward, with nothing recorded.
template <char Which>
class Dw2dBwdFunction : public torch::autograd::Function<Dw2dBwdFunction<Which>> {
 public:
  static constexpr const char* name() { return Which == 'i' ? "dw2d_bwdi" : "dw2d_bwdw"; }

  static variable_list forward(AutogradContext*, const at::Tensor& grad_out,
                               const at::Tensor& other, c10::SymIntArrayRef sizes,
                               at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation) {
    at::AutoDispatchBelowADInplaceOrView below;
    return {bwd_op(Which == 'i' ? "bwdi" : "bwdw")
                .call(grad_out, other, sizes, stride, padding, dilation)};
  }

  static variable_list backward(AutogradContext*, variable_list) { refuse_double_backward(name()); }
};

// dw2d_bwd (both gradients), first-order only like the two above
class Dw2dBwdBothFunction : public torch::autograd::Function<Dw2dBwdBothFunction> {
 public:
  static variable_list forward(AutogradContext*, const at::Tensor& grad_out,
                               const at::Tensor& input, const at::Tensor& weight,
                               at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation) {
    at::AutoDispatchBelowADInplaceOrView below;
    auto [gi, gw] = bwd_both_op().call(grad_out, input, weight, stride, padding, dilation);
    return {gi, gw};
  }

  static variable_list backward(AutogradContext*, variable_list) {
    refuse_double_backward("dw2d_bwd");
  }
};

// Whether a call records a graph node: grad mode on and some tensor argument requiring grad.
// Calls that record nothing (no_grad, inference, no argument requiring grad) go straight to the
// backend: building the node's context (saved sizes and geometry) cost ~2.5 us of a ~6.5 us
// batch-1 call.
bool records(std::initializer_list<const at::Tensor*> tensors) {
  if (!at::GradMode::is_enabled()) return false;
  for (const at::Tensor* t : tensors)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

template <char Which>
at::Tensor dw2d_bwd_autograd(const at::Tensor& grad_out, const at::Tensor& other,
                             c10::SymIntArrayRef sizes, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation) {
  if (!records({&grad_out, &other})) {
    at::AutoDispatchBelowADInplaceOrView below;
    return bwd_op(Which == 'i' ? "bwdi" : "bwdw")
        .call(grad_out, other, sizes, stride, padding, dilation);
  }
  return Dw2dBwdFunction<Which>::apply(grad_out, other, sizes, stride, padding, dilation)[0];
}

std::tuple<at::Tensor, at::Tensor> dw2d_bwd_both_autograd(
    const at::Tensor& grad_out, const at::Tensor& input, const at::Tensor& weight,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  if (!records({&grad_out, &input, &weight})) {
    at::AutoDispatchBelowADInplaceOrView below;
    return bwd_both_op().call(grad_out, input, weight, stride, padding, dilation);
  }
  const auto out = Dw2dBwdBothFunction::apply(grad_out, input, weight, stride, padding, dilation);
  return {out[0], out[1]};
}

at::Tensor dw2d_fwd_autograd(const at::Tensor& input, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation) {
  static const at::Tensor none;
  // input.dim() != 4 or weight.dim() != 4: let the backend's checks name the problem
  if (input.dim() != 4 || weight.dim() != 4 ||
      !records({&input, &weight, bias ? &*bias : &none})) {
    at::AutoDispatchBelowADInplaceOrView below;
    return fwd_op().call(input, weight, bias, stride, padding, dilation);
  }
  return Dw2dFwdFunction::apply(input, weight, bias, stride, padding, dilation)[0];
}

}  // namespace
}  // namespace dwconv

TORCH_LIBRARY_IMPL(dwconv, Autograd, m) {
  m.impl("dw2d_fwd", &dwconv::dw2d_fwd_autograd);
  m.impl("dw2d_bwdi", &dwconv::dw2d_bwd_autograd<'i'>);
  m.impl("dw2d_bwdw", &dwconv::dw2d_bwd_autograd<'w'>);
  m.impl("dw2d_bwd", &dwconv::dw2d_bwd_both_autograd);
}
