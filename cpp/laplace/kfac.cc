// K-FAC accumulation: token handling, dense Gram sums, low-rank routing (see kfac.h).
#include "laplace/kfac.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"

namespace bl::laplace {

const char* token_mode_name(TokenMode m) {
  return m == TokenMode::kExpand ? "expand" : m == TokenMode::kAligned ? "aligned" : "reduce";
}

TokenMode parse_token_mode(const std::string& s) {
  if (s == "reduce") return TokenMode::kReduce;
  if (s == "expand") return TokenMode::kExpand;
  if (s == "aligned") return TokenMode::kAligned;
  fail(code::kInvalidArgument, "tokens must be 'reduce', 'expand' or 'aligned', got '", s, "'");
}

// ---- one side ---------------------------------------------------------------------

static int chunk_for(const KfacOptions& o) { return o.chunk > 0 ? o.chunk : std::max(2 * o.n_kfac, 64); }

KfacFactor::KfacFactor(int d, const KfacOptions& o, MemCounter* mc) : d_(d), mc_(mc), S_(TrackedAlloc<double>(mc)) {
  if (d > o.threshold)
    lr_ = std::make_unique<LowRankFactor>(d, o.n_kfac, chunk_for(o), mc);
  else
    rows_ = std::make_unique<RowStack>(d, d / 2, mc);  // d x d sum once more than d / 2 rows
}

void KfacFactor::unstack() {
  if (!rows_) return;
  // Replay the held batches through the dense route (rows_ is cleared first,
  // so add_rows takes it): the sum is the one the side would have had.
  std::unique_ptr<RowStack> held = std::move(rows_);
  S_.assign(size_t(d_) * size_t(d_), 0.0);
  fvec scratch{TrackedAlloc<float>(mc_)};
  held->for_each_batch([&](const float* X, int n, double s) { add_rows(X, n, s, scratch); });
}

dvec& KfacFactor::dense_mut() {
  unstack();
  return S_;
}

void KfacFactor::dense_copy(std::vector<double>& out) const {
  BL_CHECK(!lr_, code::kInternal, "kfac: dense_copy of a low-rank side");
  if (!rows_) {
    out.assign(S_.begin(), S_.end());
  } else {
    KfacOptions o;
    o.threshold = d_;  // a dense side
    KfacFactor tmp(d_, o, nullptr);
    tmp.unstack();
    fvec scratch;
    rows_->for_each_batch([&](const float* X, int n, double s) { tmp.add_rows(X, n, s, scratch); });
    out.assign(tmp.S_.begin(), tmp.S_.end());
  }
  // The lower triangle is the sum (add_rows); the copy is exactly symmetric.
  const size_t D = size_t(d_);
  for (size_t i = 0; i < D; ++i)
    for (size_t j = 0; j < i; ++j) out[j * D + i] = out[i * D + j];
}

void KfacFactor::set_rows(const float* X, int n, const std::vector<int>& starts, const std::vector<double>& scales) {
  BL_CHECK(!lr_, code::kInternal, "kfac: set_rows of a low-rank side");
  if (!rows_) {
    BL_CHECK(d_ / 2 >= n, code::kInvalidArgument, "kfac: ", n, " rows exceed ", d_ / 2);
    rows_ = std::make_unique<RowStack>(d_, d_ / 2, mc_);
    dvec().swap(S_);
  }
  rows_->set(X, n, starts, scales);
}

void KfacFactor::add_rows(const float* X, int n, double scale, fvec& scratch) {
  if (stage_pass_ >= 0) {
    if (n > 0 && scale != 0) staged_.push_back({stage_pass_, scale, std::vector<float>(X, X + size_t(n) * size_t(d_))});
    return;
  }
  if (n <= 0 || scale == 0) return;
  if (lr_) {
    for (int i = 0; i < n; ++i) lr_->add_column_f32(X + size_t(i) * size_t(d_), scale);
    return;
  }
  if (rows_) {
    if (rows_->fits(n)) {
      rows_->add(X, n, scale);
      return;
    }
    unstack();
  }
  // S += scale^2 X^T X: float32 Gram of this batch (BLAS), float64 running sum,
  // through the seam op (S lives in host memory, so the CPU backend's).
  const size_t D = size_t(d_);
  scratch.resize(D * D);
  cpu_backend().kfac_accumulate(S_.data(), X, n, d_, d_, scale * scale, scratch.data());
  // The Gram's two triangles agree only to rounding (GEMM tiles sum them
  // apart). The lower triangle is the sum: the eigendecomposition reads only
  // it, files store only it, and dense_copy mirrors it.
}

void KfacFactor::unstage(fvec& scratch) {
  stage_pass_ = -1;
  std::vector<Staged> held;
  held.swap(staged_);
  std::stable_sort(held.begin(), held.end(), [](const Staged& a, const Staged& b) { return a.pass < b.pass; });
  std::vector<float> rows;
  for (size_t i = 0; i < held.size();) {
    size_t j = i;  // one call per run of the same pass and scale
    rows.clear();
    while (j < held.size() && held[j].pass == held[i].pass && held[j].scale == held[i].scale) {
      rows.insert(rows.end(), held[j].rows.begin(), held[j].rows.end());
      std::vector<float>().swap(held[j].rows);
      ++j;
    }
    add_rows(rows.data(), int(rows.size() / size_t(d_)), held[i].scale, scratch);
    i = j;
  }
}

void KfacFactor::merge_from(KfacFactor& o) {
  BL_CHECK(o.d_ == d_ && o.lowrank() == lowrank(), code::kShapeMismatch, "kfac merge: factor layout differs");
  if (lr_) {
    lr_->merge_from(*o.lr_);
    return;
  }
  if (rows_ && o.rows_ && rows_->fits(o.rows_->rows())) {
    rows_->append(*o.rows_);  // o may be this object: append copies first
    return;
  }
  if (o.rows_) {  // dense (or full) += o's rows; read o before changing this
    std::vector<double> So;
    o.dense_copy(So);
    unstack();
    for (size_t i = 0; i < S_.size(); ++i) S_[i] += So[i];
    return;
  }
  unstack();
  for (size_t i = 0; i < S_.size(); ++i) S_[i] += o.S_[i];
}

// ---- accumulator ---------------------------------------------------------------------

KfacAccumulator::KfacAccumulator(std::vector<KfacLayerSpec> layers, KfacOptions opt, Backend* be)
    : opt_(opt), be_(be ? be : &cpu_backend()), rows_(TrackedAlloc<float>(&mem_)),
      gram_(TrackedAlloc<float>(&mem_)), hx_(TrackedAlloc<float>(&mem_)), hg_(TrackedAlloc<float>(&mem_)) {
  BL_CHECK(!layers.empty(), code::kInvalidArgument, "kfac: at least one layer is required");
  BL_CHECK(opt.threshold >= 1, code::kInvalidArgument, "kfac: threshold must be >= 1");
  BL_CHECK(opt.n_kfac >= 1 && opt.n_kfac <= 4096, code::kInvalidArgument, "kfac: nKfac must be in [1, 4096]");
  BL_CHECK(opt.chunk >= 0 && opt.chunk <= 65536, code::kInvalidArgument, "kfac: chunk must be in [0, 65536]");
  std::set<std::string> names;
  for (auto& s : layers) {
    BL_CHECK(s.d_in >= 1 && s.d_in <= (1 << 20) && s.d_out >= 1 && s.d_out <= (1 << 20),
             code::kInvalidArgument, "kfac: layer '", s.name, "' dims must be in [1, 2^20]");
    BL_CHECK(names.insert(s.name).second, code::kInvalidArgument, "kfac: duplicate layer name '", s.name, "'");
    // A dense side costs d^2 float64; refuse sizes that are plainly a mistake.
    for (int d : {s.d_in, s.d_out})
      BL_CHECK(d > opt.threshold || d <= 16384, code::kInvalidArgument, "kfac: layer '", s.name,
               "' has a dense side of ", d, " (> 16384); lower threshold");
    BL_CHECK(s.id >= -1 && s.id < (1 << 24), code::kInvalidArgument, "kfac: layer '", s.name, "' has a bad id");
    const int id = s.id < 0 ? int(layers_.size()) : s.id;
    if (size_t(id) >= id_to_layer_.size()) id_to_layer_.resize(size_t(id) + 1, -1);
    BL_CHECK(id_to_layer_[size_t(id)] < 0, code::kInvalidArgument, "kfac: two layers observe LoRA matrix ", id);
    id_to_layer_[size_t(id)] = int(layers_.size());
    KfacLayerSpec spec = s;
    spec.id = id;
    layers_.push_back(std::unique_ptr<KfacLayer>(
        new KfacLayer{spec, KfacFactor(s.d_in, opt, &mem_), KfacFactor(s.d_out, opt, &mem_), 0.0}));
  }
}

int KfacAccumulator::layer_of_id(int id) const {
  return id >= 0 && size_t(id) < id_to_layer_.size() ? id_to_layer_[size_t(id)] : -1;
}

int KfacAccumulator::find_layer(const std::string& name) const {
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i]->spec.name == name) return int(i);
  return -1;
}

