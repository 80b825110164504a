// CPU emulator of the cuBLAS entry points that cuda/cublas_loader.cu binds, for
// the "CUDA emulation" test build (CUDA sources compiled as C++, device memory
// is host memory). Point BAYESLORA_CUBLAS at the shared library built from this
// file. It follows cuBLAS's documented semantics, not our backend's habits, so
// that mistakes in our calls (column-major layout, op(A)/op(B), leading
// dimensions, strides, alpha/beta, data and compute types) show up on the CPU:
//   C = alpha * op(A) * op(B) + beta * C, column-major, C is m x n, inner size k;
//   beta == 0: C is not read (garbage or NaN there must not leak into the result);
//   alpha == 0 or k == 0: A and B are not read (as in reference BLAS);
//   argument errors return the documented cublasStatus_t values.
// Numerics: products are accumulated in double and rounded once to the output
// type (bf16 outputs round-to-nearest-even). The reduced-precision compute
// types (32F_FAST_TF32 / _FAST_16BF / _FAST_16F) round the A and B elements to
// that format first, the worst case cuBLAS allows, so tolerances in our tests
// that only hold for exact fp32 products fail here rather than on a GPU.
// Diagnostics for tests: bl_cublas_emu_calls / _errors / _warnings; a warning
// is counted (and printed once) when one strided-batched call writes the same
// C element from two batch entries, which is a data race on a real GPU.
// Single-threaded: the emulator only runs tiny test models.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <set>
#include <vector>

typedef struct CUstream_st* cudaStream_t;

