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

size_t AdamW::bytes() const {
  size_t n = 0;
  for (const auto& kv : state_) n += kv.second.m.bytes() + kv.second.v.bytes();
  return n;
}

}  // namespace bl
