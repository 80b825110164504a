// CUDA emulation (tests only): the runtime behind cuda/emu/include. Owns the
// emulated device (tracked allocations, streams, the last/sticky error) and the
// fiber scheduler that runs a kernel's blocks. docs/cuda-emulation.md says what
// it checks and what it cannot.
//
// What the emulator turns into errors (each also printed to stderr with the
// launch site, prefixed "bl-emu:"):
//   - launch configuration outside the device limits (cudaGetLastError returns
//     cudaErrorInvalidConfiguration / cudaErrorInvalidValue, as CUDA does);
//   - a kernel pointer argument outside every device allocation, a copy or
//     memset that leaves its allocation or goes the wrong direction, a free of
//     a pointer that is not an allocation start (what would fault on a GPU:
//     sticky cudaErrorIllegalAddress / cudaErrorInvalidValue);
//   - a block whose threads cannot all make progress (a barrier some threads
//     never reach), and shuffles with lanes that have exited (sticky
//     cudaErrorLaunchFailure).
// Fresh device memory and dynamic shared memory are filled with 0xff bytes
// (NaN as float) so reads of never-written memory show in results.
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unordered_map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cuda_runtime.h"

// Under AddressSanitizer (the emulator's memcheck: device buffers are heap
// blocks, so a kernel reading past one is reported with the launch's stack)
// every stack switch is announced, or ASan mistakes fiber stacks for overflows.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define BL_EMU_ASAN 1
#else
#define BL_EMU_ASAN 0
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif

// Fiber switch: saves the callee-saved registers on the current stack, stores
// the stack pointer to *save, and resumes the fiber whose saved stack pointer
// is `to`. Unlike a general context switch it leaves MXCSR and the x87
// control word alone: every fiber runs on the launching thread, no kernel
// changes rounding or exception modes, and stmxcsr/ldmxcsr (serialising on
// Zen 3) were most of the switch's time.
extern "C" void bl_emu_switch(void** save, void* to);
asm(R"(
  .text
  .globl bl_emu_switch
  .hidden bl_emu_switch
  .type bl_emu_switch,@function
bl_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size bl_emu_switch,.-bl_emu_switch
)");

namespace bl_emu {

// Plain global, not thread_local (its dynamic-TLS lookup was 3% of a run):
// launches are serialised by g_launch_mu, so one thread runs kernels at a time.
const ThreadCtx* g_cur = nullptr;

namespace {

// ---- errors -----------------------------------------------------------------

thread_local cudaError_t t_last = cudaSuccess;
std::mutex g_err_mu;
cudaError_t g_sticky = cudaSuccess;

cudaError_t sticky() {
  std::lock_guard<std::mutex> lk(g_err_mu);
  return g_sticky;
}

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) t_last = e;
  return e;
}

void report(const std::string& msg) { std::fprintf(stderr, "bl-emu: %s\n", msg.c_str()); }

cudaError_t make_sticky(cudaError_t e, const std::string& why) {
  report(why);
  std::lock_guard<std::mutex> lk(g_err_mu);
  if (g_sticky == cudaSuccess) g_sticky = e;
  t_last = e;
  return e;
}

// ---- device memory ------------------------------------------------------------

struct Alloc {
  size_t bytes;
  bool pinned;  // cudaMallocHost: host memory the device may also read
};
std::mutex g_mem_mu;
std::map<uintptr_t, Alloc> g_allocs;
size_t g_used = 0;

size_t device_bytes() {
  static const size_t b = [] {
    const char* e = std::getenv("BL_EMU_DEVICE_BYTES");
    if (e && *e) return size_t(std::strtoull(e, nullptr, 10));
    return size_t(8) << 30;
  }();
  return b;
}

