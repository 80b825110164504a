// Attention forward (see attention.cuh): one block per (example, head, tile of
// BR queries), looping over key tiles of BC keys up to the causal limit with
// an online softmax: running max m and sum l per row, output accumulator
// rescaled by exp(m_old - m_new) whenever the max grows.
#include <cmath>

#include "kernels/attention_tiles.cuh"
#include "kernels/common.cuh"

namespace bl::cuda {
namespace attn {
namespace {

template <int D>
size_t fwd_smem_bytes() {
  return sizeof(float) * (size_t(BR + 2 * BC) * (D + 1) + size_t(BR) * (BC + 1) + 3 * BR) +
         sizeof(int) * (BR + BC);
}

template <int D>
__global__ void __launch_bounds__(NT) fwd_k(float* __restrict__ out, float* __restrict__ lse,
                                            float* __restrict__ ocopy, const float* __restrict__ q,
                                            const float* __restrict__ k, const float* __restrict__ v,
                                            const uint8_t* __restrict__ mask, AttnDims s, float scale) {
  extern __shared__ float smem[];
  float* Qs = smem;
  float* Ks = Qs + BR * (D + 1);
  float* Vs = Ks + BC * (D + 1);
  float* Ss = Vs + BC * (D + 1);   // [BR][BC+1] scores, then probabilities
  float* alpha = Ss + BR * (BC + 1);
  float* lrow = alpha + BR;
  float* mrow = lrow + BR;
  int* qok = reinterpret_cast<int*>(mrow + BR);
  int* kok = qok + BR;

  const int T = s.T, H = s.H, hd = s.hd;
  const int b = blockIdx.x / H, h = blockIdx.x % H, hk = h / (H / s.Hkv);
  const int q0 = blockIdx.y * BR;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  load_tile<D, BR>(Qs, q, b, q0, T, H, h, hd);
  for (int i = tid; i < BR; i += NT) qok[i] = key_ok(mask, b, q0 + i, T);

  constexpr int RPT = BR * D / NT;  // output accumulators per thread
  float o[RPT];
#pragma unroll
  for (int r = 0; r < RPT; ++r) o[r] = 0.f;
  constexpr int RPW = BR / NW;      // softmax rows per warp
  float m_r[RPW], l_r[RPW];
#pragma unroll
  for (int r = 0; r < RPW; ++r) { m_r[r] = -INFINITY; l_r[r] = 0.f; }

  const int kend = min(T, q0 + BR);  // causal: no key beyond the last query of the tile
  for (int k0 = 0; k0 < kend; k0 += BC) {
    __syncthreads();  // previous tile fully consumed (and Q/flags visible)
    load_tile<D, BC>(Ks, k, b, k0, T, s.Hkv, hk, hd);
    load_tile<D, BC>(Vs, v, b, k0, T, s.Hkv, hk, hd);
    for (int j = tid; j < BC; j += NT) kok[j] = key_ok(mask, b, k0 + j, T);
    __syncthreads();

    for (int idx = tid; idx < BR * BC; idx += NT) {
      const int i = idx / BC, j = idx % BC;
      float sc = -INFINITY;
      if (qok[i] && kok[j] && k0 + j <= q0 + i) sc = dot_row<D>(Qs + i * (D + 1), Ks + j * (D + 1)) * scale;
      Ss[i * (BC + 1) + j] = sc;
    }
    __syncthreads();

#pragma unroll
    for (int r = 0; r < RPW; ++r) {
      const int i = warp + NW * r;
      const float sc = Ss[i * (BC + 1) + lane];
      const float mnew = fmaxf(m_r[r], warp_max(sc));
      float p = 0.f, a = 1.f;
      if (mnew != -INFINITY) {
        p = expf(sc - mnew);       // 0 for masked scores
        a = expf(m_r[r] - mnew);   // 0 when the row had no visible key yet
      }
      l_r[r] = l_r[r] * a + warp_sum(p);
      m_r[r] = mnew;
      Ss[i * (BC + 1) + lane] = p;
      if (lane == 0) alpha[i] = a;
    }
    __syncthreads();

#pragma unroll
    for (int r = 0; r < RPT; ++r) {
      const int e = tid + NT * r, i = e / D, d = e % D;
      float acc = o[r] * alpha[i];
      const float* prow = Ss + i * (BC + 1);
#pragma unroll 8
      for (int j = 0; j < BC; ++j) acc += prow[j] * Vs[j * (D + 1) + d];
      o[r] = acc;
    }
  }

#pragma unroll
  for (int r = 0; r < RPW; ++r) {
    if (lane == 0) {
      lrow[warp + NW * r] = l_r[r];
      mrow[warp + NW * r] = m_r[r];
    }
  }
  __syncthreads();
#pragma unroll
  for (int r = 0; r < RPT; ++r) {
    const int e = tid + NT * r, i = e / D, d = e % D, t = q0 + i;
    if (t < T && d < hd) {
      const float l = lrow[i];
      const float val = l > 0.f ? o[r] / l : 0.f;
      const int64_t off = ((int64_t(b) * T + t) * H + h) * hd + d;
      out[off] = val;
      ocopy[off] = val;
    }
  }
  for (int i = tid; i < BR; i += NT) {
    const int t = q0 + i;
    if (t < T) lse[(int64_t(b) * H + h) * T + t] = lrow[i] > 0.f ? mrow[i] + logf(lrow[i]) : -INFINITY;
  }
}

template <int D>
void launch_fwd(cudaStream_t st, float* out, float* saved, const float* q, const float* k, const float* v,
                const uint8_t* mask, const AttnDims& s, float scale) {
  const size_t smem = fwd_smem_bytes<D>();
  static const bool ready = (allow_smem(fwd_k<D>, smem, "attention_fwd"), true);
  (void)ready;
  float* lse = saved;
  float* ocopy = saved + size_t(s.B) * s.H * s.T;
  dim3 grid(unsigned(s.B * s.H), unsigned((s.T + BR - 1) / BR));
  fwd_k<D><<<grid, NT, smem, st>>>(out, lse, ocopy, q, k, v, mask, s, scale);
  check_launch("attention_fwd");
}

}  // namespace
}  // namespace attn

size_t attention_saved_floats(const AttnDims& s) {
  return size_t(s.B) * s.H * s.T + size_t(s.B) * s.T * s.H * s.hd;
}

void attention_validate(const AttnDims& s) {
  BL_CHECK(s.B >= 0 && s.T >= 0 && s.H > 0 && s.Hkv > 0 && s.hd > 0, code::kInvalidArgument,
           "attention: bad shape B=", s.B, " T=", s.T, " H=", s.H, " Hkv=", s.Hkv, " hd=", s.hd);
  BL_CHECK(s.H % s.Hkv == 0, code::kInvalidArgument, "attention: H (", s.H, ") must be a multiple of Hkv (", s.Hkv, ")");
  BL_CHECK(s.hd <= kAttnMaxHeadDim, code::kUnsupported, "attention (cuda): head dim ", s.hd, " > ", kAttnMaxHeadDim);
  BL_CHECK((int64_t(s.T) + attn::BR - 1) / attn::BR <= 65535, code::kUnsupported,
           "attention (cuda): sequence length ", s.T, " too long");
  BL_CHECK(int64_t(s.B) * s.H < (int64_t(1) << 31), code::kUnsupported, "attention (cuda): B*H too large");
}

void attention_fwd(cudaStream_t st, float* out, float* saved, const float* q, const float* k, const float* v,
                   const uint8_t* mask, const AttnDims& s, float scale) {
  attention_validate(s);
  if (s.B == 0 || s.T == 0) return;
  switch (attn::padded_head_dim(s.hd)) {
    case 32: attn::launch_fwd<32>(st, out, saved, q, k, v, mask, s, scale); break;
    case 64: attn::launch_fwd<64>(st, out, saved, q, k, v, mask, s, scale); break;
    case 128: attn::launch_fwd<128>(st, out, saved, q, k, v, mask, s, scale); break;
    default: attn::launch_fwd<256>(st, out, saved, q, k, v, mask, s, scale); break;
  }
}

}  // namespace bl::cuda
