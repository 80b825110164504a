// Float64 dense linear algebra for the Laplace code (see linalg64.h).
#include "laplace/linalg64.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "backend/cpu/blas_loader.h"
#include "core/threads.h"

namespace bl::la {

namespace {

// Rows handled per parallel_for task: keep small problems on the caller's thread.
size_t grain_for(size_t work_per_row) {
  const size_t target = 1 << 16;  // multiply-adds per task
  return std::max<size_t>(1, target / std::max<size_t>(1, work_per_row));
}

// Smallest size sent to LAPACK (below it the loops are as fast as the call).
constexpr int kLapackEigMin = 48;

}  // namespace

void sym_eig(int n, const double* Ain, double* w, double* V) {
  BL_CHECK(n >= 0, code::kInvalidArgument, "sym_eig: negative size");
  if (n == 0) return;
  const size_t N = size_t(n);
  // Symmetric working copy from the lower triangle.
  std::vector<double> A(N * N);
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j <= i; ++j) {
      double a = Ain[i * N + j];
      if (!std::isfinite(a)) fail(code::kNumerical, "sym_eig: non-finite matrix entry");
      A[i * N + j] = a;
      A[j * N + i] = a;
    }
  // Large problems go to LAPACK's divide-and-conquer dsyevd when OpenBLAS is
  // loaded (an order of magnitude faster than the loops below, which are the
  // fallback). A is exactly symmetric, so its row-major storage is also its
  // column-major storage; LAPACK overwrites it with the eigenvectors.
  if (n >= kLapackEigMin) {
    std::vector<double> wa(N);
    int info = 0;
    const std::vector<double>& Acm = A;
    if (cpu::lapack_dsyevd(n, A.data(), wa.data(), &info)) {
      if (info != 0) fail(code::kNumerical, "sym_eig: LAPACK dsyevd failed (info ", info, ")");
      // Ascending -> descending; column j of the result is Acm[j*N .. j*N+N).
      for (size_t k = 0; k < N; ++k) {
        const size_t j = N - 1 - k;
        w[k] = wa[j];
        for (size_t i = 0; i < N; ++i) V[i * N + k] = Acm[j * N + i];
      }
      return;
    }
  }
  // Q accumulates the Householder reflections: A = Q T Q^T.
  std::vector<double> Q(N * N, 0.0);
  for (size_t i = 0; i < N; ++i) Q[i * N + i] = 1.0;
  std::vector<double> d(N), e(N, 0.0), v(N), p(N);

