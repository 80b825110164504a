// CudaBackend (see cuda_backend.h): device context (stream, cuBLAS handle and
// workspace, scratch), memory, GEMM mapping onto cuBLAS, and thin wrappers
// that validate arguments and call the launchers in cuda/kernels/.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "cublas_loader.h"
#include "cuda_backend.h"
#include "cuda_errors.h"
#include "kernels/adamw.cuh"
#include "kernels/attention.cuh"
#include "kernels/bias.cuh"
#include "kernels/convert.cuh"
#include "kernels/dropout.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/embedding.cuh"
#include "kernels/kfac_factor.cuh"
#include "kernels/lora.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rope.cuh"
#include "kernels/rows.cuh"
#include "kernels/rows_dot.cuh"
#include "kernels/softmax_xent.cuh"
#include "kernels/swiglu.cuh"

namespace bl {
namespace {

using cuda::check;
constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLAS wants 32 MiB on Hopper

// A kernel that does nothing: cudaFuncGetAttributes on it tells whether this
// binary carries code the device can run (no image for e.g. sm_70).
__global__ void probe_k() {}

inline cudaStream_t st(CUstream_st* s) { return s; }

void need(bool ok, const char* op, const char* what) {
  if (!ok) fail(code::kInvalidArgument, "cuda ", op, ": ", what);
}

std::string gib(size_t bytes) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  os << double(bytes) / double(size_t(1) << 30) << " GiB";
  return os.str();
}

int env_device() {
  const char* e = std::getenv("BAYESLORA_CUDA_DEVICE");
  if (!e || !*e) return 0;
  char* end = nullptr;
  long v = std::strtol(e, &end, 10);
  if (!end || *end || v < 0 || v > 1024)
    fail(code::kInvalidArgument, "BAYESLORA_CUDA_DEVICE='", e, "' is not a device index");
  return int(v);
}

// Checks that `device` exists and can run this binary's kernels; returns a
// description. Throws UNSUPPORTED / CUDA_ERROR otherwise.
std::string open_device(int device) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail(code::kUnsupported, "no usable CUDA device: ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  }
  if (n == 0) fail(code::kUnsupported, "no CUDA device present");
  if (device >= n) fail(code::kUnsupported, "CUDA device ", device, " requested but only ", n, " present");
  cudaDeviceProp p;
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  std::ostringstream os;
  os << p.name << " (sm_" << p.major << p.minor << ", " << gib(p.totalGlobalMem) << ")";
  if (p.major < 8)
    fail(code::kUnsupported, os.str(), ": compute capability ", p.major, ".", p.minor,
         " is below 8.0; this build targets sm_80 and sm_90");
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaFuncAttributes fa;
  e = cudaFuncGetAttributes(&fa, probe_k);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    fail(code::kUnsupported, os.str(), ": this build has no kernel image for the device (", cudaGetErrorString(e),
         ")");
  }
  return os.str();
}

}  // namespace

// ---- construction -----------------------------------------------------------------

CudaBackend::CudaBackend(int device) : device_(device) {
  // A throwing constructor runs no destructor: release what was created so
  // far (stream, cuBLAS handle, workspace) before the error leaves.
  try {
    init();
  } catch (...) {
    release();
    throw;
  }
}