void KfacAccumulator::begin_example_pass(bool accumulate_inputs, double g_weight) {
  BL_CHECK(std::isfinite(g_weight) && g_weight >= 0, code::kInvalidArgument,
           "kfac: gradient weight must be finite and >= 0");
  pass_inputs_ = accumulate_inputs;
  pass_weight_ = g_weight;
}

void KfacAccumulator::observe(const LoraMatrixInfo& m, const float* x, const float* g, int B, int T,
                              const uint8_t* mask) {
  const int layer = layer_of_id(m.id);
  if (layer < 0) return;  // a matrix this accumulator does not model
  const auto& s = layers_[size_t(layer)]->spec;
  BL_CHECK(m.d_in == s.d_in && m.d_out == s.d_out, code::kShapeMismatch, "kfac: LoRA matrix ", m.id,
           " is ", m.d_out, "x", m.d_in, ", layer '", s.name, "' expects ", s.d_out, "x", s.d_in);
  if (be_->host_memory()) {
    add_host(layer, x, g, B, T, mask, pass_inputs_, pass_weight_);
    return;
  }
  if (opt_.tokens == TokenMode::kReduce) {
    observe_reduce_on_device(layer, x, g, B, T, mask);
    return;
  }
  const size_t rows = size_t(B) * size_t(T);
  const bool need_x = pass_inputs_ || opt_.tokens == TokenMode::kAligned;
  if (need_x && x) {
    hx_.resize(rows * size_t(s.d_in));
    be_->to_host(hx_.data(), x, hx_.size() * sizeof(float));
  }
  if (g) {
    hg_.resize(rows * size_t(s.d_out));
    be_->to_host(hg_.data(), g, hg_.size() * sizeof(float));
  }
  if (mask) {
    hmask_.resize(rows);
    be_->to_host(hmask_.data(), mask, rows);
  }
  add_host(layer, (need_x && x) ? hx_.data() : nullptr, g ? hg_.data() : nullptr, B, T,
           mask ? hmask_.data() : nullptr, pass_inputs_, pass_weight_);
}

