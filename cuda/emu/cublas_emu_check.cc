// Self-check of the CPU cuBLAS emulator (cuda/emu/cublas_emu.cc), or of any
// library with cuBLAS's C ABI: `cublas_emu_check <path to library>`.
// Every GEMM entry point is compared with a float64 reference computed on the
// logical matrices op(A), op(B), C row by row; the operands are stored
// column-major in padded buffers whose padding (and the gaps between batch
// entries) holds NaN, so a wrong lda/ldb/stride reads poison, and the output
// buffer's padding holds a sentinel that must survive the call. Cases cover
// every op pair, leading dimensions above the minimum, strides (including a
// broadcast stride 0), batch counts, alpha/beta values with beta = 0 over a
// NaN-filled C, the documented GemmEx type/compute combinations, bf16 outputs
// (bit-exact against a reference rounding of the exact result) and each
// documented error status. Prints "N checks passed"; exits 1 on any failure.
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

// ---- the cuBLAS C ABI, as documented (enums passed as int) ---------------------
typedef struct CUstream_st* cudaStream_t;
typedef struct cublasContext* cublasHandle_t;

typedef int (*CreateFn)(cublasHandle_t*);
typedef int (*DestroyFn)(cublasHandle_t);
typedef int (*SetStreamFn)(cublasHandle_t, cudaStream_t);
typedef int (*SetWorkspaceFn)(cublasHandle_t, void*, size_t);
typedef int (*SgemmFn)(cublasHandle_t, int, int, int, int, int, const float*, const float*, int, const float*, int,
                       const float*, float*, int);
typedef int (*SgemmSBFn)(cublasHandle_t, int, int, int, int, int, const float*, const float*, int, long long,
                         const float*, int, long long, const float*, float*, int, long long, int);
typedef int (*DgemmFn)(cublasHandle_t, int, int, int, int, int, const double*, const double*, int, const double*,
                       int, const double*, double*, int);
typedef int (*GemmExFn)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int, const void*, int,
                        int, const void*, void*, int, int, int, int);
typedef int (*GemmSBExFn)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int, long long,
                          const void*, int, int, long long, const void*, void*, int, int, long long, int, int, int);
typedef int (*GetPropertyFn)(int, int*);
typedef const char* (*StatusStringFn)(int);
typedef int (*CounterFn)(void);