void CudaBackend::init() {
  describe_ = open_device(device_);
  std::string why;
  api_ = cuda::blas::load(&why);
  if (!api_) fail(code::kUnsupported, describe_, ": ", why);
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = s;
  cuda::blas::check(api_->create(&blas_), "cublasCreate");
  cuda::blas::check(api_->set_stream(blas_, s), "cublasSetStream");
  if (api_->set_workspace) {
    check(cudaMalloc(&workspace_, kWorkspaceBytes), "cuBLAS workspace");
    workspace_bytes_ = kWorkspaceBytes;
    cuda::blas::check(api_->set_workspace(blas_, workspace_, workspace_bytes_), "cublasSetWorkspace");
  }
  check(cudaMallocHost(&host_result_, 16), "cudaMallocHost");
  const char* tf = std::getenv("BAYESLORA_TF32");
  tf32_ = tf && std::strcmp(tf, "1") == 0;
  std::ostringstream os;
  os << describe_ << ", cuBLAS ";
  if (api_->version) os << api_->version / 10000 << "." << (api_->version / 100) % 100 << "." << api_->version % 100 << " ";
  os << "from " << api_->path;
  describe_ = os.str();
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::release() noexcept {
  if (!cuda::sticky_error().empty()) return;  // nothing can be released safely
  if (stream_) cudaStreamSynchronize(st(stream_));
  if (blas_ && api_) api_->destroy(blas_);
  if (workspace_) cudaFree(workspace_);
  if (scratch_) cudaFree(scratch_);
  if (host_result_) cudaFreeHost(host_result_);
  if (stream_) cudaStreamDestroy(st(stream_));
  blas_ = nullptr;
  workspace_ = scratch_ = nullptr;
  host_result_ = nullptr;
  stream_ = nullptr;
  (void)cudaGetLastError();
}

std::string CudaBackend::describe() const { return describe_; }

std::unique_lock<std::recursive_mutex> CudaBackend::lock() { return std::unique_lock<std::recursive_mutex>(mu_); }

void CudaBackend::enter() {
  cuda::throw_if_broken();
  // The CUDA runtime binds a device per host thread; libuv workers start unbound.
  thread_local int bound = -1;
  if (bound != device_) {
    check(cudaSetDevice(device_), "cudaSetDevice");
    bound = device_;
  }
}

void CudaBackend::set_tf32(bool on) {
  auto lk = lock();
  tf32_ = on;
}

void* CudaBackend::scratch(size_t bytes) {
  auto lk = lock();
  enter();
  if (bytes <= scratch_bytes_) return scratch_;
  // Round up generously so that a slowly growing demand does not reallocate
  // every call.
  size_t want = bytes + bytes / 4 + (size_t(1) << 20);
  if (scratch_) {
    check(cudaStreamSynchronize(st(stream_)), "scratch: stream synchronize");  // queued work may use it
    check(cudaFree(scratch_), "cudaFree(scratch)");
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  cudaError_t e = cudaMalloc(&scratch_, want);
  if (e != cudaSuccess) {
    scratch_ = nullptr;
    cuda::throw_cuda(e, ("cuda scratch of " + std::to_string(want) + " bytes").c_str());
  }
  scratch_bytes_ = want;
  return scratch_;
}

// ---- memory -------------------------------------------------------------------------

void* CudaBackend::alloc(size_t bytes) {
  auto lk = lock();
  enter();
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);  // 256-byte aligned, >= the promised 64
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    (void)cudaGetLastError();
    fail(code::kCudaOom, "cuda: cannot allocate ", bytes, " bytes (", gib(free_b), " free of ", gib(total_b), ")");
  }
  check(e, "cudaMalloc");
  sizes_[p] = bytes;
  live_bytes_ += bytes;
  peak_bytes_ = std::max(peak_bytes_, live_bytes_);
  return p;
}

DeviceMemory CudaBackend::memory_stats(bool reset_peak) {
  auto lk = lock();
  DeviceMemory m;
  m.live = live_bytes_;
  m.peak = peak_bytes_;
  m.internal = workspace_bytes_ + scratch_bytes_;
  if (cuda::sticky_error().empty()) {
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != device_) cudaSetDevice(device_);
    if (cudaMemGetInfo(&m.device_free, &m.device_total) != cudaSuccess) (void)cudaGetLastError();
  }
  if (reset_peak) peak_bytes_ = live_bytes_;
  return m;
}

void CudaBackend::dealloc(void* p) {
  // Called from destructors: never throws. After a sticky error nothing can be
  // freed (the context is gone); the memory goes with the process.
  if (!p || !cuda::sticky_error().empty()) return;
  auto lk = lock();
  if (auto it = sizes_.find(p); it != sizes_.end()) {
    live_bytes_ -= it->second;
    sizes_.erase(it);
  }
  int cur = -1;
  if (cudaGetDevice(&cur) != cudaSuccess || cur != device_) cudaSetDevice(device_);
  cudaError_t e = cudaFree(p);
  if (e != cudaSuccess) {
    if (cuda::is_sticky(e)) {
      try { cuda::throw_cuda(e, "cudaFree"); } catch (const Error&) {}
    }
    (void)cudaGetLastError();
  }
}

void CudaBackend::to_device(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  auto lk = lock();
  enter();
  need(dst && src, "to_device", "null pointer");
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st(stream_)), "cudaMemcpy host->device");
  // The caller may reuse or free the (pageable) host buffer right after return.
  check(cudaStreamSynchronize(st(stream_)), "to_device: stream synchronize");
}

