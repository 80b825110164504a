// Attention harness: float64 CPU reference (forward and backward), a naive GPU
// forward (version 0: one thread per query row, two passes over the keys), the
// production tiled online-softmax kernels (version 1, cuda/kernels/attention_*),
// checks on awkward shapes (GQA, head dims 32..256 incl. 80, T not a multiple
// of the tile, padding incl. a fully padded example, mask = nullptr, each
// gradient output alone), then timings.
// deps: cuda/kernels/attention_fwd.cu cuda/kernels/attention_bwd.cu
#include "dev/dev_common.cuh"
#include "kernels/attention.cuh"

using bl::cuda::AttnDims;

namespace {

struct Case {
  int B, T, H, Hkv, hd;
  bool null_mask = false;  // pass mask = nullptr (all tokens real): the key_ok(!mask) path
};

size_t qidx(const AttnDims& s, int b, int t, int h, int d, int heads) {
  return ((size_t(b) * s.T + t) * heads + h) * s.hd + d;
}

// float64 reference: out, and (when dout given) dq, dk, dv.
void reference(const AttnDims& s, const std::vector<float>& q, const std::vector<float>& k,
               const std::vector<float>& v, const std::vector<uint8_t>& mask, float scale, std::vector<double>& out,
               const std::vector<float>* dout, std::vector<double>* dq, std::vector<double>* dk,
               std::vector<double>* dv) {
  const int G = s.H / s.Hkv;
  out.assign(size_t(s.B) * s.T * s.H * s.hd, 0.0);
  if (dout) {
    dq->assign(out.size(), 0.0);
    dk->assign(size_t(s.B) * s.T * s.Hkv * s.hd, 0.0);
    dv->assign(dk->size(), 0.0);
  }
  std::vector<double> p(s.T), dp(s.T);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h)
      for (int t = 0; t < s.T; ++t) {
        const int hk = h / G;
        if (!mask[size_t(b) * s.T + t]) continue;
        double mx = -INFINITY;
        for (int j = 0; j <= t; ++j) {
          p[j] = -INFINITY;
          if (!mask[size_t(b) * s.T + j]) continue;
          double sc = 0;
          for (int d = 0; d < s.hd; ++d) sc += double(q[qidx(s, b, t, h, d, s.H)]) * k[qidx(s, b, j, hk, d, s.Hkv)];
          p[j] = sc * scale;
          mx = std::max(mx, p[j]);
        }
        if (mx == -INFINITY) continue;
        double sum = 0;
        for (int j = 0; j <= t; ++j) sum += (p[j] = p[j] == -INFINITY ? 0.0 : std::exp(p[j] - mx));
        for (int j = 0; j <= t; ++j) p[j] /= sum;
        for (int j = 0; j <= t; ++j)
          for (int d = 0; d < s.hd; ++d) out[qidx(s, b, t, h, d, s.H)] += p[j] * v[qidx(s, b, j, hk, d, s.Hkv)];
        if (!dout) continue;
        double D = 0;
        for (int d = 0; d < s.hd; ++d) D += double((*dout)[qidx(s, b, t, h, d, s.H)]) * out[qidx(s, b, t, h, d, s.H)];
        for (int j = 0; j <= t; ++j) {
          double a = 0;
          for (int d = 0; d < s.hd; ++d) a += double((*dout)[qidx(s, b, t, h, d, s.H)]) * v[qidx(s, b, j, hk, d, s.Hkv)];
          dp[j] = a;
        }
        for (int j = 0; j <= t; ++j) {
          const double ds = p[j] * (dp[j] - D);
          for (int d = 0; d < s.hd; ++d) {
            (*dq)[qidx(s, b, t, h, d, s.H)] += scale * ds * k[qidx(s, b, j, hk, d, s.Hkv)];
            (*dk)[qidx(s, b, j, hk, d, s.Hkv)] += scale * ds * q[qidx(s, b, t, h, d, s.H)];
            (*dv)[qidx(s, b, j, hk, d, s.Hkv)] += p[j] * (*dout)[qidx(s, b, t, h, d, s.H)];
          }
        }
      }
}

