// Per-class Jacobian projection into the posterior's eigenbases (see jacobian_projector.h).
#include "laplace/jacobian_projector.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "laplace/linalg64.h"

namespace bl::laplace {

JacobianProjector::JacobianProjector(std::shared_ptr<const Posterior> post, Backend* be)
    : post_(std::move(post)), be_(be ? be : &cpu_backend()) {
  BL_CHECK(post_ != nullptr, code::kInvalidArgument, "JacobianProjector: posterior is required");
}

void JacobianProjector::check_prior_scales(const Posterior& post, const std::vector<double>& scales) {
  // At most kMaxPriorScales: the cached weights take scales x (sum of ka kg
  // over layers) doubles, 24 MB for the built-in model's 26.
  BL_CHECK(!scales.empty() && scales.size() <= size_t(kMaxPriorScales), code::kInvalidArgument,
           "prior scales: need 1 to ", kMaxPriorScales, " values, got ", scales.size());
  for (double s : scales) {
    BL_CHECK(std::isfinite(s) && s > 0, code::kInvalidArgument, "prior scales must be finite and > 0, got ", s);
    for (double d : post.prior())
      BL_CHECK(d * s >= kMinPriorPrecision && d * s <= kMaxPriorPrecision, code::kInvalidArgument, "prior scale ", s,
               " takes the prior precision ", d, " to ", d * s, ", outside [", kMinPriorPrecision, ", ",
               kMaxPriorPrecision, "]");
  }
}

void JacobianProjector::set_prior_scales(std::vector<double> scales) {
  check_prior_scales(*post_, scales);
  scales_ = std::move(scales);
  weights_.clear();
  if (C_ > 0) begin_batch(B_, C_);  // a batch in progress restarts with Lambda sized for the new scales
}

void JacobianProjector::begin_batch(int B, int C) {
  BL_CHECK(B >= 0 && C >= 1 && C <= 4096, code::kInvalidArgument, "JacobianProjector: need B >= 0, 1 <= C <= 4096");
  B_ = B;
  C_ = C;
  cur_ = 0;
  const size_t n = size_t(post_->num_layers()) * size_t(B) * size_t(C);
  lambda_.assign(scales_.size() * size_t(B) * size_t(C) * size_t(C), 0.0);
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
  // Per example: J_b = sum over real tokens g_t x_t^T, by nonzero rows.
  batchJ_.resize(size_t(B));
  std::vector<uint8_t> nz(dout);
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
    SparseJ& J = batchJ_[b];
    J.rows.clear();
    // Row i of J can be nonzero only where some token has g_t,i != 0.
    std::fill(nz.begin(), nz.end(), uint8_t(0));
    size_t nnz = 0;
    for (size_t t = 0; t < size_t(n); ++t)
      for (size_t i = 0; i < dout; ++i)
        if (G[t * dout + i] != 0 && !nz[i]) nz[i] = 1, ++nnz;
    if (nnz * 2 > dout) {  // dense: J = G^T X (one GEMM)
      J.rows.resize(dout);
      for (size_t i = 0; i < dout; ++i) J.rows[i] = int(i);
      J.vals.assign(dout * din, 0.0f);
      if (n > 0)
        cpu_backend().gemm(true, false, e.d_out, e.d_in, n, 1.0f, G, e.d_out, X, e.d_in, 0.0f, J.vals.data(),
                           e.d_in);
    } else {  // sparse (LM head): only the rows with a gradient
      J.vals.assign(nnz * din, 0.0f);
      for (size_t i = 0; i < dout; ++i)
        if (nz[i]) J.rows.push_back(int(i));
      for (size_t k = 0; k < J.rows.size(); ++k) {
        float* Jr = &J.vals[k * din];
        const size_t i = size_t(J.rows[k]);
        for (size_t t = 0; t < size_t(n); ++t) {
          const float gi = G[t * dout + i];
          if (gi == 0) continue;
          const float* Xt = X + t * din;
          for (size_t j = 0; j < din; ++j) Jr[j] += gi * Xt[j];
        }
      }
    }
  }
  const size_t np = size_t(e.ka) * size_t(e.kg);
  Pall_.assign(size_t(B) * np, 0.0);
  project_many(layer, batchJ_.data(), B, Pall_.data());
  for (int b = 0; b < B; ++b)
    accept(layer, b, cur_, std::move(batchJ_[size_t(b)]),
           std::vector<double>(Pall_.begin() + long(size_t(b) * np), Pall_.begin() + long(size_t(b + 1) * np)));
}

