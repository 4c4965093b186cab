// Every dwconv op schema, defined once; backends register implementations in their own files.
// The pybind11 module _C carries the non-op helpers (build configuration, CPU ISA choice).
#include <torch/extension.h>
#include <torch/library.h>

#include <atomic>
#include <string>
#include <vector>

#include "../kernels/cpu/dw2d.h"
#include "common.h"

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
  m.def("kernel_name", &dwconv::cpu::kernel_name, py::arg("pass_"), py::arg("input_size"),
        py::arg("weight_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("channels_last"), py::arg("float64") = false,
        "name (docs/kernels.md grammar) of the CPU kernel a dw2d pass runs for this problem; "
        "padding is (top, bottom, left, right)");
  m.def("fma_peak_gflops", &dwconv::cpu::fma_peak_gflops, py::arg("seconds") = 0.2,
        "float32 FMA throughput of the active ISA on all torch threads, in GFLOP/s");
  m.def("set_debug_fill_nan", [](bool on) { dwconv::g_debug_fill_nan.store(on); },
        "fill fresh outputs with NaN (tests: catches elements a kernel never writes)");
  m.def("build_info", [] {
    py::dict d;
    d["cpu_isas_compiled"] = isa_list(dwconv::cpu::isa_compiled);
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