  // ---- Householder tridiagonalisation --------------------------------------
  for (size_t k = 0; k + 2 < N; ++k) {
    const size_t m = N - k - 1;  // length of the column below the diagonal
    const size_t o = k + 1;      // offset of the trailing block
    double x0 = A[o * N + k];
    double tail = 0;
    for (size_t i = 1; i < m; ++i) tail += A[(o + i) * N + k] * A[(o + i) * N + k];
    if (tail == 0) {  // already reduced: H = I
      e[k] = x0;
      continue;
    }
    double norm = std::sqrt(x0 * x0 + tail);
    double alpha = x0 >= 0 ? -norm : norm;  // sign opposite to x0: no cancellation in v0
    v[0] = x0 - alpha;
    for (size_t i = 1; i < m; ++i) v[i] = A[(o + i) * N + k];
    double vv = v[0] * v[0] + tail;
    double beta = 2.0 / vv;
    // S <- H S H with S the trailing block: p = beta S v, w = p - (beta/2)(v.p) v,
    // S -= v w^T + w v^T.
    parallel_for(m, grain_for(m), [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) {
        const double* Si = &A[(o + i) * N + o];
        double s = 0;
        for (size_t j = 0; j < m; ++j) s += Si[j] * v[j];
        p[i] = beta * s;
      }
    });
    double vp = 0;
    for (size_t i = 0; i < m; ++i) vp += v[i] * p[i];
    double K = 0.5 * beta * vp;
    for (size_t i = 0; i < m; ++i) p[i] -= K * v[i];  // p is now w
    parallel_for(m, grain_for(m), [&](size_t i0, size_t i1) {
      for (size_t i = i0; i < i1; ++i) {
        double* Si = &A[(o + i) * N + o];
        for (size_t j = 0; j < m; ++j) Si[j] -= v[i] * p[j] + p[i] * v[j];
      }
    });
    e[k] = alpha;
    // Q <- Q H on columns o..N-1.
    parallel_for(N, grain_for(m), [&](size_t r0, size_t r1) {
      for (size_t r = r0; r < r1; ++r) {
        double* Qr = &Q[r * N + o];
        double s = 0;
        for (size_t j = 0; j < m; ++j) s += Qr[j] * v[j];
        s *= beta;
        for (size_t j = 0; j < m; ++j) Qr[j] -= s * v[j];
      }
    });
  }
  for (size_t i = 0; i < N; ++i) d[i] = A[i * N + i];
  if (N >= 2) e[N - 2] = A[(N - 1) * N + (N - 2)];

  // ---- implicit symmetric QR with Wilkinson shifts -------------------------------
  // Rotations act on columns of Q; keep Q^T so they touch two contiguous rows.
  std::vector<double> Qt(N * N);
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < N; ++j) Qt[j * N + i] = Q[i * N + j];
  auto negligible = [&](size_t i) {  // e[i] couples d[i] and d[i+1]
    return std::fabs(e[i]) <= DBL_EPSILON * (std::fabs(d[i]) + std::fabs(d[i + 1])) ||
           std::fabs(e[i]) < DBL_MIN;
  };
  long m = long(N) - 1;
  int iter = 0;
  while (m > 0) {
    if (negligible(size_t(m - 1))) {
      e[size_t(m - 1)] = 0;
      --m;
      iter = 0;
      continue;
    }
    long l = m - 1;
    while (l > 0) {
      if (negligible(size_t(l - 1))) {
        e[size_t(l - 1)] = 0;
        break;
      }
      --l;
    }
    if (++iter > 100) fail(code::kNumerical, "sym_eig: QR iteration did not converge");
    // Wilkinson shift: eigenvalue of the trailing 2x2 closer to d[m].
    double dd = 0.5 * (d[size_t(m - 1)] - d[size_t(m)]);
    double em = e[size_t(m - 1)];
    double mu = d[size_t(m)] - em * em / (dd + std::copysign(std::hypot(dd, em), dd));
    double x = d[size_t(l)] - mu, z = e[size_t(l)];
    for (long kk = l; kk < m; ++kk) {
      const size_t k = size_t(kk);
      double r = std::hypot(x, z);
      double c = 1, s = 0;
      if (r > 0) {
        c = x / r;
        s = z / r;
      }
      if (kk > l) e[k - 1] = r;
      double a = d[k], b = e[k], cc = d[k + 1];
      d[k] = c * c * a + 2 * c * s * b + s * s * cc;
      d[k + 1] = s * s * a - 2 * c * s * b + c * c * cc;
      e[k] = c * s * (cc - a) + (c * c - s * s) * b;
      if (kk < m - 1) {
        double f = e[k + 1];
        z = s * f;
        e[k + 1] = c * f;
        x = e[k];
      }
      double* q0 = &Qt[k * N];
      double* q1 = &Qt[(k + 1) * N];
      for (size_t i = 0; i < N; ++i) {
        double u0 = q0[i], u1 = q1[i];
        q0[i] = c * u0 + s * u1;
        q1[i] = -s * u0 + c * u1;
      }
    }
  }

  // ---- sort descending ------------------------------------------------------------
  std::vector<size_t> order(N);
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return d[a] > d[b]; });
  for (size_t c = 0; c < N; ++c) {
    const size_t src = order[c];
    w[c] = d[src];
    for (size_t i = 0; i < N; ++i) V[i * N + c] = Qt[src * N + i];
  }
}

bool cholesky_inplace(int n, double* A) {
  const size_t N = size_t(n);
  for (size_t j = 0; j < N; ++j) {
    double s = A[j * N + j];
    for (size_t k = 0; k < j; ++k) s -= A[j * N + k] * A[j * N + k];
    if (!(s > 0) || !std::isfinite(s)) return false;
    double ljj = std::sqrt(s);
    A[j * N + j] = ljj;
    for (size_t i = j + 1; i < N; ++i) {
      double t = A[i * N + j];
      for (size_t k = 0; k < j; ++k) t -= A[i * N + k] * A[j * N + k];
      A[i * N + j] = t / ljj;
    }
    for (size_t k = j + 1; k < N; ++k) A[j * N + k] = 0;
  }
  return true;
}

double cholesky_jitter(int n, const double* A, double* L, double jitter0, int max_tries) {
  const size_t N = size_t(n);
  double scale = 0;
  for (size_t i = 0; i < N * N; ++i)
    if (!std::isfinite(A[i])) fail(code::kNumerical, "cholesky: non-finite matrix entry");
  for (size_t i = 0; i < N; ++i) scale += std::fabs(A[i * N + i]);
  scale = N ? scale / double(N) : 1.0;
  if (scale == 0) scale = 1.0;
  double jitter = 0;
  for (int t = 0; t <= max_tries; ++t) {
    for (size_t i = 0; i < N; ++i)
      for (size_t j = 0; j < N; ++j)
        L[i * N + j] = 0.5 * (A[i * N + j] + A[j * N + i]) + (i == j ? jitter : 0.0);
    if (cholesky_inplace(n, L)) return jitter;
    jitter = (t == 0) ? jitter0 * scale : jitter * 10;
  }
  fail(code::kNumerical, "cholesky: matrix not positive definite even with jitter ", jitter / 10);
}