namespace {

constexpr int kSuccess = 0, kNotInitialized = 1, kInvalidValue = 7, kNotSupported = 15;
constexpr int kOpN = 0, kOpT = 1, kOpC = 2;
constexpr int kR32F = 0, kR64F = 1, kR16F = 2, kR16BF = 14;
constexpr int kC32F = 68, kC32FPedantic = 69, kC32FFastTF32 = 77, kC64F = 70, kC16F = 64;
constexpr int kAlgoDefault = -1, kAlgoTensorDefault = 99;

struct Lib {
  CreateFn create;
  DestroyFn destroy;
  SetStreamFn set_stream;
  SetWorkspaceFn set_workspace;
  SgemmFn sgemm;
  SgemmSBFn sgemm_sb;
  DgemmFn dgemm;
  GemmExFn gemm_ex;
  GemmSBExFn gemm_sb_ex;
  GetPropertyFn get_property;
  StatusStringFn status_string;
  CounterFn calls;    // emulator-only hooks (null for a real cuBLAS)
  CounterFn warnings;
} L;

int g_checks = 0, g_failures = 0;

void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    if (g_failures <= 40) std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// ---- reference number formats (written independently of the emulator) -----------

// Nearest-even rounding of an exact double to bf16's grid (8 significant bits,
// minimum normal exponent -126, largest finite 0x7F7F), computed arithmetically.
double ref_round_bf16(double x) {
  if (std::isnan(x) || std::isinf(x) || x == 0.0) return x;
  const double ax = std::fabs(x);
  int e = std::ilogb(ax);            // ax in [2^e, 2^(e+1))
  if (e < -126) e = -126;
  const double q = std::ldexp(1.0, e - 7);  // spacing of the grid at ax
  double t = ax / q;                  // exact (power-of-two scaling)
  double fl = std::floor(t);
  double rest = t - fl;
  double r = fl;
  if (rest > 0.5 || (rest == 0.5 && std::fmod(fl, 2.0) != 0.0)) r = fl + 1.0;
  double v = r * q;
  const double max_bf16 = std::ldexp(255.0, 120);  // 0x7F7F = (2 - 2^-7) * 2^127
  if (v > max_bf16) v = INFINITY;
  return std::copysign(v, x);
}

uint16_t ref_bf16_bits(double x) {  // of a value already on the bf16 grid
  float f = static_cast<float>(x);
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);
}
double ref_bf16_value(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

size_t type_size(int t) { return t == kR64F ? 8 : t == kR32F ? 4 : 2; }

// Storage buffer of a given cudaDataType, accessed as doubles.
struct Buf {
  int type;
  std::vector<unsigned char> bytes;
  Buf(int t, size_t n) : type(t), bytes(n * type_size(t) + 1) {}
  void* ptr() { return bytes.data(); }
  size_t size() const { return (bytes.size() - 1) / type_size(type); }
  void set(size_t i, double v) {
    if (type == kR64F) std::memcpy(&bytes[i * 8], &v, 8);
    else if (type == kR32F) {
      float f = static_cast<float>(v);
      std::memcpy(&bytes[i * 4], &f, 4);
    } else {
      uint16_t h = std::isnan(v) ? uint16_t(0x7FC0) : ref_bf16_bits(v);
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  }
  double get(size_t i) const {
    if (type == kR64F) {
      double d;
      std::memcpy(&d, &bytes[i * 8], 8);
      return d;
    }
    if (type == kR32F) {
      float f;
      std::memcpy(&f, &bytes[i * 4], 4);
      return f;
    }
    uint16_t h;
    std::memcpy(&h, &bytes[i * 2], 2);
    return ref_bf16_value(h);
  }
  uint64_t raw(size_t i) const {
    uint64_t r = 0;
    std::memcpy(&r, &bytes[i * type_size(type)], type_size(type));
    return r;
  }
};

// Quantises v to what a storage type can hold (so the reference sees exactly
// the stored operands).
double quantise(double v, int type) {
  if (type == kR32F) return static_cast<float>(v);
  if (type == kR16BF) return ref_round_bf16(v);
  return v;
}

std::mt19937_64 g_rng(20261129);
double uniform() { return std::uniform_real_distribution<double>(-1.0, 1.0)(g_rng); }
int irand(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g_rng); }

enum class Entry { kSgemm, kSgemmSB, kDgemm, kGemmEx, kGemmSBEx };
const char* entry_name(Entry e) {
  switch (e) {
    case Entry::kSgemm: return "Sgemm";
    case Entry::kSgemmSB: return "SgemmStridedBatched";
    case Entry::kDgemm: return "Dgemm";
    case Entry::kGemmEx: return "GemmEx";
    default: return "GemmStridedBatchedEx";
  }
}

enum class Data { kRandom, kDyadic };  // dyadic: small multiples of 1/64, products and sums exact

struct Case {
  Entry entry;
  int at, bt, ct, compute;
  int ta, tb, m, n, k;
  int pad_a, pad_b, pad_c;  // leading dimension above the minimum
  int batch;
  bool broadcast_a;          // strideA = 0
  double alpha, beta;
  Data data;
};

// Runs one case through the library and compares with the reference.
void run_case(cublasHandle_t h, const Case& c) {
  const int a_rows = c.ta == kOpN ? c.m : c.k, a_cols = c.ta == kOpN ? c.k : c.m;
  const int b_rows = c.tb == kOpN ? c.k : c.n, b_cols = c.tb == kOpN ? c.n : c.k;
  const int lda = std::max(1, a_rows) + c.pad_a, ldb = std::max(1, b_rows) + c.pad_b,
            ldc = std::max(1, c.m) + c.pad_c;
  const int nb = std::max(c.batch, 1);
  const long long sa = c.broadcast_a ? 0 : (long long)lda * a_cols + irand(0, 3);
  const long long sb = (long long)ldb * b_cols + irand(0, 3);
  const long long sc = (long long)ldc * c.n + irand(0, 3);
  const size_t na = size_t(c.broadcast_a ? 1 : nb) * std::max<long long>(sa, (long long)lda * a_cols) + 1;
  const size_t nbb = size_t(nb) * sb + 1, nc = size_t(nb) * sc + 1;
  Buf A(c.at, na), B(c.bt, nbb), C(c.ct, nc);
  const double poison = NAN, sentinel = -768.0;  // -768 is exact in every type
  for (size_t i = 0; i < A.size(); ++i) A.set(i, poison);
  for (size_t i = 0; i < B.size(); ++i) B.set(i, poison);
  for (size_t i = 0; i < C.size(); ++i) C.set(i, sentinel);

  auto value = [&](int type) {
    double v = c.data == Data::kDyadic ? irand(-64, 64) / 64.0 : uniform();
    return quantise(v, type);
  };
  // Logical matrices, row-major: X[b] = op(A_b) (m x k), Y[b] = op(B_b) (k x n), C0[b] (m x n).
  std::vector<std::vector<double>> X(nb), Y(nb), C0(nb);
  for (int b = 0; b < nb; ++b) {
    X[b].resize(size_t(c.m) * c.k);
    Y[b].resize(size_t(c.k) * c.n);
    C0[b].resize(size_t(c.m) * c.n);
    for (auto& v : X[b]) v = (c.broadcast_a && b > 0) ? 0 : value(c.at);
    if (c.broadcast_a && b > 0) X[b] = X[0];
    for (auto& v : Y[b]) v = value(c.bt);
    for (auto& v : C0[b]) v = c.beta == 0.0 ? NAN : value(c.ct);
    // Store: op(A)(i, l) is A(i, l) when not transposed, A(l, i) when transposed.
    for (int i = 0; i < c.m; ++i)
      for (int l = 0; l < c.k; ++l) {
        size_t row = c.ta == kOpN ? i : l, col = c.ta == kOpN ? l : i;
        A.set(size_t(b) * sa + row + col * lda, X[b][size_t(i) * c.k + l]);
      }
    for (int l = 0; l < c.k; ++l)
      for (int j = 0; j < c.n; ++j) {
        size_t row = c.tb == kOpN ? l : j, col = c.tb == kOpN ? j : l;
        B.set(size_t(b) * sb + row + col * ldb, Y[b][size_t(l) * c.n + j]);
      }
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) C.set(size_t(b) * sc + i + size_t(j) * ldc, C0[b][size_t(i) * c.n + j]);
  }
  std::vector<uint64_t> before(C.size());
  for (size_t i = 0; i < C.size(); ++i) before[i] = C.raw(i);

  const float fa = float(c.alpha), fb = float(c.beta);
  const double da = c.alpha, db = c.beta;
  const bool f64_scale = c.compute == kC64F;
  const void* pa = f64_scale ? (const void*)&da : (const void*)&fa;
  const void* pb = f64_scale ? (const void*)&db : (const void*)&fb;
  int st = -1;
  switch (c.entry) {
    case Entry::kSgemm:
      st = L.sgemm(h, c.ta, c.tb, c.m, c.n, c.k, &fa, (const float*)A.ptr(), lda, (const float*)B.ptr(), ldb, &fb,
                   (float*)C.ptr(), ldc);
      break;
    case Entry::kSgemmSB:
      st = L.sgemm_sb(h, c.ta, c.tb, c.m, c.n, c.k, &fa, (const float*)A.ptr(), lda, sa, (const float*)B.ptr(), ldb,
                      sb, &fb, (float*)C.ptr(), ldc, sc, c.batch);
      break;
    case Entry::kDgemm:
      st = L.dgemm(h, c.ta, c.tb, c.m, c.n, c.k, &da, (const double*)A.ptr(), lda, (const double*)B.ptr(), ldb, &db,
                   (double*)C.ptr(), ldc);
      break;
    case Entry::kGemmEx:
      st = L.gemm_ex(h, c.ta, c.tb, c.m, c.n, c.k, pa, A.ptr(), c.at, lda, B.ptr(), c.bt, ldb, pb, C.ptr(), c.ct, ldc,
                     c.compute, kAlgoDefault);
      break;
    case Entry::kGemmSBEx:
      st = L.gemm_sb_ex(h, c.ta, c.tb, c.m, c.n, c.k, pa, A.ptr(), c.at, lda, sa, B.ptr(), c.bt, ldb, sb, pb, C.ptr(),
                        c.ct, ldc, sc, c.batch, c.compute, kAlgoTensorDefault);
      break;
  }
  const std::string name =
      fmt("%s types %d/%d/%d compute %d op %d/%d m=%d n=%d k=%d lda=%d ldb=%d ldc=%d sa=%lld sb=%lld sc=%lld "
          "batch=%d alpha=%g beta=%g",
          entry_name(c.entry), c.at, c.bt, c.ct, c.compute, c.ta, c.tb, c.m, c.n, c.k, lda, ldb, ldc, sa, sb, sc,
          c.batch, c.alpha, c.beta);
  check(st == kSuccess, name + fmt(": status %d", st));
  if (st != kSuccess) return;

  // Output region: reference, row by row.
  std::vector<char> in_region(C.size(), 0);
  double worst = 0;
  std::string worst_at;
  bool ok = true;
  for (int b = 0; b < c.batch; ++b)
    for (int i = 0; i < c.m; ++i)
      for (int j = 0; j < c.n; ++j) {
        double sum = 0, abs_sum = 0;
        for (int l = 0; l < c.k; ++l) {
          double p = X[b][size_t(i) * c.k + l] * Y[b][size_t(l) * c.n + j];
          sum += p;
          abs_sum += std::fabs(p);
        }
        double ref = c.alpha * sum, scale = std::fabs(c.alpha) * abs_sum;
        if (c.beta != 0.0) {
          ref += c.beta * C0[b][size_t(i) * c.n + j];
          scale += std::fabs(c.beta * C0[b][size_t(i) * c.n + j]);
        }
        const size_t idx = size_t(b) * sc + i + size_t(j) * ldc;
        in_region[idx] = 1;
        const double got = C.get(idx);
        bool good;
        double err = std::fabs(got - ref);
        if (c.ct == kR16BF && c.data == Data::kDyadic) {
          good = C.raw(idx) == ref_bf16_bits(ref_round_bf16(ref));  // exact sum, one rounding
        } else if (c.data == Data::kDyadic) {
          good = got == ref;  // exact in float and double
        } else {
          double u = c.ct == kR64F ? std::ldexp(1.0, -52) : std::ldexp(1.0, -23);
          if (c.compute == kC32FFastTF32) u = std::ldexp(1.0, -10);  // inputs may be rounded to TF32
          double tol = (c.k + 4) * u * scale + 1e-300;
          if (c.ct == kR16BF) tol += std::ldexp(1.0, -8) * std::fabs(ref);  // final bf16 rounding
          good = std::isfinite(got) && err <= tol;
          if (tol > 0 && err / tol > worst) worst = err / tol;
        }
        if (!good && ok) {
          ok = false;
          worst_at = fmt(" first bad (b=%d,i=%d,j=%d): got %.9g want %.9g", b, i, j, got, ref);
        }
      }
  check(ok, name + ": values" + worst_at);
  bool untouched = true;
  for (size_t i = 0; i < C.size(); ++i)
    if (!in_region[i] && C.raw(i) != before[i]) untouched = false;
  check(untouched, name + ": wrote outside C's m x n region(s)");
}