void CudaBackend::to_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  auto lk = lock();
  enter();
  need(dst && src, "to_host", "null pointer");
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, st(stream_)), "cudaMemcpy device->host");
  check(cudaStreamSynchronize(st(stream_)), "to_host: stream synchronize");
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (!bytes || dst == src) return;
  auto lk = lock();
  enter();
  need(dst && src, "copy", "null pointer");
  auto d = static_cast<char*>(dst);
  auto s = static_cast<const char*>(src);
  if (d < s + bytes && s < d + bytes) {  // overlap: memmove semantics through scratch
    void* tmp = scratch(bytes);
    check(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, st(stream_)), "cudaMemcpy device->device");
    src = tmp;
  }
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st(stream_)), "cudaMemcpy device->device");
}

void CudaBackend::zero(void* p, size_t bytes) {
  if (!bytes) return;
  auto lk = lock();
  enter();
  need(p, "zero", "null pointer");
  check(cudaMemsetAsync(p, 0, bytes, st(stream_)), "cudaMemset");
}

void CudaBackend::synchronize() {
  auto lk = lock();
  enter();
  check(cudaStreamSynchronize(st(stream_)), "stream synchronize");
}

// ---- GEMM -----------------------------------------------------------------------------
// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: hand cuBLAS
// B first, A second, with m = N, n = M. A row-major matrix with leading
// dimension ld is the same memory as its column-major transpose with ld.

void CudaBackend::blas_gemm_ex(bool ta, bool tb, int M, int N, int K, float alpha, const void* A, int atype, int lda,
                               const void* B, int btype, int ldb, float beta, float* C, int ldc, int compute) {
  using namespace cuda::blas;
  Status s = api_->gemm_ex(blas_, tb ? kOpT : kOpN, ta ? kOpT : kOpN, N, M, K, &alpha, B, btype, ldb, A, atype, lda,
                           &beta, C, kR32F, ldc, compute, kGemmDefault);
  check(s, "cublasGemmEx");
}

namespace {
void check_gemm_args(const char* op, bool ta, bool tb, int M, int N, int K, const void* A, int lda, const void* B,
                     int ldb, const void* C, int ldc) {
  BL_CHECK(M >= 0 && N >= 0 && K >= 0, code::kInvalidArgument, "cuda ", op, ": negative size M=", M, " N=", N,
           " K=", K);
  BL_CHECK(ldc >= std::max(1, N), code::kInvalidArgument, "cuda ", op, ": ldc ", ldc, " < N ", N);
  BL_CHECK(lda >= std::max(1, ta ? M : K), code::kInvalidArgument, "cuda ", op, ": lda ", lda, " too small");
  BL_CHECK(ldb >= std::max(1, tb ? K : N), code::kInvalidArgument, "cuda ", op, ": ldb ", ldb, " too small");
  BL_CHECK(M == 0 || N == 0 || C, code::kInvalidArgument, "cuda ", op, ": null C");
  BL_CHECK(M == 0 || N == 0 || K == 0 || (A && B), code::kInvalidArgument, "cuda ", op, ": null A or B");
}
}  // namespace