// The opaque handle type; only this file sees inside it.
struct cublasContext {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
typedef cublasContext* cublasHandle_t;
typedef int cublasStatus_t;

#define BL_EMU_API extern "C" __attribute__((visibility("default")))

namespace {

// cublasStatus_t (cublas_api.h)
constexpr int kSuccess = 0;
constexpr int kNotInitialized = 1;
constexpr int kAllocFailed = 3;
constexpr int kInvalidValue = 7;
constexpr int kNotSupported = 15;
constexpr int kExecutionFailed = 13;

// cublasOperation_t
constexpr int kOpN = 0, kOpT = 1, kOpC = 2;

// cudaDataType_t (library_types.h)
constexpr int kR32F = 0, kR64F = 1, kR16BF = 14;

// cublasComputeType_t
constexpr int kCompute32F = 68, kCompute32FPedantic = 69, kCompute32FFast16F = 74,
              kCompute32FFast16BF = 75, kCompute32FFastTF32 = 77, kCompute64F = 70,
              kCompute64FPedantic = 71;

std::atomic<int> g_calls{0};     // GEMM entry-point calls, any outcome
std::atomic<int> g_errors{0};    // ... of which returned a status other than success
std::atomic<int> g_warnings{0};  // racy-output calls (see header)
std::atomic<bool> g_warned{false};

// Live handles: a destroyed or never-created handle is reported as
// NOT_INITIALIZED instead of being dereferenced.
std::mutex g_mu;
std::set<const cublasContext*>& live() {
  static std::set<const cublasContext*>* s = new std::set<const cublasContext*>();
  return *s;
}
bool is_live(const cublasContext* h) {
  if (!h) return false;
  std::lock_guard<std::mutex> lock(g_mu);
  return live().count(h) != 0;
}

// ---- number formats ----------------------------------------------------------

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

double bf16_to_double(uint16_t h) { return bits_float(uint32_t(h) << 16); }

// float -> bf16, round to nearest, ties to even; NaN stays a (quiet) NaN.
uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return uint16_t((u >> 16) | 0x0040u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// double -> bf16 with a single rounding: first to float with round-to-odd
// (keeps the sticky information in the last bit; float has 16 more bits than
// bf16), then float -> bf16 round-to-nearest-even.
uint16_t double_to_bf16(double x) {
  if (std::isnan(x)) return 0x7FC0u;
  float f = static_cast<float>(x);
  if (std::isfinite(x) && static_cast<double>(f) != x) {
    if (std::fabs(static_cast<double>(f)) > std::fabs(x)) f = std::nextafter(f, 0.0f);  // truncate
    f = bits_float(float_bits(f) | 1u);
  }
  return float_to_bf16(f);
}

// fp32 -> TF32 (8-bit exponent, 10 stored mantissa bits), nearest, ties away
// from zero (the conversion tensor-core TF32 paths use). Kept as a float.
float round_tf32(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7F800000u) == 0x7F800000u) return f;  // inf / NaN unchanged
  u = (u + 0x1000u) & ~0x1FFFu;
  return bits_float(u);
}

// fp32 -> IEEE fp16 value (nearest even, with fp16's range and subnormals).
double round_fp16(double x) {
  if (!std::isfinite(x) || x == 0.0) return x;
  int e;
  std::frexp(x, &e);                    // |x| in [2^(e-1), 2^e)
  int q = std::max(e - 1, -14) - 10;    // quantum exponent: 10 fraction bits, emin -14
  double r = std::ldexp(std::nearbyint(std::ldexp(x, -q)), q);
  if (std::fabs(r) > 65504.0) return std::copysign(INFINITY, x);
  return r;
}

enum class InRound { kNone, kTF32, kBF16, kFP16 };

// Reads element idx of a matrix of the given type as a double, after the
// compute type's input rounding.
double load(const void* p, int type, long long idx, InRound r) {
  switch (type) {
    case kR32F: {
      float f = static_cast<const float*>(p)[idx];
      switch (r) {
        case InRound::kNone: return f;
        case InRound::kTF32: return round_tf32(f);
        case InRound::kBF16: return bf16_to_double(float_to_bf16(f));
        case InRound::kFP16: return round_fp16(f);
      }
      return f;
    }
    case kR64F: return static_cast<const double*>(p)[idx];
    default: return bf16_to_double(static_cast<const uint16_t*>(p)[idx]);
  }
}

void store(void* p, int type, long long idx, double v) {
  switch (type) {
    case kR32F: static_cast<float*>(p)[idx] = static_cast<float>(v); break;
    case kR64F: static_cast<double*>(p)[idx] = v; break;
    default: static_cast<uint16_t*>(p)[idx] = double_to_bf16(v); break;
  }
}

// ---- the GEMM ------------------------------------------------------------------

struct Gemm {
  int ta, tb, m, n, k;
  const void* A;
  int atype, lda;
  long long sa;
  const void* B;
  int btype, ldb;
  long long sb;
  void* C;
  int ctype, ldc;
  long long sc;
  int batch;
  double alpha, beta;
  InRound round;
};

// Validation shared by every GEMM entry point (cuBLAS's documented
// CUBLAS_STATUS_INVALID_VALUE conditions). alpha/beta were checked non-null by
// the caller before they were read.
int validate(const Gemm& g) {
  auto op_ok = [](int op) { return op == kOpN || op == kOpT || op == kOpC; };
  if (!op_ok(g.ta) || !op_ok(g.tb)) return kInvalidValue;
  if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch < 0) return kInvalidValue;
  // A is stored m x k when not transposed, k x m otherwise; B k x n or n x k.
  const int a_rows = g.ta == kOpN ? g.m : g.k;
  const int b_rows = g.tb == kOpN ? g.k : g.n;
  if (g.lda < std::max(1, a_rows)) return kInvalidValue;
  if (g.ldb < std::max(1, b_rows)) return kInvalidValue;
  if (g.ldc < std::max(1, g.m)) return kInvalidValue;
  const bool any_output = g.m > 0 && g.n > 0 && g.batch > 0;
  if (any_output && !g.C) return kInvalidValue;
  if (any_output && g.k > 0 && g.alpha != 0.0 && (!g.A || !g.B)) return kInvalidValue;
  return kSuccess;
}

