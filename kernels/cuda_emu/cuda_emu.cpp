// Runtime of the CUDA execution-model emulation (see cuda_emu.h for what it models and checks).
#include "cuda_emu.h"

#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

// ------------------------------------------------------------------------ 16-bit float types
float __half2float(__half h) {
  const uint32_t sign = (h.bits & 0x8000u) << 16, exp = (h.bits >> 10) & 0x1f, mant = h.bits & 0x3ff;
  uint32_t bits;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24
    const float f = std::ldexp(static_cast<float>(mant), -24);
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

__half __float2half_rn(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return __half{static_cast<uint16_t>(sign | 0x7e00u)};  // NaN
  if (ax >= 0x47800000u) return __half{static_cast<uint16_t>(sign | 0x7c00u)};  // >= 2^16: inf
  if (ax < 0x38800000u) {  // below the smallest normal: an integer multiple of 2^-24, rounded even
    float af;
    std::memcpy(&af, &ax, 4);
    const uint32_t m = static_cast<uint32_t>(std::nearbyint(std::ldexp(af, 24)));
    return __half{static_cast<uint16_t>(sign | m)};
  }
  uint32_t h = ((((ax >> 23) - 127 + 15)) << 10) | ((ax & 0x7fffffu) >> 13);
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // carries into the exponent / to inf
  return __half{static_cast<uint16_t>(sign | h)};
}

float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t bits = static_cast<uint32_t>(h.bits) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

__nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{static_cast<uint16_t>((x >> 16) | 0x40u)};
  x += 0x7fffu + ((x >> 16) & 1u);
  return __nv_bfloat16{static_cast<uint16_t>(x >> 16)};
}

