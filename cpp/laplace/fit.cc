// Fisher passes and the batch predictive over a LlamaModel (see fit.h).
#include "laplace/fit.h"

#include <algorithm>
#include <cmath>

#include "backend/backend.h"
#include "core/cancel.h"
#include "core/error.h"
#include "laplace/linalg64.h"
#include "laplace/persist.h"

namespace bl::laplace {

FisherType parse_fisher(const std::string& s) {
  if (s == "exact") return FisherType::kExact;
  if (s == "sampled") return FisherType::kSampled;
  if (s == "empirical") return FisherType::kEmpirical;
  fail(code::kInvalidArgument, "fisher must be 'exact', 'sampled' or 'empirical', got '", s, "'");
}

const char* fisher_name(FisherType t) {
  switch (t) {
    case FisherType::kExact: return "exact";
    case FisherType::kSampled: return "sampled";
    case FisherType::kEmpirical: return "empirical";
  }
  return "?";
}

static std::string matrix_name(const LlamaModel& m, int id) {
  return m.lora_module(id / 2).path + (id % 2 ? ".lora_B" : ".lora_A");
}

std::vector<KfacLayerSpec> model_lora_layers(const LlamaModel& m, bool last_layer_only) {
  BL_CHECK(m.has_lora(), code::kInvalidArgument, "the model has no LoRA adapter");
  std::vector<KfacLayerSpec> out;
  for (int id = 0; id < m.num_lora_matrices(); ++id) {
    if (last_layer_only && m.lora_module(id / 2).kind != "lm_head") continue;
    const LoraMatrixInfo info = m.lora_matrix(id);
    out.push_back({matrix_name(m, id), info.d_in, info.d_out, id});
  }
  BL_CHECK(!out.empty(), code::kInvalidArgument, "last-layer Laplace needs LoRA on lm_head");
  return out;
}

namespace {

// Float64 softmax / log-softmax of each row of the B x C class logits.
void class_probs(const std::vector<float>& logits, int B, int C, std::vector<double>& p,
                 std::vector<double>& logp) {
  p.resize(size_t(B) * size_t(C));
  logp.resize(p.size());
  for (int b = 0; b < B; ++b) {
    const float* f = &logits[size_t(b) * size_t(C)];
    double mx = f[0];
    for (int c = 1; c < C; ++c) mx = std::max(mx, double(f[c]));
    double s = 0;
    for (int c = 0; c < C; ++c) s += std::exp(double(f[c]) - mx);
    const double lse = mx + std::log(s);
    for (int c = 0; c < C; ++c) {
      logp[size_t(b) * size_t(C) + size_t(c)] = double(f[c]) - lse;
      p[size_t(b) * size_t(C) + size_t(c)] = std::exp(double(f[c]) - lse);
    }
  }
}

// Per example i, the C x (C - 1) matrix R_i (row-major at R[i * C * (C - 1)])
// with R_i R_i^T = diag(p_i) - p_i p_i^T: the eigenvectors of the C - 1
// largest eigenvalues scaled by their square roots (the smallest eigenvalue
// belongs to the ones vector and is zero up to rounding). Float64 throughout.
std::vector<double> exact_seeds(const std::vector<double>& p, int B, int C) {
  const size_t c = size_t(C), k = size_t(C - 1);
  std::vector<double> R(size_t(B) * c * k), H(c * c), w(c), V(c * c);
  for (int i = 0; i < B; ++i) {
    const double* pi = &p[size_t(i) * c];
    for (size_t a = 0; a < c; ++a)
      for (size_t b = 0; b < c; ++b) H[a * c + b] = (a == b ? pi[a] : 0.0) - pi[a] * pi[b];
    la::sym_eig(C, H.data(), w.data(), V.data());
    double* Ri = &R[size_t(i) * c * k];
    for (size_t j = 0; j < k; ++j) {
      const double s = std::sqrt(std::max(w[j], 0.0));
      for (size_t a = 0; a < c; ++a) Ri[a * k + j] = V[a * c + j] * s;
    }
  }
  return R;
}

void labelled_loglik(const McBatchView& b, const std::vector<double>& logp, double& ll, int& n) {
  ll = 0;
  n = 0;
  if (!b.labels) return;
  for (int i = 0; i < b.B; ++i)
    if (b.labels[i] >= 0) {
      ll += logp[size_t(i) * size_t(b.C) + size_t(b.labels[i])];
      ++n;
    }
}

}  // namespace

// The Laplace passes of a batch run in chunks of ceil(B / 2) examples (B >= 2)
// in a workspace made for the chunk. Why: the workspace is the largest thing a
// step holds (saved activations for every layer: ~100 MiB for the 20m bench
// model at B = 4, T = 128); after training it is sized for the training batch,
// and with it at full size every byte of K-FAC state and predictive Jacobians
// lands on top of the training's peak. Released and re-made for half the
// examples, it leaves the Laplace state room inside what training held.
// Per-example numbers do not depend on the chunking (no op mixes examples;
// GEMM rounding may differ in the last bit), and the accumulator stages each
// chunk's rows so that they reach the factors in the order and grouping of
// the whole batch (KfacAccumulator::stage_pass).
static int laplace_chunk(LlamaModel& m, int B, int T, int C) {
  if (B < 2) return B;
  const int nb = (B + 1) / 2;
  // Re-make the workspace only when it is well above the chunk's need (after
  // training), not for every smaller batch shape.
  if (double(m.workspace_bytes()) > 1.5 * double(m.mc_workspace_need(nb, T, C))) m.release_workspace();
  return nb;
}

static McBatchView sub_batch(const McBatchView& b, int i0, int nb) {
  McBatchView v = b;  // examples [i0, i0 + nb)
  v.B = nb;
  v.ids = b.ids + size_t(i0) * size_t(b.T);
  v.mask = b.mask ? b.mask + size_t(i0) * size_t(b.T) : nullptr;
  v.last = b.last + i0;
  v.rows = b.rows + size_t(i0) * size_t(b.C);
  v.labels = b.labels ? b.labels + i0 : nullptr;
  return v;
}

namespace {
struct ChunkForward {
  McOutput out;
  double log_lik = 0;
  int n_labelled = 0;
};
}  // namespace

// One chunk's eval forward, its class probabilities p and labelled
// log-likelihood. The forward runs the last layer on the answer rows; an
// observer pass that needs every row of its o_proj/MLP LoRA (K-FAC's inputs
// pass) recomputes it in full (LlamaModel::backward_mc).
static ChunkForward forward_chunk(LlamaModel& m, const McBatchView& v, std::vector<double>& p) {
  ChunkForward f;
  f.out = m.forward_mc(v, /*train=*/false);
  std::vector<double> logp;
  class_probs(f.out.logits, v.B, v.C, p, logp);
  labelled_loglik(v, logp, f.log_lik, f.n_labelled);
  return f;
}

FisherBatchStats fisher_batch(LlamaModel& m, const McBatchView& b, KfacAccumulator& acc, const FisherOptions& o,
                              uint64_t batch_index) {
  BL_CHECK(o.samples >= 1 && o.samples <= 4096, code::kInvalidArgument, "samples must be in [1, 4096]");
  const int B = b.B, C = b.C;
  if (o.type == FisherType::kEmpirical) {
    BL_CHECK(b.labels != nullptr, code::kInvalidArgument, "the empirical Fisher needs labels");
    for (int i = 0; i < B; ++i)
      BL_CHECK(b.labels[i] >= 0, code::kInvalidArgument, "the empirical Fisher needs every example labelled (example ",
               i, " is not)");
  }
  acc.set_source_backend(&m.backend());
  FisherBatchStats st;
  st.n_examples = B;
  const int chunk = laplace_chunk(m, B, b.T, C);
  const bool staged = chunk < B;
  const uint64_t key = mix64(mix64(o.seed) ^ mix64(batch_index + 0x5851f42d4c957f2dull));
  try {
    for (int i0 = 0; i0 < B; i0 += chunk) {
      const int nb = std::min(chunk, B - i0);
      const McBatchView v = sub_batch(b, i0, nb);
      std::vector<double> p;
      const ChunkForward f = forward_chunk(m, v, p);
      st.log_lik += f.log_lik;
      st.n_labelled += f.n_labelled;

      std::vector<float> seed(size_t(nb) * size_t(C));
      int pass = 0;
      auto run = [&](bool inputs, double weight) {
        // Abort between passes (an aborted batch leaves the accumulator with some of
        // its passes: Laplace.fit discards it; low-level callers must too).
        check_cancel("Laplace fit");
        acc.begin_example_pass(inputs, weight);
        if (staged) acc.stage_pass(pass++);
        m.backward_mc(seed.data(), &acc, /*accumulate_grads=*/false, /*param_grads=*/false);
      };
      // seed row = scale * (e_y - p)
      auto set_row = [&](int i, int y, double scale) {
        for (int c = 0; c < C; ++c) {
          const size_t k = size_t(i) * size_t(C) + size_t(c);
          seed[k] = float(scale * ((c == y ? 1.0 : 0.0) - p[k]));
        }
      };
      switch (o.type) {
        case FisherType::kExact: {
          // 'aligned' normalises each pass's summed gradient, so it is not a
          // function of sum_c seed seed^T: it keeps the C seeds of the SPEC.
          if (C < 2 || acc.options().tokens == TokenMode::kAligned) {
            for (int c = 0; c < C; ++c) {
              for (int i = 0; i < nb; ++i) set_row(i, c, std::sqrt(p[size_t(i) * size_t(C) + size_t(c)]));
              run(c == 0, 1.0);
            }
            break;
          }
          // The C seeds sqrt(p_c) (e_c - p) are the columns of a square root of
          // H = diag(p) - p p^T, and 'reduce' / 'expand' factors only see
          // sum_c seed seed^T = H (every observed gradient row is linear in the
          // seed, and G sums their outer products). H has rank C - 1 (H 1 =
          // 0), so the C - 1 columns U_k sqrt(w_k) of its leading eigenpairs
          // give the same Fisher with one backward pass fewer per example.
          // The inputs go with the last pass: the gradient-only passes before
          // it keep the last layer on the answer rows (LoraObserver::
          // needs_every_row); only the last one may have to rerun it in full.
          const std::vector<double> R = exact_seeds(p, nb, C);
          for (int j = 0; j < C - 1; ++j) {
            for (int i = 0; i < nb; ++i)
              for (int c = 0; c < C; ++c)
                seed[size_t(i) * size_t(C) + size_t(c)] =
                    float(R[(size_t(i) * size_t(C) + size_t(c)) * size_t(C - 1) + size_t(j)]);
            run(j == C - 2, 1.0);
          }
          break;
        }
        case FisherType::kSampled: {
          for (int s = 0; s < o.samples; ++s) {
            for (int i = 0; i < nb; ++i) {
              // keyed by the example's index in the whole batch: chunking draws the same labels
              const uint64_t ctr = uint64_t(i0 + i) * uint64_t(o.samples) + uint64_t(s);
              const double u = double(mix64(key + ctr) >> 11) * (1.0 / 9007199254740992.0);
              int y = C - 1;
              double cum = 0;
              for (int c = 0; c < C; ++c) {
                cum += p[size_t(i) * size_t(C) + size_t(c)];
                if (u < cum) {
                  y = c;
                  break;
                }
              }
              set_row(i, y, 1.0);
            }
            run(s == o.samples - 1, 1.0 / o.samples);  // inputs last, as for exact
          }
          break;
        }
        case FisherType::kEmpirical:
          for (int i = 0; i < nb; ++i) set_row(i, v.labels[i], 1.0);
          run(true, 1.0);
          break;
      }
    }
    if (staged) acc.end_staging();
  } catch (...) {
    if (staged) acc.drop_staged();
    throw;
  }
  return st;
}

PredictBatchOut predict_batch(LlamaModel& m, const McBatchView& b, std::shared_ptr<const Posterior> post,
                              const std::vector<double>& prior_scales) {
  const int B = b.B, C = b.C;
  const size_t per_example = size_t(C) * size_t(C), G = prior_scales.size();
  PredictBatchOut r;
  r.B = B;
  r.C = C;
  r.logits.resize(size_t(B) * size_t(C));
  r.lambda.resize(size_t(B) * per_example);
  r.lambda_grid.resize(G * size_t(B) * per_example);
  // Scale 1 (the posterior's own prior) first, then the requested ones.
  std::vector<double> scales{1.0};
  scales.insert(scales.end(), prior_scales.begin(), prior_scales.end());
  const int chunk = laplace_chunk(m, B, b.T, C);
  for (int i0 = 0; i0 < B; i0 += chunk) {
    const int nb = std::min(chunk, B - i0);
    const McBatchView v = sub_batch(b, i0, nb);
    std::vector<double> p;
    const ChunkForward f = forward_chunk(m, v, p);
    std::copy(f.out.logits.begin(), f.out.logits.end(), r.logits.begin() + long(size_t(i0) * size_t(C)));
    r.log_lik += f.log_lik;
    r.n_labelled += f.n_labelled;
    JacobianProjector jp(post, &m.backend());
    jp.set_prior_scales(scales);
    jp.begin_batch(nb, C);
    std::vector<float> seed(size_t(nb) * size_t(C));
    for (int c = 0; c < C; ++c) {
      std::fill(seed.begin(), seed.end(), 0.0f);
      for (int i = 0; i < nb; ++i) seed[size_t(i) * size_t(C) + size_t(c)] = 1.0f;
      check_cancel("Laplace predict");
      jp.set_class(c);
      m.backward_mc(seed.data(), &jp, /*accumulate_grads=*/false, /*param_grads=*/false);
    }
    const std::vector<double> lam = jp.lambda(0);
    std::copy(lam.begin(), lam.end(), r.lambda.begin() + long(size_t(i0) * per_example));
    for (size_t k = 0; k < G; ++k) {
      const std::vector<double> lk = jp.lambda(int(k + 1));
      std::copy(lk.begin(), lk.end(), r.lambda_grid.begin() + long((k * size_t(B) + size_t(i0)) * per_example));
    }
  }
  release_free_heap();  // the projectors' Jacobians were just freed
  return r;
}

AdapterState adapter_state(const LlamaModel& m) {
  BL_CHECK(m.has_lora(), code::kInvalidArgument, "the model has no LoRA adapter");
  AdapterState s;
  std::vector<std::vector<float>> w(size_t(m.num_lora_matrices()));
  std::vector<AdapterTensorRef> refs;
  for (int id = 0; id < m.num_lora_matrices(); ++id) {
    w[size_t(id)] = m.get_lora_weight(id);
    double t = 0;
    for (float v : w[size_t(id)]) t += double(v) * double(v);
    const LoraMatrixInfo info = m.lora_matrix(id);
    s.names.push_back(matrix_name(m, id));
    s.theta_sq.push_back(t);
    refs.push_back({s.names.back(), {info.d_out, info.d_in}, w[size_t(id)].data()});
  }
  s.identity = adapter_identity(refs);
  return s;
}

}  // namespace bl::laplace
