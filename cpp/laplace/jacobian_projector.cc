// Per-class Jacobian projection into the posterior's eigenbases (see jacobian_projector.h).
#include "laplace/jacobian_projector.h"

#include <algorithm>

#include "core/error.h"

namespace bl::laplace {

JacobianProjector::JacobianProjector(std::shared_ptr<const Posterior> post, Backend* be)
    : post_(std::move(post)), be_(be ? be : &cpu_backend()) {
  BL_CHECK(post_ != nullptr, code::kInvalidArgument, "JacobianProjector: posterior is required");
}

void JacobianProjector::begin_batch(int B, int C) {
  BL_CHECK(B >= 0 && C >= 1 && C <= 4096, code::kInvalidArgument, "JacobianProjector: need B >= 0, 1 <= C <= 4096");
  B_ = B;
  C_ = C;
  cur_ = 0;
  const size_t n = size_t(post_->num_layers()) * size_t(B) * size_t(C);
  lambda_.assign(size_t(B) * size_t(C) * size_t(C), 0.0);
  proj_.assign(n, {});
  jac_.assign(n, {});
  seen_.assign(n, 0);
}

void JacobianProjector::set_class(int c) {
  BL_CHECK(c >= 0 && c < C_, code::kInvalidArgument, "JacobianProjector: class ", c, " out of range [0, ", C_, ")");
  cur_ = c;
}

void JacobianProjector::observe(const LoraMatrixInfo& m, const float* x, const float* g, int B, int T,
                                const uint8_t* mask) {
  BL_CHECK(B == B_, code::kInternal, "JacobianProjector: observed batch of ", B, ", expected ", B_);
  const int layer = post_->layer_of_id(m.id);
  if (layer < 0) return;  // a matrix the posterior does not model (e.g. last-layer Laplace)
  const LayerEigen& e = post_->layer(layer);
  BL_CHECK(m.d_in == e.d_in && m.d_out == e.d_out, code::kShapeMismatch, "JacobianProjector: LoRA matrix ", m.id,
           " is ", m.d_out, "x", m.d_in, ", posterior layer '", e.name, "' is ", e.d_out, "x", e.d_in);
  BL_CHECK(T >= 1, code::kInvalidArgument, "JacobianProjector: T must be >= 1");
  const size_t Tn = size_t(T), din = size_t(e.d_in), dout = size_t(e.d_out), rows = size_t(B) * Tn;
  if (!be_->host_memory()) {
    hx_.resize(rows * din);
    hg_.resize(rows * dout);
    be_->to_host(hx_.data(), x, hx_.size() * sizeof(float));
    be_->to_host(hg_.data(), g, hg_.size() * sizeof(float));
    x = hx_.data();
    g = hg_.data();
    if (mask) {
      hmask_.resize(rows);
      be_->to_host(hmask_.data(), mask, rows);
      mask = hmask_.data();
    }
  }
  for (size_t b = 0; b < size_t(B); ++b) {
    const float* X = x + b * Tn * din;
    const float* G = g + b * Tn * dout;
    int n = int(Tn);
    if (mask) {  // gather the real token rows
      rx_.resize(Tn * din);
      rg_.resize(Tn * dout);
      n = 0;
      for (size_t t = 0; t < Tn; ++t) {
        if (!mask[b * Tn + t]) continue;
        std::copy(X + t * din, X + (t + 1) * din, rx_.begin() + long(size_t(n) * din));
        std::copy(G + t * dout, G + (t + 1) * dout, rg_.begin() + long(size_t(n) * dout));
        ++n;
      }
      X = rx_.data();
      G = rg_.data();
    }
    std::vector<float> J(dout * din, 0.0f);
    // J = sum_t g_t x_t^T = G^T X.
    if (n > 0) cpu_backend().gemm(true, false, e.d_out, e.d_in, n, 1.0f, G, e.d_out, X, e.d_in, 0.0f, J.data(), e.d_in);
    accept(layer, int(b), cur_, std::move(J));
  }
}

void JacobianProjector::add_jacobian(int l, int b, int c, const float* J) {
  BL_CHECK(l >= 0 && l < post_->num_layers(), code::kInvalidArgument, "layer index ", l, " out of range");
  BL_CHECK(b >= 0 && b < B_ && c >= 0 && c < C_, code::kInvalidArgument, "example/class index out of range");
  const LayerEigen& e = post_->layer(l);
  accept(l, b, c, std::vector<float>(J, J + e.D()));
}

void JacobianProjector::accept(int l, int b, int c, std::vector<float>&& J) {
  const LayerEigen& e = post_->layer(l);
  const size_t base = (size_t(l) * size_t(B_) + size_t(b)) * size_t(C_);
  BL_CHECK(!seen_[base + size_t(c)], code::kInternal, "JacobianProjector: layer '", e.name, "', example ", b,
           ", class ", c, " given twice in one batch");
  const bool complete = e.ka == e.d_in && e.kg == e.d_out;
  std::vector<double> Jd(J.begin(), J.end());
  std::vector<double> P(size_t(e.ka) * size_t(e.kg), 0.0);
  post_->project(l, Jd.data(), P.data());
  proj_[base + size_t(c)] = std::move(P);
  if (!complete) jac_[base + size_t(c)] = std::move(J);
  seen_[base + size_t(c)] = 1;
  const std::vector<double>& Pc = proj_[base + size_t(c)];
  const size_t Cn = size_t(C_);
  double* Lb = &lambda_[size_t(b) * Cn * Cn];
  for (int c2 = 0; c2 < C_; ++c2) {
    if (!seen_[base + size_t(c2)]) continue;
    const std::vector<double>& P2 = proj_[base + size_t(c2)];
    double frob = 0;
    if (complete) {
      for (size_t i = 0; i < Pc.size(); ++i) frob += Pc[i] * P2[i];
    } else {
      const std::vector<float>& J2 = jac_[base + size_t(c2)];
      for (size_t i = 0; i < Jd.size(); ++i) frob += Jd[i] * double(J2[i]);
    }
    const double q = post_->quad_from_projections(l, Pc.data(), P2.data(), frob);
    const size_t hi = size_t(std::max(c, c2)), lo = size_t(std::min(c, c2));
    Lb[hi * Cn + lo] += q;
  }
}

std::vector<double> JacobianProjector::lambda() const {
  std::vector<double> out(lambda_);
  const size_t Cn = size_t(C_);
  for (size_t b = 0; b < size_t(B_); ++b) {
    double* L = &out[b * Cn * Cn];
    for (size_t i = 0; i < Cn; ++i)
      for (size_t j = i + 1; j < Cn; ++j) L[i * Cn + j] = L[j * Cn + i];
  }
  return out;
}

}  // namespace bl::laplace