void solve_lower(int n, const double* L, double* b) {
  const size_t N = size_t(n);
  for (size_t i = 0; i < N; ++i) {
    double s = b[i];
    for (size_t k = 0; k < i; ++k) s -= L[i * N + k] * b[k];
    b[i] = s / L[i * N + i];
  }
}

void solve_lower_t(int n, const double* L, double* b) {
  const size_t N = size_t(n);
  for (size_t ii = N; ii-- > 0;) {
    double s = b[ii];
    for (size_t k = ii + 1; k < N; ++k) s -= L[k * N + ii] * b[k];
    b[ii] = s / L[ii * N + ii];
  }
}

// Products big enough to pay for a BLAS call go to cblas_dgemm (OpenBLAS when
// it is loaded: 10-20x the plain loops below, which remain the fallback and
// the path for small products, where call overhead dominates).
namespace {
bool big_product(int m, int n, int r) { return double(m) * double(n) * double(r) >= 32768.0; }
}  // namespace

void gemm_tn(int r, int m, int n, const double* A, const double* B, double* C) {
  if (m > 0 && n > 0 && r > 0 && big_product(m, n, r) &&
      cpu::blas_dgemm(true, false, m, n, r, 1.0, A, m, B, n, 0.0, C, n))
    return;
  const size_t R = size_t(r), M = size_t(m), Nn = size_t(n);
  parallel_for(M, grain_for(R * Nn), [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      double* Ci = C + i * Nn;
      std::fill(Ci, Ci + Nn, 0.0);
      for (size_t k = 0; k < R; ++k) {
        double a = A[k * M + i];
        if (a == 0) continue;
        const double* Bk = B + k * Nn;
        for (size_t j = 0; j < Nn; ++j) Ci[j] += a * Bk[j];
      }
    }
  });
}

void gemm_nn(int m, int r, int n, const double* A, const double* B, double* C) {
  if (m > 0 && n > 0 && r > 0 && big_product(m, n, r) &&
      cpu::blas_dgemm(false, false, m, n, r, 1.0, A, r, B, n, 0.0, C, n))
    return;
  const size_t R = size_t(r), M = size_t(m), Nn = size_t(n);
  parallel_for(M, grain_for(R * Nn), [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      double* Ci = C + i * Nn;
      std::fill(Ci, Ci + Nn, 0.0);
      for (size_t k = 0; k < R; ++k) {
        double a = A[i * R + k];
        if (a == 0) continue;
        const double* Bk = B + k * Nn;
        for (size_t j = 0; j < Nn; ++j) Ci[j] += a * Bk[j];
      }
    }
  });
}

void gram_cols(int d, int n, const double* M, int ldm, double* G) {
  // BLAS computes both triangles; they agree to rounding, so mirror the upper one
  // to keep G exactly symmetric as the loop below does.
  if (d > 0 && n > 0 && big_product(n, n, d) && cpu::blas_dgemm(true, false, n, n, d, 1.0, M, ldm, M, ldm, 0.0, G, n)) {
    for (size_t i = 0; i < size_t(n); ++i)
      for (size_t j = 0; j < i; ++j) G[i * size_t(n) + j] = G[j * size_t(n) + i];
    return;
  }
  const size_t D = size_t(d), Nn = size_t(n), ld = size_t(ldm);
  parallel_for(Nn, grain_for(D * Nn / 2 + 1), [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      double* Gi = G + i * Nn;
      std::fill(Gi + i, Gi + Nn, 0.0);
      for (size_t r = 0; r < D; ++r) {
        const double* Mr = M + r * ld;
        double a = Mr[i];
        if (a == 0) continue;
        for (size_t j = i; j < Nn; ++j) Gi[j] += a * Mr[j];
      }
    }
  });
  for (size_t i = 0; i < Nn; ++i)
    for (size_t j = 0; j < i; ++j) G[i * Nn + j] = G[j * Nn + i];
}

double logdet_spd(int n, const double* A) {
  std::vector<double> L(size_t(n) * size_t(n));
  std::copy(A, A + size_t(n) * size_t(n), L.begin());
  if (!cholesky_inplace(n, L.data())) fail(code::kNumerical, "logdet_spd: matrix not positive definite");
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::log(L[size_t(i) * size_t(n) + size_t(i)]);
  return 2 * s;
}

}  // namespace bl::la