// True when [p, p + n) lies inside one allocation (n = 0: p may be one past
// its end); pinned host allocations count only with pinned_ok.
bool inside(const void* p, size_t n, bool pinned_ok) {
  std::lock_guard<std::mutex> lk(g_mem_mu);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return false;
  --it;
  if (it->second.pinned && !pinned_ok) return false;
  const uintptr_t end = it->first + it->second.bytes;
  return a >= it->first && a <= end && n <= end - a;
}

bool is_device(const void* p, size_t n) { return inside(p, n, false); }
bool is_tracked(const void* p) { return inside(p, 0, true); }

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

cudaError_t allocate(void** p, size_t bytes, bool pinned) {
  if (!p) return set_error(cudaErrorInvalidValue);
  *p = nullptr;
  if (cudaError_t s = sticky()) return s;
  std::lock_guard<std::mutex> lk(g_mem_mu);
  const size_t want = std::max<size_t>(bytes, 1);
  if (!pinned && g_used + want > device_bytes()) return set_error(cudaErrorMemoryAllocation);
  // Exactly `want` bytes (256-aligned like cudaMalloc, which cuBLAS relies on
  // for its workspace): under ASan the redzone starts at the first byte past
  // the request, so a kernel reading one element too far is reported.
  void* m = nullptr;
  if (posix_memalign(&m, 256, want) != 0 || !m) return set_error(cudaErrorMemoryAllocation);
  std::memset(m, 0xff, want);
  g_allocs[reinterpret_cast<uintptr_t>(m)] = Alloc{bytes, pinned};
  if (!pinned) g_used += want;
  *p = m;
  return cudaSuccess;
}

cudaError_t release(void* p, bool pinned) {
  if (!p) return cudaSuccess;
  if (cudaError_t s = sticky()) return s;
  std::lock_guard<std::mutex> lk(g_mem_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end() || it->second.pinned != pinned) {
    report(std::string(pinned ? "cudaFreeHost: " : "cudaFree: ") + hex(p) + " is not the start of a live allocation");
    return set_error(cudaErrorInvalidValue);
  }
  if (!pinned) g_used -= std::max<size_t>(it->second.bytes, 1);
  g_allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}

// ---- streams ------------------------------------------------------------------

std::mutex g_stream_mu;
std::set<cudaStream_t> g_streams;

bool stream_ok(cudaStream_t s) {
  if (!s) return true;
  std::lock_guard<std::mutex> lk(g_stream_mu);
  return g_streams.count(s) != 0;
}

// ---- fibers -------------------------------------------------------------------

constexpr size_t kStackBytes = size_t(256) << 10;
constexpr int kMaxThreads = 1024;
constexpr size_t kStaticSmemDefault = 48 * 1024;
constexpr size_t kSmemOptin = 232448;  // H100 / H200: 227 KiB per block

enum class State { kRun, kBlockBar, kWarpBar, kDone };

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;  // mmap'd, lowest page a guard
  State state = State::kRun;
  ThreadCtx ctx{};
};

struct Block {
  std::vector<Fiber> fibers;
  int n = 0;
  void* sched_sp = nullptr;
  const void* sched_bottom = nullptr;  // the launching thread's stack (ASan bookkeeping)
  size_t sched_size = 0;
  int cur = -1;
  const std::function<void()>* body = nullptr;
  std::vector<uint64_t> xchg;  // shuffle slots, two per thread (alternating, see shfl_xor_bits)
  std::vector<uint32_t> nshfl;  // shuffles each thread has done
  std::vector<int> pred;       // __syncthreads_or slots
  std::string error;           // first emulator error in this block
  // Between barriers the threads run one after another, in ascending order in
  // even blocks and descending in odd ones: a read that a missing barrier lets
  // run early then sees stale data whichever side of the writers the reader
  // is (a fixed order would hide every race whose reader comes last).
  bool reverse = false;
};

Block* g_block = nullptr;  // the block being run (launches are serialised)
std::mutex g_launch_mu;
std::vector<char> g_dyn_smem;

char* new_stack() {
  void* m = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  mprotect(m, 4096, PROT_NONE);  // stack overflow faults instead of corrupting
  return static_cast<char*>(m);
}

