// CUDA emulation (tests only): the device half. Kernels compile as ordinary
// C++ functions; a launch runs every block in turn, and inside a block every
// CUDA thread as a fiber (its own stack) on the launching OS thread, switching
// only at __syncthreads / warp shuffles, so block- and warp-level
// synchronisation behave as CUDA specifies and a missing or divergent barrier
// shows up as a wrong result or an emulator error, never as a silent pass.
// __shared__ variables become function statics: one copy, shared by the
// block's threads, which is right because blocks run one after another.
//
// Launch syntax: the build rewrites `k<<<g, b, s, st>>>(args)` to
// `k ->* ::bl_emu::Cfg(__FILE__, __LINE__, g, b, s, st)(args)` and
// `extern __shared__ T x[];` to a pointer to the launch's dynamic shared
// memory (cuda/emu/rewrite.cmake), since no C++ compiler parses `<<<`.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_runtime_api.h"

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static
constexpr int warpSize = 32;

namespace bl_emu {

// What a running CUDA thread sees.
struct ThreadCtx {
  uint3 tid, bid, bdim, gdim;
};
extern const ThreadCtx* g_cur;
inline const ThreadCtx& cur() { return *g_cur; }

void syncthreads();
int syncthreads_or(int pred);
// Every lane of the warp deposits `bits`, then reads lane (own ^ lane_mask)'s.
uint64_t shfl_xor_bits(unsigned mask, uint64_t bits, int lane_mask, int width);
void* dynamic_smem();
// A static __shared__ array (see rewrite.cmake): filled with 0xff bytes when
// the first thread of a block reaches its declaration.
void shared_var(void* p, size_t bytes);

struct Cfg;
// One launch: checks the configuration and the pointer arguments, then runs
// `body` once per CUDA thread. Errors go to cudaGetLastError (configuration)
// or become sticky (what would be a device fault).
void launch(const Cfg& cfg, const void* fn, const void* const* ptrs, int nptrs, const std::function<void()>& body);

template <class... A>
struct Bound;

struct Cfg {
  const char* file;
  int line;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  Cfg(const char* f, int l, dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr)
      : file(f), line(l), grid(g), block(b), smem(s), stream(st) {}
  template <class... A>
  Bound<std::decay_t<A>...> operator()(A&&... a) const {
    return Bound<std::decay_t<A>...>{*this, std::tuple<std::decay_t<A>...>(std::forward<A>(a)...)};
  }
};

template <class... A>
struct Bound {
  Cfg cfg;
  std::tuple<A...> args;
};

template <class T>
inline const void* as_ptr(const T& v) {
  if constexpr (std::is_pointer_v<T> && !std::is_function_v<std::remove_pointer_t<T>>)
    return static_cast<const void*>(v);
  else
    return reinterpret_cast<const void*>(uintptr_t(1));  // not a pointer: marker, skipped
}

// kernel ->* Cfg(...)(args...): run the kernel. Each CUDA thread gets its own
// copy of the arguments, as on the device (a kernel may modify its parameters).
template <class F, class... A>
void operator->*(F f, Bound<A...>&& b) {
  static_assert(std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>, "launch of a non-function");
  std::array<const void*, sizeof...(A) + 1> p =
      std::apply([](const A&... a) { return std::array<const void*, sizeof...(A) + 1>{as_ptr(a)..., nullptr}; }, b.args);
  const std::tuple<A...>& args = b.args;
  launch(b.cfg, reinterpret_cast<const void*>(f), p.data(), int(sizeof...(A)), [&]() {
    std::tuple<A...> mine = args;
    std::apply(f, mine);
  });
}

}  // namespace bl_emu

#define threadIdx (::bl_emu::cur().tid)
#define blockIdx (::bl_emu::cur().bid)
#define blockDim (::bl_emu::cur().bdim)
#define gridDim (::bl_emu::cur().gdim)

inline void __syncthreads() { bl_emu::syncthreads(); }
inline int __syncthreads_or(int p) { return bl_emu::syncthreads_or(p); }

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type the emulator does not carry");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = bl_emu::shfl_xor_bits(mask, bits, lane_mask, width);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}

// Atomics: fibers switch only at barriers, so a read-modify-write is atomic.
template <class T>
inline T atomicAdd(T* p, T v) {
  T old = *p;
  *p = old + v;
  return old;
}
template <class T>
inline T atomicExch(T* p, T v) {
  T old = *p;
  *p = v;
  return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
  T old = *p;
  if (v > old) *p = v;
  return old;
}

using std::isfinite;
using std::isinf;
using std::isnan;
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }

// CUDA's global min / max overloads (device math API).
#define BL_EMU_MINMAX(T)                                \
  inline T min(T a, T b) { return b < a ? b : a; }      \
  inline T max(T a, T b) { return a < b ? b : a; }
BL_EMU_MINMAX(int)
BL_EMU_MINMAX(unsigned)
BL_EMU_MINMAX(long)
BL_EMU_MINMAX(unsigned long)
BL_EMU_MINMAX(long long)
BL_EMU_MINMAX(unsigned long long)
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
#undef BL_EMU_MINMAX

// The runtime's C++ convenience overloads (cuda_runtime.h declares them for
// any pointer type), as host code written for nvcc uses them.
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
template <class T>
inline cudaError_t cudaMallocHost(T** p, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