// ---- value cases ----------------------------------------------------------------

void value_checks(cublasHandle_t h) {
  const int ops[] = {kOpN, kOpT, kOpC};
  struct Shape {
    int m, n, k;
  } shapes[] = {{5, 7, 3}, {1, 4, 6}, {8, 1, 1}, {3, 3, 0}, {6, 5, 9}};
  struct AB {
    double a, b;
  } scal[] = {{1.0, 0.0}, {0.5, -1.25}, {0.0, 2.0}, {-2.0, 1.0}};
  struct Combo {
    Entry e;
    int at, bt, ct, compute;
    Data data;
  } combos[] = {
      {Entry::kSgemm, kR32F, kR32F, kR32F, kC32F, Data::kRandom},
      {Entry::kSgemmSB, kR32F, kR32F, kR32F, kC32F, Data::kRandom},
      {Entry::kDgemm, kR64F, kR64F, kR64F, kC64F, Data::kRandom},
      {Entry::kGemmEx, kR32F, kR32F, kR32F, kC32F, Data::kRandom},
      {Entry::kGemmEx, kR32F, kR32F, kR32F, kC32FPedantic, Data::kRandom},
      {Entry::kGemmEx, kR32F, kR32F, kR32F, kC32FFastTF32, Data::kRandom},
      {Entry::kGemmEx, kR64F, kR64F, kR64F, kC64F, Data::kRandom},
      {Entry::kGemmEx, kR16BF, kR16BF, kR32F, kC32F, Data::kRandom},
      {Entry::kGemmEx, kR16BF, kR16BF, kR16BF, kC32F, Data::kRandom},
      {Entry::kGemmEx, kR16BF, kR16BF, kR16BF, kC32F, Data::kDyadic},
      {Entry::kGemmEx, kR16BF, kR16BF, kR32F, kC32F, Data::kDyadic},
      {Entry::kGemmSBEx, kR32F, kR32F, kR32F, kC32F, Data::kRandom},
      {Entry::kGemmSBEx, kR32F, kR32F, kR32F, kC32FFastTF32, Data::kRandom},
      {Entry::kGemmSBEx, kR64F, kR64F, kR64F, kC64F, Data::kRandom},
      {Entry::kGemmSBEx, kR16BF, kR16BF, kR32F, kC32F, Data::kRandom},
      {Entry::kGemmSBEx, kR16BF, kR16BF, kR16BF, kC32F, Data::kDyadic},
  };
  for (const Combo& co : combos) {
    const bool batched = co.e == Entry::kSgemmSB || co.e == Entry::kGemmSBEx;
    int si = 0;
    for (int ta : ops)
      for (int tb : ops) {
        // Every op pair meets every shape and every alpha/beta over the loop.
        for (int rep = 0; rep < 2; ++rep) {
          const Shape& s = shapes[(si + rep * 2) % 5];
          const AB& ab = scal[(si + rep) % 4];
          Case c{co.e, co.at, co.bt, co.ct, co.compute, ta, tb, s.m, s.n, s.k, irand(0, 3), irand(0, 3),
                 irand(0, 3), batched ? 1 + (si + rep) % 3 : 1, false, ab.a, ab.b, co.data};
          if (co.data == Data::kDyadic && ab.a == 0.5) c.beta = -0.25;  // keep the sums exact
          run_case(h, c);
        }
        ++si;
      }
    if (batched) {
      // Broadcast A (stride 0), several entries, nonzero beta; and batchCount 0 (no-op).
      run_case(h, Case{co.e, co.at, co.bt, co.ct, co.compute, kOpT, kOpN, 4, 3, 5, 2, 1, 1, 3, true, 1.5, 0.5,
                       co.data == Data::kDyadic ? Data::kDyadic : Data::kRandom});
      run_case(h, Case{co.e, co.at, co.bt, co.ct, co.compute, kOpN, kOpT, 4, 3, 5, 0, 0, 0, 0, false, 1.0, 0.0,
                       co.data});
    }
  }
  // A larger shape with distinct lda/ldb/ldc, all op pairs (catches mixed-up leading dimensions).
  for (int ta : {kOpN, kOpT})
    for (int tb : {kOpN, kOpT}) {
      run_case(h, Case{Entry::kSgemm, kR32F, kR32F, kR32F, kC32F, ta, tb, 13, 11, 17, 1, 4, 2, 1, false, 0.75, -0.5,
                       Data::kRandom});
      run_case(h, Case{Entry::kGemmSBEx, kR16BF, kR16BF, kR16BF, kC32F, ta, tb, 9, 12, 10, 3, 1, 5, 2, false, 1.0,
                       1.0, Data::kDyadic});
    }
}

