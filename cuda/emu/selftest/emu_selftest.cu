// Self-test of the CUDA CPU emulator (cuda/emu): CUDA source built through the
// same rewrite, headers and runtime as the emulated backend (CMake target
// cuda_emu_selftest, -DBAYESLORA_CUDA_EMU=ON), with no bayeslora code. It
// checks that the emulator computes CUDA semantics exactly (indices, barriers,
// shared memory, shuffles, atomics, by-value parameters, the memory API) and
// that it reports every bug class it claims to catch, with the documented
// error code. A sticky error poisons the whole process, so each sticky case
// runs in a child: this program re-executed with `--case NAME` (a fresh
// process, which also lets a case set BL_EMU_DEVICE_BYTES before the runtime
// reads it), under a timeout so that a broken deadlock detector fails instead
// of hanging. Prints one line per check, then "N checks passed, M failed";
// exits non-zero on any failure. mutate.py (next to this file) checks that
// the test fails against emulators broken in each of these respects.
#include <cuda_runtime.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

// ---- reporting ----------------------------------------------------------------

static int g_passed = 0, g_failed = 0;
static const char* g_prefix = "";

static std::string fmt(const char* f, ...) {
  char b[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(b, sizeof b, f, ap);
  va_end(ap);
  return b;
}

static bool check(bool ok, const std::string& name, const std::string& detail = "") {
  if (ok) {
    ++g_passed;
    std::printf("%sok   %s\n", g_prefix, name.c_str());
  } else {
    ++g_failed;
    std::printf("%sFAIL %s%s%s\n", g_prefix, name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  }
  std::fflush(stdout);
  return ok;
}

static const char* ename(cudaError_t e) { return cudaGetErrorName(e); }

// One check that a runtime call returned `want`.
static bool check_err(cudaError_t got, cudaError_t want, const std::string& name) {
  return check(got == want, name, fmt("got %s (%d), want %s (%d)", ename(got), int(got), ename(want), int(want)));
}

// The emulator reports each error it detects on stderr ("bl-emu: ..."). The
// expected ones are captured, checked, and echoed indented, so that lines of
// a log starting with "bl-emu:" stay the unexpected ones.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    tmp_ = std::tmpfile();
    saved_ = dup(2);
    if (tmp_) dup2(fileno(tmp_), 2);
  }
  std::string take() {
    std::fflush(stderr);
    dup2(saved_, 2);
    close(saved_);
    std::string s;
    if (!tmp_) return s;
    std::rewind(tmp_);
    char buf[1024];
    size_t k;
    while ((k = std::fread(buf, 1, sizeof buf, tmp_)) > 0) s.append(buf, k);
    std::fclose(tmp_);
    tmp_ = nullptr;
    return s;
  }

 private:
  FILE* tmp_ = nullptr;
  int saved_ = -1;
};

static void echo_indented(const std::string& text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const size_t end = nl == std::string::npos ? text.size() : nl;
    std::printf("      | %s\n", text.substr(pos, end - pos).c_str());
    pos = end + 1;
  }
}

// `call` must return `want` and make the emulator report something containing `msg`.
template <class F>
static bool rejected(F&& call, cudaError_t want, const std::string& name, const char* msg) {
  StderrCapture cap;
  const cudaError_t e = call();
  const std::string out = cap.take();
  const bool said = out.find("bl-emu: ") != std::string::npos && out.find(msg) != std::string::npos;
  const bool ok = check(e == want && said, name,
                        fmt("got %s, want %s; report %s \"%s\"", ename(e), ename(want), said ? "has" : "lacks", msg));
  echo_indented(out);
  return ok;
}