std::vector<char*>& stack_pool() {
  static std::vector<char*> pool;
  return pool;
}

[[noreturn]] void fiber_entry() {
  Block& b = *g_block;
#if BL_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b.sched_bottom, &b.sched_size);
#endif
  (*b.body)();
  Fiber& f = b.fibers[size_t(b.cur)];
  f.state = State::kDone;
#if BL_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, b.sched_bottom, b.sched_size);  // this fiber is finished
#endif
  bl_emu_switch(&f.sp, b.sched_sp);
  __builtin_unreachable();
}

// Fiber i's stack starts (i mod 256) * 256 bytes below the top of its
// mapping. The mappings are kStackBytes apart, so without this offset every
// fiber's hot frames would sit at the same address modulo 256 KiB, in the
// same few L1 and L2 cache sets: each switch then missed both caches (it was
// half of an emulated run's time). Offsets spanning 64 KiB spread 256
// consecutive fibers over distinct L2 sets.
constexpr size_t kStackColors = 256, kStackColorBytes = 256;

void prepare(Fiber& f, int index) {
  // Layout from the 16-byte aligned top: [0 (fake return address of
  // fiber_entry)][fiber_entry][rbp rbx r12 r13 r14 r15]. The
  // fiber_entry slot is 16-byte aligned, so after `ret` pops it the stack
  // pointer is 8 mod 16, as at the entry of any called function (SysV ABI).
  uintptr_t top = reinterpret_cast<uintptr_t>(f.stack + kStackBytes) -
                  (size_t(index) % kStackColors) * kStackColorBytes;
  top &= ~uintptr_t(15);
  uint64_t* s = reinterpret_cast<uint64_t*>(top);
  *--s = 0;
  *--s = reinterpret_cast<uint64_t>(&fiber_entry);
  for (int i = 0; i < 6; ++i) *--s = 0;
  f.sp = s;
  f.state = State::kRun;
#if BL_EMU_ASAN
  // A fiber abandoned after an emulator error may have left poisoned frames.
  ASAN_UNPOISON_MEMORY_REGION(f.stack + 4096, kStackBytes - 4096);
#endif
}

// Switch from the running fiber back to the scheduler.
void yield_to_scheduler() {
  Block& b = *g_block;
#if BL_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, b.sched_bottom, b.sched_size);
#endif
  bl_emu_switch(&b.fibers[size_t(b.cur)].sp, b.sched_sp);
#if BL_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, &b.sched_bottom, &b.sched_size);
#endif
}

std::string where(const Cfg& c) { return std::string(c.file) + ":" + std::to_string(c.line); }

