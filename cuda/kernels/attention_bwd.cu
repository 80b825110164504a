// Attention backward (see attention.cuh), three deterministic kernels:
//  1. rowdot: D[b,h,t] = dO . O  (O from the copy saved by the forward)
//  2. dkdv:   one block per (example, kv head, key tile); loops over the query
//             heads of its group and the query tiles at or after the key tile,
//             recomputes P = exp(S - lse) tile by tile, accumulates
//             dV += P^T dO and dK += scale * dS^T Q in registers, with
//             dS = P * (dO V^T - D). No atomics: each dk/dv element has one owner.
//  3. dq:     one block per (example, head, query tile); loops over key tiles
//             up to the causal limit, dQ += scale * dS K.
// Splitting dq from dk/dv costs two extra tile products but avoids atomics,
// so gradients are bit-reproducible run to run.
#include <cmath>

#include "kernels/attention_tiles.cuh"
#include "kernels/common.cuh"

namespace bl::cuda {
namespace attn {
namespace {

// D[(b*H+h)*T + t] = sum_d dout[b,t,h,d] * o[b,t,h,d]; one warp per row.
__global__ void rowdot_k(float* __restrict__ Dv, const float* __restrict__ dout, const float* __restrict__ o,
                         AttnDims s) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = int64_t(s.B) * s.T * s.H;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t r = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warps) {
    const float* a = dout + r * s.hd;
    const float* c = o + r * s.hd;
    float acc = 0.f;
    for (int d = lane; d < s.hd; d += 32) acc += a[d] * c[d];
    acc = warp_sum(acc);
    if (lane == 0) {
      const int64_t h = r % s.H, bt = r / s.H, t = bt % s.T, b = bt / s.T;
      Dv[(b * s.H + h) * s.T + t] = acc;
    }
  }
}

// Loads the per-query-row state of a tile: lse, D, and whether the row is live
// (real token that saw at least one key).
__device__ __forceinline__ void load_rows(float* lse_s, float* D_s, int* qok, const float* __restrict__ lse,
                                          const float* __restrict__ Dv, const uint8_t* __restrict__ mask, int b,
                                          int h, int q0, const AttnDims& s) {
  for (int i = threadIdx.x; i < BR; i += NT) {
    const int t = q0 + i;
    int ok = 0;
    float l = 0.f, dd = 0.f;
    if (t < s.T) {
      const int64_t row = (int64_t(b) * s.H + h) * s.T + t;
      l = lse[row];
      dd = Dv[row];
      ok = key_ok(mask, b, t, s.T) && l != -INFINITY;
    }
    lse_s[i] = l;
    D_s[i] = dd;
    qok[i] = ok;
  }
}

// P and dS for one (query tile, key tile) pair into shared memory.
template <int D>
__device__ __forceinline__ void probs_and_dscores(float* Ps, float* dSs, const float* Qs, const float* dOs,
                                                  const float* Ks, const float* Vs, const float* lse_s,
                                                  const float* D_s, const int* qok, const int* kok, int q0, int k0,
                                                  float scale) {
  for (int idx = threadIdx.x; idx < BR * BC; idx += NT) {
    const int i = idx / BC, j = idx % BC;
    float p = 0.f, ds = 0.f;
    if (qok[i] && kok[j] && k0 + j <= q0 + i) {
      const float sc = dot_row<D>(Qs + i * (D + 1), Ks + j * (D + 1)) * scale;
      p = expf(sc - lse_s[i]);
      const float dp = dot_row<D>(dOs + i * (D + 1), Vs + j * (D + 1));
      ds = p * (dp - D_s[i]);
    }
    if (Ps) Ps[i * (BC + 1) + j] = p;
    dSs[i * (BC + 1) + j] = ds;
  }
}

template <int D>
size_t dkdv_smem_bytes() {
  return sizeof(float) * (size_t(2 * BR + 2 * BC) * (D + 1) + size_t(2 * BR) * (BC + 1) + 2 * BR) +
         sizeof(int) * (BR + BC);
}

template <int D>
__global__ void __launch_bounds__(NT) dkdv_k(float* __restrict__ dk, float* __restrict__ dv,
                                             const float* __restrict__ dout, const float* __restrict__ q,
                                             const float* __restrict__ k, const float* __restrict__ v,
                                             const float* __restrict__ lse, const float* __restrict__ Dv,
                                             const uint8_t* __restrict__ mask, AttnDims s, float scale) {
  extern __shared__ float smem[];
  float* Ks = smem;
  float* Vs = Ks + BC * (D + 1);
  float* Qs = Vs + BC * (D + 1);
  float* dOs = Qs + BR * (D + 1);
  float* Ps = dOs + BR * (D + 1);
  float* dSs = Ps + BR * (BC + 1);
  float* lse_s = dSs + BR * (BC + 1);
  float* D_s = lse_s + BR;
  int* qok = reinterpret_cast<int*>(D_s + BR);
  int* kok = qok + BR;

  const int T = s.T, hd = s.hd, G = s.H / s.Hkv;
  const int b = blockIdx.x / s.Hkv, hk = blockIdx.x % s.Hkv;
  const int k0 = blockIdx.y * BC;
  const int tid = threadIdx.x;

  load_tile<D, BC>(Ks, k, b, k0, T, s.Hkv, hk, hd);
  load_tile<D, BC>(Vs, v, b, k0, T, s.Hkv, hk, hd);
  for (int j = tid; j < BC; j += NT) kok[j] = key_ok(mask, b, k0 + j, T);

  constexpr int RPT = BC * D / NT;
  float dk_acc[RPT], dv_acc[RPT];
#pragma unroll
  for (int r = 0; r < RPT; ++r) { dk_acc[r] = 0.f; dv_acc[r] = 0.f; }

  for (int g = 0; g < G; ++g) {
    const int h = hk * G + g;
    for (int q0 = k0; q0 < T; q0 += BR) {  // causal: queries before k0 never see this tile
      __syncthreads();
      load_tile<D, BR>(Qs, q, b, q0, T, s.H, h, hd);
      load_tile<D, BR>(dOs, dout, b, q0, T, s.H, h, hd);
      load_rows(lse_s, D_s, qok, lse, Dv, mask, b, h, q0, s);
      __syncthreads();
      probs_and_dscores<D>(Ps, dSs, Qs, dOs, Ks, Vs, lse_s, D_s, qok, kok, q0, k0, scale);
      __syncthreads();
#pragma unroll
      for (int r = 0; r < RPT; ++r) {
        const int e = tid + NT * r, j = e / D, d = e % D;
        float av = 0.f, ak = 0.f;
#pragma unroll 8
        for (int i = 0; i < BR; ++i) {
          av += Ps[i * (BC + 1) + j] * dOs[i * (D + 1) + d];
          ak += dSs[i * (BC + 1) + j] * Qs[i * (D + 1) + d];
        }
        dv_acc[r] += av;
        dk_acc[r] += ak;
      }
    }
  }

#pragma unroll
  for (int r = 0; r < RPT; ++r) {
    const int e = tid + NT * r, j = e / D, d = e % D, t = k0 + j;
    if (t < T && d < hd) {
      const int64_t off = ((int64_t(b) * T + t) * s.Hkv + hk) * hd + d;
      if (dk) dk[off] += scale * dk_acc[r];
      if (dv) dv[off] += dv_acc[r];
    }
  }
}

template <int D>
size_t dq_smem_bytes() {
  return sizeof(float) * (size_t(2 * BR + 2 * BC) * (D + 1) + size_t(BR) * (BC + 1) + 2 * BR) +
         sizeof(int) * (BR + BC);
}

template <int D>
__global__ void __launch_bounds__(NT) dq_k(float* __restrict__ dq, const float* __restrict__ dout,
                                           const float* __restrict__ q, const float* __restrict__ k,
                                           const float* __restrict__ v, const float* __restrict__ lse,
                                           const float* __restrict__ Dv, const uint8_t* __restrict__ mask,
                                           AttnDims s, float scale) {
  extern __shared__ float smem[];
  float* Qs = smem;
  float* dOs = Qs + BR * (D + 1);
  float* Ks = dOs + BR * (D + 1);
  float* Vs = Ks + BC * (D + 1);
  float* dSs = Vs + BC * (D + 1);
  float* lse_s = dSs + BR * (BC + 1);
  float* D_s = lse_s + BR;
  int* qok = reinterpret_cast<int*>(D_s + BR);
  int* kok = qok + BR;

  const int T = s.T, H = s.H, hd = s.hd;
  const int b = blockIdx.x / H, h = blockIdx.x % H, hk = h / (H / s.Hkv);
  const int q0 = blockIdx.y * BR;
  const int tid = threadIdx.x;

  load_tile<D, BR>(Qs, q, b, q0, T, H, h, hd);
  load_tile<D, BR>(dOs, dout, b, q0, T, H, h, hd);
  load_rows(lse_s, D_s, qok, lse, Dv, mask, b, h, q0, s);

  constexpr int RPT = BR * D / NT;
  float acc[RPT];
#pragma unroll
  for (int r = 0; r < RPT; ++r) acc[r] = 0.f;

  const int kend = min(T, q0 + BR);
  for (int k0 = 0; k0 < kend; k0 += BC) {
    __syncthreads();
    load_tile<D, BC>(Ks, k, b, k0, T, s.Hkv, hk, hd);
    load_tile<D, BC>(Vs, v, b, k0, T, s.Hkv, hk, hd);
    for (int j = tid; j < BC; j += NT) kok[j] = key_ok(mask, b, k0 + j, T);
    __syncthreads();
    probs_and_dscores<D>(nullptr, dSs, Qs, dOs, Ks, Vs, lse_s, D_s, qok, kok, q0, k0, scale);
    __syncthreads();
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
      const int e = tid + NT * r, i = e / D, d = e % D;
      float a = 0.f;
      const float* srow = dSs + i * (BC + 1);
#pragma unroll 8
      for (int j = 0; j < BC; ++j) a += srow[j] * Ks[j * (D + 1) + d];
      acc[r] += a;
    }
  }

#pragma unroll
  for (int r = 0; r < RPT; ++r) {
    const int e = tid + NT * r, i = e / D, d = e % D, t = q0 + i;
    if (t < T && d < hd) dq[((int64_t(b) * T + t) * H + h) * hd + d] += scale * acc[r];
  }
}