void CudaBackend::gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                       int ldb, float beta, float* C, int ldc) {
  check_gemm_args("gemm", ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
  if (M == 0 || N == 0) return;
  auto lk = lock();
  enter();
  if (K == 0 || alpha == 0.f) {  // C = beta C; cuBLAS would reject some K == 0 leading dimensions
    cuda::scale_strided(st(stream_), C, M, N, ldc, beta);
    return;
  }
  blas_gemm_ex(ta, tb, M, N, K, alpha, A, cuda::blas::kR32F, lda, B, cuda::blas::kR32F, ldb, beta, C, ldc,
               tf32_ ? cuda::blas::kCompute32FFastTF32 : cuda::blas::kCompute32F);
}

void CudaBackend::gemm_strided_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                                       int64_t sa, const float* B, int ldb, int64_t sb, float beta, float* C,
                                       int ldc, int64_t sc, int batch) {
  check_gemm_args("gemm_strided_batched", ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
  BL_CHECK(batch >= 0, code::kInvalidArgument, "cuda gemm_strided_batched: batch ", batch, " < 0");
  if (M == 0 || N == 0 || batch == 0) return;
  auto lk = lock();
  enter();
  if (K == 0 || alpha == 0.f) {
    for (int i = 0; i < batch; ++i) cuda::scale_strided(st(stream_), C + i * sc, M, N, ldc, beta);
    return;
  }
  using namespace cuda::blas;
  Status s = api_->gemm_strided_batched_ex(blas_, tb ? kOpT : kOpN, ta ? kOpT : kOpN, N, M, K, &alpha, B, kR32F, ldb,
                                           sb, A, kR32F, lda, sa, &beta, C, kR32F, ldc, sc, batch,
                                           tf32_ ? kCompute32FFastTF32 : kCompute32F, kGemmDefault);
  check(s, "cublasGemmStridedBatchedEx");
}

void CudaBackend::gemm_bf16w(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                             const uint16_t* W, int ldw, float beta, float* C, int ldc) {
  check_gemm_args("gemm_bf16w", ta, tb, M, N, K, A, lda, W, ldw, C, ldc);
  if (M == 0 || N == 0) return;
  auto lk = lock();
  enter();
  if (K == 0 || alpha == 0.f) {
    cuda::scale_strided(st(stream_), C, M, N, ldc, beta);
    return;
  }
  // cuBLAS needs both inputs in bf16: round op(A)'s storage into scratch, packed.
  const int rows = ta ? K : M, cols = ta ? M : K;
  auto* a16 = static_cast<uint16_t*>(scratch(size_t(rows) * cols * sizeof(uint16_t)));
  cuda::f32_to_bf16(st(stream_), a16, A, rows, cols, lda);
  blas_gemm_ex(ta, tb, M, N, K, alpha, a16, cuda::blas::kR16BF, cols, W, cuda::blas::kR16BF, ldw, beta, C, ldc,
               cuda::blas::kCompute32F);
}

void CudaBackend::dgemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                        const double* B, int ldb, double beta, double* C, int ldc) {
  check_gemm_args("dgemm", ta, tb, M, N, K, A, lda, B, ldb, C, ldc);
  if (M == 0 || N == 0) return;
  auto lk = lock();
  enter();
  if (K == 0 || alpha == 0.0) {
    cuda::scale_strided(st(stream_), C, M, N, ldc, beta);
    return;
  }
  using namespace cuda::blas;
  check(api_->dgemm(blas_, tb ? kOpT : kOpN, ta ? kOpT : kOpN, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc),
        "cublasDgemm");
}

void CudaBackend::f32_to_bf16(uint16_t* dst, const float* src, int64_t n) {
  need(n >= 0, "f32_to_bf16", "n < 0");
  auto lk = lock();
  enter();
  cuda::f32_to_bf16(st(stream_), dst, src, 1, n, n);
}

void CudaBackend::bf16_to_f32(float* dst, const uint16_t* src, int64_t n) {
  need(n >= 0, "bf16_to_f32", "n < 0");
  auto lk = lock();
  enter();
  cuda::bf16_to_f32(st(stream_), dst, src, n);
}

// ---- elementwise / reductions ------------------------------------------------------------

#define BL_CUDA_OP(opname, valid)                          \
  need(valid, opname, "invalid size or null pointer");     \
  auto lk = lock();                                        \
  enter()

void CudaBackend::fill(float* x, float v, int64_t n) {
  BL_CUDA_OP("fill", n >= 0 && (n == 0 || x));
  cuda::fill(st(stream_), x, v, n);
}
void CudaBackend::axpy(int64_t n, float a, const float* x, float* y) {
  BL_CUDA_OP("axpy", n >= 0 && (n == 0 || (x && y)));
  cuda::axpy(st(stream_), n, a, x, y);
}
void CudaBackend::scale(int64_t n, float a, float* x) {
  BL_CUDA_OP("scale", n >= 0 && (n == 0 || x));
  cuda::scale(st(stream_), n, a, x);
}
void CudaBackend::add(int64_t n, const float* a, const float* b, float* out) {
  BL_CUDA_OP("add", n >= 0 && (n == 0 || (a && b && out)));
  cuda::add(st(stream_), n, a, b, out);
}

double CudaBackend::sum_squares(int64_t n, const float* x) {
  BL_CUDA_OP("sum_squares", n >= 0 && (n == 0 || x));
  if (n == 0) return 0.0;
  const size_t part = cuda::reduce_scratch_bytes(n);
  char* s = static_cast<char*>(scratch(part + sizeof(double)));
  auto* out = reinterpret_cast<double*>(s + part);
  cuda::sum_squares(st(stream_), out, x, n, s);
  check(cudaMemcpyAsync(host_result_, out, sizeof(double), cudaMemcpyDeviceToHost, st(stream_)), "sum_squares: copy");
  check(cudaStreamSynchronize(st(stream_)), "sum_squares: stream synchronize");
  double r;
  std::memcpy(&r, host_result_, sizeof r);
  return r;
}