// True when two batch entries of C share an element (exact, for small problems).
bool outputs_overlap(const Gemm& g) {
  if (g.batch < 2 || g.m == 0 || g.n == 0) return false;
  const long long span = static_cast<long long>(g.ldc) * (g.n - 1) + g.m;
  if (g.sc >= span || -g.sc >= span) return false;
  const long long total = static_cast<long long>(g.m) * g.n * g.batch;
  if (g.sc == 0) return true;
  if (total > (1LL << 22)) return false;  // too big to check; the emulator runs tiny models
  std::vector<long long> offs;
  offs.reserve(static_cast<size_t>(total));
  for (int b = 0; b < g.batch; ++b)
    for (int j = 0; j < g.n; ++j)
      for (int i = 0; i < g.m; ++i) offs.push_back(b * g.sc + static_cast<long long>(j) * g.ldc + i);
  std::sort(offs.begin(), offs.end());
  return std::adjacent_find(offs.begin(), offs.end()) != offs.end();
}

int run(Gemm g) {
  int s = validate(g);
  if (s != kSuccess) return s;
  // Fault injection (test/gpu/faults.test.mjs): while BL_CUBLAS_EMU_FAIL is
  // set and non-empty, every valid GEMM fails as a failed kernel would.
  if (const char* f = std::getenv("BL_CUBLAS_EMU_FAIL"); f && *f) return kExecutionFailed;
  if (g.m == 0 || g.n == 0 || g.batch == 0) return kSuccess;
  if (outputs_overlap(g)) {
    g_warnings.fetch_add(1);
    if (!g_warned.exchange(true))
      std::fprintf(stderr,
                   "cublas_emu: warning: strided-batched GEMM writes the same C element from two "
                   "batch entries (m=%d n=%d ldc=%d strideC=%lld batch=%d): a race on a GPU\n",
                   g.m, g.n, g.ldc, g.sc, g.batch);
  }
  const bool use_ab = g.k > 0 && g.alpha != 0.0;
  // Packed operands: ap[i*k + l] = op(A)(i, l), bp[j*k + l] = op(B)(l, j), so
  // the inner product walks both contiguously.
  std::vector<double> ap, bp;
  try {
    if (use_ab) {
      ap.resize(static_cast<size_t>(g.m) * g.k);
      bp.resize(static_cast<size_t>(g.n) * g.k);
    }
  } catch (const std::bad_alloc&) {
    return kAllocFailed;
  }
  for (int b = 0; b < g.batch; ++b) {
    if (use_ab) {
      const long long oa = b * g.sa, ob = b * g.sb;
      // op(A)(i, l) = A[i + l*lda] (N) or A[l + i*lda] (T/C; real types).
      for (int i = 0; i < g.m; ++i)
        for (int l = 0; l < g.k; ++l) {
          long long idx = g.ta == kOpN ? i + static_cast<long long>(l) * g.lda : l + static_cast<long long>(i) * g.lda;
          ap[static_cast<size_t>(i) * g.k + l] = load(g.A, g.atype, oa + idx, g.round);
        }
      // op(B)(l, j) = B[l + j*ldb] (N) or B[j + l*ldb] (T/C).
      for (int j = 0; j < g.n; ++j)
        for (int l = 0; l < g.k; ++l) {
          long long idx = g.tb == kOpN ? l + static_cast<long long>(j) * g.ldb : j + static_cast<long long>(l) * g.ldb;
          bp[static_cast<size_t>(j) * g.k + l] = load(g.B, g.btype, ob + idx, g.round);
        }
    }
    const long long oc = b * g.sc;
    for (int j = 0; j < g.n; ++j) {
      const double* bj = use_ab ? bp.data() + static_cast<size_t>(j) * g.k : nullptr;
      for (int i = 0; i < g.m; ++i) {
        double acc = 0.0;
        if (use_ab) {
          const double* ai = ap.data() + static_cast<size_t>(i) * g.k;
          double dot = 0.0;
          for (int l = 0; l < g.k; ++l) dot += ai[l] * bj[l];
          acc = g.alpha * dot;
        }
        const long long idx = oc + i + static_cast<long long>(j) * g.ldc;
        if (g.beta != 0.0) acc += g.beta * load(g.C, g.ctype, idx, InRound::kNone);
        store(g.C, g.ctype, idx, acc);
      }
    }
  }
  return kSuccess;
}

