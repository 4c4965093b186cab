// Kernel names and error strings of the launchers (dw2d_cuda.h).
#include "dw2d_common.cuh"

namespace dwconv {
namespace DWCONV_NS {

const char* dw2d_variant(Pass pass, const Dw2dShape& s, Layout layout, DType dt) {
  switch (pass) {
    case Pass::fwd: return fwd_variant(s, layout, dt);
    case Pass::bwdi: return bwdi_variant(s, layout, dt);
    case Pass::bwdw: return bwdw_variant(s, layout, dt);
  }
  return "unknown";
}

std::string dw2d_error_string(int code) {
#if defined(DWCONV_CUDA_EMU)
  const std::string& e = ::cuda_emu::last_error();
  return e.empty() ? "cuda_emu error " + std::to_string(code) : e;
#else
  return cudaGetErrorString(static_cast<cudaError_t>(code));
#endif
}

}  // namespace DWCONV_NS
}  // namespace dwconv
