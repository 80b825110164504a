// The K-FAC accumulator (spec section 4): per LoRA matrix ("layer") an input
// factor SA (side d_in) and an output-gradient factor SG (side d_out), kept as
// RAW SUMS with a per-layer count Z (never divided by a batch size), so that
// F_l ~= (1/Z) SA (x) SG and two accumulators over disjoint data merge by
// adding sums and counts.
//
// Token handling (pads masked out):
//   reduce: per example x~ = mean over real tokens of x_t, g~ = sum_t g_t;
//           one row per example, Z counts examples (with >= 1 real token).
//   expand: every real token is a row; Z counts real tokens.
//   aligned: per example AND backward pass, the example's Jacobian
//           J = sum_t g_t x_t^T is replaced by its least-squares rank-1 fit
//           with left factor g~ = sum_t g_t: J ~= g~ x^^T, x^ = J^T g~ / |g~|^2
//           = sum_t (g_t . g~) x_t / |g~|^2. Gradient rows are sqrt(w) g~ (as
//           reduce); input rows are sqrt(w) J^T g~ / |g~|, i.e. x^ x^^T weighted
//           by the pass's gradient energy w |g~|^2, which Z sums. So SA / Z is
//           the energy-weighted mean of x^ x^^T and, for one example and pass,
//           (SA / Z) (x) SG = vec(g~ x^^T) vec(g~ x^^T)^T exactly. When every
//           g_t is the same vector, x^ = mean_t x_t (reduce's input); when only
//           one token carries gradient (e.g. a query projection feeding only
//           the answer position), x^ is that token's input, which reduce's mean
//           misses. |J^T g~| / |g~| <= |J|_2, so no pass can blow up a row.
//           Not in the spec: an extension measured against the exact per-layer
//           GGN (docs/laplace-tokens.md). Inputs are used on every pass.
// A side above `threshold` is a LowRankFactor (rank n_kfac); otherwise a
// dense float64 d x d sum, to which each batch's Gram X^T X (float32 gemm,
// the CPU backend's BLAS) is added (Backend::kfac_accumulate).
// Token reduction is Backend::token_reduce: on the CPU over host rows, on a
// device backend where the activations are (observe() then copies one row per
// example, not every token row, to the host; expand/aligned still copy rows).
//
// One example's input factor is accumulated ONCE while its gradient factor
// accumulates over every backward pass of that example (C passes for the
// exact Fisher, m passes with weight 1/m for the sampled one). The model's
// backward pass reaches the accumulator through LoraObserver::observe; the
// caller announces each pass with begin_example_pass(accumulate_inputs,
// g_weight). Other ML stacks call add() directly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "laplace/lowrank_factor.h"
#include "laplace/row_stack.h"
#include "laplace/tracked.h"
#include "model/lora_observer.h"

namespace bl::laplace {

enum class TokenMode { kReduce = 0, kExpand = 1, kAligned = 2 };
const char* token_mode_name(TokenMode m);
TokenMode parse_token_mode(const std::string& s);  // "reduce" | "expand" | "aligned"

struct KfacLayerSpec {
  std::string name;
  int d_in = 0;
  int d_out = 0;
  // LoRA matrix id (LoraMatrixInfo::id) this layer observes; -1: its index.
  // Observed matrices whose id maps to no layer are skipped (e.g. last-layer
  // Laplace keeps only the LM-head matrices).
  int id = -1;
};

struct KfacOptions {
  TokenMode tokens = TokenMode::kReduce;
  int threshold = 512;  // a side d > threshold is low rank
  int n_kfac = 10;      // retained rank of low-rank sides
  int chunk = 0;        // low-rank pending columns per compression; 0 = auto
};

// One side of one layer: dense sum or low-rank factor. A dense side starts
// as a RowStack (its rows, while at most d / 2; row_stack.h) and becomes the
// d x d sum when more rows arrive: same S, memory by what was added.
class KfacFactor {
 public:
  KfacFactor(int d, const KfacOptions& o, MemCounter* mc);
  int d() const { return d_; }
  bool lowrank() const { return bool(lr_); }
  // Dense side still held as rows (S = rows().scaled_rows()^T rows().scaled_rows()).
  bool stacked() const { return bool(rows_); }
  const RowStack& rows() const { return *rows_; }
  // Dense: S (d x d, row-major, float64 sums). Empty when low rank or stacked.
  // Its lower triangle is the sum (the upper one agrees only to rounding):
  // readers use the lower one, or dense_copy (exactly symmetric).
  const dvec& dense() const { return S_; }
  // Switches a stacked side to its d x d sum first.
  dvec& dense_mut();
  // Dense S (d x d) of a dense side, stacked or not, written to out.
  void dense_copy(std::vector<double>& out) const;
  // Replace a dense side by held rows (persistence; RowStack::set validates).
  void set_rows(const float* X, int n, const std::vector<int>& starts, const std::vector<double>& scales);
  LowRankFactor& lr() { return *lr_; }
  const LowRankFactor& lr() const { return *lr_; }
  // Add rows (n x d float32, row-major; each row scaled by `scale`) as outer
  // products: S += scale^2 * X^T X.
  void add_rows(const float* X, int n, double scale, fvec& scratch);
  void flush() {
    if (lr_) lr_->flush();
  }
  void merge_from(KfacFactor& o);