namespace cuda_emu {

thread_local ThreadCtx* tl_thread = nullptr;
thread_local LaunchCtx* tl_launch = nullptr;

struct Shadow {
  uint32_t w_epoch, r_epoch;
  int32_t writer, reader;  // thread ids; writer -1: never written; reader -2: several threads
};

namespace {

constexpr size_t kStackBytes = 64 * 1024;
constexpr int kMaxThreads = 1024;

enum class State { Ready, Barrier, Warp, Done };

struct Fiber {
  ucontext_t ctx;
  ThreadCtx tc;
  State state;
  // pending warp operation
  int mode, arg, width;
  unsigned mask;
  uint64_t value, result;
};

struct SharedAlloc {
  SharedInfo info;
  std::unique_ptr<unsigned char[]> data;
  std::vector<Shadow> shadow;
};

struct Buffer {
  const unsigned char* p;
  size_t bytes;
  const char* name;
};

// The emulator's state, one per host thread.
struct Emu {
  ucontext_t sched;
  std::vector<Fiber> fibers;
  std::unique_ptr<unsigned char[]> stacks;
  int stack_count = 0;
  Fiber* cur = nullptr;
  const std::function<void()>* body = nullptr;
  const char* kernel = "";
  LaunchCtx launch;
  uint32_t epoch = 1;
  std::vector<std::unique_ptr<SharedAlloc>> shared;  // static, by declaration order
  std::unique_ptr<SharedAlloc> dyn;
  size_t dyn_bytes = 0, dyn_elem = 0;  // dyn_elem: element size of the kernel's view, once seen
  std::vector<Buffer> buffers;
  std::string error;
  int order = 0;
};

thread_local Emu tl_emu;

std::string where() {
  Emu& E = tl_emu;
  std::string s = std::string(E.kernel) + " block (" + std::to_string(E.launch.block_idx.x) + "," +
                  std::to_string(E.launch.block_idx.y) + "," + std::to_string(E.launch.block_idx.z) +
                  ")";
  if (E.cur)
    s += " thread (" + std::to_string(E.cur->tc.thread_idx.x) + "," +
         std::to_string(E.cur->tc.thread_idx.y) + "," + std::to_string(E.cur->tc.thread_idx.z) + ")";
  return s;
}

void yield() {
  Emu& E = tl_emu;
  Fiber* f = E.cur;
  swapcontext(&f->ctx, &E.sched);
}

void fiber_main() {
  Emu& E = tl_emu;
  (*E.body)();
  E.cur->state = State::Done;
  swapcontext(&E.cur->ctx, &E.sched);
}

void alloc_init(SharedAlloc& a, size_t bytes, size_t elem, const char* name) {
  a.data.reset(new unsigned char[bytes ? bytes : 1]);
  std::memset(a.data.get(), 0xff, bytes);  // poison: NaN for every float type
  a.shadow.assign(bytes / elem, Shadow{0, 0, -1, -1});
  a.info = SharedInfo{a.data.get(), bytes, elem, a.shadow.data(), name};
}

// Resolves warp operations whose every mask lane has arrived; returns whether any was resolved.
bool resolve_warps(int nthreads) {
  Emu& E = tl_emu;
  bool any = false;
  for (int w0 = 0; w0 < nthreads; w0 += 32) {
    const int lanes = std::min(32, nthreads - w0);
    for (int l = 0; l < lanes; ++l) {
      Fiber& f = E.fibers[w0 + l];
      if (f.state != State::Warp) continue;
      const unsigned mask = f.mask;
      bool ready = true;
      for (int m = 0; m < 32; ++m) {
        if (!(mask >> m & 1u)) continue;
        if (m >= lanes) {
          E.error = std::string(E.kernel) + ": warp operation mask names lane " + std::to_string(m) +
                    " that does not exist in a block of " + std::to_string(nthreads) + " threads";
          return false;
        }
        const Fiber& g = E.fibers[w0 + m];
        if (g.state == State::Done) {
          E.cur = &E.fibers[w0 + l];
          E.error = where() + ": warp operation with mask 0x" + [&] {
            char b[16];
            std::snprintf(b, sizeof b, "%08x", mask);
            return std::string(b);
          }() + " but lane " + std::to_string(m) + " already exited";
          return false;
        }
        if (g.state != State::Warp || g.mask != mask) ready = false;
      }
      if (!ready) continue;
      for (int m = 0; m < 32; ++m) {
        if (!(mask >> m & 1u)) continue;
        Fiber& g = E.fibers[w0 + m];
        if (g.mode != f.mode) {
          E.error = std::string(E.kernel) + ": lanes of one warp in different warp operations";
          return false;
        }
        if (g.mode != 3) {
          const int width = g.width, seg = m - m % width;
          int src = m;
          if (g.mode == 0) src = (m % width) + g.arg < width ? m + g.arg : m;
          if (g.mode == 1) src = ((m ^ g.arg) - seg) < width && (m ^ g.arg) >= seg ? m ^ g.arg : m;
          if (g.mode == 2) src = seg + ((g.arg % width) + width) % width;
          if (!(mask >> src & 1u)) {
            E.error = std::string(E.kernel) + ": shuffle reads lane " + std::to_string(src) +
                      " which is not in the mask";
            return false;
          }
          g.result = E.fibers[w0 + src].value;
        }
      }
      for (int m = 0; m < 32; ++m)
        if (mask >> m & 1u) E.fibers[w0 + m].state = State::Ready;
      any = true;
    }
  }
  return any;
}

// Runs one block to completion; false on an error.
bool run_block(int nthreads) {
  Emu& E = tl_emu;
  E.epoch = 1;
  E.shared.clear();
  if (E.dyn && E.dyn_elem) alloc_init(*E.dyn, E.dyn_bytes, E.dyn_elem, E.dyn->info.name);
  const dim3 b = E.launch.block;
  for (int t = 0; t < nthreads; ++t) {
    Fiber& f = E.fibers[t];
    f.tc.thread_idx = dim3(t % b.x, (t / b.x) % b.y, t / (b.x * b.y));
    f.tc.linear = t;
    f.tc.shared_decl = 0;
    f.state = State::Ready;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = E.stacks.get() + t * kStackBytes;
    f.ctx.uc_stack.ss_size = kStackBytes;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_main, 0);
  }
  std::vector<int> order(nthreads);
  for (int t = 0; t < nthreads; ++t)
    order[t] = E.order == 1 ? nthreads - 1 - t : E.order == 2 ? (t * 97 + 13) % nthreads : t;
  if (E.order == 2)  // 97 is coprime with most block sizes; fall back to forward when not
    for (int t = 0; t < nthreads; ++t)
      if (std::count(order.begin(), order.end(), t) != 1) {
        for (int u = 0; u < nthreads; ++u) order[u] = u;
        break;
      }
  for (;;) {
    bool ran = false;
    for (int t : order) {
      Fiber& f = E.fibers[t];
      if (f.state != State::Ready) continue;
      E.cur = &f;
      tl_thread = &f.tc;
      swapcontext(&E.sched, &f.ctx);
      E.cur = nullptr;
      ran = true;
      if (!E.error.empty()) return false;
    }
    if (ran) continue;
    if (resolve_warps(nthreads)) continue;
    if (!E.error.empty()) return false;
    int done = 0, barrier = 0, warp = 0;
    for (int t = 0; t < nthreads; ++t) {
      done += E.fibers[t].state == State::Done;
      barrier += E.fibers[t].state == State::Barrier;
      warp += E.fibers[t].state == State::Warp;
    }
    if (done == nthreads) return true;
    if (barrier == nthreads) {  // everyone arrived: release, and open a new epoch
      ++E.epoch;
      for (int t = 0; t < nthreads; ++t) E.fibers[t].state = State::Ready;
      continue;
    }
    E.error = std::string(E.kernel) + " block (" + std::to_string(E.launch.block_idx.x) + "," +
              std::to_string(E.launch.block_idx.y) + "," + std::to_string(E.launch.block_idx.z) +
              "): deadlock: " + std::to_string(barrier) + " of " + std::to_string(nthreads) +
              " threads wait at __syncthreads, " + std::to_string(warp) +
              " in a warp operation, " + std::to_string(done) +
              " already returned (a barrier in divergent code?)";
    return false;
  }
}

}  // namespace

