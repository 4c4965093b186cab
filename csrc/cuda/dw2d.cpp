// CUDA implementations of the dw2d ops: device guard, the current stream, and the launchers of
// kernels/cuda (compiled by nvcc without torch headers). The torch side is csrc/cuda/dw2d_glue.h.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "dw2d_glue.h"

namespace dwconv {
namespace {

struct CudaTarget {
  static constexpr const char* name = "cuda";
  static void check_device(const at::Tensor& t, const char* what) {
    TORCH_CHECK(t.is_cuda(), "dwconv cuda backend: ", what, " must be a CUDA tensor, got ",
                t.device());
  }
  static c10::cuda::CUDAGuard guard(const at::Tensor& t) { return c10::cuda::CUDAGuard(t.device()); }
  static void* stream(const at::Tensor&) { return at::cuda::getCurrentCUDAStream().stream(); }
  struct NoBuffers {};
  static NoBuffers buffers(std::initializer_list<glue::NamedTensor>) { return {}; }
  static std::string error_string(int rc) { return cuda::dw2d_error_string(rc); }
  static constexpr auto fwd = &cuda::dw2d_fwd;
  static constexpr auto bwdi = &cuda::dw2d_bwdi;
  static constexpr auto bwdw = &cuda::dw2d_bwdw;
  static constexpr auto bwdw_workspace_bytes = &cuda::dw2d_bwdw_workspace_bytes;
};

using Ops = glue::Dw2d<CudaTarget>;

}  // namespace
}  // namespace dwconv

TORCH_LIBRARY_IMPL(dwconv, CUDA, m) {
  m.impl("dw2d_fwd", &dwconv::Ops::fwd);
  m.impl("dw2d_fwd_out", &dwconv::Ops::fwd_out);
  m.impl("dw2d_bwdi", &dwconv::Ops::bwdi);
  m.impl("dw2d_bwdw", &dwconv::Ops::bwdw);
  m.impl("dw2d_bwd", &dwconv::Ops::bwd);
}