// Runs one block to completion; returns false (b.error set) when it cannot.
bool run_block(Block& b) {
  for (;;) {
    bool progressed = false;
    for (int k = 0; k < b.n; ++k) {
      const int i = b.reverse ? b.n - 1 - k : k;
      Fiber& f = b.fibers[size_t(i)];
      if (f.state != State::kRun) continue;
      b.cur = i;
      g_cur = &f.ctx;
#if BL_EMU_ASAN
      void* fake = nullptr;
      __sanitizer_start_switch_fiber(&fake, f.stack, kStackBytes);
#endif
      bl_emu_switch(&b.sched_sp, f.sp);
#if BL_EMU_ASAN
      __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
      g_cur = nullptr;
      progressed = true;
      if (!b.error.empty()) return false;
    }
    int live = 0, at_block = 0;
    for (const Fiber& f : b.fibers) {
      live += f.state != State::kDone;
      at_block += f.state == State::kBlockBar;
    }
    if (live == 0) return true;
    bool released = false;
    // A warp whose live lanes all wait at a warp barrier goes on.
    for (int w = 0; w * 32 < b.n; ++w) {
      int waiting = 0, alive = 0;
      for (int l = w * 32; l < std::min(b.n, w * 32 + 32); ++l) {
        alive += b.fibers[size_t(l)].state != State::kDone;
        waiting += b.fibers[size_t(l)].state == State::kWarpBar;
      }
      if (waiting > 0 && waiting == alive) {
        // Warp barriers are shuffles with a full mask: every lane must take part.
        if (waiting != 32) {
          b.error = "__shfl_xor_sync in warp " + std::to_string(w) + ": only " + std::to_string(waiting) +
                    " of its 32 lanes take part (the others exited or do not exist; block of " +
                    std::to_string(b.n) + " threads)";
          return false;
        }
        for (int l = w * 32; l < std::min(b.n, w * 32 + 32); ++l)
          if (b.fibers[size_t(l)].state == State::kWarpBar) b.fibers[size_t(l)].state = State::kRun;
        released = true;
      }
    }
    if (!released && at_block == live) {
      // Every thread of the block must reach the barrier (CUDA: __syncthreads
      // only in conditions uniform across the block); threads that returned
      // before it make it divergent, however the hardware would treat them.
      if (live != b.n) {
        b.error = "__syncthreads reached by " + std::to_string(live) + " of the block's " + std::to_string(b.n) +
                  " threads; the others exited without reaching it (divergent barrier)";
        return false;
      }
      for (Fiber& f : b.fibers)
        if (f.state == State::kBlockBar) f.state = State::kRun;
      released = true;
    }
    if (!released && !progressed) {
      b.error = "block cannot make progress: " + std::to_string(at_block) + " of " + std::to_string(live) +
                " live threads wait at __syncthreads, the others at a warp shuffle (divergent barrier)";
      return false;
    }
  }
}

void fail_in_kernel(const std::string& why) {
  Block& b = *g_block;
  if (b.error.empty()) b.error = why;
  // Park this fiber for good: the scheduler sees the error and stops the block.
  b.fibers[size_t(b.cur)].state = State::kDone;
  yield_to_scheduler();
}

}  // namespace

void syncthreads() {
  Block& b = *g_block;
  b.fibers[size_t(b.cur)].state = State::kBlockBar;
  yield_to_scheduler();
}

int syncthreads_or(int pred) {
  Block& b = *g_block;
  b.pred[size_t(b.cur)] = pred != 0;
  syncthreads();
  int any = 0;
  for (int i = 0; i < b.n; ++i)
    if (b.fibers[size_t(i)].state != State::kDone) any |= b.pred[size_t(i)];
  syncthreads();  // nobody overwrites a slot before everyone has read
  return any;
}

// One warp barrier per shuffle: a lane deposits its value in slot set
// (its shuffle count & 1), waits until every lane of the warp has (run_block
// also checks that all 32 take part), and reads its partner's slot. The
// next shuffle uses the other set, and no lane can get two shuffles ahead,
// so a slot is never overwritten before every lane has read it.
uint64_t shfl_xor_bits(unsigned mask, uint64_t bits, int lane_mask, int width) {
  Block& b = *g_block;
  const int me = b.cur, lane = me & 31, base = me - lane;
  if (width != 32) fail_in_kernel("__shfl_xor_sync with width != 32 is not emulated");
  if (mask != 0xffffffffu) fail_in_kernel("__shfl_xor_sync with a partial mask is not emulated");
  const size_t set = size_t(b.nshfl[size_t(me)]++ & 1u) * size_t(b.n);
  b.xchg[set + size_t(me)] = bits;
  b.fibers[size_t(me)].state = State::kWarpBar;
  yield_to_scheduler();
  return b.xchg[set + size_t(base + (lane ^ (lane_mask & 31)))];
}

void* dynamic_smem() { return g_dyn_smem.data(); }

namespace {
uint64_t g_block_seq = 0;                          // blocks started in this process
std::unordered_map<void*, uint64_t> g_shared_seen;  // static shared array -> block that last poisoned it
}  // namespace