// Version 0: naive forward, one thread per (b, t, h) row; out is the accumulator.
__global__ void naive_fwd_k(float* out, const float* q, const float* k, const float* v, const uint8_t* mask,
                            AttnDims s, float scale) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= int64_t(s.B) * s.T * s.H) return;
  const int h = int(row % s.H), t = int((row / s.H) % s.T), b = int(row / (int64_t(s.H) * s.T));
  const int hk = h / (s.H / s.Hkv);
  const float* qr = q + row * s.hd;
  float* o = out + row * s.hd;
  for (int d = 0; d < s.hd; ++d) o[d] = 0.f;
  if (!mask[int64_t(b) * s.T + t]) return;
  float mx = -INFINITY;
  for (int j = 0; j <= t; ++j) {
    if (!mask[int64_t(b) * s.T + j]) continue;
    const float* kr = k + ((int64_t(b) * s.T + j) * s.Hkv + hk) * s.hd;
    float sc = 0.f;
    for (int d = 0; d < s.hd; ++d) sc += qr[d] * kr[d];
    mx = fmaxf(mx, sc * scale);
  }
  float sum = 0.f;
  for (int j = 0; j <= t; ++j) {
    if (!mask[int64_t(b) * s.T + j]) continue;
    const float* kr = k + ((int64_t(b) * s.T + j) * s.Hkv + hk) * s.hd;
    const float* vr = v + ((int64_t(b) * s.T + j) * s.Hkv + hk) * s.hd;
    float sc = 0.f;
    for (int d = 0; d < s.hd; ++d) sc += qr[d] * kr[d];
    const float p = expf(sc * scale - mx);
    sum += p;
    for (int d = 0; d < s.hd; ++d) o[d] += p * vr[d];
  }
  for (int d = 0; d < s.hd; ++d) o[d] /= sum;
}

std::vector<uint8_t> make_mask(int B, int T) {
  std::vector<uint8_t> m(size_t(B) * T, 1);
  for (int b = 0; b < B; ++b) {
    if (b % 3 == 1)
      for (int t = T - T / 3; t < T; ++t) m[size_t(b) * T + t] = 0;  // right padding
    if (b % 3 == 2)
      for (int t = 0; t < T / 4; ++t) m[size_t(b) * T + t] = 0;      // left padding
    if (b == 3)
      for (int t = 0; t < T; ++t) m[size_t(b) * T + t] = 0;          // fully padded example
  }
  return m;
}