void JacobianProjector::add_jacobian(int l, int b, int c, const float* J) {
  BL_CHECK(l >= 0 && l < post_->num_layers(), code::kInvalidArgument, "layer index ", l, " out of range");
  BL_CHECK(b >= 0 && b < B_ && c >= 0 && c < C_, code::kInvalidArgument, "example/class index out of range");
  const LayerEigen& e = post_->layer(l);
  SparseJ s;
  s.rows.resize(size_t(e.d_out));
  for (int i = 0; i < e.d_out; ++i) s.rows[size_t(i)] = i;
  s.vals.assign(J, J + e.D());
  std::vector<double> P(size_t(e.ka) * size_t(e.kg), 0.0);
  project_many(l, &s, 1, P.data());
  accept(l, b, c, std::move(s), std::move(P));
}

// P_b = Ug^T J_b Ua for nb Jacobians. Step 1 stacks every example's rows and
// multiplies by Ua once; step 2 applies Ug^T to all examples in one product
// when they are all dense (columns of the examples side by side), else per
// example over its own rows of Ug. Each entry is summed in the same order as
// Posterior::project on the dense J (zero rows add exact zeros), so the
// results are those of per-example projection.
void JacobianProjector::project_many(int l, const SparseJ* J, int nb, double* P) {
  const LayerEigen& e = post_->layer(l);
  const size_t ka = size_t(e.ka), kg = size_t(e.kg), din = size_t(e.d_in), dout = size_t(e.d_out);
  if (ka == 0 || kg == 0 || nb == 0) return;
  size_t R = 0;
  bool all_dense = true;
  for (int b = 0; b < nb; ++b) {
    R += J[b].rows.size();
    all_dense = all_dense && J[b].rows.size() == dout;
  }
  if (R == 0) return;
  Jst_.resize(R * din);
  size_t off = 0;
  for (int b = 0; b < nb; ++b) {
    std::copy(J[b].vals.begin(), J[b].vals.end(), Jst_.begin() + long(off * din));
    off += J[b].rows.size();
  }
  JU_.resize(R * ka);
  la::gemm_nn(int(R), e.d_in, e.ka, Jst_.data(), e.Ua.data(), JU_.data());  // J Ua, all rows
  const size_t np = ka * kg;
  if (all_dense) {
    const size_t W = size_t(nb) * ka;
    JUt_.resize(dout * W);
    for (size_t b = 0; b < size_t(nb); ++b)
      for (size_t i = 0; i < dout; ++i)
        std::copy(&JU_[(b * dout + i) * ka], &JU_[(b * dout + i + 1) * ka], &JUt_[i * W + b * ka]);
    Pt_.resize(kg * W);
    la::gemm_tn(e.d_out, e.kg, int(W), e.Ug.data(), JUt_.data(), Pt_.data());
    for (size_t b = 0; b < size_t(nb); ++b)
      for (size_t j = 0; j < kg; ++j)
        std::copy(&Pt_[j * W + b * ka], &Pt_[j * W + (b + 1) * ka], P + b * np + j * ka);
    return;
  }
  off = 0;
  for (int b = 0; b < nb; ++b) {
    const size_t nr = J[b].rows.size();
    if (nr > 0) {
      Ugs_.resize(nr * kg);
      for (size_t k = 0; k < nr; ++k)
        std::copy(&e.Ug[size_t(J[b].rows[k]) * kg], &e.Ug[(size_t(J[b].rows[k]) + 1) * kg], &Ugs_[k * kg]);
      la::gemm_tn(int(nr), e.kg, e.ka, Ugs_.data(), &JU_[off * ka], P + size_t(b) * np);
    }
    off += nr;
  }
}

const std::vector<double>& JacobianProjector::weights(int l) {
  if (weights_.empty()) weights_.resize(size_t(post_->num_layers()));
  std::vector<double>& W = weights_[size_t(l)];
  const LayerEigen& e = post_->layer(l);
  const size_t M = size_t(e.ka) * size_t(e.kg), S = scales_.size();
  if (W.size() == M * S) return W;
  W.resize(M * S);
  pp_.resize(M);
  for (size_t k = 0; k < S; ++k) {
    post_->quad_weights(l, scales_[k], pp_.data());
    for (size_t m = 0; m < M; ++m) W[m * S + k] = pp_[m];
  }
  return W;
}

// sum_i a_i b_i with eight independent partial sums: no loop-carried
// dependence on one accumulator, so the compiler can vectorise it.
static double dot(const double* a, const double* b, size_t n) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t u = 0; u < 8; ++u) s[u] += a[i + u] * b[i + u];
  double r = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