int KfacAccumulator::examples_with_tokens(const uint8_t* host_mask, int B, int T) {
  ex_.clear();
  for (int b = 0; b < B; ++b) {
    bool any = host_mask == nullptr;
    for (int t = 0; t < T && !any; ++t) any = host_mask[size_t(b) * size_t(T) + size_t(t)] != 0;
    if (any) ex_.push_back(b);
  }
  return int(ex_.size());
}

// tokens 'reduce' with x, g in device memory: the token sums run on the device
// (Backend::token_reduce), so only one row per example, not B*T token rows,
// is copied to the host factors. Same rows and counts as add_host's reduce.
void KfacAccumulator::observe_reduce_on_device(int layer, const float* x, const float* g, int B, int T,
                                               const uint8_t* mask) {
  KfacLayer& L = *layers_[size_t(layer)];
  BL_CHECK(B >= 0 && T >= 1, code::kInvalidArgument, "kfac: need B >= 0 and T >= 1");
  const size_t rows = size_t(B) * size_t(T);
  if (mask) {
    hmask_.resize(rows);
    be_->to_host(hmask_.data(), mask, rows);
  }
  const bool want_x = pass_inputs_ && x, want_g = g && pass_weight_ > 0;
  const int n = examples_with_tokens(mask ? hmask_.data() : nullptr, B, T);
  if (n == 0 || (!want_x && !want_g)) return;
  const size_t wide = size_t(std::max(want_x ? L.spec.d_in : 0, want_g ? L.spec.d_out : 0));
  auto fit = [&](Buffer& buf, size_t bytes) {
    if (buf.backend() != be_ || buf.bytes() < bytes) buf = Buffer(*be_, bytes);
  };
  fit(dev_ex_, size_t(n) * sizeof(int32_t));
  fit(dev_rows_, size_t(n) * wide * sizeof(float));
  be_->to_device(dev_ex_.data(), ex_.data(), size_t(n) * sizeof(int32_t));
  auto reduce = [&](const float* X, int d, bool mean) {
    be_->token_reduce(dev_rows_.f(), X, mask, dev_ex_.as<int32_t>(), n, T, d, mean);
    hx_.resize(size_t(n) * size_t(d));
    be_->to_host(hx_.data(), dev_rows_.data(), hx_.size() * sizeof(float));
    return hx_.data();
  };
  if (want_x) {
    L.A.add_rows(reduce(x, L.spec.d_in, /*mean=*/true), n, 1.0, gram_);
    L.Z += n;
  }
  if (want_g) L.G.add_rows(reduce(g, L.spec.d_out, /*mean=*/false), n, std::sqrt(pass_weight_), gram_);
}