std::string where_now() { return where(); }

void syncthreads() {
  tl_emu.cur->state = State::Barrier;
  yield();
}

uint64_t shfl_raw(unsigned mask, uint64_t value, int mode, int arg, int width) {
  Emu& E = tl_emu;
  Fiber& f = *E.cur;
  const int lane = f.tc.linear % 32;
  if (!(mask >> lane & 1u)) fail_thread(where() + ": warp operation by a lane not in its own mask");
  if (width < 1 || width > 32 || (width & (width - 1))) fail_thread(where() + ": bad shuffle width");
  f.mask = mask;
  f.value = value;
  f.mode = mode;
  f.arg = arg;
  f.width = width;
  f.state = State::Warp;
  yield();
  return f.result;
}

void syncwarp(unsigned mask) { shfl_raw(mask, 0, 3, 0, 32); }

void report(const std::string& what) {
  if (tl_emu.error.empty()) tl_emu.error = what;
}

void fail_thread(const std::string& what) {
  Emu& E = tl_emu;
  report(what);
  E.cur->state = State::Done;
  swapcontext(&E.cur->ctx, &E.sched);
  std::abort();  // never resumed
}

void register_buffer(const void* p, size_t bytes, const char* name) {
  tl_emu.buffers.push_back(Buffer{static_cast<const unsigned char*>(p), bytes, name});
}
void clear_buffers() { tl_emu.buffers.clear(); }

void check_global(const void* p, size_t bytes, bool write) {
  const auto* q = static_cast<const unsigned char*>(p);
  for (const Buffer& b : tl_emu.buffers)
    if (q >= b.p && q + bytes <= b.p + b.bytes) return;
  fail_thread(where() + ": global " + (write ? "write" : "read") + " of " + std::to_string(bytes) +
              " bytes outside every buffer of the launch");
}

SharedInfo* shared_static(size_t bytes, size_t elem, const char* name) {
  Emu& E = tl_emu;
  const size_t idx = static_cast<size_t>(tl_thread->shared_decl++);
  if (idx == E.shared.size()) {
    E.shared.push_back(std::make_unique<SharedAlloc>());
    alloc_init(*E.shared.back(), bytes, elem, name);
  }
  SharedAlloc& a = *E.shared[idx];
  if (a.info.bytes != bytes || std::strcmp(a.info.name, name) != 0)
    fail_thread(where() + ": threads of one block declared different shared arrays");
  return &a.info;
}

