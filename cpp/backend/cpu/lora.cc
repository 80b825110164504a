// The fused LoRA branch on the CPU (Backend::lora_fwd / lora_bwd). On the CPU
// "fused" only means one call: the branch is a sequence of skinny GEMMs whose
// order and arguments are exactly those the model used before the op existed,
// so results are bit-identical to that code (the reference for the CUDA
// kernels, which do fuse the passes over the output gradient).
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/gemm.h"

namespace bl::cpu {

void lora_fwd(float* y, float* u, const float* x, const float* A, const float* B, int N, int d_in, int d_out,
              int r, float s) {
  // u = x A^T, then y += s u B^T (beta = 1 keeps the frozen output).
  sgemm(false, true, N, r, d_in, 1.0f, x, d_in, A, d_in, 0.0f, u, r);
  sgemm(false, true, N, d_out, r, s, u, r, B, r, 1.0f, y, d_out);
}

void lora_bwd(float* gu, float* dA, float* dB, float* dx, float* work, const float* g, const float* x,
              const float* u, const float* A, const float* B, int N, int d_in, int d_out, int r, float s,
              float p, uint64_t seed) {
  // gu = s g B: the LoRA-A layer's output gradient (observers need it too).
  sgemm(false, false, N, r, d_out, s, g, d_out, B, r, 0.0f, gu, r);
  // dB += g^T (s u): the B layer's input is v = s u.
  if (dB) sgemm(true, false, d_out, r, N, s, g, d_out, u, r, 1.0f, dB, r);
  if (dA) sgemm(true, false, r, d_in, N, 1.0f, gu, r, x, d_in, 1.0f, dA, d_in);
  if (!dx) return;
  if (p > 0.0f) {
    // The dropout mask sits between x and the branch: route gu A through it.
    sgemm(false, false, N, d_in, r, 1.0f, gu, r, A, d_in, 0.0f, work, d_in);
    dropout_bwd(dx, work, int64_t(N) * d_in, p, seed);
  } else {
    sgemm(false, false, N, d_in, r, 1.0f, gu, r, A, d_in, 1.0f, dx, d_in);
  }
}

}  // namespace bl::cpu