// Maps (Atype, Btype, Ctype, computeType) to the emulated input rounding, per
// the cublasGemmEx support table (the real-valued 32F/64F/16BF rows). Returns
// false for combinations cuBLAS does not support or the emulator lacks
// (16F, integer and complex types).
bool ex_combo(int at, int bt, int ct, int compute, InRound* r, bool* f64_scale) {
  *r = InRound::kNone;
  *f64_scale = false;
  switch (compute) {
    case kCompute32F:
    case kCompute32FPedantic:
      if (at == kR16BF && bt == kR16BF && (ct == kR16BF || ct == kR32F)) return true;
      return at == kR32F && bt == kR32F && ct == kR32F;
    case kCompute32FFastTF32:
    case kCompute32FFast16BF:
    case kCompute32FFast16F:
      if (!(at == kR32F && bt == kR32F && ct == kR32F)) return false;
      *r = compute == kCompute32FFastTF32 ? InRound::kTF32
           : compute == kCompute32FFast16BF ? InRound::kBF16
                                            : InRound::kFP16;
      return true;
    case kCompute64F:
    case kCompute64FPedantic:
      *f64_scale = true;
      return at == kR64F && bt == kR64F && ct == kR64F;
    default: return false;
  }
}

// cublasGemmAlgo_t: DEFAULT (-1), ALGO0..23, DEFAULT_TENSOR_OP (99), ALGO0..15_TENSOR_OP.
bool algo_ok(int algo) { return algo == -1 || (algo >= 0 && algo <= 23) || (algo >= 99 && algo <= 115); }

int finish(int s) {
  if (s != kSuccess) g_errors.fetch_add(1);
  return s;
}

int gemm_ex_common(cublasHandle_t h, int ta, int tb, int m, int n, int k, const void* alpha, const void* A,
                   int at, int lda, long long sa, const void* B, int bt, int ldb, long long sb,
                   const void* beta, void* C, int ct, int ldc, long long sc, int batch, int compute, int algo) {
  g_calls.fetch_add(1);
  if (!is_live(h)) return finish(kNotInitialized);
  InRound r;
  bool f64;
  if (!ex_combo(at, bt, ct, compute, &r, &f64) || !algo_ok(algo)) return finish(kNotSupported);
  if (!alpha || !beta) return finish(kInvalidValue);
  // The scalars' type follows the compute type (host pointer mode).
  double al = f64 ? *static_cast<const double*>(alpha) : *static_cast<const float*>(alpha);
  double be = f64 ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
  return finish(run(Gemm{ta, tb, m, n, k, A, at, lda, sa, B, bt, ldb, sb, C, ct, ldc, sc, batch, al, be, r}));
}

}  // namespace

// ---- exported C ABI (prototypes as in cublas_api.h) ----------------------------

BL_EMU_API cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (!handle) return kInvalidValue;
  cublasContext* h = new (std::nothrow) cublasContext();
  if (!h) return kAllocFailed;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    live().insert(h);
  }
  *handle = h;
  return kSuccess;
}

BL_EMU_API cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!handle || live().erase(handle) == 0) return kNotInitialized;
  }
  delete handle;
  return kSuccess;
}

BL_EMU_API cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (!is_live(handle)) return kNotInitialized;
  handle->stream = stream;  // work runs synchronously on the host; kept for completeness
  return kSuccess;
}

BL_EMU_API cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (!is_live(handle)) return kNotInitialized;
  // cuBLAS requires the user workspace to be aligned to at least 256 bytes.
  if (workspace && reinterpret_cast<uintptr_t>(workspace) % 256 != 0) return kInvalidValue;
  handle->workspace = workspace;
  handle->workspace_bytes = bytes;
  return kSuccess;
}