void check_case(const Case& c) {
  AttnDims s{c.B, c.T, c.H, c.Hkv, c.hd};
  const float scale = 1.f / std::sqrt(float(c.hd));
  const size_t nq = size_t(c.B) * c.T * c.H * c.hd, nkv = size_t(c.B) * c.T * c.Hkv * c.hd;
  auto q = dev::randn(nq, 1, 1.5f), k = dev::randn(nkv, 2, 1.5f), v = dev::randn(nkv, 3);
  auto dout = dev::randn(nq, 4);
  auto mask = c.null_mask ? std::vector<uint8_t>(size_t(c.B) * c.T, 1) : make_mask(c.B, c.T);
  std::vector<double> ro, rdq, rdk, rdv;
  reference(s, q, k, v, mask, scale, ro, &dout, &rdq, &rdk, &rdv);

  float *dq_ = dev::to_gpu(q), *dk_ = dev::to_gpu(k), *dv_ = dev::to_gpu(v), *ddo = dev::to_gpu(dout);
  uint8_t* dm_naive = dev::to_gpu(mask);
  uint8_t* dm = c.null_mask ? nullptr : dm_naive;
  float *out, *saved, *gq, *gk, *gv, *scratch;
  DEV_CUDA(cudaMalloc(&out, nq * 4));
  DEV_CUDA(cudaMalloc(&saved, bl::cuda::attention_saved_floats(s) * 4));
  DEV_CUDA(cudaMalloc(&scratch, bl::cuda::attention_bwd_scratch_floats(s) * 4 + 16));
  // Gradients start at 0.5 to check that the backward accumulates.
  std::vector<float> half_q(nq, 0.5f), half_kv(nkv, 0.5f);
  gq = dev::to_gpu(half_q);
  gk = dev::to_gpu(half_kv);
  gv = dev::to_gpu(half_kv);
  char label[96];
  std::snprintf(label, sizeof label, "B%d T%d H%d/%d hd%d%s", c.B, c.T, c.H, c.Hkv, c.hd,
                c.null_mask ? " mask=null" : "");
  std::printf(" case %s\n", label);

  naive_fwd_k<<<unsigned((size_t(c.B) * c.T * c.H + 127) / 128), 128>>>(out, dq_, dk_, dv_, dm_naive, s, scale);
  DEV_CUDA(cudaGetLastError());
  dev::check("v0 naive fwd out", dev::from_gpu(out, nq), ro, 2e-5, 2e-4);

  bl::cuda::attention_fwd(0, out, saved, dq_, dk_, dv_, dm, s, scale);
  dev::check("v1 tiled fwd out", dev::from_gpu(out, nq), ro, 2e-5, 2e-4);
  bl::cuda::attention_bwd(0, gq, gk, gv, ddo, saved, dq_, dk_, dv_, dm, s, scale, scratch);
  for (auto* r : {&rdq, &rdk, &rdv})
    for (auto& x : *r) x += 0.5;
  dev::check("v1 tiled bwd dq (+= 0.5)", dev::from_gpu(gq, nq), rdq, 5e-5, 5e-4);
  dev::check("v1 tiled bwd dk (+= 0.5)", dev::from_gpu(gk, nkv), rdk, 5e-5, 5e-4);
  dev::check("v1 tiled bwd dv (+= 0.5)", dev::from_gpu(gv, nkv), rdv, 5e-5, 5e-4);
  // Nullable gradients (the Backend API allows any subset): dq alone runs only
  // the dq kernel, dk/dv alone only the dk/dv kernel; each must still add its
  // own part and touch no other output.
  DEV_CUDA(cudaMemcpy(gq, half_q.data(), nq * 4, cudaMemcpyHostToDevice));
  DEV_CUDA(cudaMemcpy(gk, half_kv.data(), nkv * 4, cudaMemcpyHostToDevice));
  DEV_CUDA(cudaMemcpy(gv, half_kv.data(), nkv * 4, cudaMemcpyHostToDevice));
  bl::cuda::attention_bwd(0, gq, nullptr, nullptr, ddo, saved, dq_, dk_, dv_, dm, s, scale, scratch);
  bl::cuda::attention_bwd(0, nullptr, gk, nullptr, ddo, saved, dq_, dk_, dv_, dm, s, scale, scratch);
  bl::cuda::attention_bwd(0, nullptr, nullptr, gv, ddo, saved, dq_, dk_, dv_, dm, s, scale, scratch);
  dev::check("v1 bwd dq alone (+= 0.5)", dev::from_gpu(gq, nq), rdq, 5e-5, 5e-4);
  dev::check("v1 bwd dk alone (+= 0.5)", dev::from_gpu(gk, nkv), rdk, 5e-5, 5e-4);
  dev::check("v1 bwd dv alone (+= 0.5)", dev::from_gpu(gv, nkv), rdv, 5e-5, 5e-4);
  for (void* p : {(void*)dq_, (void*)dk_, (void*)dv_, (void*)ddo, (void*)dm_naive, (void*)out, (void*)saved,
                  (void*)gq, (void*)gk, (void*)gv, (void*)scratch})
    cudaFree(p);
}

