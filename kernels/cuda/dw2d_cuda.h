// Host launchers of the CUDA depthwise conv2d kernels: torch-free, raw pointers, sizes, a stream.
// The same functions exist twice: in dwconv::cuda (built by nvcc, run on a GPU) and in
// dwconv::cuda_emu_kernels (the same sources built by the host compiler under kernels/cuda_emu,
// run on CPU memory). Types here are plain so this header needs neither CUDA nor emulation headers:
// streams travel as void* (a cudaStream_t), results as int (0 = success, else a cudaError_t).
//
// Layouts of the tensors the launchers take (all contiguous in the named layout):
//   x, gx: [N][C][H][W] (NCHW) or [N][H][W][C] (NHWC); y, gy: likewise with C*M channels, OH, OW
//   w (fwd, bwdi): NCHW [C*M][KH*KW] (the nn.Conv2d weight); NHWC packed [KH*KW][C*M]
//   gw (bwdw): [C*M][KH*KW] for both layouts; b: [C*M] or null
#pragma once
#include <cstdint>
#include <string>

#include "../dw2d_shape.h"

namespace dwconv {

enum class DType : int { f32 = 0, f64 = 1, f16 = 2, bf16 = 3 };
enum class Pass : int { fwd = 0, bwdi = 1, bwdw = 2 };

#define DWCONV_DECLARE_DW2D_LAUNCHERS                                                            \
  int dw2d_fwd(const Dw2dShape& s, Layout layout, DType dt, const void* x, const void* w,        \
               const void* b, void* y, void* stream);                                            \
  int dw2d_bwdi(const Dw2dShape& s, Layout layout, DType dt, const void* gy, const void* w,       \
                void* gx, void* stream);                                                         \
  /* bytes of scratch dw2d_bwdw needs (the per-split partial sums) */                            \
  int64_t dw2d_bwdw_workspace_bytes(const Dw2dShape& s, Layout layout, DType dt);               \
  int dw2d_bwdw(const Dw2dShape& s, Layout layout, DType dt, const void* gy, const void* x,      \
                void* gw, void* workspace, void* stream);                                        \
  /* the <specialisation> part of the kernel name (docs/kernels.md) a pass runs for a shape */   \
  const char* dw2d_variant(Pass pass, const Dw2dShape& s, Layout layout, DType dt);             \
  /* what went wrong in the last failed launch on this host thread */                            \
  std::string dw2d_error_string(int code);

namespace cuda {
DWCONV_DECLARE_DW2D_LAUNCHERS
}
namespace cuda_emu_kernels {
DWCONV_DECLARE_DW2D_LAUNCHERS
}

#undef DWCONV_DECLARE_DW2D_LAUNCHERS

}  // namespace dwconv
