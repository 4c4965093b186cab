// Every dwconv op schema, defined once; backends register implementations in their own files.
// The pybind11 module _C carries the non-op helpers (build configuration, CPU ISA choice).
#include <torch/extension.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/cpu/dw2d.h"
#include "../kernels/cuda/dw2d_cuda.h"
#include "../kernels/cuda_emu/cuda_emu_api.h"
#include "common.h"
#include "dw2d_args.h"

// DWCONV_CUDA_ARCHS: the TORCH_CUDA_ARCH_LIST the CUDA kernels were built for, ';' written as ','
#define DWCONV_STR(...) #__VA_ARGS__
#define DWCONV_XSTR(...) DWCONV_STR(__VA_ARGS__)

TORCH_LIBRARY(dwconv, m) {
  // padding is (top, bottom, left, right)
  m.def("dw2d_fwd(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, "
        "int[2] dilation) -> Tensor");
  m.def("dw2d_fwd_out(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, "
        "int[2] dilation, *, Tensor(a!) out) -> ()");
  m.def("dw2d_bwdi(Tensor grad_out, Tensor weight, SymInt[4] input_size, int[2] stride, "
        "int[4] padding, int[2] dilation) -> Tensor");
  m.def("dw2d_bwdw(Tensor grad_out, Tensor input, SymInt[2] kernel_size, int[2] stride, "
        "int[4] padding, int[2] dilation) -> Tensor");
  // both gradients at once: (grad_input, grad_weight), as dw2d_bwdi and dw2d_bwdw give them; the
  // CPU backend reads grad_output once for both where its kernels can (kernels/cpu/dw2d.h)
  m.def("dw2d_bwd(Tensor grad_out, Tensor input, Tensor weight, int[2] stride, int[4] padding, "
        "int[2] dilation) -> (Tensor, Tensor)");
#ifdef DWCONV_WITH_CUDA_EMU
  // the CUDA kernels compiled for the host under the CUDA emulation, on CPU tensors (cuda_emu)
  m.def("dw2d_fwd_emu(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, "
        "int[2] dilation) -> Tensor");
  m.def("dw2d_bwdi_emu(Tensor grad_out, Tensor weight, SymInt[4] input_size, int[2] stride, "
        "int[4] padding, int[2] dilation) -> Tensor");
  m.def("dw2d_bwdw_emu(Tensor grad_out, Tensor input, SymInt[2] kernel_size, int[2] stride, "
        "int[4] padding, int[2] dilation) -> Tensor");
#endif
}

namespace dwconv {

namespace {
std::atomic<bool> g_debug_fill_nan{false};
}
bool debug_fill_nan() { return g_debug_fill_nan.load(); }

namespace cpu {
// csrc/cpu/dw2d.cpp
Isa active_isa();
void set_active_isa(Isa isa);
std::string kernel_name(const std::string& pass, const std::vector<int64_t>& input_size,
                        const std::vector<int64_t>& weight_size,
                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                        const std::vector<int64_t>& dilation, bool channels_last, bool float64);
double fma_peak_gflops(double seconds);
void stream_copy_(at::Tensor& dst, const at::Tensor& src);
}  // namespace cpu
}  // namespace dwconv