template <int D>
void launch_bwd(cudaStream_t st, float* dq, float* dk, float* dv, const float* dout, const float* lse,
                const float* Dv, const float* q, const float* k, const float* v, const uint8_t* mask,
                const AttnDims& s, float scale) {
  const unsigned qtiles = unsigned((s.T + BR - 1) / BR), ktiles = unsigned((s.T + BC - 1) / BC);
  if (dk || dv) {
    const size_t smem = dkdv_smem_bytes<D>();
    static const bool ready = (allow_smem(dkdv_k<D>, smem, "attention_bwd (dk/dv)"), true);
    (void)ready;
    dkdv_k<D><<<dim3(unsigned(s.B * s.Hkv), ktiles), NT, smem, st>>>(dk, dv, dout, q, k, v, lse, Dv, mask, s, scale);
    check_launch("attention_bwd/dkdv");
  }
  if (dq) {
    const size_t smem = dq_smem_bytes<D>();
    static const bool ready = (allow_smem(dq_k<D>, smem, "attention_bwd (dq)"), true);
    (void)ready;
    dq_k<D><<<dim3(unsigned(s.B * s.H), qtiles), NT, smem, st>>>(dq, dout, q, k, v, lse, Dv, mask, s, scale);
    check_launch("attention_bwd/dq");
  }
}

}  // namespace
}  // namespace attn

