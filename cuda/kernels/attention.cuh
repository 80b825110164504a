// Causal, padding-masked, grouped-query attention as tiled online-softmax
// kernels (flash-attention style, float32 on CUDA cores): no T x T score
// matrix is ever materialised; the backward recomputes probabilities tile by
// tile from the saved per-row logsumexp.
//
// Layouts: q, out [B,T,H,hd]; k, v [B,T,Hkv,hd]; mask [B*T] uint8 (nullable =
// all real). Query t of example b sees keys s <= t with mask[b*T+s] == 1,
// scores scaled by `scale`; a padded query (or one that sees no key) outputs
// zeros and gets zero gradients.
//
// saved (attention_saved_floats): [ lse: B*H*T | out copy: B*T*H*hd ].
//   lse[(b*H + h)*T + t] = logsumexp of the visible scaled scores (-inf for rows
//   with no visible key); the out copy gives the backward D_i = dO_i . O_i
//   without a recomputing forward pass (the Backend API does not pass `out`).
// head dims up to 256 (padded to 32/64/128/256 inside the kernels).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace bl::cuda {

struct AttnDims {
  int B, T, H, Hkv, hd;
};

constexpr int kAttnMaxHeadDim = 256;

size_t attention_saved_floats(const AttnDims& s);
// Throws bl::Error (UNSUPPORTED) for shapes the kernels cannot run.
void attention_validate(const AttnDims& s);

void attention_fwd(cudaStream_t stream, float* out, float* saved, const float* q, const float* k, const float* v,
                   const uint8_t* mask, const AttnDims& s, float scale);
// dq, dk, dv +=. scratch: attention_bwd_scratch_floats(s) floats.
void attention_bwd(cudaStream_t stream, float* dq, float* dk, float* dv, const float* dout, const float* saved,
                   const float* q, const float* k, const float* v, const uint8_t* mask, const AttnDims& s,
                   float scale, float* scratch);
size_t attention_bwd_scratch_floats(const AttnDims& s);

}  // namespace bl::cuda