namespace {

using dwconv::cpu::Isa;

Isa isa_from_name(const std::string& name) {
  for (int i = 0; i < dwconv::cpu::kNumIsa; ++i)
    if (name == dwconv::cpu::isa_name(static_cast<Isa>(i))) return static_cast<Isa>(i);
  throw py::value_error("DWCONV_CPU_ISA / cpu_isa: unknown ISA '" + name +
                        "' (expected scalar, avx2 or avx512)");
}

py::list isa_list(bool (*pred)(Isa)) {
  py::list out;
  for (int i = 0; i < dwconv::cpu::kNumIsa; ++i)
    if (pred(static_cast<Isa>(i))) out.append(dwconv::cpu::isa_name(static_cast<Isa>(i)));
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "dwconv compiled extension: loads the dwconv ops and reports the build";
  m.def("cpu_isas_compiled", [] { return isa_list(dwconv::cpu::isa_compiled); },
        "CPU ISAs this build has kernels for");
  m.def("cpu_isas_supported", [] { return isa_list(dwconv::cpu::isa_supported); },
        "CPU ISAs this build has kernels for and this CPU can run");
  m.def("get_cpu_isa", [] { return std::string(dwconv::cpu::isa_name(dwconv::cpu::active_isa())); },
        "the ISA whose kernels the cpu backend runs");
  m.def(
      "set_cpu_isa",
      [](const std::string& name) {
        const Isa isa = isa_from_name(name);
        if (!dwconv::cpu::isa_supported(isa))
          throw py::value_error("DWCONV_CPU_ISA / cpu_isa: '" + name +
                                "' is not available on this CPU/build (available: " +
                                py::str(isa_list(dwconv::cpu::isa_supported)).cast<std::string>() +
                                ")");
        dwconv::cpu::set_active_isa(isa);
      },
      "select the ISA whose kernels the cpu backend runs");
  m.def("get_cpu_packed", &dwconv::cpu::packed_enabled,
        "whether passes may run the NHWC kernels on L-channel tiles (NCHW, and NHWC large "
        "kernels; docs/kernels.md)");
  m.def("set_cpu_packed", &dwconv::cpu::set_packed, py::arg("on"),
        "allow (default) or forbid the packed path; forbidden: always the kernels of the "
        "tensor's own layout");
  m.def("get_cpu_bwdi_as_fwd", &dwconv::cpu::bwdi_as_fwd_enabled,
        "whether stride-1, multiplier-1 backward-input runs the forward kernels (docs/kernels.md)");
  m.def("set_cpu_bwdi_as_fwd", &dwconv::cpu::set_bwdi_as_fwd, py::arg("on"),
        "allow (default) or forbid running backward-input as a forward convolution; forbidden: "
        "always the backward-input kernels");
  m.def("kernel_name", &dwconv::cpu::kernel_name, py::arg("pass_"), py::arg("input_size"),
        py::arg("weight_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("channels_last"), py::arg("float64") = false,
        "name (docs/kernels.md grammar) of the CPU kernel a dw2d pass (fwd, bwdi, bwdw) runs for "
        "this problem; bwd: the fused backward's (both gradients, dw2d_bwd), or '' where the two "
        "backward passes run apart; padding is (top, bottom, left, right)");
  m.def("fma_peak_gflops", &dwconv::cpu::fma_peak_gflops, py::arg("seconds") = 0.2,
        "float32 FMA throughput of the active ISA on all torch threads, in GFLOP/s");
  m.def("stream_copy_", &dwconv::cpu::stream_copy_, py::arg("dst"), py::arg("src"),
        "copies src into dst (contiguous float32 CPU tensors of one size) with non-temporal "
        "stores on all torch threads: the bandwidth a pass that streams its output can reach");
  m.def(
      "set_cpu_output_cache_limit",
      [](int64_t mb) {
        if (mb < 0) throw py::value_error("set_cpu_output_cache_limit: mb must be >= 0");
        dwconv::set_cpu_output_cache_limit(static_cast<std::size_t>(mb) << 20);
      },
      py::arg("mb"),
      "MiB of freed large CPU outputs kept for reuse (default 512, DWCONV_CPU_OUTPUT_CACHE_MB); "
      "0 turns the cache off and frees what it holds");
  m.def(
      "cpu_output_cache_info",
      [] {
        py::dict d;
        d["limit_bytes"] = dwconv::cpu_output_cache_limit();
        d["cached_bytes"] = dwconv::cpu_output_cache_bytes();
        return d;
      },
      "the output cache's limit and the bytes it holds in freed blocks now");
  m.def("set_debug_fill_nan", [](bool on) { dwconv::g_debug_fill_nan.store(on); },
        "fill fresh outputs with NaN (tests: catches elements a kernel never writes)");
#ifdef DWCONV_WITH_CUDA_EMU
  m.def(
      "cuda_emu_selftest",
      [](const std::string& name) {
        try {
          return cuda_emu::run_selftest(name);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
      },
      py::arg("name"),
      "runs one of the CUDA emulator's own test kernels: '' when it passes, else the error the "
      "emulator reported (the broken ones must fail)");
  m.def("cuda_emu_selftest_names", [] {
    py::list out;
    for (auto n = cuda_emu::selftest_names(); *n; ++n) out.append(*n);
    return out;
  });
  m.def("cuda_emu_set_schedule", &cuda_emu::set_schedule, py::arg("order"),
        "thread order inside an emulated block: 0 forward, 1 reverse, 2 permuted");
  m.def("cuda_emu_get_schedule", &cuda_emu::schedule);
#endif
#if defined(DWCONV_WITH_CUDA_EMU) || defined(DWCONV_WITH_CUDA)
  m.def(
      "cuda_kernel_name",
      [](const std::string& pass, const std::vector<int64_t>& input_size,
         const std::vector<int64_t>& weight_size, const std::vector<int64_t>& stride,
         const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation,
         bool channels_last, const std::string& dtype) {
        const dwconv::Dw2dShape s =
            dwconv::make_dw2d_shape(input_size, weight_size, stride, padding, dilation);
        const dwconv::Layout layout = channels_last ? dwconv::Layout::NHWC : dwconv::Layout::NCHW;
        dwconv::Pass p;
        if (pass == "fwd") p = dwconv::Pass::fwd;
        else if (pass == "bwdi") p = dwconv::Pass::bwdi;
        else if (pass == "bwdw") p = dwconv::Pass::bwdw;
        else throw py::value_error("pass must be fwd, bwdi or bwdw, got '" + pass + "'");
        dwconv::DType dt;
        if (dtype == "float32") dt = dwconv::DType::f32;
        else if (dtype == "float64") dt = dwconv::DType::f64;
        else if (dtype == "float16") dt = dwconv::DType::f16;
        else if (dtype == "bfloat16") dt = dwconv::DType::bf16;
        else throw py::value_error("dtype must be float32, float64, float16 or bfloat16");
#ifdef DWCONV_WITH_CUDA_EMU
        namespace launchers = dwconv::cuda_emu_kernels;  // the same selection code as on a GPU
#else
        namespace launchers = dwconv::cuda;
#endif
        const char* variant = launchers::dw2d_variant(p, s, layout, dt);
        return std::string("dw2d_") + pass + (channels_last ? "_nhwc_" : "_nchw_") + variant +
               "_cuda";
      },
      py::arg("pass_"), py::arg("input_size"), py::arg("weight_size"), py::arg("stride"),
      py::arg("padding"), py::arg("dilation"), py::arg("channels_last"),
      py::arg("dtype") = "float32",
      "name (docs/kernels.md grammar) of the CUDA kernel a dw2d pass runs for this problem (the "
      "same choice on a GPU and under cuda_emu)");
#endif
  m.def("build_info", [] {
    py::dict d;
    d["cpu_isas_compiled"] = isa_list(dwconv::cpu::isa_compiled);
#ifdef DWCONV_WITH_CUDA
    d["cuda_built"] = true;
    std::string archs = DWCONV_XSTR(DWCONV_CUDA_ARCHS);
    std::replace(archs.begin(), archs.end(), ',', ';');
    d["cuda_archs"] = archs;
#else
    d["cuda_built"] = false;
    d["cuda_archs"] = std::string();
#endif
#ifdef DWCONV_WITH_CUDA_EMU
    d["cuda_emu_built"] = true;
#else
    d["cuda_emu_built"] = false;
#endif
#ifdef _OPENMP
    d["openmp"] = true;
#else
    d["openmp"] = false;
#endif
#ifdef __VERSION__
    d["compiler"] = std::string(__VERSION__);
#endif
    return d;
  });
}
