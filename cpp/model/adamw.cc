// AdamW step with clipping and non-finite handling (see adamw.h).
#include "model/adamw.h"

#include <cmath>

#include "core/error.h"

namespace bl {

void AdamWOptions::validate() const {
  BL_CHECK(std::isfinite(lr) && lr >= 0, code::kInvalidArgument, "lr must be finite and >= 0, got ", lr);
  BL_CHECK(beta1 >= 0 && beta1 < 1, code::kInvalidArgument, "beta1 must be in [0, 1), got ", beta1);
  BL_CHECK(beta2 >= 0 && beta2 < 1, code::kInvalidArgument, "beta2 must be in [0, 1), got ", beta2);
  BL_CHECK(std::isfinite(eps) && eps > 0, code::kInvalidArgument, "eps must be > 0, got ", eps);
  BL_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, code::kInvalidArgument,
           "weightDecay must be >= 0, got ", weight_decay);
  BL_CHECK(std::isfinite(max_grad_norm) && max_grad_norm >= 0, code::kInvalidArgument,
           "maxGradNorm must be >= 0 (0 = no clipping), got ", max_grad_norm);
}

double AdamW::grad_norm(Backend& be, const std::vector<TrainTensor>& ts) {
  double s = 0;
  for (const auto& t : ts) s += be.sum_squares(t.n, t.g);
  return std::sqrt(s);
}

StepReport AdamW::step(Backend& be, const std::vector<TrainTensor>& ts, const AdamWOptions& o) {
  o.validate();
  BL_CHECK(!ts.empty(), code::kInvalidArgument, "optimizer step: the model has no trainable parameters (add LoRA or enable full training)");
  StepReport rep;
  rep.grad_norm = grad_norm(be, ts);
  if (!std::isfinite(rep.grad_norm)) {
    if (!o.skip_nonfinite)
      fail(code::kNumerical, "optimizer step ", t_ + 1, ": gradient norm is not finite (",
           rep.grad_norm, "); NaN/Inf in the gradients");
    for (const auto& t : ts) be.zero(t.g, size_t(t.n) * sizeof(float));
    rep.skipped = true;
    rep.step = t_;
    return rep;
  }
  float scale = 1.0f;
  if (o.max_grad_norm > 0 && rep.grad_norm > o.max_grad_norm)
    scale = float(o.max_grad_norm / (rep.grad_norm + 1e-6));
  ++t_;
  for (const auto& t : ts) {
    State& st = state_[t.name];
    if (st.n != t.n) {
      st.m = Buffer(be, size_t(t.n) * sizeof(float));
      st.v = Buffer(be, size_t(t.n) * sizeof(float));
      be.zero(st.m.data(), st.m.bytes());
      be.zero(st.v.data(), st.v.bytes());
      st.n = t.n;
    }
    be.adamw(t.p, t.g, st.m.f(), st.v.f(), t.n, float(o.lr), float(o.beta1), float(o.beta2),
             float(o.eps), t.decay ? float(o.weight_decay) : 0.0f, t_, scale);
    be.zero(t.g, size_t(t.n) * sizeof(float));
  }
  rep.step = t_;
  return rep;
}

std::vector<AdamW::HostMoments> AdamW::export_state(Backend& be) const {
  std::vector<HostMoments> out;
  for (const auto& kv : state_) {
    HostMoments h;
    h.name = kv.first;
    h.m.resize(size_t(kv.second.n));
    h.v.resize(size_t(kv.second.n));
    be.to_host(h.m.data(), kv.second.m.data(), h.m.size() * sizeof(float));
    be.to_host(h.v.data(), kv.second.v.data(), h.v.size() * sizeof(float));
    out.push_back(std::move(h));
  }
  return out;
}

void AdamW::import_state(Backend& be, const std::vector<TrainTensor>& ts, int steps,
                         const std::vector<HostMoments>& s) {
  BL_CHECK(steps >= 0, code::kInvalidArgument, "optimizer state: step count must be >= 0, got ", steps);
  BL_CHECK(steps > 0 || s.empty(), code::kInvalidArgument, "optimizer state: moments without a step");
  // Validate everything before changing anything.
  for (const auto& h : s) {
    const TrainTensor* t = nullptr;
    for (const auto& x : ts)
      if (x.name == h.name) t = &x;
    BL_CHECK(t != nullptr, code::kInvalidArgument, "optimizer state: the model has no trainable tensor '", h.name, "'");
    BL_CHECK(int64_t(h.m.size()) == t->n && int64_t(h.v.size()) == t->n, code::kInvalidArgument,
             "optimizer state: '", h.name, "' has ", h.m.size(), "/", h.v.size(), " moments, the tensor has ", t->n);
    for (size_t i = 0; i < h.m.size(); ++i)
      BL_CHECK(std::isfinite(h.m[i]) && std::isfinite(h.v[i]) && h.v[i] >= 0, code::kInvalidArgument,
               "optimizer state: '", h.name, "' has a non-finite or negative moment at ", i);
  }
  std::map<std::string, State> next;
  for (const auto& h : s) {
    State& st = next[h.name];
    st.n = int64_t(h.m.size());
    st.m = Buffer(be, h.m.size() * sizeof(float));
    st.v = Buffer(be, h.v.size() * sizeof(float));
    be.to_device(st.m.data(), h.m.data(), st.m.bytes());
    be.to_device(st.v.data(), h.v.data(), st.v.bytes());
  }
  state_ = std::move(next);
  t_ = steps;
}

size_t AdamW::bytes() const {
  size_t n = 0;
  for (const auto& kv : state_) n += kv.second.m.bytes() + kv.second.v.bytes();
  return n;
}

}  // namespace bl