size_t attention_bwd_scratch_floats(const AttnDims& s) { return size_t(s.B) * s.H * s.T; }

void attention_bwd(cudaStream_t st, float* dq, float* dk, float* dv, const float* dout, const float* saved,
                   const float* q, const float* k, const float* v, const uint8_t* mask, const AttnDims& s,
                   float scale, float* scratch) {
  attention_validate(s);
  if (s.B == 0 || s.T == 0 || (!dq && !dk && !dv)) return;
  const float* lse = saved;
  const float* ocopy = saved + size_t(s.B) * s.H * s.T;
  float* Dv = scratch;
  const int64_t rows = int64_t(s.B) * s.T * s.H;
  attn::rowdot_k<<<grid_1d(rows * 32, 256), 256, 0, st>>>(Dv, dout, ocopy, s);
  check_launch("attention_bwd/rowdot");
  switch (attn::padded_head_dim(s.hd)) {
    case 32: attn::launch_bwd<32>(st, dq, dk, dv, dout, lse, Dv, q, k, v, mask, s, scale); break;
    case 64: attn::launch_bwd<64>(st, dq, dk, dv, dout, lse, Dv, q, k, v, mask, s, scale); break;
    case 128: attn::launch_bwd<128>(st, dq, dk, dv, dout, lse, Dv, q, k, v, mask, s, scale); break;
    default: attn::launch_bwd<256>(st, dq, dk, dv, dout, lse, Dv, q, k, v, mask, s, scale); break;
  }
}

}  // namespace bl::cuda