SharedInfo* shared_dynamic(size_t elem, const char* name) {
  Emu& E = tl_emu;
  if (!E.dyn) fail_thread(where() + ": dynamic shared memory used but none given at launch");
  if (E.dyn_elem == 0) {  // first view in this launch fixes the element type of the shadow
    if (E.dyn_bytes % elem) fail_thread(where() + ": dynamic shared size not a multiple of its type");
    E.dyn_elem = elem;
    alloc_init(*E.dyn, E.dyn_bytes, elem, name);
  }
  if (E.dyn_elem != elem) fail_thread(where() + ": dynamic shared memory viewed as two types");
  return &E.dyn->info;
}

void shared_access(SharedInfo* s, int64_t i, bool write) {
  Emu& E = tl_emu;
  const int64_t n = static_cast<int64_t>(s->bytes / s->elem);
  const int me = E.cur->tc.linear;
  const std::string el = std::string(s->name) + "[" + std::to_string(i) + "]";
  if (i < 0 || i >= n)
    fail_thread(where() + ": shared " + (write ? "write " : "read ") + el + " past the array of " +
                std::to_string(n) + " elements");
  Shadow& sh = s->shadow[i];
  if (!write) {
    if (sh.writer < 0) fail_thread(where() + ": read of shared " + el + " that no thread wrote");
    if (sh.w_epoch == E.epoch && sh.writer != me)
      fail_thread(where() + ": race: reads shared " + el + " written by thread " +
                  std::to_string(sh.writer) + " since the last __syncthreads");
    if (sh.r_epoch != E.epoch) {
      sh.r_epoch = E.epoch;
      sh.reader = me;
    } else if (sh.reader != me) {
      sh.reader = -2;
    }
    return;
  }
  if (sh.writer >= 0 && sh.w_epoch == E.epoch && sh.writer != me)
    fail_thread(where() + ": race: writes shared " + el + " also written by thread " +
                std::to_string(sh.writer) + " since the last __syncthreads");
  if (sh.r_epoch == E.epoch && sh.reader != me)
    fail_thread(where() + ": race: writes shared " + el + " read by " +
                (sh.reader == -2 ? std::string("several threads")
                                 : "thread " + std::to_string(sh.reader)) +
                " since the last __syncthreads");
  sh.w_epoch = E.epoch;
  sh.writer = me;
}

bool launch(const char* kernel, dim3 grid, dim3 block, size_t dyn_shared_bytes,
            const std::function<void()>& body) {
  Emu& E = tl_emu;
  E.error.clear();
  E.kernel = kernel;
  const int64_t nthreads = static_cast<int64_t>(block.x) * block.y * block.z;
  if (nthreads < 1 || nthreads > kMaxThreads || grid.x < 1 || grid.y < 1 || grid.z < 1 ||
      grid.y > 65535 || grid.z > 65535) {
    E.error = std::string(kernel) + ": invalid launch configuration";
    return false;
  }
  if (E.stack_count < nthreads) {
    E.stacks.reset(new unsigned char[nthreads * kStackBytes]);
    E.stack_count = static_cast<int>(nthreads);
  }
  E.fibers.resize(nthreads);
  E.body = &body;
  E.launch.grid = grid;
  E.launch.block = block;
  E.dyn_bytes = dyn_shared_bytes;
  E.dyn_elem = 0;
  E.dyn.reset();
  if (dyn_shared_bytes) E.dyn = std::make_unique<SharedAlloc>();
  tl_launch = &E.launch;
  bool ok = true;
  for (unsigned z = 0; z < grid.z && ok; ++z)
    for (unsigned y = 0; y < grid.y && ok; ++y)
      for (unsigned x = 0; x < grid.x && ok; ++x) {
        E.launch.block_idx = dim3(x, y, z);
        ok = run_block(static_cast<int>(nthreads));
      }
  E.body = nullptr;
  tl_thread = nullptr;
  return ok;
}

const std::string& last_error() { return tl_emu.error; }
void set_schedule(int order) { tl_emu.order = order; }
int schedule() { return tl_emu.order; }

}  // namespace cuda_emu
