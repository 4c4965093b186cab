// kernels/cuda/dw2d_info.cu compiled for the host under the CUDA emulation (backend cuda_emu).
#define DWCONV_CUDA_EMU
#include "cuda_emu.h"
#include "../cuda/dw2d_info.cu"
