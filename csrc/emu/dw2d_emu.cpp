// The dw2d_*_emu ops: kernels/cuda compiled for the host under the CUDA emulation
// (kernels/cuda_emu), on CPU tensors. Same glue as the CUDA backend (csrc/cuda/dw2d_glue.h); every
// launch may touch only the tensors it was given.
#include <torch/library.h>

#include "../../kernels/cuda_emu/cuda_emu_api.h"
#include "../cuda/dw2d_glue.h"

namespace dwconv {
namespace {

// Registers a launch's tensors as the only global memory its kernels may touch.
class EmuBuffers {
 public:
  explicit EmuBuffers(std::initializer_list<glue::NamedTensor> tensors) {
    cuda_emu::clear_buffers();
    for (const auto& nt : tensors)
      if (nt.t && nt.t->defined())
        cuda_emu::register_buffer(nt.t->const_data_ptr(), nt.t->numel() * nt.t->element_size(),
                                  nt.name);
  }
  ~EmuBuffers() { cuda_emu::clear_buffers(); }
  EmuBuffers(const EmuBuffers&) = delete;
  EmuBuffers& operator=(const EmuBuffers&) = delete;
};

struct EmuTarget {
  static constexpr const char* name = "cuda_emu";
  static void check_device(const at::Tensor& t, const char* what) {
    TORCH_CHECK(t.device().is_cpu(), "dwconv cuda_emu backend: ", what,
                " must be a CPU tensor, got ", t.device());
  }
  struct NoGuard {};
  static NoGuard guard(const at::Tensor&) { return {}; }
  static void* stream(const at::Tensor&) { return nullptr; }
  static EmuBuffers buffers(std::initializer_list<glue::NamedTensor> t) { return EmuBuffers(t); }
  static std::string error_string(int rc) { return cuda_emu_kernels::dw2d_error_string(rc); }
  static constexpr auto fwd = &cuda_emu_kernels::dw2d_fwd;
  static constexpr auto bwdi = &cuda_emu_kernels::dw2d_bwdi;
  static constexpr auto bwdw = &cuda_emu_kernels::dw2d_bwdw;
  static constexpr auto bwdw_workspace_bytes = &cuda_emu_kernels::dw2d_bwdw_workspace_bytes;
};

using Ops = glue::Dw2d<EmuTarget>;

}  // namespace
}  // namespace dwconv

TORCH_LIBRARY_IMPL(dwconv, CPU, m) {
  m.impl("dw2d_fwd_emu", &dwconv::Ops::fwd);
  m.impl("dw2d_bwdi_emu", &dwconv::Ops::bwdi);
  m.impl("dw2d_bwdw_emu", &dwconv::Ops::bwdw);
}