void JacobianProjector::accept(int l, int b, int c, SparseJ&& J, std::vector<double>&& P) {
  const LayerEigen& e = post_->layer(l);
  const size_t base = (size_t(l) * size_t(B_) + size_t(b)) * size_t(C_);
  BL_CHECK(!seen_[base + size_t(c)], code::kInternal, "JacobianProjector: layer '", e.name, "', example ", b,
           ", class ", c, " given twice in one batch");
  const bool complete = e.ka == e.d_in && e.kg == e.d_out;
  proj_[base + size_t(c)] = std::move(P);
  // The Jacobian is kept for the later classes' inner products: not needed
  // once every class of this example has been seen (memory: 1/C of the
  // batch's Jacobians is never stored).
  bool last = true;
  for (int c2 = 0; c2 < C_ && last; ++c2) last = c2 == c || seen_[base + size_t(c2)];
  SparseJ here;
  if (!complete) (last ? here : jac_[base + size_t(c)]) = std::move(J);
  seen_[base + size_t(c)] = 1;
  const std::vector<double>& Pc = proj_[base + size_t(c)];
  const size_t Cn = size_t(C_), din = size_t(e.d_in);
  const size_t per_scale = size_t(B_) * Cn * Cn, S = scales_.size(), M = Pc.size();
  const std::vector<double>& W = weights(l);
  for (int c2 = 0; c2 < C_; ++c2) {
    if (!seen_[base + size_t(c2)]) continue;
    const std::vector<double>& P2 = proj_[base + size_t(c2)];
    double frob = 0;
    if (complete) {
      for (size_t i = 0; i < Pc.size(); ++i) frob += Pc[i] * P2[i];
    } else {  // <J, J2>_F over the rows both have, in row-major order
      const SparseJ &J1 = last ? here : jac_[base + size_t(c)], &J2 = c2 == c ? J1 : jac_[base + size_t(c2)];
      size_t p = 0, q = 0;
      while (p < J1.rows.size() && q < J2.rows.size()) {
        if (J1.rows[p] < J2.rows[q]) {
          ++p;
        } else if (J2.rows[q] < J1.rows[p]) {
          ++q;
        } else {
          const float *a = &J1.vals[p * din], *b2 = &J2.vals[q * din];
          for (size_t j = 0; j < din; ++j) frob += double(a[j]) * double(b2[j]);
          ++p;
          ++q;
        }
      }
    }
    // Posterior::quad_from_projections for every scale: frob / delta_k -
    // sum_m w_mk (PJ_m PJ2_m). One scale: a dot product; several: the
    // products once, each added into all scales' sums (contiguous in W).
    pp_.resize(M);
    for (size_t m = 0; m < M; ++m) pp_[m] = Pc[m] * P2[m];
    qsum_.assign(S, 0.0);
    if (S == 1) {
      qsum_[0] = dot(W.data(), pp_.data(), M);
    } else {
      double* q = qsum_.data();
      for (size_t m = 0; m < M; ++m) {
        const double t = pp_[m];
        const double* w = &W[m * S];
        for (size_t k = 0; k < S; ++k) q[k] += w[k] * t;
      }
    }
    const size_t hi = size_t(std::max(c, c2)), lo = size_t(std::min(c, c2));
    for (size_t k = 0; k < S; ++k)
      lambda_[k * per_scale + size_t(b) * Cn * Cn + hi * Cn + lo] += frob / post_->prior_at(l, scales_[k]) - qsum_[k];
  }
  if (last)  // every class of this example and layer is in: free its Jacobians and projections
    for (size_t c2 = 0; c2 < Cn; ++c2) {
      jac_[base + c2] = SparseJ();
      std::vector<double>().swap(proj_[base + c2]);
    }
}

std::vector<double> JacobianProjector::lambda(int k) const {
  BL_CHECK(k >= 0 && k < num_scales(), code::kInvalidArgument, "prior scale index ", k, " out of range");
  const size_t Cn = size_t(C_), per_scale = size_t(B_) * Cn * Cn;
  std::vector<double> out(lambda_.begin() + long(size_t(k) * per_scale),
                          lambda_.begin() + long(size_t(k + 1) * per_scale));
  for (size_t b = 0; b < size_t(B_); ++b) {
    double* L = &out[b * Cn * Cn];
    for (size_t i = 0; i < Cn; ++i)
      for (size_t j = i + 1; j < Cn; ++j) L[i * Cn + j] = L[j * Cn + i];
  }
  return out;
}

}  // namespace bl::laplace