// bf16 output rounding of chosen exact values: C = alpha * sum_l a_l * b_l with
// bf16 a, b (m = n = 1), compared with the reference rounding of the exact value.
void bf16_rounding_checks(cublasHandle_t h) {
  struct R {
    float alpha;
    std::vector<double> a;  // b = 1
    const char* what;
  } cases[] = {
      {1.0f, {1.0, std::ldexp(1.0, -8)}, "tie 1+2^-8 -> 1 (even)"},
      {1.0f, {1.0, 3 * std::ldexp(1.0, -8)}, "tie 1+3*2^-8 -> 1+2^-6 (even)"},
      {1.0f, {1.0, std::ldexp(1.0, -8), std::ldexp(1.0, -40)}, "just above a tie rounds up (one rounding)"},
      {-1.0f, {1.0, std::ldexp(1.0, -8)}, "negative tie"},
      {1.0f + std::ldexp(1.0f, -23), {1.0 + std::ldexp(1.0, -7)}, "alpha with 24 bits"},
      {3.0e38f, {1.0}, "3.0e38 -> 0x7F62"},
      {3.4e38f, {1.0}, "3.4e38 rounds to +inf"},
      {1e-40f, {1.0}, "float subnormal"},
      {INFINITY, {1.0}, "inf"},
      {1.0f, {-0.0}, "alpha * -0 gives -0 (sign of zero)"},
      {NAN, {1.0}, "NaN stays NaN"},
  };
  for (const R& r : cases) {
    const int k = int(r.a.size());
    std::vector<uint16_t> A(k), B(k, ref_bf16_bits(1.0));
    double exact = 0;
    for (int l = 0; l < k; ++l) {
      A[l] = ref_bf16_bits(r.a[l]);
      exact += r.a[l];
    }
    exact *= double(r.alpha);
    uint16_t C = 0x1234;
    float beta = 0.0f;
    int st = L.gemm_ex(h, kOpN, kOpN, 1, 1, k, &r.alpha, A.data(), kR16BF, 1, B.data(), kR16BF, k, &beta, &C, kR16BF,
                       1, kC32F, kAlgoDefault);
    check(st == kSuccess, fmt("bf16 rounding %s: status %d", r.what, st));
    if (std::isnan(exact)) {
      check((C & 0x7F80) == 0x7F80 && (C & 0x7F) != 0, fmt("bf16 rounding %s: got 0x%04x", r.what, C));
    } else {
      uint16_t want = ref_bf16_bits(ref_round_bf16(exact));
      if (exact == 0.0) want = std::signbit(exact) ? 0x8000 : 0x0000;
      check(C == want, fmt("bf16 rounding %s: got 0x%04x want 0x%04x", r.what, C, want));
    }
  }
}

