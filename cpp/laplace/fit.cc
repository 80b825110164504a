// Fisher passes and the batch predictive over a LlamaModel (see fit.h).
#include "laplace/fit.h"

#include <cmath>

#include "backend/backend.h"
#include "core/cancel.h"
#include "core/error.h"
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
  McOutput out = m.forward_mc(b, /*train=*/false);
  std::vector<double> p, logp;
  class_probs(out.logits, B, C, p, logp);
  FisherBatchStats st;
  st.n_examples = B;
  labelled_loglik(b, logp, st.log_lik, st.n_labelled);

  std::vector<float> seed(size_t(B) * size_t(C));
  auto run = [&](bool inputs, double weight) {
    // Abort between passes (an aborted batch leaves the accumulator with some of
    // its passes: Laplace.fit discards it; low-level callers must too).
    check_cancel("Laplace fit");
    acc.begin_example_pass(inputs, weight);
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
    case FisherType::kExact:
      for (int c = 0; c < C; ++c) {
        for (int i = 0; i < B; ++i) set_row(i, c, std::sqrt(p[size_t(i) * size_t(C) + size_t(c)]));
        run(c == 0, 1.0);
      }
      break;
    case FisherType::kSampled: {
      const uint64_t key = mix64(mix64(o.seed) ^ mix64(batch_index + 0x5851f42d4c957f2dull));
      for (int s = 0; s < o.samples; ++s) {
        for (int i = 0; i < B; ++i) {
          const uint64_t ctr = uint64_t(i) * uint64_t(o.samples) + uint64_t(s);
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
        run(s == 0, 1.0 / o.samples);
      }
      break;
    }
    case FisherType::kEmpirical:
      for (int i = 0; i < B; ++i) set_row(i, b.labels[i], 1.0);
      run(true, 1.0);
      break;
  }
  return st;
}

PredictBatchOut predict_batch(LlamaModel& m, const McBatchView& b, std::shared_ptr<const Posterior> post) {
  const int B = b.B, C = b.C;
  McOutput out = m.forward_mc(b, /*train=*/false);
  PredictBatchOut r;
  r.B = B;
  r.C = C;
  r.logits = out.logits;
  std::vector<double> p, logp;
  class_probs(out.logits, B, C, p, logp);
  labelled_loglik(b, logp, r.log_lik, r.n_labelled);
  {
    JacobianProjector jp(std::move(post), &m.backend());
    jp.begin_batch(B, C);
    std::vector<float> seed(size_t(B) * size_t(C));
    for (int c = 0; c < C; ++c) {
      std::fill(seed.begin(), seed.end(), 0.0f);
      for (int i = 0; i < B; ++i) seed[size_t(i) * size_t(C) + size_t(c)] = 1.0f;
      check_cancel("Laplace predict");
      jp.set_class(c);
      m.backward_mc(seed.data(), &jp, /*accumulate_grads=*/false, /*param_grads=*/false);
    }
    r.lambda = jp.lambda();
  }
  release_free_heap();  // the projector's Jacobians (B x C per layer) were just freed
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