void shared_var(void* p, size_t bytes) {
  uint64_t& seen = g_shared_seen[p];
  if (seen == g_block_seq) return;  // another thread of this block got here first
  seen = g_block_seq;
  std::memset(p, 0xff, bytes);
}

namespace {
std::mutex g_attr_mu;
std::map<const void*, int> g_max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel
}  // namespace

cudaError_t func_get_attributes(cudaFuncAttributes* a, const void* fn) {
  if (!a || !fn) return set_error(cudaErrorInvalidDeviceFunction);
  if (cudaError_t s = sticky()) return s;
  std::memset(a, 0, sizeof *a);
  a->maxThreadsPerBlock = kMaxThreads;
  a->ptxVersion = 90;
  a->binaryVersion = 90;
  std::lock_guard<std::mutex> lk(g_attr_mu);
  auto it = g_max_dyn_smem.find(fn);
  a->maxDynamicSharedSizeBytes = it == g_max_dyn_smem.end() ? int(kStaticSmemDefault) : it->second;
  return cudaSuccess;
}

cudaError_t func_set_attribute(const void* fn, cudaFuncAttribute attr, int value) {
  if (!fn) return set_error(cudaErrorInvalidDeviceFunction);
  if (cudaError_t s = sticky()) return s;
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || size_t(value) > kSmemOptin) return set_error(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lk(g_attr_mu);
    g_max_dyn_smem[fn] = value;
  }
  return cudaSuccess;
}

void launch(const Cfg& c, const void* fn, const void* const* ptrs, int nptrs, const std::function<void()>& body) {
  if (sticky() != cudaSuccess) return;  // the context is gone; cudaGetLastError reports it
  const dim3 g = c.grid, bl = c.block;
  const uint64_t threads = uint64_t(bl.x) * bl.y * bl.z;
  if (g.x == 0 || g.y == 0 || g.z == 0 || threads == 0 || threads > uint64_t(kMaxThreads) || bl.x > 1024 ||
      bl.y > 1024 || bl.z > 64 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
    report(where(c) + ": invalid launch configuration grid (" + std::to_string(g.x) + "," + std::to_string(g.y) +
           "," + std::to_string(g.z) + ") block (" + std::to_string(bl.x) + "," + std::to_string(bl.y) + "," +
           std::to_string(bl.z) + ")");
    set_error(cudaErrorInvalidConfiguration);
    return;
  }
  {
    int allowed = int(kStaticSmemDefault);
    std::lock_guard<std::mutex> lk(g_attr_mu);
    auto it = g_max_dyn_smem.find(fn);
    if (it != g_max_dyn_smem.end()) allowed = std::max(allowed, it->second);
    if (c.smem > size_t(allowed)) {
      report(where(c) + ": " + std::to_string(c.smem) + " bytes of dynamic shared memory, above the kernel's limit of " +
                 std::to_string(allowed) + " (cudaFuncSetAttribute)");
      set_error(cudaErrorInvalidValue);
      return;
    }
  }
  if (!stream_ok(c.stream)) {
    report(where(c) + ": launch on a stream that does not exist");
    set_error(cudaErrorInvalidResourceHandle);
    return;
  }
  // Fault injection (test/gpu/faults.test.mjs): BL_EMU_FAULT=illegal-address
  // makes this launch fault as a kernel touching a bad address would.
  if (const char* f = std::getenv("BL_EMU_FAULT"); f && std::strcmp(f, "illegal-address") == 0) {
    make_sticky(cudaErrorIllegalAddress, where(c) + ": injected fault (BL_EMU_FAULT=illegal-address)");
    return;
  }
  for (int i = 0; i < nptrs; ++i) {
    const void* p = ptrs[i];
    if (p == reinterpret_cast<const void*>(uintptr_t(1)) || p == nullptr) continue;
    if (!is_tracked(p)) {
      make_sticky(cudaErrorIllegalAddress, where(c) + ": kernel argument " + std::to_string(i) + " = " + hex(p) +
                                               " is not device memory (a host pointer or a freed buffer)");
      return;
    }
  }

  std::lock_guard<std::mutex> lk(g_launch_mu);
  Block b;
  b.n = int(threads);
  b.body = &body;
  b.fibers.resize(size_t(b.n));
  b.xchg.assign(2 * size_t(b.n), 0);
  b.nshfl.assign(size_t(b.n), 0);
  b.pred.assign(size_t(b.n), 0);
  auto& pool = stack_pool();
  while (pool.size() < size_t(b.n)) {
    char* s = new_stack();
    if (!s) {
      make_sticky(cudaErrorLaunchOutOfResources, where(c) + ": no memory for the emulator's thread stacks");
      return;
    }
    pool.push_back(s);
  }
  for (int i = 0; i < b.n; ++i) b.fibers[size_t(i)].stack = pool[size_t(i)];
  g_dyn_smem.assign(std::max<size_t>(c.smem, 16), char(0xff));
  Block* outer = g_block;
  g_block = &b;
  for (unsigned bz = 0; bz < g.z; ++bz)
    for (unsigned by = 0; by < g.y; ++by)
      for (unsigned bx = 0; bx < g.x; ++bx) {
        int i = 0;
        for (unsigned tz = 0; tz < bl.z; ++tz)
          for (unsigned ty = 0; ty < bl.y; ++ty)
            for (unsigned tx = 0; tx < bl.x; ++tx, ++i) {
              Fiber& f = b.fibers[size_t(i)];
              f.ctx = ThreadCtx{{tx, ty, tz}, {bx, by, bz}, {bl.x, bl.y, bl.z}, {g.x, g.y, g.z}};
              prepare(f, i);
              b.nshfl[size_t(i)] = 0;
            }
        std::fill(g_dyn_smem.begin(), g_dyn_smem.end(), char(0xff));
        ++g_block_seq;  // static shared arrays are refilled as this block reaches them
        b.reverse = ((uint64_t(bz) * g.y + by) * g.x + bx) & 1;
        if (!run_block(b)) {
          g_block = outer;
          make_sticky(cudaErrorLaunchFailure, where(c) + ": block (" + std::to_string(bx) + "," + std::to_string(by) +
                                                  "," + std::to_string(bz) + "): " + b.error);
          return;
        }
      }
  g_block = outer;
}

}  // namespace bl_emu