bool CudaBackend::all_finite(int64_t n, const float* x) {
  BL_CUDA_OP("all_finite", n >= 0 && (n == 0 || x));
  if (n == 0) return true;
  auto* flag = static_cast<int*>(scratch(sizeof(int)));
  cuda::any_nonfinite(st(stream_), flag, x, n);
  check(cudaMemcpyAsync(host_result_, flag, sizeof(int), cudaMemcpyDeviceToHost, st(stream_)), "all_finite: copy");
  check(cudaStreamSynchronize(st(stream_)), "all_finite: stream synchronize");
  int r;
  std::memcpy(&r, host_result_, sizeof r);
  return r == 0;
}

// ---- model ops ------------------------------------------------------------------------------

void CudaBackend::embedding_fwd(float* out, const int32_t* ids, const float* table, int N, int d) {
  BL_CUDA_OP("embedding_fwd", N >= 0 && d >= 0 && (N == 0 || d == 0 || (out && ids && table)));
  cuda::embedding_fwd(st(stream_), out, ids, table, N, d);
}
void CudaBackend::embedding_bwd(float* dtable, const int32_t* ids, const float* dout, int N, int d) {
  BL_CUDA_OP("embedding_bwd", N >= 0 && d >= 0 && (N == 0 || d == 0 || (dtable && ids && dout)));
  cuda::embedding_bwd(st(stream_), dtable, ids, dout, N, d);
}
void CudaBackend::gather_rows(float* out, const float* x, const int32_t* idx, int n, int d) {
  BL_CUDA_OP("gather_rows", n >= 0 && d >= 0 && (n == 0 || d == 0 || (out && x && idx)));
  cuda::gather_rows(st(stream_), out, x, idx, n, d);
}
void CudaBackend::scatter_add_rows(float* dx, const float* dout, const int32_t* idx, int n, int d) {
  BL_CUDA_OP("scatter_add_rows", n >= 0 && d >= 0 && (n == 0 || d == 0 || (dx && dout && idx)));
  cuda::scatter_add_rows(st(stream_), dx, dout, idx, n, d);
}
void CudaBackend::rmsnorm_fwd(float* out, float* rstd, const float* x, const float* w, int N, int d, float eps) {
  BL_CUDA_OP("rmsnorm_fwd", N >= 0 && d > 0 && (N == 0 || (out && rstd && x && w)));
  cuda::rmsnorm_fwd(st(stream_), out, rstd, x, w, N, d, eps);
}
void CudaBackend::rmsnorm_bwd(float* dx, float* dw, const float* dout, const float* x, const float* w,
                              const float* rstd, int N, int d) {
  BL_CUDA_OP("rmsnorm_bwd", N >= 0 && d > 0 && (N == 0 || (dout && x && w && rstd)));
  float* sc = dw ? static_cast<float*>(scratch(cuda::rmsnorm_bwd_scratch_floats(N, d) * sizeof(float))) : nullptr;
  cuda::rmsnorm_bwd(st(stream_), dx, dw, dout, x, w, rstd, N, d, sc);
}
void CudaBackend::add_bias(float* x, const float* bias, int N, int d) {
  BL_CUDA_OP("add_bias", N >= 0 && d >= 0 && (N == 0 || d == 0 || (x && bias)));
  cuda::add_bias(st(stream_), x, bias, N, d);
}
void CudaBackend::bias_bwd(float* dbias, const float* dout, int N, int d) {
  BL_CUDA_OP("bias_bwd", N >= 0 && d >= 0 && (N == 0 || d == 0 || (dbias && dout)));
  if (N == 0 || d == 0) return;
  float* sc = static_cast<float*>(scratch(cuda::bias_bwd_scratch_floats(N, d) * sizeof(float)));
  cuda::bias_bwd(st(stream_), dbias, dout, N, d, sc);
}
void CudaBackend::rope_fwd(float* x, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  BL_CUDA_OP("rope_fwd", N >= 0 && H >= 0 && hd >= 0 && hd % 2 == 0 && (N == 0 || H == 0 || hd == 0 || (x && pos && inv_freq)));
  cuda::rope_fwd(st(stream_), x, pos, inv_freq, N, H, hd);
}
void CudaBackend::rope_bwd(float* dx, const int32_t* pos, const float* inv_freq, int N, int H, int hd) {
  BL_CUDA_OP("rope_bwd", N >= 0 && H >= 0 && hd >= 0 && hd % 2 == 0 && (N == 0 || H == 0 || hd == 0 || (dx && pos && inv_freq)));
  cuda::rope_bwd(st(stream_), dx, pos, inv_freq, N, H, hd);
}

