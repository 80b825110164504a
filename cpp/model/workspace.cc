// Workspace carving (see workspace.h). The layout function runs twice: once to
// count bytes, once to hand out pointers into the allocation.
#include "model/workspace.h"

#include <algorithm>

#include "core/error.h"

namespace bl {
namespace {

class Carver {
 public:
  explicit Carver(char* base) : base_(base) {}
  template <class T>
  T* take(int64_t count) {
    const size_t bytes = (size_t(std::max<int64_t>(count, 1)) * sizeof(T) + 63) / 64 * 64;
    T* p = base_ ? reinterpret_cast<T*>(base_ + off_) : nullptr;
    off_ += bytes;
    return p;
  }
  float* f(int64_t n) { return take<float>(n); }
  size_t used() const { return off_; }

 private:
  char* base_;
  size_t off_ = 0;
};

void layout(Carver& cv, const WsDims& D, WsMode mode, int B, int T, int C, Acts& a) {
  const int64_t N = int64_t(B) * T;
  a.mode = mode;
  a.B = B, a.T = T, a.C = C, a.N = int(N);
  a.ids = cv.take<int32_t>(N);
  a.pos = cv.take<int32_t>(N);
  a.mask = cv.take<uint8_t>(N);
  a.resid.assign(size_t(D.L) + 1, nullptr);
  for (auto& r : a.resid) r = cv.f(N * D.d);
  a.nrm = cv.f(N * D.d);
  a.rstd_tmp = cv.f(N);
  a.layers.assign(size_t(D.L), LayerActs{});
  for (int l = 0; l < D.L; ++l) {
    LayerActs& la = a.layers[size_t(l)];
    la.n1 = a.nrm;
    la.rstd1 = cv.f(N);
    la.q = cv.f(N * D.qd);
    la.k = cv.f(N * D.kvd);
    la.v = cv.f(N * D.kvd);
    la.att_saved = cv.f(int64_t(D.attn_saved));
    la.att = cv.f(N * D.qd);
    la.x_mid = cv.f(N * D.d);
    la.n2 = a.nrm;
    la.rstd2 = cv.f(N);
    la.gate = cv.f(N * D.I);
    la.up = cv.f(N * D.I);
    for (int m = 0; m < kLayerModules; ++m)
      la.u[size_t(m)] = (D.r > 0 && D.lora[size_t(l)][size_t(m)]) ? cv.f(N * D.r) : nullptr;
  }
  const int maxin = std::max({D.d, D.qd, D.I});
  const int64_t r = std::max(D.r, 1);
  if (mode == WsMode::kMc) {
    a.last_idx = cv.take<int32_t>(B);
    a.rows = cv.take<int32_t>(int64_t(B) * C);
    a.labels = cv.take<int32_t>(B);
    a.gidx = cv.take<int32_t>(int64_t(B) * C);
    a.targets = nullptr;
    a.hl = cv.f(int64_t(B) * D.d);
    a.nf = cv.f(int64_t(B) * D.d);
    a.rstd_f = cv.f(B);
    a.u_lm = D.lora_lm ? cv.f(int64_t(B) * r) : nullptr;
    a.logits = cv.f(int64_t(B) * C);
    a.probs = cv.f(int64_t(B) * C);
    a.loss = cv.f(B);
    a.dlogits = cv.f(int64_t(B) * C);
    a.seed = cv.f(int64_t(B) * C);
    a.tmp_c = cv.f(int64_t(B) * C);
    a.gdense = D.lora_lm ? cv.f(int64_t(B) * D.V) : nullptr;
    a.dnf = cv.f(int64_t(B) * D.d);
    a.dhl = cv.f(int64_t(B) * D.d);
    a.att_last = cv.f(int64_t(B) * D.qd);
    a.datt_last = cv.f(int64_t(B) * D.qd);
  } else {
    a.last_idx = a.rows = a.labels = a.gidx = nullptr;
    a.targets = cv.take<int32_t>(N);
    a.hl = nullptr;  // the head reads resid[L] directly
    a.nf = cv.f(N * D.d);
    a.rstd_f = cv.f(N);
    a.u_lm = D.lora_lm ? cv.f(N * r) : nullptr;
    a.logits = cv.f(N * D.V);
    a.probs = nullptr;
    a.loss = cv.f(N);
    a.dlogits = cv.f(N * D.V);
    a.seed = a.tmp_c = a.gdense = a.dhl = nullptr;
    a.dnf = cv.f(N * D.d);
    a.att_last = a.datt_last = nullptr;
  }
  a.dX = cv.f(N * D.d);
  a.dn = cv.f(N * D.d);
  a.dq = cv.f(N * D.qd);
  a.dk = cv.f(N * D.kvd);
  a.dv = cv.f(N * D.kvd);
  a.datt = cv.f(N * D.qd);
  a.act = cv.f(N * D.I);
  a.dact = cv.f(N * D.I);
  a.dgate = cv.f(N * D.I);
  a.dup = cv.f(N * D.I);
  a.gu = cv.f(N * r);
  a.vbuf = cv.f(N * r);
  a.drop = cv.f(N * maxin);
  a.drop2 = cv.f(N * maxin);
}

}  // namespace

size_t Workspace::need(const WsDims& dims, WsMode mode, int B, int T, int C) {
  Carver count(nullptr);
  Acts scratch;
  layout(count, dims, mode, B, T, C, scratch);
  return count.used();
}

void Workspace::prepare(Backend& be, const WsDims& dims, WsMode mode, int B, int T, int C,
                        Acts& acts) {
  Carver count(nullptr);
  layout(count, dims, mode, B, T, C, acts);
  const size_t need = count.used();
  if (need > buf_.bytes()) {
    buf_.reset();  // free first: the old and new blocks need not coexist
    buf_ = Buffer(be, need);
  }
  Carver real(static_cast<char*>(buf_.data()));
  layout(real, dims, mode, B, T, C, acts);
}

}  // namespace bl