using bl_emu::set_error;
using bl_emu::sticky;

// ---- runtime API ------------------------------------------------------------------

cudaError_t cudaGetLastError() {
  if (cudaError_t s = sticky()) return s;
  cudaError_t e = bl_emu::t_last;
  bl_emu::t_last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  if (cudaError_t s = sticky()) return s;
  return bl_emu::t_last;
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return cudaGetErrorName(e);
  }
}

cudaError_t cudaGetDeviceCount(int* n) {
  if (!n) return set_error(cudaErrorInvalidValue);
  const char* e = std::getenv("BL_EMU_DEVICES");
  *n = e && *e ? std::atoi(e) : 1;
  if (*n <= 0) {
    *n = 0;
    return set_error(cudaErrorNoDevice);
  }
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  if (!d) return set_error(cudaErrorInvalidValue);
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || d < 0 || d >= n) return set_error(cudaErrorInvalidDevice);
  return sticky();
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  int n = 0;
  if (!p || cudaGetDeviceCount(&n) != cudaSuccess || d < 0 || d >= n) return set_error(cudaErrorInvalidDevice);
  std::memset(p, 0, sizeof *p);
  std::snprintf(p->name, sizeof p->name, "bayeslora CUDA emulator (CPU)");
  p->totalGlobalMem = bl_emu::device_bytes();
  p->sharedMemPerBlock = bl_emu::kStaticSmemDefault;
  p->sharedMemPerBlockOptin = bl_emu::kSmemOptin;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = bl_emu::kMaxThreads;
  p->maxThreadsDim[0] = 1024;
  p->maxThreadsDim[1] = 1024;
  p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647;
  p->maxGridSize[1] = 65535;
  p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->l2CacheSize = size_t(50) << 20;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  if (!v) return set_error(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
  if (!v) return set_error(cudaErrorInvalidValue);
  *v = 13000;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return sticky(); }

