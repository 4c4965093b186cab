// Problem description shared by every depthwise conv2d kernel (CPU and CUDA); torch-free.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define DWCONV_HD __host__ __device__
#else
#define DWCONV_HD
#endif

namespace dwconv {

enum class Layout : int { NCHW = 0, NHWC = 1 };

struct Dw2dShape {
  int64_t N, C, H, W;  // input
  int64_t M;           // depth multiplier: output channel c*M + j reads input channel c
  int64_t KH, KW;
  int64_t SH, SW;      // stride
  int64_t DH, DW;      // dilation
  int64_t PT, PL;      // top / left padding (bottom / right are implied by OH, OW)
  int64_t OH, OW;      // output size
  // CPU: when a kernel runs a chunk of a larger problem's batch, that problem's batch (0: N). The
  // kernels' cache heuristics (row prefetches, streamed stores, ...) follow the whole problem:
  // its chunk comes from memory just the same.
  int64_t N_whole = 0;
  DWCONV_HD int64_t cout() const { return C * M; }
};

}  // namespace dwconv