  // Staging (fit.h runs a batch in example chunks): while pass >= 0, add_rows
  // only holds its rows under that pass index; unstage() then adds each
  // pass's rows, in pass order, as one add_rows call: the rows, order and
  // grouping of the batch run whole (low-rank compressions see the same
  // column sequence).
  void stage_pass(int pass) { stage_pass_ = pass; }
  void unstage(fvec& scratch);
  void drop_staged() { std::vector<Staged>().swap(staged_); }

 private:
  struct Staged {
    int pass;
    double scale;
    std::vector<float> rows;  // n x d
  };
  void unstack();  // rows -> d x d sum
  std::vector<Staged> staged_;
  int stage_pass_ = -1;
  int d_;
  MemCounter* mc_;
  dvec S_;
  std::unique_ptr<LowRankFactor> lr_;
  std::unique_ptr<RowStack> rows_;
};

struct KfacLayer {
  KfacLayerSpec spec;
  KfacFactor A;   // input side, d_in
  KfacFactor G;   // output-gradient side, d_out
  double Z = 0;   // examples (reduce) or real tokens (expand) whose inputs were added
};

class KfacAccumulator : public LoraObserver {
 public:
  // `be` is the backend whose memory observe() receives (inputs are copied to
  // host when it is not host memory). Throws INVALID_ARGUMENT on bad specs.
  KfacAccumulator(std::vector<KfacLayerSpec> layers, KfacOptions opt, Backend* be = nullptr);

  const KfacOptions& options() const { return opt_; }
  int num_layers() const { return int(layers_.size()); }
  const KfacLayer& layer(int l) const { return *layers_[size_t(l)]; }
  KfacLayer& layer_mut(int l) { return *layers_[size_t(l)]; }
  int find_layer(const std::string& name) const;  // -1 when absent
  int layer_of_id(int id) const;  // -1 when no layer observes matrix `id`
  bool observes(int id) const override { return layer_of_id(id) >= 0; }
  // Inputs (SA, Z) are means/sums over every real token; a gradient-only
  // pass needs just the rows with nonzero gradient, and 'aligned' weights each
  // input row by its gradient, so neither needs rows whose gradient is zero.
  bool needs_every_row() const override { return pass_inputs_ && opt_.tokens != TokenMode::kAligned; }

  // Announce the next backward pass over the current batch: whether inputs
  // (SA, Z) are accumulated in it, and the weight of its gradient outer
  // products (rows are scaled by sqrt(g_weight)).
  void begin_example_pass(bool accumulate_inputs, double g_weight);

  // LoraObserver: m.id selects the layer (see KfacLayerSpec::id; dims must match).
  void observe(const LoraMatrixInfo& m, const float* x, const float* g, int B, int T,
               const uint8_t* mask) override;

  // Direct entry for other ML stacks: x [B*T x d_in], g [B*T x d_out] host
  // float32, rows b*T + t, mask [B*T] (nullptr: all real). x may be nullptr
  // when accumulate_inputs is false; g may be nullptr to add inputs only.
  void add(int layer, const float* x, const float* g, int B, int T, const uint8_t* mask,
           bool accumulate_inputs, double g_weight);

  // Add other's sums and counts (same layers and options). Flushes both.
  void merge(KfacAccumulator& other);

  // Compress pending low-rank columns (before reading factors).
  void flush();

  // Chunked batches (fit.h): stage_pass(p >= 0) holds the rows of the coming
  // observations under pass p; end_staging() adds all held rows in pass order
  // (KfacFactor::unstage) and stops holding; drop_staged() discards them.
  void stage_pass(int pass);
  void end_staging();
  void drop_staged();

  MemCounter& memory() { return mem_; }
  // The backend whose memory observe() receives (the model's).
  void set_source_backend(Backend* be) { be_ = be ? be : &cpu_backend(); }

 private:
  void add_host(int layer, const float* x, const float* g, int B, int T, const uint8_t* mask,
                bool accumulate_inputs, double g_weight);
  void add_aligned(KfacLayer& L, const float* x, const float* g, int B, int T, const uint8_t* mask, double w);
  void observe_reduce_on_device(int layer, const float* x, const float* g, int B, int T, const uint8_t* mask);
  // ex_ = the examples b < B with a real token (host mask; nullptr: all); returns their count.
  int examples_with_tokens(const uint8_t* host_mask, int B, int T);

  KfacOptions opt_;
  Backend* be_;
  MemCounter mem_;
  std::vector<std::unique_ptr<KfacLayer>> layers_;
  std::vector<int> id_to_layer_;
  bool pass_inputs_ = true;
  double pass_weight_ = 1.0;
  // Scratch: reduced rows, dense batch Gram, host copies of device inputs.
  fvec rows_, gram_, hx_, hg_;
  std::vector<uint8_t> hmask_;
  std::vector<int32_t> ex_;
  // Device scratch for tokens 'reduce' on a device backend (example ids, reduced rows).
  Buffer dev_ex_, dev_rows_;
};

}  // namespace bl::laplace