cudaError_t cudaMalloc(void** p, size_t bytes) { return bl_emu::allocate(p, bytes, false); }
cudaError_t cudaFree(void* p) { return bl_emu::release(p, false); }
cudaError_t cudaMallocHost(void** p, size_t bytes) { return bl_emu::allocate(p, bytes, true); }
cudaError_t cudaFreeHost(void* p) { return bl_emu::release(p, true); }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (cudaError_t s = sticky()) return s;
  std::lock_guard<std::mutex> lk(bl_emu::g_mem_mu);
  if (free_bytes) *free_bytes = bl_emu::device_bytes() - bl_emu::g_used;
  if (total_bytes) *total_bytes = bl_emu::device_bytes();
  return cudaSuccess;
}

namespace {
// A copy's two ranges must lie where `kind` says (device: inside one
// allocation; host: outside every device allocation).
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* what) {
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) return cudaSuccess;
  auto side = [&](const void* p, bool dev, const char* name) -> std::string {
    if (dev && !bl_emu::is_device(p, bytes))
      return std::string(name) + " " + bl_emu::hex(p) + " + " + std::to_string(bytes) +
             " bytes is not inside one device allocation";
    if (!dev && bl_emu::is_device(p, 0))
      return std::string(name) + " " + bl_emu::hex(p) + " is device memory but the copy kind says host";
    return "";
  };
  std::string e = side(dst, dst_dev, "destination");
  if (e.empty()) e = side(src, src_dev, "source");
  if (e.empty()) return cudaSuccess;
  bl_emu::report(std::string(what) + ": " + e);
  return set_error(cudaErrorInvalidValue);
}
}  // namespace

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (cudaError_t e = sticky()) return e;
  if (!bl_emu::stream_ok(s)) return set_error(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return set_error(cudaErrorInvalidValue);
  if (cudaError_t e = check_copy(dst, src, bytes, kind, "cudaMemcpy")) return e;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (cudaError_t e = sticky()) return e;
  if (!bl_emu::stream_ok(s)) return set_error(cudaErrorInvalidResourceHandle);
  if (bytes == 0) return cudaSuccess;
  if (!bl_emu::is_device(p, bytes)) {
    bl_emu::report("cudaMemset: " + bl_emu::hex(p) + " + " + std::to_string(bytes) +
                   " bytes is not inside one device allocation");
    return set_error(cudaErrorInvalidValue);
  }
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) { return cudaMemsetAsync(p, value, bytes, nullptr); }

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  if (!s) return set_error(cudaErrorInvalidValue);
  if (cudaError_t e = sticky()) return e;
  *s = reinterpret_cast<cudaStream_t>(new char(0));
  std::lock_guard<std::mutex> lk(bl_emu::g_stream_mu);
  bl_emu::g_streams.insert(*s);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::mutex> lk(bl_emu::g_stream_mu);
  if (!s || !bl_emu::g_streams.erase(s)) return set_error(cudaErrorInvalidResourceHandle);
  delete reinterpret_cast<char*>(s);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!bl_emu::stream_ok(s)) return set_error(cudaErrorInvalidResourceHandle);
  return sticky();
}

// Events: the emulator has no device clock; elapsed times are host time.
struct CUevent_st {
  double t = 0;
};
#include <chrono>
cudaError_t cudaEventCreate(cudaEvent_t* e) {
  if (!e) return set_error(cudaErrorInvalidValue);
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  if (!e) return set_error(cudaErrorInvalidResourceHandle);
  e->t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
  return sticky();
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return sticky(); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (!ms || !a || !b) return set_error(cudaErrorInvalidValue);
  *ms = float(b->t - a->t);
  return cudaSuccess;
}