void bench(int B, int T, int H, int Hkv, int hd, bool with_naive) {
  AttnDims s{B, T, H, Hkv, hd};
  const float scale = 1.f / std::sqrt(float(hd));
  const size_t nq = size_t(B) * T * H * hd, nkv = size_t(B) * T * Hkv * hd;
  float *q, *k, *v, *out, *saved, *dout, *gq, *gk, *gv, *scratch;
  uint8_t* mask;
  for (float** p : {&q, &out, &dout, &gq}) DEV_CUDA(cudaMalloc(p, nq * 4));
  for (float** p : {&k, &v, &gk, &gv}) DEV_CUDA(cudaMalloc(p, nkv * 4));
  DEV_CUDA(cudaMalloc(&saved, bl::cuda::attention_saved_floats(s) * 4));
  DEV_CUDA(cudaMalloc(&scratch, bl::cuda::attention_bwd_scratch_floats(s) * 4));
  DEV_CUDA(cudaMalloc(&mask, size_t(B) * T));
  DEV_CUDA(cudaMemset(mask, 1, size_t(B) * T));
  auto hq = dev::randn(nq, 7), hk = dev::randn(nkv, 8);
  DEV_CUDA(cudaMemcpy(q, hq.data(), nq * 4, cudaMemcpyHostToDevice));
  DEV_CUDA(cudaMemcpy(dout, hq.data(), nq * 4, cudaMemcpyHostToDevice));
  DEV_CUDA(cudaMemcpy(k, hk.data(), nkv * 4, cudaMemcpyHostToDevice));
  DEV_CUDA(cudaMemcpy(v, hk.data(), nkv * 4, cudaMemcpyHostToDevice));
  // Causal: half of the T x T scores; 2 products (QK^T, PV) of 2 flops per MAC.
  const double fwd_flops = 4.0 * B * H * double(T) * T * hd / 2;
  char name[128];
  std::snprintf(name, sizeof name, "fwd v1 tiled B%d T%d H%d/%d hd%d", B, T, H, Hkv, hd);
  double ms = dev::time_ms([&] { bl::cuda::attention_fwd(0, out, saved, q, k, v, mask, s, scale); });
  dev::result("attention", name, ms, "TFLOPs", fwd_flops / ms / 1e9);
  std::snprintf(name, sizeof name, "bwd v1 tiled B%d T%d H%d/%d hd%d", B, T, H, Hkv, hd);
  // Backward does 7 tile products (S twice, dP twice, dV, dK, dQ): report the
  // conventional 2.5x-forward count so numbers compare with other kernels.
  ms = dev::time_ms([&] { bl::cuda::attention_bwd(0, gq, gk, gv, dout, saved, q, k, v, mask, s, scale, scratch); });
  dev::result("attention", name, ms, "TFLOPs", 2.5 * fwd_flops / ms / 1e9);
  if (with_naive) {
    std::snprintf(name, sizeof name, "fwd v0 naive B%d T%d H%d/%d hd%d", B, T, H, Hkv, hd);
    ms = dev::time_ms([&] { naive_fwd_k<<<unsigned((size_t(B) * T * H + 127) / 128), 128>>>(out, q, k, v, mask, s, scale); }, 1, 3);
    dev::result("attention", name, ms, "TFLOPs", fwd_flops / ms / 1e9);
  }
  for (void* p : {(void*)q, (void*)k, (void*)v, (void*)out, (void*)saved, (void*)dout, (void*)gq, (void*)gk,
                  (void*)gv, (void*)scratch, (void*)mask})
    cudaFree(p);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  dev::print_device();
  try {
    for (const Case& c : {Case{4, 37, 4, 2, 32}, Case{4, 70, 4, 4, 64}, Case{4, 97, 6, 2, 80}, Case{2, 65, 2, 1, 128},
                          Case{4, 40, 2, 2, 256}, Case{1, 1, 1, 1, 8}, Case{2, 45, 4, 1, 64, true}})
      check_case(c);
    if (!dev::check_only()) bench(4, 1024, 32, 8, 128, true);
    if (!quick && !dev::check_only()) {
      bench(4, 2048, 32, 8, 128, false);
      bench(8, 512, 14, 2, 64, false);  // Qwen2-0.5B-like heads
    }
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  return dev::finish("attention_dev");
}