// beta = 0 must not read C: NaN there must not appear in the result, for every entry point.
void beta_zero_checks(cublasHandle_t h) {
  const float A[4] = {1, 2, 3, 4}, B[4] = {1, 0, 0, 1};
  const double Ad[4] = {1, 2, 3, 4}, Bd[4] = {1, 0, 0, 1};
  const float one = 1, zero = 0;
  const double oned = 1, zerod = 0;
  float C[4];
  double Cd[4];
  auto reset = [&] {
    for (int i = 0; i < 4; ++i) C[i] = NAN, Cd[i] = NAN;
  };
  auto same = [&](const float* c) { return c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4; };
  reset();
  check(L.sgemm(h, kOpN, kOpN, 2, 2, 2, &one, A, 2, B, 2, &zero, C, 2) == kSuccess && same(C),
        "Sgemm beta=0 over NaN C");
  reset();
  check(L.sgemm_sb(h, kOpN, kOpN, 2, 2, 2, &one, A, 2, 0, B, 2, 0, &zero, C, 2, 4, 1) == kSuccess && same(C),
        "SgemmStridedBatched beta=0 over NaN C");
  reset();
  check(L.dgemm(h, kOpN, kOpN, 2, 2, 2, &oned, Ad, 2, Bd, 2, &zerod, Cd, 2) == kSuccess && Cd[0] == 1 &&
            Cd[3] == 4 && Cd[1] == 2 && Cd[2] == 3,
        "Dgemm beta=0 over NaN C");
  reset();
  check(L.gemm_ex(h, kOpN, kOpN, 2, 2, 2, &one, A, kR32F, 2, B, kR32F, 2, &zero, C, kR32F, 2, kC32F, kAlgoDefault) ==
                kSuccess &&
            same(C),
        "GemmEx beta=0 over NaN C");
  reset();
  check(L.gemm_sb_ex(h, kOpN, kOpN, 2, 2, 2, &one, A, kR32F, 2, 0, B, kR32F, 2, 0, &zero, C, kR32F, 2, 4, 1, kC32F,
                     kAlgoDefault) == kSuccess &&
            same(C),
        "GemmStridedBatchedEx beta=0 over NaN C");
  // k = 0: C = beta * C (and with beta = 0, C = 0 even over NaN).
  reset();
  check(L.sgemm(h, kOpN, kOpN, 2, 2, 0, &one, A, 2, B, 1, &zero, C, 2) == kSuccess && C[0] == 0 && C[3] == 0,
        "Sgemm k=0 beta=0 zeroes C");
  for (int i = 0; i < 4; ++i) C[i] = float(i + 1);
  const float two = 2;
  check(L.sgemm(h, kOpN, kOpN, 2, 2, 0, &one, A, 2, B, 1, &two, C, 2) == kSuccess && C[0] == 2 && C[3] == 8,
        "Sgemm k=0 scales C by beta");
}