namespace {
cuda::AttnDims dims(const AttnShape& s) { return cuda::AttnDims{s.B, s.T, s.H, s.Hkv, s.hd}; }
}  // namespace

size_t CudaBackend::attention_saved_floats(const AttnShape& s) { return cuda::attention_saved_floats(dims(s)); }

void CudaBackend::attention_fwd(float* out, float* saved, const float* q, const float* k, const float* v,
                                const uint8_t* mask, const AttnShape& s, float scale) {
  cuda::attention_validate(dims(s));
  BL_CUDA_OP("attention_fwd", s.B * int64_t(s.T) == 0 || (out && saved && q && k && v));
  cuda::attention_fwd(st(stream_), out, saved, q, k, v, mask, dims(s), scale);
}

void CudaBackend::attention_bwd(float* dq, float* dk, float* dv, const float* dout, const float* saved,
                                const float* q, const float* k, const float* v, const uint8_t* mask,
                                const AttnShape& s, float scale) {
  cuda::attention_validate(dims(s));
  BL_CUDA_OP("attention_bwd", s.B * int64_t(s.T) == 0 || (dout && saved && q && k && v));
  if (s.B * int64_t(s.T) == 0 || (!dq && !dk && !dv)) return;
  float* sc = static_cast<float*>(scratch(cuda::attention_bwd_scratch_floats(dims(s)) * sizeof(float)));
  cuda::attention_bwd(st(stream_), dq, dk, dv, dout, saved, q, k, v, mask, dims(s), scale, sc);
}

void CudaBackend::swiglu_fwd(float* out, const float* gate, const float* up, int64_t n) {
  BL_CUDA_OP("swiglu_fwd", n >= 0 && (n == 0 || (out && gate && up)));
  cuda::swiglu_fwd(st(stream_), out, gate, up, n);
}
void CudaBackend::swiglu_bwd(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                             int64_t n) {
  BL_CUDA_OP("swiglu_bwd", n >= 0 && (n == 0 || (dout && gate && up)));
  cuda::swiglu_bwd(st(stream_), dgate, dup, dout, gate, up, n);
}
void CudaBackend::dropout_fwd(float* out, const float* x, int64_t n, float p, uint64_t seed) {
  BL_CUDA_OP("dropout_fwd", n >= 0 && p >= 0.f && p < 1.f && (n == 0 || (out && x)));
  cuda::dropout_fwd(st(stream_), out, x, n, p, seed);
}
void CudaBackend::dropout_bwd(float* dx, const float* dout, int64_t n, float p, uint64_t seed) {
  BL_CUDA_OP("dropout_bwd", n >= 0 && p >= 0.f && p < 1.f && (n == 0 || (dx && dout)));
  cuda::dropout_bwd(st(stream_), dx, dout, n, p, seed);
}
void CudaBackend::rows_dot_fwd(float* logits, const float* h, const float* W, const int32_t* rows, int Bn, int C,
                               int d) {
  BL_CUDA_OP("rows_dot_fwd", Bn >= 0 && C >= 0 && d >= 0 && (Bn == 0 || C == 0 || (logits && h && W && rows)));
  cuda::rows_dot_fwd(st(stream_), logits, h, W, rows, Bn, C, d);
}
void CudaBackend::rows_dot_bwd(float* dh, float* dW, const float* dlogits, const float* h, const float* W,
                               const int32_t* rows, int Bn, int C, int d) {
  BL_CUDA_OP("rows_dot_bwd", Bn >= 0 && C >= 0 && d >= 0 && (Bn == 0 || C == 0 || (dlogits && h && W && rows)));
  cuda::rows_dot_bwd(st(stream_), dh, dW, dlogits, h, W, rows, Bn, C, d);
}
void CudaBackend::softmax_xent(float* loss, float* probs, float* dlogits, const float* logits,
                               const int32_t* labels, int N, int C, float dscale) {
  BL_CUDA_OP("softmax_xent", N >= 0 && C > 0 && (N == 0 || (loss && logits && labels)));
  cuda::softmax_xent(st(stream_), loss, probs, dlogits, logits, labels, N, C, dscale);
}
void CudaBackend::adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                        float eps, float wd, int step, float grad_scale) {
  BL_CUDA_OP("adamw", n >= 0 && step >= 1 && (n == 0 || (p && g && m && v)));
  cuda::adamw(st(stream_), p, g, m, v, n, lr, b1, b2, eps, wd, step, grad_scale);
}