BL_EMU_API cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda, const float* B, int ldb,
                                         const float* beta, float* C, int ldc) {
  g_calls.fetch_add(1);
  if (!is_live(handle)) return finish(kNotInitialized);
  if (!alpha || !beta) return finish(kInvalidValue);
  return finish(run(Gemm{transa, transb, m, n, k, A, kR32F, lda, 0, B, kR32F, ldb, 0, C, kR32F, ldc, 0, 1, *alpha,
                         *beta, InRound::kNone}));
}

BL_EMU_API cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, int transa, int transb, int m, int n,
                                                    int k, const float* alpha, const float* A, int lda,
                                                    long long strideA, const float* B, int ldb, long long strideB,
                                                    const float* beta, float* C, int ldc, long long strideC,
                                                    int batchCount) {
  g_calls.fetch_add(1);
  if (!is_live(handle)) return finish(kNotInitialized);
  if (!alpha || !beta) return finish(kInvalidValue);
  return finish(run(Gemm{transa, transb, m, n, k, A, kR32F, lda, strideA, B, kR32F, ldb, strideB, C, kR32F, ldc,
                         strideC, batchCount, *alpha, *beta, InRound::kNone}));
}

BL_EMU_API cublasStatus_t cublasDgemm_v2(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                         const double* alpha, const double* A, int lda, const double* B, int ldb,
                                         const double* beta, double* C, int ldc) {
  g_calls.fetch_add(1);
  if (!is_live(handle)) return finish(kNotInitialized);
  if (!alpha || !beta) return finish(kInvalidValue);
  return finish(run(Gemm{transa, transb, m, n, k, A, kR64F, lda, 0, B, kR64F, ldb, 0, C, kR64F, ldc, 0, 1, *alpha,
                         *beta, InRound::kNone}));
}

BL_EMU_API cublasStatus_t cublasGemmEx(cublasHandle_t handle, int transa, int transb, int m, int n, int k,
                                       const void* alpha, const void* A, int Atype, int lda, const void* B, int Btype,
                                       int ldb, const void* beta, void* C, int Ctype, int ldc, int computeType,
                                       int algo) {
  return gemm_ex_common(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0, beta, C, Ctype,
                        ldc, 0, 1, computeType, algo);
}

BL_EMU_API cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, int transa, int transb, int m, int n,
                                                     int k, const void* alpha, const void* A, int Atype, int lda,
                                                     long long strideA, const void* B, int Btype, int ldb,
                                                     long long strideB, const void* beta, void* C, int Ctype,
                                                     int ldc, long long strideC, int batchCount, int computeType,
                                                     int algo) {
  return gemm_ex_common(handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA, B, Btype, ldb, strideB, beta,
                        C, Ctype, ldc, strideC, batchCount, computeType, algo);
}

// libraryPropertyType: MAJOR_VERSION 0, MINOR_VERSION 1, PATCH_LEVEL 2. The
// emulator reports 13.0.0 (it stands in for cuBLAS 13; the path says emulator).
BL_EMU_API cublasStatus_t cublasGetProperty(int type, int* value) {
  if (!value) return kInvalidValue;
  switch (type) {
    case 0: *value = 13; return kSuccess;
    case 1: *value = 0; return kSuccess;
    case 2: *value = 0; return kSuccess;
    default: return kInvalidValue;
  }
}

BL_EMU_API const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case 0: return "CUBLAS_STATUS_SUCCESS";
    case 1: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
    case 7: return "CUBLAS_STATUS_INVALID_VALUE";
    case 8: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case 11: return "CUBLAS_STATUS_MAPPING_ERROR";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case 14: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 16: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "<unknown>";
  }
}

// ---- test hooks ------------------------------------------------------------------

BL_EMU_API int bl_cublas_emu_calls(void) { return g_calls.load(); }
BL_EMU_API int bl_cublas_emu_errors(void) { return g_errors.load(); }
BL_EMU_API int bl_cublas_emu_warnings(void) { return g_warnings.load(); }