// ---- documented error statuses ------------------------------------------------------

void status_checks(cublasHandle_t h) {
  float A[64] = {0}, B[64] = {0}, C[64] = {0};
  const float one = 1, zero = 0;
  const double oned = 1, zerod = 0;
  auto sg = [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
    return L.sgemm(hh, ta, tb, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc);
  };
  auto sgsb = [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc, int batch) {
    return L.sgemm_sb(hh, ta, tb, m, n, k, &one, A, lda, 0, B, ldb, 0, &zero, C, ldc, 0, batch);
  };
  auto dg = [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
    static double Ad[64], Bd[64], Cd[64];
    return L.dgemm(hh, ta, tb, m, n, k, &oned, Ad, lda, Bd, ldb, &zerod, Cd, ldc);
  };
  auto ex = [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
    return L.gemm_ex(hh, ta, tb, m, n, k, &one, A, kR32F, lda, B, kR32F, ldb, &zero, C, kR32F, ldc, kC32F,
                     kAlgoDefault);
  };
  auto exsb = [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc, int batch) {
    return L.gemm_sb_ex(hh, ta, tb, m, n, k, &one, A, kR32F, lda, 0, B, kR32F, ldb, 0, &zero, C, kR32F, ldc, 0,
                        batch, kC32F, kAlgoDefault);
  };
  struct G {
    const char* name;
    std::function<int(cublasHandle_t, int, int, int, int, int, int, int, int)> f;
  };
  std::vector<G> gs = {
      {"Sgemm", sg},
      {"Dgemm", dg},
      {"GemmEx", ex},
      {"SgemmStridedBatched",
       [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
         return sgsb(hh, ta, tb, m, n, k, lda, ldb, ldc, 1);
       }},
      {"GemmStridedBatchedEx",
       [&](cublasHandle_t hh, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
         return exsb(hh, ta, tb, m, n, k, lda, ldb, ldc, 1);
       }},
  };
  for (const G& g : gs) {
    auto expect = [&](int got, int want, const char* what) {
      check(got == want, fmt("%s %s: status %d, want %d", g.name, what, got, want));
    };
    // m=3, n=2, k=4 as the base; minimum leading dimensions for each op.
    expect(g.f(nullptr, kOpN, kOpN, 3, 2, 4, 3, 4, 3), kNotInitialized, "null handle");
    expect(g.f(h, kOpN, kOpN, 3, 2, 4, 3, 4, 3), kSuccess, "minimum lda/ldb/ldc (N,N)");
    expect(g.f(h, kOpT, kOpT, 3, 2, 4, 4, 2, 3), kSuccess, "minimum lda/ldb/ldc (T,T)");
    expect(g.f(h, kOpN, kOpN, -1, 2, 4, 3, 4, 3), kInvalidValue, "m < 0");
    expect(g.f(h, kOpN, kOpN, 3, -1, 4, 3, 4, 3), kInvalidValue, "n < 0");
    expect(g.f(h, kOpN, kOpN, 3, 2, -1, 3, 4, 3), kInvalidValue, "k < 0");
    expect(g.f(h, kOpN, kOpN, 3, 2, 4, 2, 4, 3), kInvalidValue, "lda < m (transa N)");
    expect(g.f(h, kOpT, kOpN, 3, 2, 4, 3, 4, 3), kInvalidValue, "lda < k (transa T)");
    expect(g.f(h, kOpC, kOpN, 3, 2, 4, 3, 4, 3), kInvalidValue, "lda < k (transa C)");
    expect(g.f(h, kOpN, kOpN, 3, 2, 4, 3, 3, 3), kInvalidValue, "ldb < k (transb N)");
    expect(g.f(h, kOpN, kOpT, 3, 2, 4, 3, 1, 3), kInvalidValue, "ldb < n (transb T)");
    expect(g.f(h, kOpN, kOpN, 3, 2, 4, 3, 4, 2), kInvalidValue, "ldc < m");
    expect(g.f(h, kOpN, kOpN, 0, 2, 4, 0, 4, 1), kInvalidValue, "lda = 0 < max(1, m=0)");
    expect(g.f(h, kOpN, kOpN, 0, 2, 4, 1, 4, 0), kInvalidValue, "ldc = 0 < max(1, m=0)");
    expect(g.f(h, kOpN, kOpN, 0, 2, 4, 1, 4, 1), kSuccess, "m = 0 with ld = 1 (quick return)");
    expect(g.f(h, 3, kOpN, 3, 2, 4, 4, 4, 3), kInvalidValue, "transa = 3 (CONJG is not valid here)");
    expect(g.f(h, kOpN, 7, 3, 2, 4, 3, 4, 3), kInvalidValue, "transb = 7");
  }
  check(sgsb(h, kOpN, kOpN, 3, 2, 4, 3, 4, 3, -1) == kInvalidValue, "SgemmStridedBatched batchCount < 0");
  check(exsb(h, kOpN, kOpN, 3, 2, 4, 3, 4, 3, -1) == kInvalidValue, "GemmStridedBatchedEx batchCount < 0");
  check(L.sgemm(h, kOpN, kOpN, 3, 2, 4, nullptr, A, 3, B, 4, &zero, C, 3) == kInvalidValue, "Sgemm alpha NULL");
  check(L.sgemm(h, kOpN, kOpN, 3, 2, 4, &one, A, 3, B, 4, nullptr, C, 3) == kInvalidValue, "Sgemm beta NULL");
  check(L.gemm_ex(h, kOpN, kOpN, 3, 2, 4, nullptr, A, kR32F, 3, B, kR32F, 4, &zero, C, kR32F, 3, kC32F,
                  kAlgoDefault) == kInvalidValue,
        "GemmEx alpha NULL");

  // GemmEx type / compute combinations outside the supported table.
  struct T {
    int at, bt, ct, compute;
    const char* what;
  } bad[] = {
      {kR16BF, kR16BF, kR64F, kC32F, "bf16 in, f64 out"},
      {kR32F, kR32F, kR32F, kC64F, "f32 data, 64F compute"},
      {kR64F, kR64F, kR64F, kC32F, "f64 data, 32F compute"},
      {kR16BF, kR16BF, kR16BF, kC32FFastTF32, "bf16 data, FAST_TF32 compute"},
      {kR32F, kR32F, kR16BF, kC32F, "f32 in, bf16 out"},
      {kR16BF, kR32F, kR32F, kC32F, "mixed A/B types"},
      {kR32F, kR32F, kR32F, kC16F, "16F compute with f32 data"},
      {kR32F, kR32F, kR32F, 12345, "unknown compute type"},
  };
  for (const T& t : bad) {
    double big[64] = {0};
    check(L.gemm_ex(h, kOpN, kOpN, 2, 2, 2, &oned, big, t.at, 2, big, t.bt, 2, &zerod, C, t.ct, 2, t.compute,
                    kAlgoDefault) == kNotSupported,
          fmt("GemmEx unsupported combination (%s) -> NOT_SUPPORTED", t.what));
    check(L.gemm_sb_ex(h, kOpN, kOpN, 2, 2, 2, &oned, big, t.at, 2, 0, big, t.bt, 2, 0, &zerod, C, t.ct, 2, 4, 1,
                       t.compute, kAlgoDefault) == kNotSupported,
          fmt("GemmStridedBatchedEx unsupported combination (%s) -> NOT_SUPPORTED", t.what));
  }
  (void)kR16F;
  check(L.gemm_ex(h, kOpN, kOpN, 2, 2, 2, &one, A, kR32F, 2, B, kR32F, 2, &zero, C, kR32F, 2, kC32F, 50) ==
            kNotSupported,
        "GemmEx algo 50 -> NOT_SUPPORTED");
  check(L.gemm_ex(h, kOpN, kOpN, 2, 2, 2, &one, A, kR32F, 2, B, kR32F, 2, &zero, C, kR32F, 2, kC32F,
                  kAlgoTensorDefault) == kSuccess,
        "GemmEx CUBLAS_GEMM_DEFAULT_TENSOR_OP accepted");

  // Handle life cycle.
  cublasHandle_t h2 = nullptr;
  check(L.create(&h2) == kSuccess && h2 != nullptr, "cublasCreate");
  check(L.set_stream(h2, nullptr) == kSuccess, "cublasSetStream default stream");
  check(L.set_stream(h2, reinterpret_cast<cudaStream_t>(uintptr_t(0x1000))) == kSuccess, "cublasSetStream");
  check(L.set_stream(nullptr, nullptr) == kNotInitialized, "cublasSetStream null handle");
  if (L.set_workspace) {
    alignas(256) static unsigned char ws[1024];
    check(L.set_workspace(h2, ws, sizeof ws) == kSuccess, "cublasSetWorkspace 256-aligned");
    check(L.set_workspace(h2, ws + 8, 512) == kInvalidValue, "cublasSetWorkspace misaligned -> INVALID_VALUE");
    check(L.set_workspace(nullptr, ws, sizeof ws) == kNotInitialized, "cublasSetWorkspace null handle");
  }
  check(L.destroy(h2) == kSuccess, "cublasDestroy");
  check(L.destroy(nullptr) == kNotInitialized, "cublasDestroy null handle");
  if (L.calls) {  // emulator: a destroyed handle is detected, not dereferenced
    check(L.destroy(h2) == kNotInitialized, "cublasDestroy twice -> NOT_INITIALIZED");
    check(sg(h2, kOpN, kOpN, 3, 2, 4, 3, 4, 3) == kNotInitialized, "Sgemm on a destroyed handle");
  }

  if (L.get_property) {
    int ma = -1, mi = -1, pa = -1;
    check(L.get_property(0, &ma) == kSuccess && L.get_property(1, &mi) == kSuccess &&
              L.get_property(2, &pa) == kSuccess && ma >= 12 && mi >= 0 && pa >= 0,
          fmt("cublasGetProperty %d.%d.%d", ma, mi, pa));
    check(L.get_property(7, &ma) == kInvalidValue, "cublasGetProperty unknown type");
    check(L.get_property(0, nullptr) == kInvalidValue, "cublasGetProperty null value");
  }
  if (L.status_string) {
    check(std::string(L.status_string(0)) == "CUBLAS_STATUS_SUCCESS", "status string 0");
    check(std::string(L.status_string(1)) == "CUBLAS_STATUS_NOT_INITIALIZED", "status string 1");
    check(std::string(L.status_string(7)) == "CUBLAS_STATUS_INVALID_VALUE", "status string 7");
    check(std::string(L.status_string(15)) == "CUBLAS_STATUS_NOT_SUPPORTED", "status string 15");
  }
}