#undef BL_CUDA_OP

// ---- process-wide instance and probe ------------------------------------------------------------

namespace {
std::mutex g_inst_mu;
CudaBackend* g_inst = nullptr;
std::unique_ptr<Error> g_inst_error;  // why construction failed (remembered)
}  // namespace

Backend& cuda_backend() {
  std::lock_guard<std::mutex> lk(g_inst_mu);
  if (g_inst) {
    cuda::throw_if_broken();
    return *g_inst;
  }
  if (g_inst_error) throw *g_inst_error;
  try {
    g_inst = new CudaBackend(env_device());  // never deleted: outlives every Buffer
  } catch (const Error& e) {
    // Out of memory may pass (another process frees the device): try again
    // next time. Anything else (no device, no cuBLAS, too old) is permanent.
    if (e.code() != code::kCudaOom) g_inst_error = std::make_unique<Error>(e);
    throw;
  }
  return *g_inst;
}

CudaBackend* as_cuda(Backend& be) { return dynamic_cast<CudaBackend*>(&be); }

bool cuda_memory(DeviceMemory* out, bool reset_peak) {
  CudaBackend* b = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_inst_mu);
    b = g_inst;
  }
  if (!b) return false;
  *out = b->memory_stats(reset_peak);
  return true;
}

std::string cuda_probe(bool* usable) {
  *usable = false;
  try {
    {
      std::lock_guard<std::mutex> lk(g_inst_mu);
      if (g_inst) {
        std::string broken = cuda::sticky_error();
        if (!broken.empty()) return g_inst->describe() + "; unusable after error: " + broken;
        *usable = true;
        return g_inst->describe() + " (in use)";
      }
      if (g_inst_error) return g_inst_error->what();
    }
    std::string dev = open_device(env_device());
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    std::ostringstream os;
    os << dev << ", driver " << drv / 1000 << "." << (drv % 1000) / 10 << ", runtime " << rt / 1000 << "."
       << (rt % 1000) / 10;
    std::string why;
    const cuda::blas::Api* api = cuda::blas::load(&why);
    if (!api) {
      os << "; " << why.substr(0, why.find('\n')) << " (set BAYESLORA_CUBLAS)";
      return os.str();
    }
    os << ", cuBLAS ";
    if (api->version) os << api->version / 10000 << "." << (api->version / 100) % 100 << "." << api->version % 100 << " ";
    os << "from " << api->path;
    *usable = true;
    return os.str();
  } catch (const std::exception& e) {
    *usable = false;
    return e.what();
  }
}

// The same per-op prologue as above (validate, lock, bind the device).
#define BL_CUDA_OP(opname, valid)                          \
  need(valid, opname, "invalid size or null pointer");     \
  auto lk = lock();                                        \
  enter()

// ---- LoRA branch ---------------------------------------------------------------------------
// Ranks up to kLoraMaxFusedRank use the kernels of kernels/lora.cuh; larger
// ranks run the CPU reference's GEMM sequence on cuBLAS.

void CudaBackend::lora_fwd(float* y, float* u, const float* x, const float* A, const float* B, int N, int d_in,
                           int d_out, int r, float s) {
  BL_CUDA_OP("lora_fwd", N >= 0 && d_in > 0 && d_out > 0 && r > 0 && (N == 0 || (y && u && x && A && B)));
  if (N == 0) return;
  if (!cuda::lora_rank_fused(r)) {
    gemm(false, true, N, r, d_in, 1.0f, x, d_in, A, d_in, 0.0f, u, r);
    gemm(false, true, N, d_out, r, s, u, r, B, r, 1.0f, y, d_out);
    return;
  }
  cuda::lora_down(st(stream_), u, x, A, /*sj=*/d_in, /*sk=*/1, N, d_in, r, 1.0f);       // u = x A^T
  cuda::lora_up(st(stream_), y, u, B, /*sc=*/r, /*sj=*/1, N, d_out, r, s, 0.0f, 0);     // y += s u B^T
}