void KfacAccumulator::add(int layer, const float* x, const float* g, int B, int T, const uint8_t* mask,
                          bool accumulate_inputs, double g_weight) {
  BL_CHECK(layer >= 0 && layer < num_layers(), code::kInvalidArgument, "kfac: layer index ", layer,
           " out of range [0, ", num_layers(), ")");
  BL_CHECK(std::isfinite(g_weight) && g_weight >= 0, code::kInvalidArgument,
           "kfac: weight must be finite and >= 0");
  add_host(layer, x, g, B, T, mask, accumulate_inputs, g_weight);
}

void KfacAccumulator::add_host(int layer, const float* x, const float* g, int B, int T, const uint8_t* mask,
                               bool accumulate_inputs, double g_weight) {
  BL_CHECK(B >= 0 && T >= 1, code::kInvalidArgument, "kfac: need B >= 0 and T >= 1");
  KfacLayer& L = *layers_[size_t(layer)];
  auto real = [&](size_t row) { return !mask || mask[row] != 0; };
  const size_t Tn = size_t(T);
  if (opt_.tokens == TokenMode::kAligned) {
    if (!g || g_weight <= 0) return;  // inputs alone carry no information here
    BL_CHECK(x != nullptr, code::kInvalidArgument, "kfac: tokens 'aligned' needs the inputs with every gradient pass");
    add_aligned(L, x, g, B, T, mask, g_weight);
    return;
  }

  // Rows of one side, per the token mode. Reduce: one row per example with a
  // real token (mean of x_t, or sum of g_t). Expand: the real token rows,
  // handed over in runs (no copy without padding) of bounded size.
  auto feed = [&](KfacFactor& F, const float* X, bool mean, double scale) -> double {
    const int d = F.d();
    const size_t D = size_t(d);
    double count = 0;
    if (opt_.tokens == TokenMode::kReduce) {
      // Backend::token_reduce (float64 sums in token order, one rounding) over
      // the examples that have a real token.
      const int nr = examples_with_tokens(mask, B, T);
      rows_.resize(size_t(nr) * D);
      cpu_backend().token_reduce(rows_.data(), X, mask, ex_.data(), nr, T, d, mean);
      F.add_rows(rows_.data(), nr, scale, gram_);
      count = nr;
      return count;
    }
    const size_t total = size_t(B) * Tn;
    const size_t max_run = std::max<size_t>(1, (size_t(1) << 20) / D);
    size_t r = 0;
    while (r < total) {
      if (!real(r)) {
        ++r;
        continue;
      }
      size_t e = r;
      while (e < total && real(e) && e - r < max_run) ++e;
      F.add_rows(X + r * D, int(e - r), scale, gram_);
      count += double(e - r);
      r = e;
    }
    return count;
  };

  if (accumulate_inputs && x) L.Z += feed(L.A, x, /*mean=*/true, 1.0);
  if (g && g_weight > 0) feed(L.G, g, /*mean=*/false, std::sqrt(g_weight));
}