// Emulator-only hooks: the call counter and the racy-output warning.
void hook_checks(cublasHandle_t h) {
  if (!L.calls || !L.warnings) return;
  float A[64], B[64], C[64];
  for (int i = 0; i < 64; ++i) A[i] = B[i] = C[i] = 1;
  const float one = 1, zero = 0;
  int c0 = L.calls();
  L.sgemm(h, kOpN, kOpN, 2, 2, 2, &one, A, 2, B, 2, &zero, C, 2);
  L.sgemm(h, kOpN, kOpN, -1, 2, 2, &one, A, 2, B, 2, &zero, C, 2);
  check(L.calls() == c0 + 2, fmt("bl_cublas_emu_calls counts calls (%d -> %d)", c0, L.calls()));
  int w0 = L.warnings();
  // Interleaved entries (batch b owns rows 2b, 2b+1 of a 4-row C): legitimate.
  L.sgemm_sb(h, kOpN, kOpN, 2, 3, 2, &one, A, 2, 4, B, 2, 6, &zero, C, 4, 2, 2);
  check(L.warnings() == w0, "no race warning for interleaved, disjoint batch outputs");
  // strideC smaller than one entry: two entries write the same elements.
  std::fprintf(stderr, "(the next race warning, if printed, is expected)\n");
  L.sgemm_sb(h, kOpN, kOpN, 2, 3, 2, &one, A, 2, 4, B, 2, 6, &zero, C, 2, 2, 2);
  check(L.warnings() == w0 + 1, "race warning for overlapping batch outputs");
  // The emulator rounds FAST_TF32 inputs to TF32 (10 stored mantissa bits):
  // 1 + 2^-12 becomes 1, so tests whose tolerance assumes exact fp32 products fail here.
  float a = 1.0f + std::ldexp(1.0f, -12), b = 1.0f, out = 0;
  L.gemm_ex(h, kOpN, kOpN, 1, 1, 1, &one, &a, kR32F, 1, &b, kR32F, 1, &zero, &out, kR32F, 1, kC32FFastTF32,
            kAlgoDefault);
  check(out == 1.0f, fmt("FAST_TF32 inputs rounded to TF32 (got %.9g)", out));
  L.gemm_ex(h, kOpN, kOpN, 1, 1, 1, &one, &a, kR32F, 1, &b, kR32F, 1, &zero, &out, kR32F, 1, kC32F, kAlgoDefault);
  check(out == a, fmt("32F compute keeps fp32 inputs exact (got %.9g)", out));
}

