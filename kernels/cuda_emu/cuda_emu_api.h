// The part of the CUDA emulation its callers see (no CUDA vocabulary macros, so the torch glue can
// include it): which buffers a launch may touch, the thread order, the last error.
#pragma once
#include <cstddef>
#include <string>

namespace cuda_emu {

// Global memory the next launches may touch: [p, p + bytes); anything else is an error.
void register_buffer(const void* p, size_t bytes, const char* name);
void clear_buffers();
// Thread order within a block: 0 forward, 1 reverse, 2 a fixed pseudo-random permutation
// (results of a correct kernel never depend on it).
void set_schedule(int order);
int schedule();
// What went wrong in the last failed launch on this host thread ("" if it succeeded).
const std::string& last_error();
// Runs one of the emulator's own test kernels (selftest.cpp): "" when it passes, else the error
// the emulator reported. Names: selftest_names().
std::string run_selftest(const std::string& name);
const char* const* selftest_names();

}  // namespace cuda_emu