// tokens 'aligned' (kfac.h): per example one input row J^T g~ / |g~| and one
// gradient row g~, both scaled by sqrt(w); Z += w |g~|^2. float64 sums over
// tokens; the rows go through the usual dense/low-rank routes as float32.
void KfacAccumulator::add_aligned(KfacLayer& L, const float* x, const float* g, int B, int T, const uint8_t* mask,
                                  double w) {
  const size_t Di = size_t(L.spec.d_in), Do = size_t(L.spec.d_out), Tn = size_t(T);
  std::vector<float> xrows(size_t(B) * Di), grows(size_t(B) * Do);
  std::vector<double> gs(Do), v(Di);
  int nr = 0;
  double energy = 0;
  for (size_t b = 0; b < size_t(B); ++b) {
    std::fill(gs.begin(), gs.end(), 0.0);
    for (size_t t = 0; t < Tn; ++t) {
      const size_t row = b * Tn + t;
      if (mask && !mask[row]) continue;
      const float* gr = g + row * Do;
      for (size_t j = 0; j < Do; ++j) gs[j] += double(gr[j]);
    }
    double s = 0;
    for (double e : gs) s += e * e;
    if (!(s > 0) || !std::isfinite(s)) continue;  // no gradient through this example on this pass
    std::fill(v.begin(), v.end(), 0.0);
    for (size_t t = 0; t < Tn; ++t) {
      const size_t row = b * Tn + t;
      if (mask && !mask[row]) continue;
      const float* gr = g + row * Do;
      double a = 0;
      for (size_t j = 0; j < Do; ++j) a += double(gr[j]) * gs[j];
      if (a == 0) continue;
      const float* xr = x + row * Di;
      for (size_t j = 0; j < Di; ++j) v[j] += a * double(xr[j]);
    }
    const double fx = 1.0 / std::sqrt(s);
    float* xo = &xrows[size_t(nr) * Di];
    float* go = &grows[size_t(nr) * Do];
    for (size_t j = 0; j < Di; ++j) xo[j] = float(v[j] * fx);
    for (size_t j = 0; j < Do; ++j) go[j] = float(gs[j]);
    energy += s;
    ++nr;
  }
  if (nr == 0) return;
  const double sw = std::sqrt(w);
  L.A.add_rows(xrows.data(), nr, sw, gram_);
  L.G.add_rows(grows.data(), nr, sw, gram_);
  L.Z += w * energy;
}

void KfacAccumulator::merge(KfacAccumulator& o) {
  BL_CHECK(o.num_layers() == num_layers(), code::kShapeMismatch, "kfac merge: layer counts differ");
  BL_CHECK(o.opt_.tokens == opt_.tokens && o.opt_.threshold == opt_.threshold && o.opt_.n_kfac == opt_.n_kfac,
           code::kInvalidArgument, "kfac merge: options (tokens, threshold, nKfac) differ");
  for (int l = 0; l < num_layers(); ++l) {
    const auto &a = layers_[size_t(l)]->spec, &b = o.layers_[size_t(l)]->spec;
    BL_CHECK(a.name == b.name && a.d_in == b.d_in && a.d_out == b.d_out && a.id == b.id, code::kShapeMismatch,
             "kfac merge: layer ", l, " differs ('", a.name, "' vs '", b.name, "')");
  }
  for (int l = 0; l < num_layers(); ++l) {
    KfacLayer &a = *layers_[size_t(l)], &b = *o.layers_[size_t(l)];
    const double zb = b.Z;  // read first: `o` may be this object
    a.A.merge_from(b.A);
    a.G.merge_from(b.G);
    a.Z += zb;
  }
}

void KfacAccumulator::stage_pass(int pass) {
  for (auto& l : layers_) {
    l->A.stage_pass(pass);
    l->G.stage_pass(pass);
  }
}

void KfacAccumulator::end_staging() {
  for (auto& l : layers_) {
    l->A.unstage(gram_);
    l->G.unstage(gram_);
  }
}

void KfacAccumulator::drop_staged() {
  for (auto& l : layers_) {
    l->A.stage_pass(-1);
    l->G.stage_pass(-1);
    l->A.drop_staged();
    l->G.drop_staged();
  }
}

void KfacAccumulator::flush() {
  for (auto& l : layers_) {
    l->A.flush();
    l->G.flush();
  }
}

}  // namespace bl::laplace