template <class F>
bool sym(void* lib, const char* name, F& f, bool required) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  if (!f && required) std::fprintf(stderr, "missing symbol %s\n", name);
  return f || !required;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <libcublas or libcublas_emu path>\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
    return 2;
  }
  bool ok = sym(lib, "cublasCreate_v2", L.create, true) & sym(lib, "cublasDestroy_v2", L.destroy, true) &
            sym(lib, "cublasSetStream_v2", L.set_stream, true) &
            sym(lib, "cublasSgemm_v2", L.sgemm, true) & sym(lib, "cublasSgemmStridedBatched", L.sgemm_sb, true) &
            sym(lib, "cublasDgemm_v2", L.dgemm, true) & sym(lib, "cublasGemmEx", L.gemm_ex, true) &
            sym(lib, "cublasGemmStridedBatchedEx", L.gemm_sb_ex, true);
  sym(lib, "cublasSetWorkspace_v2", L.set_workspace, false);
  sym(lib, "cublasGetProperty", L.get_property, false);
  sym(lib, "cublasGetStatusString", L.status_string, false);
  sym(lib, "bl_cublas_emu_calls", L.calls, false);
  sym(lib, "bl_cublas_emu_warnings", L.warnings, false);
  if (!ok) return 2;

  cublasHandle_t h = nullptr;
  if (L.create(&h) != kSuccess) {
    std::fprintf(stderr, "cublasCreate failed\n");
    return 1;
  }
  value_checks(h);
  bf16_rounding_checks(h);
  beta_zero_checks(h);
  status_checks(h);
  hook_checks(h);
  L.destroy(h);
  if (g_failures) {
    std::printf("%d of %d checks FAILED\n", g_failures, g_checks);
    return 1;
  }
  std::printf("%d checks passed\n", g_checks);
  return 0;
}
