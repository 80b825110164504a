// K-FAC and predictive building blocks on the GPU, for the Laplace code in
// cpp/laplace/ (the CPU implementation there is the reference; the maths is
// /work/shared/SPEC-laplace.md sections 4-8). Not wired into the Laplace
// engine yet: these are the device halves a port will call. All matrices are
// row-major device pointers; `be` provides stream, cuBLAS and scratch, and
// every helper holds be.lock() across its steps.
//
// Masking: the helpers see plain rows. Padded token rows must be zero (the
// output gradients of pads are zero by construction; inputs are zeroed or
// gathered out by the caller, or reduced with reduce_tokens, which reads mask).
#pragma once
#include <cstddef>
#include <cstdint>

namespace bl {
class CudaBackend;
}

namespace bl::cuda::kfac {

// Dense factor update ("expand" mode, or after reduce_tokens):
//   S = beta * S + alpha * X^T X,   X: [n x d] (rows = token or example
//   vectors, leading dim ldx), S: [d x d]; both triangles are written.
// With alpha = 1, beta = 1 this is SA += sum_rows x x^T (raw sums, SPEC s.4).
void factor_update(CudaBackend& be, float* S, const float* X, int n, int d, int ldx, float alpha, float beta);

// Per-example token reduction ("reduce" mode, SPEC s.4):
//   out[b, :] = sum over real tokens t of X[b*T + t, :]   (mean = false, for g~)
//   out[b, :] = the same divided by the number of real tokens (mean = true, for x~)
// mask [B*T] (nullable = all real); an example without real tokens gives zeros.
void reduce_tokens(CudaBackend& be, float* out, const float* X, const uint8_t* mask, int B, int T, int d, bool mean);

// Low-rank factor update (SPEC s.5), float64 on the device:
//   M = [L | X^T]  with L: [d x k] (current factor, L L^T ~= S), X: [m x d]
//   (new vectors as rows, float32), M: [d x (k+m)].
void lowrank_concat(CudaBackend& be, double* M, const double* L, const float* X, int d, int k, int m);
//   G = M^T M: [(k+m) x (k+m)], the Gram matrix whose eigenpairs (V, Sigma^2)
//   give the thin SVD M = U Sigma V^T. The eigen solve is done on the host
//   (small, float64: cpp/laplace).
void lowrank_gram(CudaBackend& be, double* G, const double* M, int d, int km);
//   L_new = M Vk: [d x k] where Vk: [(k+m) x k] holds the top-k eigenvectors
//   of G as columns (M Vk = U_k Sigma_k, i.e. L <- U[:, :k] Sigma[:k]).
void lowrank_apply(CudaBackend& be, double* L_new, const double* M, const double* Vk, int d, int km, int k);

// Jacobian projections for the linearised predictive (SPEC s.6, s.8): for
// every example n < Bn and class c < C,
//   P[n, c] = Ug^T J_{c,n} Ua  =  sum_{t<T} (Ug^T g_{c,n,t}) (Ua^T x_{n,t})^T   : [kg x ka]
// where J_{c,n} = sum_t g_{c,n,t} x_{n,t}^T is the layer's weight Jacobian of
// logit c. Inputs: G [C][Bn*T][dout] (output grads of the C backward passes),
// X [Bn*T][din] (layer inputs), Ug [dout x kg], Ua [din x ka] (eigenvectors as
// columns). Output P [Bn][C][kg][ka]. Cost: two projections (Bn*T rows) and C
// strided-batched (kg x T) x (T x ka) products; nothing of size dout x din.
void jacobian_project(CudaBackend& be, float* P, const float* G, const float* X, const float* Ug, const float* Ua,
                      int C, int Bn, int T, int dout, int din, int kg, int ka);

}  // namespace bl::cuda::kfac
