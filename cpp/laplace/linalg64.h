// Small dense float64 linear algebra for the Laplace code, in ONE place:
// symmetric eigendecomposition (factor eigen forms, the (k+m)-sized Gram
// problems of the low-rank update), Cholesky with jitter retry (the C x C
// logit covariance), triangular solves and a few row-major products.
// Everything is row-major, float64, host memory. Sizes here are at most the
// K-FAC threshold (dense factors) or k+m (low-rank updates), so plain loops
// with parallel_for over rows are adequate; nothing of size D_l x D_l exists.
#pragma once
#include <cstddef>
#include <vector>

namespace bl::la {

// Symmetric eigendecomposition A = V diag(w) V^T of an n x n symmetric matrix
// (only the lower triangle is read; the input is treated as exactly symmetric).
// Method: Householder tridiagonalisation, then implicit symmetric QR with
// Wilkinson shifts; eigenvalues sorted DESCENDING, w[i] belongs to column i of
// V (n x n, row-major, orthonormal columns). Throws NUMERICAL_ERROR on
// non-finite input or when the QR iteration fails to converge.
void sym_eig(int n, const double* A, double* w, double* V);

// In-place lower Cholesky of an n x n SPD matrix (row-major; the strict upper
// triangle is set to 0). Returns false if a pivot is not positive/finite.
bool cholesky_inplace(int n, double* A);

// Cholesky with jitter retry: factor A + j I with j = 0 first, then
// j = jitter0 * scale, 10x more each retry, up to max_tries retries, where
// scale = mean |diag(A)| (1 when that is 0). Why: a logit covariance built
// from projections is PSD in exact arithmetic but may be singular (e.g. an
// all-zero Jacobian) or slightly indefinite after rounding. Writes L (n x n)
// and returns the jitter actually added. Throws NUMERICAL_ERROR on non-finite
// input or when every retry fails.
double cholesky_jitter(int n, const double* A, double* L, double jitter0 = 1e-10,
                       int max_tries = 8);

// Solve L x = b (forward) and L^T x = b (backward) in place, L lower n x n.
void solve_lower(int n, const double* L, double* b);
void solve_lower_t(int n, const double* L, double* b);

// C (m x n) = A^T B with A (r x m), B (r x n), all row-major (ldX = columns).
void gemm_tn(int r, int m, int n, const double* A, const double* B, double* C);
// C (m x n) = A B with A (m x r), B (r x n).
void gemm_nn(int m, int r, int n, const double* A, const double* B, double* C);
// G (n x n) = M^T M for M (d x n) row-major (symmetric, both triangles written).
void gram_cols(int d, int n, const double* M, int ldm, double* G);

// log|A| of an SPD matrix via Cholesky (tests and diagnostics).
double logdet_spd(int n, const double* A);

}  // namespace bl::la