// Setup steps count only when they fail.
#define SETUP(call)                                                                        \
  do {                                                                                     \
    const cudaError_t e_ = (call);                                                         \
    if (e_ != cudaSuccess) check(false, "setup " #call, fmt("returned %s", ename(e_)));   \
  } while (0)

template <class T>
static T* dev_alloc(size_t n) {
  void* p = nullptr;
  SETUP(cudaMalloc(&p, n * sizeof(T)));
  return static_cast<T*>(p);
}
template <class T>
static std::vector<T> to_host(const T* d, size_t n) {
  std::vector<T> h(n);
  SETUP(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}
template <class T>
static T* to_dev(const std::vector<T>& h) {
  T* d = dev_alloc<T>(h.size());
  SETUP(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// ---- kernels: indices ------------------------------------------------------------

// Every thread writes its 12 coordinates at its linear (block, thread) slot.
__global__ void indices_k(int* out) {
  const int threads = int(blockDim.x * blockDim.y * blockDim.z);
  const int block = int((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x);
  const int t = int((threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x);
  int* o = out + (int64_t(block) * threads + t) * 12;
  o[0] = int(threadIdx.x), o[1] = int(threadIdx.y), o[2] = int(threadIdx.z);
  o[3] = int(blockIdx.x), o[4] = int(blockIdx.y), o[5] = int(blockIdx.z);
  o[6] = int(blockDim.x), o[7] = int(blockDim.y), o[8] = int(blockDim.z);
  o[9] = int(gridDim.x), o[10] = int(gridDim.y), o[11] = int(gridDim.z);
}

__global__ void gridstride_k(const float* in, float* out, int* visits, int n) {
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(blockDim.x * gridDim.x)) {
    out[i] = 2.f * in[i] + 1.f;
    visits[i] += 1;
  }
}

// ---- kernels: block reductions ---------------------------------------------------

// Each block sums `per` consecutive inputs; NT threads, static shared memory.
template <int NT>
__global__ void sum_static_k(const float* in, float* out, int per) {
  __shared__ float s[NT];
  const int t = int(threadIdx.x);
  float v = 0.f;
  for (int i = t; i < per; i += NT) v += in[int64_t(blockIdx.x) * per + i];
  s[t] = v;
  for (int w = NT / 2; w > 0; w >>= 1) {
    __syncthreads();
    if (t < w) s[t] += s[t + w];
  }
  __syncthreads();
  if (t == 0) out[blockIdx.x] = s[0];
}

// Same with the launch's dynamic shared memory (blockDim.x floats, a power of 2).
__global__ void sum_dynamic_k(const float* in, float* out, int per) {
  extern __shared__ float sd[];
  const int t = int(threadIdx.x), nt = int(blockDim.x);
  float v = 0.f;
  for (int i = t; i < per; i += nt) v += in[int64_t(blockIdx.x) * per + i];
  sd[t] = v;
  for (int w = nt / 2; w > 0; w >>= 1) {
    __syncthreads();
    if (t < w) sd[t] += sd[t + w];
  }
  __syncthreads();
  if (t == 0) out[blockIdx.x] = sd[0];
}

// Fills all `nf` floats of dynamic shared memory, then every thread sums the
// block's values in reverse order (reading other threads' writes) into out[block].
// Two instantiations: the per-kernel attribute must apply to one only.
template <int Tag>
__global__ void big_smem_k(float* out, int nf) {
  extern __shared__ float big[];
  const int t = int(threadIdx.x), nt = int(blockDim.x);
  for (int i = t; i < nf; i += nt) big[i] = float(i % 7 + int(blockIdx.x));
  __syncthreads();
  float s = 0.f;
  for (int i = t; i < nf; i += nt) s += big[nf - 1 - i];
  atomicAdd(out + blockIdx.x, s);
}

// Thread 0 of each block reads never-written dynamic shared memory, then writes it.
__global__ void smem_poison_k(uint32_t* out) {
  extern __shared__ uint32_t sp[];
  if (threadIdx.x == 0) {
    out[blockIdx.x * 2] = sp[0];
    out[blockIdx.x * 2 + 1] = sp[7];
    sp[0] = 0;
    sp[7] = 0;
  }
}

// ---- kernels: warps ----------------------------------------------------------------

template <class T>
__global__ void warp_sum_k(const T* in, T* out) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  T v = in[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[i] = v;
}

// In a 2D block, lanes are linear thread ids: out[t*5 + j] = lane value at t ^ (1 << j).
__global__ void shfl_perm_k(int* out) {
  const int t = int(threadIdx.y * blockDim.x + threadIdx.x);
  const int g = int(blockIdx.x * blockDim.x * blockDim.y) + t;
  for (int j = 0; j < 5; ++j) out[g * 5 + j] = __shfl_xor_sync(0xffffffffu, g, 1 << j);
}

// Five rounds of __syncthreads_or; a later round must not see an earlier round's predicates.
__global__ void sync_or_k(int* out) {
  const int t = int(threadIdx.x), last = int(blockDim.x) - 1;
  int* o = out + (int64_t(blockIdx.x) * blockDim.x + t) * 5;
  o[0] = __syncthreads_or(t == last) != 0;
  o[1] = __syncthreads_or(0) != 0;
  o[2] = __syncthreads_or(t == 0) != 0;
  o[3] = __syncthreads_or(0) != 0;
  o[4] = __syncthreads_or(t == last / 2 ? 5 : 0) != 0;
}

// ---- kernels: atomics and parameters -----------------------------------------------

__global__ void atomic_k(int* counter, int* tickets, float* fsum) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  tickets[i] = atomicAdd(counter, 1);
  __syncthreads();
  atomicAdd(counter + 1, i);
  atomicAdd(fsum, 1.0f);
}

struct Params {
  int a;
  int b[3];
};

// Each thread changes its copy of every parameter, then (after other threads
// have run theirs) reads them back.
__global__ void byval_k(int n, Params p, int* out) {
  const int t = int(threadIdx.x);
  n += t;
  p.b[1] += 2 * t;
  out += 3 * (int64_t(blockIdx.x) * blockDim.x + t);
  __syncthreads();
  n += 1;
  out[0] = n;
  out[1] = p.b[1];
  out[2] = p.a;
}

__global__ void write_k(int* out, int v) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  out[i] = v;
}

__global__ void nan_probe_k(const float* in, int* out, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = std::isnan(in[i]) ? 1 : 0;
}

// ---- kernels: races -------------------------------------------------------------------

// Thread t publishes a block-specific value, then reads its neighbour's.
template <bool Barrier>
__global__ void neighbour_k(int* out) {
  __shared__ int s[64];
  const int t = int(threadIdx.x), n = int(blockDim.x);
  s[t] = int(blockIdx.x) * 1000 + t + 1;
  if (Barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = s[(t + 1) % n];
}

// The same exchange with values that do not depend on the block: what the
// previous block (or launch) left in shared memory would be right by accident.
__global__ void neighbour_same_k(int* out, int barrier) {
  __shared__ int s2[64];
  const int t = int(threadIdx.x), n = int(blockDim.x);
  s2[t] = t + 1;
  if (barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = s2[(t + 1) % n];
}

// One thread (the first or the last of the block) sums what every thread
// stored in dynamic shared memory. Without the barrier the reader may run
// before the writers or after them, depending on the schedule: a race on
// either side must show.
template <bool Barrier, bool LastReads>
__global__ void gather_k(float* out) {
  extern __shared__ float g[];
  const int t = int(threadIdx.x), reader = LastReads ? int(blockDim.x) - 1 : 0;
  g[t] = float(t + 1);
  if (Barrier) __syncthreads();
  if (t == reader) {
    float s = 0.f;
    for (int i = 0; i < int(blockDim.x); ++i) s += g[i];
    out[blockIdx.x] = s;
  }
}

// ---- kernels: bugs the emulator must catch --------------------------------------------

__global__ void touch_k(int* p) { p[threadIdx.x] += 1; }

// Half of the block leaves before the barrier the other half waits at.
__global__ void divergent_exit_k(int* out) {
  const int t = int(threadIdx.x);
  if (t >= int(blockDim.x) / 2) return;
  __syncthreads();
  out[t] = 1;
}

// Threads below `split` wait at __syncthreads, the others shuffle. split = 16
// in a warp: neither barrier can ever complete; split = 32 in 64 threads: the
// second warp shuffles and exits, never reaching the barrier.
__global__ void divergent_shfl_k(int* out, int split) {
  const int t = int(threadIdx.x);
  if (t < split) {
    __syncthreads();
    out[t] = 1;
  } else {
    out[t] = __shfl_xor_sync(0xffffffffu, t, 1);
  }
}

// Lanes below (Low) or from (!Low) 16 exit; the rest shuffle.
template <bool Low>
__global__ void shfl_exited_k(int* out) {
  const int lane = int(threadIdx.x) & 31;
  if (Low ? lane < 16 : lane >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, lane, 1);
}

// ---- child processes ------------------------------------------------------------------

struct ChildResult {
  bool timed_out = false;
  int status = 0;
  std::string out;
};

// Runs this program with `--case name` (stdout and stderr captured), killing it
// after `timeout_s`.
static ChildResult run_child(const char* name, const char* env_name, const char* env_value, int timeout_s) {
  ChildResult r;
  int fds[2];
  if (pipe(fds) != 0) {
    r.out = "pipe failed";
    r.status = -1;
    return r;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    if (env_name) setenv(env_name, env_value, 1);
    execl("/proc/self/exe", "cuda_emu_selftest", "--case", name, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, int(left.count())) <= 0) continue;
    const ssize_t k = read(fds[0], buf, sizeof buf);
    if (k <= 0) break;
    r.out.append(buf, size_t(k));
  }
  close(fds[0]);
  waitpid(pid, &r.status, 0);
  return r;
}

// After a sticky error `e`: every later call reports it, and nothing more runs.
// The probe is pinned host memory allocated before the error, so it can be
// read without the (now failing) copy API.
static void expect_sticky(cudaError_t e, int* pinned_probe) {
  check_err(cudaGetLastError(), e, "cudaGetLastError reports the error");
  check_err(cudaGetLastError(), e, "cudaGetLastError again: still reported (sticky)");
  check_err(cudaPeekAtLastError(), e, "cudaPeekAtLastError");
  check_err(cudaDeviceSynchronize(), e, "cudaDeviceSynchronize");
  void* p = nullptr;
  check_err(cudaMalloc(&p, 64), e, "cudaMalloc after the error");
  int h = 0;
  check_err(cudaMemcpy(&h, pinned_probe, sizeof h, cudaMemcpyDefault), e, "cudaMemcpy after the error");
  pinned_probe[0] = 7;
  write_k<<<1, 1>>>(pinned_probe, 99);
  check_err(cudaGetLastError(), e, "a valid launch after the error reports it");
  check(pinned_probe[0] == 7, "a valid launch after the error does not run", fmt("probe = %d", pinned_probe[0]));
}

static int* pinned_probe() {
  void* p = nullptr;
  SETUP(cudaMallocHost(&p, 64 * sizeof(int)));
  return static_cast<int*>(p);
}

static void case_illegal(const char* which) {
  int* probe = pinned_probe();
  int local[32] = {};
  std::vector<int> heap(32, 0);
  int* arg = local;
  if (!std::strcmp(which, "heap")) arg = heap.data();
  if (!std::strcmp(which, "freed")) {
    int* d = dev_alloc<int>(32);
    SETUP(cudaFree(d));
    arg = d;
  }
  touch_k<<<1, 32>>>(arg);
  if (arg != heap.data() && arg != local) {
    expect_sticky(cudaErrorIllegalAddress, probe);
    return;
  }
  int changed = 0;
  for (int i = 0; i < 32; ++i) changed += arg[i] != 0;
  check(changed == 0, "the kernel did not run on host memory", fmt("%d elements changed", changed));
  expect_sticky(cudaErrorIllegalAddress, probe);
}

static void case_kernel_failure(const char* which) {
  int* probe = pinned_probe();
  int* d = dev_alloc<int>(64);
  if (!std::strcmp(which, "sync_divergent_exit")) divergent_exit_k<<<2, 64>>>(d);
  if (!std::strcmp(which, "sync_divergent_shfl")) divergent_shfl_k<<<1, 32>>>(d, 16);
  if (!std::strcmp(which, "sync_other_warp_exits")) divergent_shfl_k<<<1, 64>>>(d, 32);
  if (!std::strcmp(which, "shfl_exited_low")) shfl_exited_k<true><<<1, 32>>>(d);
  if (!std::strcmp(which, "shfl_exited_high")) shfl_exited_k<false><<<1, 32>>>(d);
  if (!std::strcmp(which, "shfl_partial_warp")) warp_sum_k<int><<<1, 48>>>(d, d);
  expect_sticky(cudaErrorLaunchFailure, probe);
}

// BL_EMU_DEVICE_BYTES=1048576 (set by the parent): allocations past 1 MiB fail, not stickily.
static void case_device_bytes() {
  size_t fr = 0, tot = 0;
  SETUP(cudaMemGetInfo(&fr, &tot));
  check(tot == (size_t(1) << 20) && fr == tot, "cudaMemGetInfo shows the 1 MiB device",
        fmt("free %zu total %zu", fr, tot));
  cudaDeviceProp prop{};
  SETUP(cudaGetDeviceProperties(&prop, 0));
  check(prop.totalGlobalMem == (size_t(1) << 20), "totalGlobalMem is BL_EMU_DEVICE_BYTES",
        fmt("%zu", prop.totalGlobalMem));
  void *a = nullptr, *b = nullptr, *c = nullptr;
  check_err(cudaMalloc(&a, 600 << 10), cudaSuccess, "cudaMalloc 600 KiB of 1 MiB");
  check_err(cudaMalloc(&b, 600 << 10), cudaErrorMemoryAllocation, "cudaMalloc another 600 KiB");
  check(b == nullptr, "the failed cudaMalloc sets the pointer to null");
  check_err(cudaGetLastError(), cudaErrorMemoryAllocation, "cudaGetLastError after the failed cudaMalloc");
  check_err(cudaGetLastError(), cudaSuccess, "out of memory is not sticky");
  check_err(cudaMalloc(&c, 424 << 10), cudaSuccess, "cudaMalloc exactly the remaining 424 KiB");
  check_err(cudaMalloc(&b, 1), cudaErrorMemoryAllocation, "cudaMalloc 1 byte on a full device");
  check_err(cudaGetLastError(), cudaErrorMemoryAllocation, "cudaGetLastError after it");
  SETUP(cudaFree(a));
  SETUP(cudaFree(c));
  check_err(cudaMalloc(&b, 1 << 20), cudaSuccess, "after freeing, the whole 1 MiB can be allocated");
  int* d = static_cast<int*>(b);
  write_k<<<2, 32>>>(d, 3);
  const std::vector<int> h = to_host(d, 64);
  int bad = 0;
  for (int v : h) bad += v != 3;
  check(bad == 0 && cudaGetLastError() == cudaSuccess, "the device works after the failed allocations");
  SETUP(cudaFree(b));
}

static int run_case(const char* name) {
  g_prefix = "  [child] ";
  if (!std::strncmp(name, "illegal_", 8)) case_illegal(name + 8);
  else if (!std::strcmp(name, "device_bytes")) case_device_bytes();
  else case_kernel_failure(name);
  std::printf("%s%d checks passed, %d failed\n", g_prefix, g_passed, g_failed);
  std::fflush(stdout);
  std::fflush(stderr);
  // _exit: a process left with a sticky error still holds device memory,
  // which LeakSanitizer (ASan builds) would otherwise report.
  _exit(g_failed ? 1 : 0);
}

// ---- positive tests ----------------------------------------------------------------------

static void test_indices(dim3 g, dim3 b, const char* label) {
  const size_t threads = size_t(b.x) * b.y * b.z, blocks = size_t(g.x) * g.y * g.z, n = threads * blocks;
  int* d = dev_alloc<int>(n * 12);
  SETUP(cudaMemset(d, 0xff, n * 12 * sizeof(int)));
  indices_k<<<g, b>>>(d);
  const cudaError_t e = cudaGetLastError();
  const std::vector<int> h = to_host(d, n * 12);
  size_t bad = 0;
  std::string first;
  for (size_t blk = 0; blk < blocks; ++blk)
    for (size_t t = 0; t < threads; ++t) {
      const int want[12] = {int(t % b.x),   int(t / b.x % b.y),   int(t / b.x / b.y),   int(blk % g.x),
                            int(blk / g.x % g.y), int(blk / g.x / g.y), int(b.x), int(b.y), int(b.z),
                            int(g.x),       int(g.y),             int(g.z)};
      const int* got = &h[(blk * threads + t) * 12];
      for (int k = 0; k < 12; ++k)
        if (got[k] != want[k] && !bad++)
          first = fmt("block %zu thread %zu field %d: %d != %d", blk, t, k, got[k], want[k]);
    }
  check(e == cudaSuccess && bad == 0, fmt("indices %s: grid (%u,%u,%u) block (%u,%u,%u), all 12 fields of %zu threads",
                                          label, g.x, g.y, g.z, b.x, b.y, b.z, n),
        fmt("%s, %zu wrong; %s", ename(e), bad, first.c_str()));
  SETUP(cudaFree(d));
}

static void test_gridstride() {
  const int n = 10007;
  std::vector<float> in(n);
  for (int i = 0; i < n; ++i) in[i] = float(i % 101) - 50.f;
  float* din = to_dev(in);
  float* dout = dev_alloc<float>(n);
  int* dv = dev_alloc<int>(n);
  SETUP(cudaMemset(dv, 0, n * sizeof(int)));
  gridstride_k<<<7, 96>>>(din, dout, dv, n);
  const std::vector<float> out = to_host(dout, n);
  const std::vector<int> vis = to_host(dv, n);
  int bad = 0;
  for (int i = 0; i < n; ++i) bad += out[i] != 2.f * in[i] + 1.f || vis[i] != 1;
  check(bad == 0, "grid-stride loop (7 x 96 threads over 10007): every element once, right value",
        fmt("%d wrong", bad));
  SETUP(cudaFree(din));
  SETUP(cudaFree(dout));
  SETUP(cudaFree(dv));
}

static std::vector<float> reduction_input(int blocks, int per) {
  std::vector<float> in(size_t(blocks) * per);
  for (size_t i = 0; i < in.size(); ++i) in[i] = float(int(i * 37 % 19) - 9);
  return in;
}
static bool sums_match(const std::vector<float>& in, const std::vector<float>& out, int per, std::string* why) {
  for (size_t b = 0; b < out.size(); ++b) {
    double s = 0;
    for (int i = 0; i < per; ++i) s += in[b * per + i];
    if (double(out[b]) != s) {
      *why = fmt("block %zu: %g != %g", b, double(out[b]), s);
      return false;
    }
  }
  return true;
}

template <int NT>
static void test_sum_static() {
  const int blocks = 5, per = 3 * NT + 11;
  const std::vector<float> in = reduction_input(blocks, per);
  float* din = to_dev(in);
  float* dout = dev_alloc<float>(blocks);
  sum_static_k<NT><<<blocks, NT>>>(din, dout, per);
  std::string why;
  check(cudaGetLastError() == cudaSuccess && sums_match(in, to_host(dout, blocks), per, &why),
        fmt("block reduction, static __shared__, %d threads x %d blocks: exact", NT, blocks), why);
  SETUP(cudaFree(din));
  SETUP(cudaFree(dout));
}

static void test_sum_dynamic(int nt) {
  const int blocks = 4, per = 2 * nt + 5;
  const std::vector<float> in = reduction_input(blocks, per);
  float* din = to_dev(in);
  float* dout = dev_alloc<float>(blocks);
  sum_dynamic_k<<<blocks, nt, nt * sizeof(float)>>>(din, dout, per);
  std::string why;
  check(cudaGetLastError() == cudaSuccess && sums_match(in, to_host(dout, blocks), per, &why),
        fmt("block reduction, dynamic shared memory (%zu bytes), %d threads x %d blocks: exact", nt * sizeof(float), nt,
            blocks),
        why);
  SETUP(cudaFree(din));
  SETUP(cudaFree(dout));
}

template <int Tag>
static bool big_smem_run(float* dout, int blocks, size_t bytes, cudaError_t want, const std::string& name) {
  SETUP(cudaMemset(dout, 0, blocks * sizeof(float)));
  const int nf = int(bytes / sizeof(float));
  StderrCapture cap;
  big_smem_k<Tag><<<blocks, 256, bytes>>>(dout, nf);
  const cudaError_t e = cudaGetLastError();
  const std::string said = cap.take();
  echo_indented(said);
  if (want != cudaSuccess && said.find("above the kernel's limit") == std::string::npos)
    return check(false, name, "no emulator report of the shared memory limit");
  const std::vector<float> out = to_host(dout, blocks);
  bool ok = e == want;
  std::string why = fmt("launch: %s, want %s", ename(e), ename(want));
  for (int b = 0; b < blocks && ok; ++b) {
    double s = 0;
    if (want == cudaSuccess)
      for (int i = 0; i < nf; ++i) s += i % 7 + b;
    if (double(out[b]) != s) {
      ok = false;
      why = fmt("block %d sum %g, want %g", b, double(out[b]), s);
    }
  }
  return check(ok, name, why);
}

static void test_big_smem() {
  const int blocks = 2;
  float* dout = dev_alloc<float>(blocks);
  cudaFuncAttributes fa{};
  SETUP(cudaFuncGetAttributes(&fa, big_smem_k<1>));
  check(fa.maxDynamicSharedSizeBytes == 48 * 1024, "cudaFuncGetAttributes: default dynamic shared limit 48 KiB",
        fmt("%d", fa.maxDynamicSharedSizeBytes));
  big_smem_run<1>(dout, blocks, 48 * 1024, cudaSuccess, "48 KiB dynamic shared memory without the attribute: runs");
  big_smem_run<1>(dout, blocks, 64 * 1024, cudaErrorInvalidValue,
                  "64 KiB dynamic shared memory without the attribute: cudaErrorInvalidValue, kernel not run");
  check_err(cudaGetLastError(), cudaSuccess, "the rejected launch's error is cleared by cudaGetLastError");
  check_err(cudaFuncSetAttribute(big_smem_k<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024), cudaSuccess,
            "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, 64 KiB)");
  SETUP(cudaFuncGetAttributes(&fa, big_smem_k<1>));
  check(fa.maxDynamicSharedSizeBytes == 64 * 1024, "cudaFuncGetAttributes shows the new limit",
        fmt("%d", fa.maxDynamicSharedSizeBytes));
  big_smem_run<1>(dout, blocks, 64 * 1024, cudaSuccess, "64 KiB dynamic shared memory after the attribute: exact");
  big_smem_run<1>(dout, blocks, 64 * 1024 + 4, cudaErrorInvalidValue,
                  "64 KiB + 4 bytes, above the kernel's new limit: cudaErrorInvalidValue");
  big_smem_run<2>(dout, blocks, 64 * 1024, cudaErrorInvalidValue,
                  "the attribute is per kernel: another kernel at 64 KiB still fails");
  cudaDeviceProp prop{};
  SETUP(cudaGetDeviceProperties(&prop, 0));
  const int optin = int(prop.sharedMemPerBlockOptin);
  check_err(cudaFuncSetAttribute(big_smem_k<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin), cudaSuccess,
            fmt("cudaFuncSetAttribute to sharedMemPerBlockOptin (%d)", optin));
  big_smem_run<1>(dout, blocks, size_t(optin), cudaSuccess,
                  fmt("%d bytes (the opt-in maximum) of dynamic shared memory: every byte usable, exact", optin));
  check_err(cudaFuncSetAttribute(big_smem_k<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin + 1),
            cudaErrorInvalidValue, "cudaFuncSetAttribute above sharedMemPerBlockOptin: cudaErrorInvalidValue");
  check_err(cudaGetLastError(), cudaErrorInvalidValue, "... and cudaGetLastError reports it");
  SETUP(cudaFree(dout));
}

template <class T>
static void test_warp_sum(const char* tname, T (*value)(int)) {
  const int blocks = 3, nt = 128, n = blocks * nt;
  std::vector<T> in(n);
  for (int i = 0; i < n; ++i) in[i] = value(i);
  T* din = to_dev(in);
  T* dout = dev_alloc<T>(n);
  warp_sum_k<T><<<blocks, nt>>>(din, dout);
  const std::vector<T> out = to_host(dout, n);
  int bad = 0;
  for (int w = 0; w < n / 32; ++w) {
    T s = T(0);
    for (int l = 0; l < 32; ++l) s += in[w * 32 + l];  // exact for these values, in any order
    for (int l = 0; l < 32; ++l) bad += !(out[w * 32 + l] == s);
  }
  check(cudaGetLastError() == cudaSuccess && bad == 0,
        fmt("__shfl_xor_sync butterfly (%s, %d warps): every lane holds its warp's exact sum", tname, n / 32),
        fmt("%d lanes wrong", bad));
  SETUP(cudaFree(din));
  SETUP(cudaFree(dout));
}
static float fval(int i) { return float(i % 23 - 11); }
// Needs more than float's range and 24-bit mantissa: a shuffle that narrows fails.
static double dval(int i) { return std::ldexp(double(i) * 1234567.0 + 1.0, 200); }
static int ival(int i) { return i * 10007 - 500000; }

static void test_shfl_perm() {
  const dim3 b(16, 4);  // 64 threads: two warps spanning rows
  const int blocks = 2, n = blocks * 64;
  int* d = dev_alloc<int>(n * 5);
  shfl_perm_k<<<blocks, b>>>(d);
  const std::vector<int> h = to_host(d, n * 5);
  int bad = 0;
  for (int g = 0; g < n; ++g)
    for (int j = 0; j < 5; ++j) bad += h[g * 5 + j] != (g ^ (1 << j));
  check(cudaGetLastError() == cudaSuccess && bad == 0,
        "__shfl_xor_sync lane masks 1..16 in a 16x4 block: lane = linear thread id, value from lane ^ mask",
        fmt("%d wrong", bad));
  SETUP(cudaFree(d));
}

static void test_sync_or(int nt) {
  const int blocks = 2;
  int* d = dev_alloc<int>(size_t(blocks) * nt * 5);
  sync_or_k<<<blocks, nt>>>(d);
  const std::vector<int> h = to_host(d, size_t(blocks) * nt * 5);
  const int want[5] = {1, 0, 1, 0, 1};
  int bad = 0;
  for (size_t i = 0; i < h.size(); ++i) bad += h[i] != want[i % 5];
  check(cudaGetLastError() == cudaSuccess && bad == 0,
        fmt("__syncthreads_or, %d threads: one true predicate -> non-zero everywhere, none -> 0, rounds independent",
            nt),
        fmt("%d wrong", bad));
  SETUP(cudaFree(d));
}

static void test_atomics() {
  const int blocks = 20, nt = 256, n = blocks * nt;
  int* dc = dev_alloc<int>(2);
  int* dt = dev_alloc<int>(n);
  float* df = dev_alloc<float>(1);
  SETUP(cudaMemset(dc, 0, 2 * sizeof(int)));
  SETUP(cudaMemset(df, 0, sizeof(float)));
  atomic_k<<<blocks, nt>>>(dc, dt, df);
  const std::vector<int> c = to_host(dc, 2), t = to_host(dt, n);
  const std::vector<float> f = to_host(df, 1);
  std::vector<int> seen(n, 0);
  int bad = 0;
  for (int v : t) {
    if (v < 0 || v >= n || seen[v]++) ++bad;
  }
  check(c[0] == n, fmt("atomicAdd(int) from %d threads in %d blocks into one counter", n, blocks),
        fmt("counter %d", c[0]));
  check(bad == 0, "atomicAdd returns the old value: the tickets are a permutation of 0..n-1",
        fmt("%d duplicates/out of range", bad));
  check(c[1] == n * (n - 1) / 2, "atomicAdd(int) of every thread's index", fmt("%d", c[1]));
  check(f[0] == float(n), "atomicAdd(float)", fmt("%g", double(f[0])));
  SETUP(cudaFree(dc));
  SETUP(cudaFree(dt));
  SETUP(cudaFree(df));
}

static void test_byval() {
  const int blocks = 2, nt = 64;
  int* d = dev_alloc<int>(blocks * nt * 3);
  Params p{41, {10, 20, 30}};
  byval_k<<<blocks, nt>>>(100, p, d);
  const std::vector<int> h = to_host(d, blocks * nt * 3);
  int bad = 0;
  for (int i = 0; i < blocks * nt; ++i) {
    const int t = i % nt;
    bad += h[i * 3] != 100 + t + 1 || h[i * 3 + 1] != 20 + 2 * t || h[i * 3 + 2] != 41;
  }
  check(cudaGetLastError() == cudaSuccess && bad == 0,
        "a kernel modifying its by-value parameters (int, struct, pointer) affects only its own thread's copy",
        fmt("%d threads wrong", bad));
  check(p.b[1] == 20, "... and not the host's arguments");
  SETUP(cudaFree(d));
}

static void test_memory_api() {
  // Alignment.
  const size_t sizes[] = {1, 3, 255, 257, 1000, 4097};
  std::vector<void*> ptrs;
  int misaligned = 0;
  for (size_t s : sizes) {
    void* p = nullptr;
    SETUP(cudaMalloc(&p, s));
    misaligned += reinterpret_cast<uintptr_t>(p) % 256 != 0;
    ptrs.push_back(p);
  }
  check(misaligned == 0, "cudaMalloc of 1, 3, 255, 257, 1000, 4097 bytes: every pointer 256-byte aligned");
  for (void* p : ptrs) SETUP(cudaFree(p));

  // Accounting.
  size_t f0 = 0, t0 = 0, f1 = 0, t1 = 0, f2 = 0, t2 = 0;
  SETUP(cudaMemGetInfo(&f0, &t0));
  void* big = nullptr;
  SETUP(cudaMalloc(&big, 3 << 20));
  SETUP(cudaMemGetInfo(&f1, &t1));
  SETUP(cudaFree(big));
  SETUP(cudaMemGetInfo(&f2, &t2));
  cudaDeviceProp prop{};
  SETUP(cudaGetDeviceProperties(&prop, 0));
  check(t0 == prop.totalGlobalMem && t1 == t0 && t2 == t0 && f0 <= t0, "cudaMemGetInfo total = totalGlobalMem",
        fmt("%zu %zu %zu vs %zu", t0, t1, t2, prop.totalGlobalMem));
  check(f0 - f1 >= size_t(3 << 20) && f2 == f0, "cudaMemGetInfo: a 3 MiB allocation takes >= 3 MiB, freeing returns it",
        fmt("free %zu -> %zu -> %zu", f0, f1, f2));

  // Properties.
  bool ok = prop.warpSize == 32 && prop.maxThreadsPerBlock == 1024 && prop.maxThreadsDim[0] == 1024 &&
            prop.maxThreadsDim[1] == 1024 && prop.maxThreadsDim[2] == 64 && prop.maxGridSize[0] == 2147483647 &&
            prop.maxGridSize[1] == 65535 && prop.maxGridSize[2] == 65535 && prop.sharedMemPerBlock == 48 * 1024 &&
            prop.sharedMemPerBlockOptin >= prop.sharedMemPerBlock && prop.totalGlobalMem > 0 && prop.major >= 7 &&
            prop.multiProcessorCount > 0 && prop.name[0] != 0;
  check(ok, "cudaGetDeviceProperties: warpSize, thread/grid limits, shared memory, compute capability",
        fmt("warp %d threads %d dims %d,%d,%d grid %d,%d,%d smem %zu/%zu cc %d.%d", prop.warpSize,
            prop.maxThreadsPerBlock, prop.maxThreadsDim[0], prop.maxThreadsDim[1], prop.maxThreadsDim[2],
            prop.maxGridSize[0], prop.maxGridSize[1], prop.maxGridSize[2], prop.sharedMemPerBlock,
            prop.sharedMemPerBlockOptin, prop.major, prop.minor));
  int count = 0;
  SETUP(cudaGetDeviceCount(&count));
  cudaDeviceProp p2{};
  check_err(cudaGetDeviceProperties(&p2, count), cudaErrorInvalidDevice, "cudaGetDeviceProperties of device `count`");
  check_err(cudaGetLastError(), cudaErrorInvalidDevice, "... reported by cudaGetLastError");

  // Round trips: HtoD, DtoD at offsets, DtoH; async on a stream; memset.
  const int n = 1000;
  std::vector<int> h(n), back(n, 0);
  for (int i = 0; i < n; ++i) h[i] = i * 7919 - 3;
  int* a = dev_alloc<int>(n);
  int* b = dev_alloc<int>(n);
  SETUP(cudaMemcpy(a, h.data(), n * sizeof(int), cudaMemcpyHostToDevice));
  SETUP(cudaMemcpy(b, a + 100, 500 * sizeof(int), cudaMemcpyDeviceToDevice));
  SETUP(cudaMemcpy(b + 500, a, 500 * sizeof(int), cudaMemcpyDeviceToDevice));
  SETUP(cudaMemcpy(back.data(), b, n * sizeof(int), cudaMemcpyDeviceToHost));
  int bad = 0;
  for (int i = 0; i < n; ++i) bad += back[i] != (i < 500 ? h[i + 100] : h[i - 500]);
  check(bad == 0, "cudaMemcpy HtoD, DtoD at offsets, DtoH round trip", fmt("%d wrong", bad));

  cudaStream_t st = nullptr;
  SETUP(cudaStreamCreate(&st));
  std::vector<int> h2(n), back2(n, 0);
  for (int i = 0; i < n; ++i) h2[i] = -i;
  SETUP(cudaMemcpyAsync(a, h2.data(), n * sizeof(int), cudaMemcpyHostToDevice, st));
  SETUP(cudaMemsetAsync(a + 10, 0x5a, 20 * sizeof(int), st));
  SETUP(cudaMemcpyAsync(back2.data(), a, n * sizeof(int), cudaMemcpyDeviceToHost, st));
  check_err(cudaStreamSynchronize(st), cudaSuccess, "cudaStreamSynchronize");
  bad = 0;
  for (int i = 0; i < n; ++i) bad += back2[i] != (i >= 10 && i < 30 ? 0x5a5a5a5a : -i);
  check(bad == 0, "cudaMemcpyAsync / cudaMemsetAsync on a stream, in order", fmt("%d wrong", bad));
  write_k<<<4, 64, 0, st>>>(b, 17);
  const std::vector<int> w = to_host(b, 256);
  bad = 0;
  for (int v : w) bad += v != 17;
  check(cudaGetLastError() == cudaSuccess && bad == 0, "kernel launch on a created stream");
  SETUP(cudaStreamDestroy(st));
  rejected(
      [&] {
        write_k<<<1, 1, 0, st>>>(b, 18);
        return cudaGetLastError();
      },
      cudaErrorInvalidResourceHandle, "launch on a destroyed stream", "stream that does not exist");
  check(to_host(b, 1)[0] == 17, "... did not run");

  SETUP(cudaMemset(b, 0, n * sizeof(int)));
  SETUP(cudaMemset(reinterpret_cast<char*>(b) + 3, 0xa7, 9));
  const std::vector<unsigned char> bytes = to_host(reinterpret_cast<const unsigned char*>(b), 16);
  bad = 0;
  for (int i = 0; i < 16; ++i) bad += bytes[i] != (i >= 3 && i < 12 ? 0xa7 : 0);
  check(bad == 0, "cudaMemset of an unaligned byte range", fmt("%d wrong", bad));

  // Pinned host memory is usable as a kernel argument.
  int* pinned = nullptr;
  SETUP(cudaMallocHost(reinterpret_cast<void**>(&pinned), 64 * sizeof(int)));
  write_k<<<1, 64>>>(pinned, 5);
  bad = 0;
  for (int i = 0; i < 64; ++i) bad += pinned[i] != 5;
  check(cudaGetLastError() == cudaSuccess && bad == 0, "cudaMallocHost memory as a kernel argument");
  SETUP(cudaFreeHost(pinned));
  SETUP(cudaFree(a));
  SETUP(cudaFree(b));
}

static void test_poison() {
  const int n = 333;
  float* d = dev_alloc<float>(n);
  const std::vector<unsigned char> raw = to_host(reinterpret_cast<const unsigned char*>(d), n * sizeof(float));
  int bad = 0;
  for (unsigned char c : raw) bad += c != 0xff;
  check(bad == 0, "fresh cudaMalloc memory reads as 0xff bytes", fmt("%d bytes differ", bad));
  int* flags = dev_alloc<int>(n);
  nan_probe_k<<<(n + 127) / 128, 128>>>(d, flags, n);
  const std::vector<int> f = to_host(flags, n);
  bad = 0;
  for (int v : f) bad += v != 1;
  check(bad == 0, "a kernel reading never-written device memory as float sees NaN", fmt("%d not NaN", bad));
  // Written, freed, allocated again: poisoned again.
  SETUP(cudaMemset(d, 0, n * sizeof(float)));
  SETUP(cudaFree(d));
  d = dev_alloc<float>(n);
  const std::vector<float> again = to_host(d, n);
  bad = 0;
  for (float v : again) bad += !std::isnan(v);
  check(bad == 0, "memory allocated again after a free is poisoned again", fmt("%d not NaN", bad));
  SETUP(cudaFree(d));
  SETUP(cudaFree(flags));

  const int blocks = 3;
  uint32_t* o = dev_alloc<uint32_t>(blocks * 2);
  smem_poison_k<<<blocks, 32, 64>>>(o);
  const std::vector<uint32_t> s = to_host(o, blocks * 2);
  bad = 0;
  for (uint32_t v : s) bad += v != 0xffffffffu;
  check(cudaGetLastError() == cudaSuccess && bad == 0,
        "dynamic shared memory reads as 0xff bytes in every block (re-poisoned after block 0 wrote it)",
        fmt("%d wrong", bad));
  SETUP(cudaFree(o));
}

// ---- negative tests in this process (errors that are not sticky) -------------------------

static void test_launch_config() {
  int* d = dev_alloc<int>(64);
  SETUP(cudaMemset(d, 0, 64 * sizeof(int)));
  struct Bad {
    dim3 g, b;
    const char* what;
  } bad[] = {
      {dim3(1), dim3(0), "block of 0 threads"},
      {dim3(1), dim3(1025), "block of 1025 threads"},
      {dim3(1), dim3(32, 32, 2), "block of 32x32x2 = 2048 threads"},
      {dim3(1), dim3(1, 1, 65), "block.z = 65"},
      {dim3(1, 65536), dim3(1), "grid.y = 65536"},
      {dim3(1, 1, 65536), dim3(1), "grid.z = 65536"},
      {dim3(0), dim3(32), "grid of 0 blocks"},
  };
  for (const Bad& c : bad) {
    rejected(
        [&] {
          write_k<<<c.g, c.b>>>(d, 1);
          return cudaGetLastError();
        },
        cudaErrorInvalidConfiguration, fmt("launch with %s (reported with the launch site)", c.what),
        "emu_selftest.cu:");
    check_err(cudaGetLastError(), cudaSuccess, "... cleared by reading it (not sticky)");
    write_k<<<1, 64>>>(d, 2);
    const std::vector<int> h = to_host(d, 64);
    int wrong = 0;
    for (int v : h) wrong += v != 2;
    check(cudaGetLastError() == cudaSuccess && wrong == 0, "... the bad launch did not run, the next valid one did");
    SETUP(cudaMemset(d, 0, 64 * sizeof(int)));
  }
  // The limits themselves are valid.
  int* big = dev_alloc<int>(65535);
  write_k<<<1, 1024>>>(big, 3);
  check_err(cudaGetLastError(), cudaSuccess, "block of 1024 threads runs");
  write_k<<<1, dim3(1, 1, 64)>>>(big, 3);
  check_err(cudaGetLastError(), cudaSuccess, "block.z = 64 runs");
  write_k<<<dim3(1, 65535), 1>>>(big, 4);
  check_err(cudaGetLastError(), cudaSuccess, "grid.y = 65535 runs");
  SETUP(cudaFree(big));
  SETUP(cudaFree(d));
}

static void test_copy_errors() {
  int* d = dev_alloc<int>(100);
  std::vector<int> h(200, 9);
  int stack_buf[100] = {};
  SETUP(cudaMemset(d, 0, 100 * sizeof(int)));
  auto unchanged = [&]() {
    const std::vector<int> b = to_host(d, 100);
    for (int v : b)
      if (v != 0) return false;
    return true;
  };
  rejected([&] { return cudaMemcpy(stack_buf, h.data(), 100 * sizeof(int), cudaMemcpyHostToDevice); },
           cudaErrorInvalidValue, "cudaMemcpy HostToDevice into a host (stack) pointer",
           "not inside one device allocation");
  check(stack_buf[0] == 0, "... copied nothing");
  check_err(cudaGetLastError(), cudaErrorInvalidValue, "... cudaGetLastError reports it");
  check_err(cudaGetLastError(), cudaSuccess, "... once (not sticky)");
  rejected([&] { return cudaMemcpy(h.data() + 100, h.data(), 100 * sizeof(int), cudaMemcpyHostToDevice); },
           cudaErrorInvalidValue, "cudaMemcpy HostToDevice into a host (heap) pointer",
           "not inside one device allocation");
  rejected([&] { return cudaMemcpy(d, h.data(), 101 * sizeof(int), cudaMemcpyHostToDevice); },
           cudaErrorInvalidValue, "cudaMemcpy HostToDevice one element past the end of the allocation",
           "not inside one device allocation");
  check(unchanged(), "... copied nothing");
  rejected([&] { return cudaMemcpy(d + 50, h.data(), 51 * sizeof(int), cudaMemcpyHostToDevice); },
           cudaErrorInvalidValue, "cudaMemcpy HostToDevice from the middle past the end",
           "not inside one device allocation");
  rejected([&] { return cudaMemcpy(h.data(), d + 1, 100 * sizeof(int), cudaMemcpyDeviceToHost); },
           cudaErrorInvalidValue, "cudaMemcpy DeviceToHost reading past the end", "not inside one device allocation");
  rejected([&] { return cudaMemcpy(d, h.data(), 10 * sizeof(int), cudaMemcpyDeviceToHost); },
           cudaErrorInvalidValue, "cudaMemcpy DeviceToHost with the directions swapped",
           "is device memory but the copy kind says host");
  rejected([&] { return cudaMemset(d + 90, 0, 11 * sizeof(int)); },
           cudaErrorInvalidValue, "cudaMemset past the end", "not inside one device allocation");
  rejected([&] { return cudaMemset(stack_buf, 0, 4); },
           cudaErrorInvalidValue, "cudaMemset of a host pointer", "not inside one device allocation");
  check(unchanged(), "... none of the rejected calls touched the allocation");
  check_err(cudaMemcpy(d, h.data(), 100 * sizeof(int), cudaMemcpyHostToDevice), cudaSuccess,
            "cudaMemcpy of exactly the allocation still works");
  rejected([&] { return cudaFree(d + 1); },
           cudaErrorInvalidValue, "cudaFree of a pointer into the middle of an allocation",
           "not the start of a live allocation");
  check_err(cudaGetLastError(), cudaErrorInvalidValue, "... cudaGetLastError reports it");
  rejected([&] { return cudaFree(stack_buf); },
           cudaErrorInvalidValue, "cudaFree of a host pointer", "not the start of a live allocation");
  check_err(cudaFree(d), cudaSuccess, "cudaFree of the allocation itself");
  rejected([&] { return cudaFree(d); },
           cudaErrorInvalidValue, "cudaFree twice", "not the start of a live allocation");
  check_err(cudaFree(nullptr), cudaSuccess, "cudaFree(nullptr)");
  cudaGetLastError();
  void* p = nullptr;
  check_err(cudaMalloc(&p, 16), cudaSuccess, "cudaMalloc works after the rejected calls (not sticky)");
  SETUP(cudaFree(p));
}

template <bool LastReads>
static void gather_race(float* g, int blocks, int nt) {
  const char* who = LastReads ? "last" : "first";
  const float sum = float(nt * (nt + 1) / 2);
  gather_k<true, LastReads><<<blocks, nt, nt * sizeof(float)>>>(g);
  const std::vector<float> ok = to_host(g, blocks);
  int right = 0;
  for (float v : ok) right += v == sum;
  check(right == blocks, fmt("gather by the %s thread through dynamic shared memory with __syncthreads: exact", who));
  gather_k<false, LastReads><<<blocks, nt, nt * sizeof(float)>>>(g);
  const std::vector<float> race = to_host(g, blocks);
  int wrong = 0;
  for (float v : race) wrong += v != sum;
  check(wrong > 0, fmt("...without it: wrong (%d of %d blocks)", wrong, blocks),
        "every block right: the schedule hid the race");
  gather_k<false, LastReads><<<blocks, nt, nt * sizeof(float)>>>(g);
  const std::vector<float> again = to_host(g, blocks);
  bool same = true;
  for (int b = 0; b < blocks; ++b) same = same && (std::isnan(again[b]) ? std::isnan(race[b]) : again[b] == race[b]);
  check(same, "...and the same results on a repeat (deterministic)");
}

static void test_races() {
  const int blocks = 3, nt = 64;
  int* d = dev_alloc<int>(blocks * nt);
  std::vector<int> want(blocks * nt);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < nt; ++t) want[b * nt + t] = b * 1000 + (t + 1) % nt + 1;
  neighbour_k<true><<<blocks, nt>>>(d);
  check(to_host(d, blocks * nt) == want, "neighbour exchange through static __shared__ with __syncthreads: exact");
  // Block-dependent values: whatever an earlier block or launch left in the
  // static array is wrong for this block, so every block must show the race.
  for (int launch = 1; launch <= 2; ++launch) {
    neighbour_k<false><<<blocks, nt>>>(d);
    const std::vector<int> race = to_host(d, blocks * nt);
    int blocks_wrong = 0, wrong = 0;
    for (int b = 0; b < blocks; ++b) {
      int w = 0;
      for (int t = 0; t < nt; ++t) w += race[b * nt + t] != want[b * nt + t];
      blocks_wrong += w > 0;
      wrong += w;
    }
    check(blocks_wrong == blocks,
          fmt("...without the __syncthreads (launch %d): wrong in every block (%d of %d results)", launch, wrong,
              blocks * nt),
          fmt("only %d of %d blocks wrong", blocks_wrong, blocks));
  }
  // Static __shared__ is one function static; the runtime refills it with
  // 0xff as each block reaches it (rewrite.cmake), so even when the values do
  // not depend on the block, a read the missing barrier lets run early cannot
  // see the previous block's (right) values.
  std::vector<int> same(blocks * nt);
  for (int i = 0; i < blocks * nt; ++i) same[i] = (i % nt + 1) % nt + 1;
  neighbour_same_k<<<blocks, nt>>>(d, 1);
  check(to_host(d, blocks * nt) == same, "block-independent neighbour exchange with __syncthreads: exact");
  neighbour_same_k<<<blocks, nt>>>(d, 0);
  check(to_host(d, blocks * nt) != same,
        "...without it: wrong (static __shared__ is refilled with 0xff for every block)");

  float* g = dev_alloc<float>(blocks);
  gather_race<false>(g, blocks, nt);
  gather_race<true>(g, blocks, nt);
  SETUP(cudaFree(g));
  SETUP(cudaFree(d));
}

// ---- sticky cases, each in a child -----------------------------------------------------

struct StickyCase {
  const char* name;
  const char* what;
  const char* message;  // expected in the emulator's report
  const char* env_name;
  const char* env_value;
};

static void test_children() {
  const StickyCase cases[] = {
      {"illegal_stack", "kernel pointer argument into the host stack -> sticky cudaErrorIllegalAddress",
       "is not device memory", nullptr, nullptr},
      {"illegal_heap", "kernel pointer argument into the host heap -> sticky cudaErrorIllegalAddress",
       "is not device memory", nullptr, nullptr},
      {"illegal_freed", "kernel pointer argument to a freed buffer -> sticky cudaErrorIllegalAddress",
       "is not device memory", nullptr, nullptr},
      {"sync_divergent_exit",
       "__syncthreads reached by half the block (the rest exited) -> sticky cudaErrorLaunchFailure",
       "exited without reaching it", nullptr, nullptr},
      {"sync_divergent_shfl",
       "__syncthreads reached by half a warp (the rest at a shuffle: deadlock) -> sticky cudaErrorLaunchFailure",
       "cannot make progress", nullptr, nullptr},
      {"sync_other_warp_exits",
       "__syncthreads reached by one warp while the other shuffles and exits -> sticky cudaErrorLaunchFailure",
       "exited without reaching it", nullptr, nullptr},
      {"shfl_exited_low", "__shfl_xor_sync after lanes 0-15 exited -> sticky cudaErrorLaunchFailure",
       "lanes take part", nullptr, nullptr},
      {"shfl_exited_high", "__shfl_xor_sync by lanes 0-15 while lanes 16-31 exit -> sticky cudaErrorLaunchFailure",
       "lanes take part", nullptr, nullptr},
      {"shfl_partial_warp", "__shfl_xor_sync in a block of 48 threads -> sticky cudaErrorLaunchFailure",
       "lanes take part", nullptr, nullptr},
      {"device_bytes", "BL_EMU_DEVICE_BYTES=1048576: cudaErrorMemoryAllocation past it, not sticky", "",
       "BL_EMU_DEVICE_BYTES", "1048576"},
  };
  for (const StickyCase& c : cases) {
    const ChildResult r = run_child(c.name, c.env_name, c.env_value, 60);
    const bool exited0 = !r.timed_out && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0;
    const bool said = r.out.find(std::string("bl-emu: ")) != std::string::npos || !*c.message;
    // Kernel errors name the launch site (file:line of the launch).
    const bool named = r.out.find(c.message) != std::string::npos &&
                       (!*c.message || r.out.find("emu_selftest.cu:") != std::string::npos);
    std::string why;
    if (r.timed_out) why = "timed out (killed after 60 s)";
    else if (!WIFEXITED(r.status)) why = fmt("killed by signal %d", WTERMSIG(r.status));
    else if (WEXITSTATUS(r.status) != 0) why = fmt("exit status %d", WEXITSTATUS(r.status));
    else if (!said || !named) why = fmt("no \"bl-emu:\" report with the launch site and \"%s\"", c.message);
    if (!check(exited0 && said && named, fmt("[%s] %s", c.name, c.what), why)) {
      std::printf("      child output:\n");
      echo_indented(r.out);
    }
  }
}

int main(int argc, char** argv) {
  if (argc == 3 && !std::strcmp(argv[1], "--case")) return run_case(argv[2]);
  if (argc != 1) {
    std::fprintf(stderr, "usage: %s   (or --case NAME, used by itself)\n", argv[0]);
    return 2;
  }
  std::printf("CUDA emulator self-test\n");
  // Children first: they fork from a process that has not touched the runtime yet.
  test_children();
  test_indices(dim3(5), dim3(64), "1D");
  test_indices(dim3(3, 4), dim3(8, 6), "2D");
  test_indices(dim3(3, 2, 2), dim3(4, 3, 2), "3D");
  test_indices(dim3(2, 1, 3), dim3(2, 2, 64), "3D deep");
  test_gridstride();
  test_sum_static<256>();
  test_sum_static<1024>();
  test_sum_static<1>();
  test_sum_dynamic(128);
  test_sum_dynamic(512);
  test_big_smem();
  test_warp_sum<float>("float", fval);
  test_warp_sum<double>("double", dval);
  test_warp_sum<int>("int", ival);
  test_shfl_perm();
  test_sync_or(96);
  test_sync_or(1);
  test_sync_or(1024);
  test_atomics();
  test_byval();
  test_memory_api();
  test_poison();
  test_launch_config();
  test_copy_errors();
  test_races();
  std::printf("%d checks passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