void CudaBackend::lora_bwd(float* gu, float* dA, float* dB, float* dx, float* work, const float* g, const float* x,
                           const float* u, const float* A, const float* B, int N, int d_in, int d_out, int r, float s,
                           float p, uint64_t seed) {
  BL_CUDA_OP("lora_bwd", N >= 0 && d_in > 0 && d_out > 0 && r > 0 && p >= 0.f && p < 1.f &&
                             (N == 0 || (gu && g && u && A && B && (!dA || x))));
  if (N == 0) return;
  if (!cuda::lora_rank_fused(r)) {
    need(!(dx && p > 0.f) || work, "lora_bwd", "work is required when p > 0");
    gemm(false, false, N, r, d_out, s, g, d_out, B, r, 0.0f, gu, r);
    if (dB) gemm(true, false, d_out, r, N, s, g, d_out, u, r, 1.0f, dB, r);
    if (dA) gemm(true, false, r, d_in, N, 1.0f, gu, r, x, d_in, 1.0f, dA, d_in);
    if (dx && p > 0.f) {
      gemm(false, false, N, d_in, r, 1.0f, gu, r, A, d_in, 0.0f, work, d_in);
      cuda::dropout_bwd(st(stream_), dx, work, int64_t(N) * d_in, p, seed);
    } else if (dx) {
      gemm(false, false, N, d_in, r, 1.0f, gu, r, A, d_in, 1.0f, dx, d_in);
    }
    return;
  }
  // gu = s g B: W(j, c) = B[c*r + j].
  cuda::lora_down(st(stream_), gu, g, B, /*sj=*/1, /*sk=*/r, N, d_out, r, s);
  // One scratch for both lora_outer calls, sized for the larger of the two
  // (not simply for max(d_in, d_out): see lora_bwd_scratch_floats).
  float* sc = nullptr;
  if (dA || dB) sc = static_cast<float*>(scratch(cuda::lora_bwd_scratch_floats(N, d_in, d_out, r) * sizeof(float)));
  // dB(c, j) += s sum_n g[n, c] u[n, j]; dB is d_out x r.
  if (dB) cuda::lora_outer(st(stream_), dB, /*oc=*/r, /*oj=*/1, g, u, N, d_out, r, s, sc);
  // dA(j, k) += sum_n gu[n, j] x[n, k]; as D(c = k, j) at j*d_in + k.
  if (dA) cuda::lora_outer(st(stream_), dA, /*oc=*/1, /*oj=*/d_in, x, gu, N, d_in, r, 1.0f, sc);
  // dx += mask(gu A): W(k, j) = A[j*d_in + k]; the dropout mask is applied in
  // the same pass, so `work` is not needed here.
  if (dx) cuda::lora_up(st(stream_), dx, gu, A, /*sc=*/1, /*sj=*/d_in, N, d_in, r, 1.0f, p, seed);
}

// ---- K-FAC factor building blocks ------------------------------------------------------------

void CudaBackend::token_reduce(float* out, const float* X, const uint8_t* mask, const int32_t* ex, int n, int T,
                               int d, bool mean) {
  BL_CUDA_OP("token_reduce", n >= 0 && T >= 1 && d >= 0 && (n == 0 || d == 0 || (out && X && ex)));
  cuda::token_reduce(st(stream_), out, X, mask, ex, n, T, d, mean);
}

void CudaBackend::kfac_accumulate(double* S, const float* X, int n, int d, int ldx, double scale, float* work) {
  BL_CUDA_OP("kfac_accumulate", n >= 0 && d >= 0 && ldx >= d && (n == 0 || d == 0 || (S && X && work)));
  if (n == 0 || d == 0 || scale == 0) return;
  // float32 batch Gram on cuBLAS into `work`, then the float64 running sum.
  gemm(true, false, d, d, n, 1.0f, X, ldx, X, ldx, 0.0f, work, d);
  cuda::add_scaled_f64(st(stream_), S, work, int64_t(d) * d, scale);
}

void CudaBackend::gram64(double* G, const double* M, int d, int n, int ldm) {
  BL_CUDA_OP("gram64", d >= 0 && n >= 0 && ldm >= n && (n == 0 || (G && (d == 0 || M))));
  if (n == 0) return;
  if (d == 0) {
    check(cudaMemsetAsync(G, 0, size_t(n) * n * sizeof(double), st(stream_)), "cudaMemset");
    return;
  }
  dgemm(true, false, n, n, d, 1.0, M, ldm, M, ldm, 0.0, G, n);
  cuda::mirror_upper_f64(st(stream_), G, n);
}

#undef BL_CUDA_OP

}  // namespace bl
