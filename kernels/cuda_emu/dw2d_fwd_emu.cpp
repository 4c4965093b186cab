// kernels/cuda/dw2d_fwd.cu compiled for the host under the CUDA emulation (backend cuda_emu).
#define DWCONV_CUDA_EMU
#include "cuda_emu.h"
#include "../cuda/dw2d_fwd.cu"
