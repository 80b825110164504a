// The LoRA branch on the GPU (Backend::lora_fwd / lora_bwd; semantics in
// backend/backend.h, CPU reference cpp/backend/cpu/lora.cc). Ranks r <= 32
// run hand-written kernels that exploit the tiny inner dimension:
//   down  : out[n, :r] = alpha * X[n, :] W^T    one warp per row, X read once
//   up    : Y[n, c] += alpha * U[n, :r] W[c, :] (optionally through the
//           dropout mask), Y read and written once, no temporary
//   outer : D[c, j] += alpha * sum_n Y[n, c] Z[n, j], fixed-order partials per
//           row chunk then a second pass (deterministic, no atomics)
// so the forward adds s*B(Ax) to the frozen output in the one pass that
// writes it, and dx gets the dropout mask fused in. Larger ranks fall back to
// cuBLAS GEMMs (lora_rank_fused() says which path a rank takes).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace bl::cuda {

constexpr int kLoraMaxFusedRank = 32;
inline bool lora_rank_fused(int r) { return r >= 1 && r <= kLoraMaxFusedRank; }

// out [N x r] = alpha * X [N x K] W^T, with W(j, k) = W[j*sj + k*sk].
void lora_down(cudaStream_t s, float* out, const float* X, const float* W, int64_t sj, int64_t sk, int N, int K,
               int r, float alpha);
// Y [N x C] += alpha * U [N x r] W^T with W(c, j) = W[c*sc + j*sj]; when
// p > 0 the added value of element e = n*C + c is kept iff
// uniform01(seed, e) >= p and scaled by 1/(1-p) (dropout_bwd's mask).
void lora_up(cudaStream_t s, float* Y, const float* U, const float* W, int64_t sc, int64_t sj, int N, int C, int r,
             float alpha, float p, uint64_t seed);
// D(c, j) += alpha * sum_n Y[n*dc + c] Z[n*r + j], D(c, j) = D[c*oc + j*oj].
// scratch: lora_outer_scratch_floats(N, dc, r) floats.
void lora_outer(cudaStream_t s, float* D, int64_t oc, int64_t oj, const float* Y, const float* Z, int N, int dc,
                int r, float alpha, float* scratch);
size_t lora_outer_scratch_floats(int N, int dc, int r);
// Scratch for lora_bwd's two lora_outer calls sharing one buffer (dB over
// d_out columns, dA over d_in columns): the larger of the two requirements.
// That is not always the one for max(d_in, d_out): fewer column tiles give
// more row chunks, e.g. N >= 1024, r = 8: d = 4096 needs 16 x 4096 x 8 floats
// but d = 11008 only 5 x 11008 x 8.
size_t lora_bwd_scratch_floats(int N, int d_in, int d_out, int r);

}  // namespace bl::cuda
