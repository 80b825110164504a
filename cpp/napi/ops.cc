// Kernel-level test surface: exports.ops.<op>(backend, options) for every
// Backend op except gemm (napi/gemm.cc). Each call allocates backend buffers,
// copies the typed arrays in, runs the op, synchronises and copies results out,
// so the identical call runs on any backend ('cpu', 'cuda') for parity tests.
// Backward ops take the initial gradients (absent = zeros) and return the
// accumulated values; a nullable gradient passed as null is not computed.
// Every size, typed-array length and index range is checked here, before any
// kernel runs: the kernels themselves trust their arguments.
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {
namespace {

constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();
// Ceiling per array on this surface: it is for tests and small benchmarks, and
// an output sized from small inputs (e.g. B*H*T*T attention probabilities)
// must not be able to ask for an unbounded allocation.
constexpr int64_t kMaxElems = int64_t(1) << 30;

int64_t numel(std::initializer_list<int64_t> dims, const char* what) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d != 0 && n > kMaxElems / d)
      fail(code::kInvalidArgument, what, " is too large (more than 2^30 elements)");
    n *= d;
  }
  return n;
}

bool present(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined();
}

// One op invocation: the backend, the options object, and the backend buffers
// it owns (freed when the call returns or throws).
class Call {
 public:
  explicit Call(const Napi::CallbackInfo& info)
      : env_(info.Env()), be_(get_backend(get_string(info[0], "backend"))),
        o_(get_object(info[1], "options")) {}

  Napi::Env env() const { return env_; }
  Backend& be() { return be_; }

  int dim(const char* key, int64_t lo = 1) { return int(get_int(o_.Get(key), key, lo, kMaxDim)); }
  float num(const char* key) {
    double v = get_number(o_.Get(key), key);
    if (!std::isfinite(v) || std::fabs(v) > double(std::numeric_limits<float>::max()))
      fail(code::kInvalidArgument, key, " must be a finite float32 number");
    return float(v);
  }
  bool flag(const char* key, bool fallback) { return opt_bool(o_, key, fallback); }
  bool has(const char* key) { return present(o_, key); }
  Napi::Value raw(const char* key) { return o_.Get(key); }

  // Required float input of exactly n elements.
  float* f32(const char* key, int64_t n) {
    auto s = get_f32(o_.Get(key), key, n);
    return upload(s.data, size_t(n) * sizeof(float)).f();
  }
  // Initial gradient to accumulate into: absent -> zeros.
  float* grad(const char* key, int64_t n) {
    if (!present(o_, key)) return zeros(n);
    return f32(key, n);
  }
  // Nullable gradient: null -> not computed (nullptr, *wanted = false), absent -> zeros.
  float* grad_nullable(const char* key, int64_t n, bool* wanted) {
    *wanted = !(o_.Has(key) && o_.Get(key).IsNull());
    return *wanted ? grad(key, n) : nullptr;
  }
  // int32 input of exactly n elements with every value in [lo, hi].
  int32_t* i32(const char* key, int64_t n, int64_t lo, int64_t hi) {
    auto s = get_i32(o_.Get(key), key, n);
    for (size_t i = 0; i < s.size; ++i)
      if (s.data[i] < lo || s.data[i] > hi)
        fail(code::kInvalidArgument, key, "[", i, "] = ", s.data[i], " is outside [", lo, ", ", hi,
             "]");
    return static_cast<int32_t*>(upload(s.data, size_t(n) * sizeof(int32_t)).data());
  }
  // Token mask of n entries in {0, 1}; absent -> all real tokens.
  uint8_t* mask(const char* key, int64_t n) {
    std::vector<uint8_t> ones;
    const uint8_t* src;
    if (present(o_, key)) {
      auto s = get_u8(o_.Get(key), key, n);
      for (size_t i = 0; i < s.size; ++i)
        if (s.data[i] > 1) fail(code::kInvalidArgument, key, "[", i, "] must be 0 or 1");
      src = s.data;
    } else {
      ones.assign(size_t(n), 1);
      src = ones.data();
    }
    return static_cast<uint8_t*>(upload(src, size_t(n)).data());
  }
  // float64 input of exactly n elements (K-FAC sums); bf16 bit patterns (uint16).
  double* f64(const char* key, int64_t n) {
    auto s = get_f64(o_.Get(key), key, n);
    return static_cast<double*>(upload(s.data, size_t(n) * sizeof(double)).data());
  }
  uint16_t* u16(const char* key, int64_t n) {
    auto s = get_u16(o_.Get(key), key, n);
    return static_cast<uint16_t*>(upload(s.data, size_t(n) * sizeof(uint16_t)).data());
  }
  double* zeros64(int64_t n) {
    Buffer& b = add(size_t(n) * sizeof(double));
    if (n) be_.zero(b.data(), b.bytes());
    return static_cast<double*>(b.data());
  }
  float* zeros(int64_t n) {
    Buffer& b = add(size_t(n) * sizeof(float));
    if (n) be_.zero(b.data(), b.bytes());
    return b.f();
  }

  // Copy a device array back after the op (synchronises once). `computed`
  // false gives null (a skipped nullable output); a zero-length output is an
  // empty array even though its buffer pointer is null.
  Napi::Value out64(const double* p, int64_t n) {
    sync();
    auto a = Napi::Float64Array::New(env_, size_t(n));
    if (n) be_.to_host(a.Data(), p, size_t(n) * sizeof(double));
    return a;
  }
  Napi::Value out(const float* p, int64_t n, bool computed = true) {
    if (!computed) return env_.Null();
    sync();
    auto a = Napi::Float32Array::New(env_, size_t(n));
    if (n) be_.to_host(a.Data(), p, size_t(n) * sizeof(float));
    return a;
  }

 private:
  Buffer& add(size_t bytes) {
    bufs_.emplace_back(be_, bytes);
    return bufs_.back();
  }
  Buffer& upload(const void* src, size_t bytes) {
    Buffer& b = add(bytes);
    if (bytes) be_.to_device(b.data(), src, bytes);
    return b;
  }
  void sync() {
    if (!synced_) be_.synchronize();
    synced_ = true;
  }

  Napi::Env env_;
  Backend& be_;
  Napi::Object o_;
  std::vector<Buffer> bufs_;  // Buffer moves keep the device pointer
  bool synced_ = false;
};

uint64_t seed_arg(const Napi::Value& v) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) fail(code::kInvalidArgument, "seed must be a BigInt in [0, 2^64)");
    return s;
  }
  return uint64_t(get_int(v, "seed", 0, int64_t(1) << 53));
}

// ---- embedding / rows ------------------------------------------------------------------

Napi::Value embedding_fwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), V = c.dim("V"), d = c.dim("d");
  int64_t nout = numel({N, d}, "N*d");
  float* table = c.f32("table", numel({V, d}, "V*d"));
  int32_t* ids = c.i32("ids", N, 0, V - 1);
  float* out = c.zeros(nout);
  c.be().embedding_fwd(out, ids, table, N, d);
  return c.out(out, nout);
}

Napi::Value embedding_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), V = c.dim("V"), d = c.dim("d");
  float* dout = c.f32("dout", numel({N, d}, "N*d"));
  int32_t* ids = c.i32("ids", N, 0, V - 1);
  int64_t nt = numel({V, d}, "V*d");
  float* dtable = c.grad("dtable", nt);
  c.be().embedding_bwd(dtable, ids, dout, N, d);
  return c.out(dtable, nt);
}

Napi::Value gather_rows(const Napi::CallbackInfo& info) {
  Call c(info);
  int n = c.dim("n", 0), R = c.dim("R"), d = c.dim("d");
  int64_t nout = numel({n, d}, "n*d");
  float* x = c.f32("x", numel({R, d}, "R*d"));
  int32_t* idx = c.i32("idx", n, 0, R - 1);
  float* out = c.zeros(nout);
  c.be().gather_rows(out, x, idx, n, d);
  return c.out(out, nout);
}

Napi::Value scatter_add_rows(const Napi::CallbackInfo& info) {
  Call c(info);
  int n = c.dim("n", 0), R = c.dim("R"), d = c.dim("d");
  float* dout = c.f32("dout", numel({n, d}, "n*d"));
  int32_t* idx = c.i32("idx", n, 0, R - 1);
  int64_t nx = numel({R, d}, "R*d");
  float* dx = c.grad("dx", nx);
  c.be().scatter_add_rows(dx, dout, idx, n, d);
  return c.out(dx, nx);
}

// ---- RMSNorm / bias ---------------------------------------------------------------------

Napi::Value rmsnorm_fwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), d = c.dim("d");
  float eps = c.num("eps");
  if (!(eps >= 0.0f)) fail(code::kInvalidArgument, "eps must be >= 0");
  int64_t n = numel({N, d}, "N*d");
  float* x = c.f32("x", n);
  float* w = c.f32("w", d);
  float* out = c.zeros(n);
  float* rstd = c.zeros(N);
  c.be().rmsnorm_fwd(out, rstd, x, w, N, d, eps);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("out", c.out(out, n));
  r.Set("rstd", c.out(rstd, N));
  return r;
}

Napi::Value rmsnorm_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), d = c.dim("d");
  int64_t n = numel({N, d}, "N*d");
  float* dout = c.f32("dout", n);
  float* x = c.f32("x", n);
  float* w = c.f32("w", d);
  float* rstd = c.f32("rstd", N);
  float* dx = c.grad("dx", n);
  bool want_dw;
  float* dw = c.grad_nullable("dw", d, &want_dw);
  c.be().rmsnorm_bwd(dx, dw, dout, x, w, rstd, N, d);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("dx", c.out(dx, n));
  r.Set("dw", c.out(dw, d, want_dw));
  return r;
}

Napi::Value add_bias(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), d = c.dim("d");
  int64_t n = numel({N, d}, "N*d");
  float* x = c.f32("x", n);
  float* bias = c.f32("bias", d);
  c.be().add_bias(x, bias, N, d);
  return c.out(x, n);
}

Napi::Value bias_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), d = c.dim("d");
  float* dout = c.f32("dout", numel({N, d}, "N*d"));
  float* dbias = c.grad("dbias", d);
  c.be().bias_bwd(dbias, dout, N, d);
  return c.out(dbias, d);
}

// ---- RoPE -------------------------------------------------------------------------------

Napi::Value rope(const Napi::CallbackInfo& info, bool fwd) {
  Call c(info);
  int N = c.dim("N", 0), H = c.dim("H"), hd = c.dim("hd");
  if (hd % 2) fail(code::kInvalidArgument, "hd must be even for rotate-half RoPE, got ", hd);
  int64_t n = numel({N, H, hd}, "N*H*hd");
  float* x = c.f32(fwd ? "x" : "dy", n);
  int32_t* pos = c.i32("pos", N, std::numeric_limits<int32_t>::min(), kMaxDim);
  float* inv_freq = c.f32("invFreq", hd / 2);
  if (fwd)
    c.be().rope_fwd(x, pos, inv_freq, N, H, hd);
  else
    c.be().rope_bwd(x, pos, inv_freq, N, H, hd);
  return c.out(x, n);
}
Napi::Value rope_fwd(const Napi::CallbackInfo& info) { return rope(info, true); }
Napi::Value rope_bwd(const Napi::CallbackInfo& info) { return rope(info, false); }

// ---- attention --------------------------------------------------------------------------

struct AttnArgs {
  AttnShape s;
  int64_t nq = 0, nkv = 0, nsaved = 0, ntok = 0;
  float scale = 0;
};

AttnArgs attn_args(Call& c) {
  AttnArgs a;
  a.s.B = c.dim("B");
  a.s.T = c.dim("T");
  a.s.H = c.dim("H");
  a.s.Hkv = c.dim("Hkv");
  a.s.hd = c.dim("hd");
  if (a.s.H % a.s.Hkv)
    fail(code::kInvalidArgument, "H (", a.s.H, ") must be a multiple of Hkv (", a.s.Hkv, ")");
  a.ntok = numel({a.s.B, a.s.T}, "B*T");
  a.nq = numel({a.s.B, a.s.T, a.s.H, a.s.hd}, "B*T*H*hd");
  a.nkv = numel({a.s.B, a.s.T, a.s.Hkv, a.s.hd}, "B*T*Hkv*hd");
  numel({a.s.B, a.s.H, a.s.T, a.s.T}, "B*H*T*T");
  size_t saved = c.be().attention_saved_floats(a.s);
  if (saved > size_t(kMaxElems)) fail(code::kInvalidArgument, "attention workspace is too large");
  a.nsaved = int64_t(saved);
  a.scale = c.num("scale");
  return a;
}

Napi::Value attention_saved_floats(const Napi::CallbackInfo& info) {
  Call c(info);
  AttnShape s;
  s.B = c.dim("B");
  s.T = c.dim("T");
  s.H = c.dim("H");
  s.Hkv = c.dim("Hkv");
  s.hd = c.dim("hd");
  if (s.H % s.Hkv) fail(code::kInvalidArgument, "H must be a multiple of Hkv");
  return Napi::Number::New(c.env(), double(c.be().attention_saved_floats(s)));
}

Napi::Value attention_fwd(const Napi::CallbackInfo& info) {
  Call c(info);
  AttnArgs a = attn_args(c);
  float* q = c.f32("q", a.nq);
  float* k = c.f32("k", a.nkv);
  float* v = c.f32("v", a.nkv);
  uint8_t* mask = c.mask("mask", a.ntok);
  float* out = c.zeros(a.nq);
  float* saved = c.zeros(a.nsaved);
  c.be().attention_fwd(out, saved, q, k, v, mask, a.s, a.scale);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("out", c.out(out, a.nq));
  r.Set("saved", c.out(saved, a.nsaved));
  return r;
}

Napi::Value attention_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  AttnArgs a = attn_args(c);
  float* dout = c.f32("dout", a.nq);
  float* saved = c.f32("saved", a.nsaved);
  float* q = c.f32("q", a.nq);
  float* k = c.f32("k", a.nkv);
  float* v = c.f32("v", a.nkv);
  uint8_t* mask = c.mask("mask", a.ntok);
  float* dq = c.grad("dq", a.nq);
  float* dk = c.grad("dk", a.nkv);
  float* dv = c.grad("dv", a.nkv);
  c.be().attention_bwd(dq, dk, dv, dout, saved, q, k, v, mask, a.s, a.scale);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("dq", c.out(dq, a.nq));
  r.Set("dk", c.out(dk, a.nkv));
  r.Set("dv", c.out(dv, a.nkv));
  return r;
}

// ---- SwiGLU / dropout -------------------------------------------------------------------

Napi::Value swiglu_fwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int64_t n = numel({c.dim("n", 0)}, "n");
  float* gate = c.f32("gate", n);
  float* up = c.f32("up", n);
  float* out = c.zeros(n);
  c.be().swiglu_fwd(out, gate, up, n);
  return c.out(out, n);
}

Napi::Value swiglu_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int64_t n = numel({c.dim("n", 0)}, "n");
  float* dout = c.f32("dout", n);
  float* gate = c.f32("gate", n);
  float* up = c.f32("up", n);
  float* dgate = c.grad("dgate", n);
  float* dup = c.grad("dup", n);
  c.be().swiglu_bwd(dgate, dup, dout, gate, up, n);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("dgate", c.out(dgate, n));
  r.Set("dup", c.out(dup, n));
  return r;
}

float dropout_p(Call& c) {
  float p = c.num("p");
  if (!(p >= 0.0f && p < 1.0f)) fail(code::kInvalidArgument, "dropout p must be in [0, 1), got ", p);
  return p;
}

Napi::Value dropout_fwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int64_t n = numel({c.dim("n", 0)}, "n");
  float p = dropout_p(c);
  uint64_t seed = seed_arg(c.raw("seed"));
  float* x = c.f32("x", n);
  // inPlace exercises the documented out == x aliasing.
  float* out = c.flag("inPlace", false) ? x : c.zeros(n);
  c.be().dropout_fwd(out, x, n, p, seed);
  return c.out(out, n);
}

Napi::Value dropout_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int64_t n = numel({c.dim("n", 0)}, "n");
  float p = dropout_p(c);
  uint64_t seed = seed_arg(c.raw("seed"));
  float* dout = c.f32("dout", n);
  float* dx = c.grad("dx", n);
  c.be().dropout_bwd(dx, dout, n, p, seed);
  return c.out(dx, n);
}

// ---- restricted LM head / cross-entropy --------------------------------------------------

Napi::Value rows_dot_fwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int Bn = c.dim("Bn", 0), C = c.dim("C"), V = c.dim("V"), d = c.dim("d");
  int64_t nl = numel({Bn, C}, "Bn*C");
  float* h = c.f32("h", numel({Bn, d}, "Bn*d"));
  float* W = c.f32("W", numel({V, d}, "V*d"));
  int32_t* rows = c.i32("rows", nl, 0, V - 1);
  float* logits = c.zeros(nl);
  c.be().rows_dot_fwd(logits, h, W, rows, Bn, C, d);
  return c.out(logits, nl);
}

Napi::Value rows_dot_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int Bn = c.dim("Bn", 0), C = c.dim("C"), V = c.dim("V"), d = c.dim("d");
  int64_t nl = numel({Bn, C}, "Bn*C"), nh = numel({Bn, d}, "Bn*d"), nw = numel({V, d}, "V*d");
  float* dlogits = c.f32("dlogits", nl);
  float* h = c.f32("h", nh);
  float* W = c.f32("W", nw);
  int32_t* rows = c.i32("rows", nl, 0, V - 1);
  float* dh = c.grad("dh", nh);
  bool want_dW;
  float* dW = c.grad_nullable("dW", nw, &want_dW);
  c.be().rows_dot_bwd(dh, dW, dlogits, h, W, rows, Bn, C, d);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("dh", c.out(dh, nh));
  r.Set("dW", c.out(dW, nw, want_dW));
  return r;
}

Napi::Value softmax_xent(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), C = c.dim("C");
  int64_t n = numel({N, C}, "N*C");
  float dscale = c.num("dscale");
  float* logits = c.f32("logits", n);
  // Negative labels mean "ignore"; any label must stay below C.
  int32_t* labels = c.i32("labels", N, std::numeric_limits<int32_t>::min(), C - 1);
  float* loss = c.zeros(N);
  const bool want_probs = c.flag("wantProbs", true), want_dlogits = c.flag("wantDlogits", true);
  float* probs = want_probs ? c.zeros(n) : nullptr;
  float* dlogits = want_dlogits ? c.zeros(n) : nullptr;
  c.be().softmax_xent(loss, probs, dlogits, logits, labels, N, C, dscale);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("loss", c.out(loss, N));
  r.Set("probs", c.out(probs, n, want_probs));
  r.Set("dlogits", c.out(dlogits, n, want_dlogits));
  return r;
}

// ---- optimiser ---------------------------------------------------------------------------

Napi::Value adamw(const Napi::CallbackInfo& info) {
  Call c(info);
  int64_t n = numel({c.dim("n", 0)}, "n");
  float lr = c.num("lr"), b1 = c.num("b1"), b2 = c.num("b2"), eps = c.num("eps");
  float wd = c.num("wd"), grad_scale = c.num("gradScale");
  int step = c.dim("step", 1);
  if (!(b1 >= 0.0f && b1 < 1.0f)) fail(code::kInvalidArgument, "b1 must be in [0, 1), got ", b1);
  if (!(b2 >= 0.0f && b2 < 1.0f)) fail(code::kInvalidArgument, "b2 must be in [0, 1), got ", b2);
  if (!(eps > 0.0f)) fail(code::kInvalidArgument, "eps must be > 0, got ", eps);
  if (!(lr >= 0.0f)) fail(code::kInvalidArgument, "lr must be >= 0, got ", lr);
  if (!(wd >= 0.0f)) fail(code::kInvalidArgument, "wd must be >= 0, got ", wd);
  float* p = c.f32("p", n);
  float* g = c.f32("g", n);
  float* m = c.f32("m", n);
  float* v = c.f32("v", n);
  c.be().adamw(p, g, m, v, n, lr, b1, b2, eps, wd, step, grad_scale);
  Napi::Object r = Napi::Object::New(c.env());
  r.Set("p", c.out(p, n));
  r.Set("m", c.out(m, n));
  r.Set("v", c.out(v, n));
  return r;
}

// ---- fused LoRA branch -------------------------------------------------------------------

Napi::Value lora_fwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), din = c.dim("dIn"), dout = c.dim("dOut"), r = c.dim("r");
  float s = c.num("s");
  float* x = c.f32("x", numel({N, din}, "N*dIn"));
  float* A = c.f32("A", numel({r, din}, "r*dIn"));
  float* B = c.f32("B", numel({dout, r}, "dOut*r"));
  int64_t ny = numel({N, dout}, "N*dOut");
  float* y = c.grad("y", ny);
  float* u = c.zeros(numel({N, r}, "N*r"));
  c.be().lora_fwd(y, u, x, A, B, N, din, dout, r, s);
  Napi::Object o = Napi::Object::New(c.env());
  o.Set("y", c.out(y, ny));
  o.Set("u", c.out(u, int64_t(N) * r));
  return o;
}

Napi::Value lora_bwd(const Napi::CallbackInfo& info) {
  Call c(info);
  int N = c.dim("N", 0), din = c.dim("dIn"), dout = c.dim("dOut"), r = c.dim("r");
  float s = c.num("s");
  float pd = c.flag("dropout", false) ? c.num("p") : 0.0f;
  if (!(pd >= 0.0f && pd < 1.0f)) fail(code::kInvalidArgument, "p must be in [0, 1)");
  uint64_t seed = pd > 0.0f ? seed_arg(c.raw("seed")) : 0;
  float* g = c.f32("g", numel({N, dout}, "N*dOut"));
  float* x = c.f32("x", numel({N, din}, "N*dIn"));
  float* u = c.f32("u", numel({N, r}, "N*r"));
  float* A = c.f32("A", numel({r, din}, "r*dIn"));
  float* B = c.f32("B", numel({dout, r}, "dOut*r"));
  bool wa = false, wb = false, wx = false;
  float* dA = c.grad_nullable("dA", int64_t(r) * din, &wa);
  float* dB = c.grad_nullable("dB", int64_t(dout) * r, &wb);
  float* dx = c.grad_nullable("dx", int64_t(N) * din, &wx);
  float* gu = c.zeros(int64_t(N) * r);
  float* work = pd > 0.0f ? c.zeros(int64_t(N) * din) : nullptr;
  c.be().lora_bwd(gu, dA, dB, dx, work, g, x, u, A, B, N, din, dout, r, s, pd, seed);
  Napi::Object o = Napi::Object::New(c.env());
  o.Set("gu", c.out(gu, int64_t(N) * r));
  o.Set("dA", c.out(dA, int64_t(r) * din, wa));
  o.Set("dB", c.out(dB, int64_t(dout) * r, wb));
  o.Set("dx", c.out(dx, int64_t(N) * din, wx));
  return o;
}

// ---- K-FAC building blocks and the bf16-weight GEMM ---------------------------------------

// out [n x d] = per selected example, the sum (or mean) of its real token rows of X [B*T x d].
Napi::Value token_reduce(const Napi::CallbackInfo& info) {
  Call c(info);
  int B = c.dim("B"), T = c.dim("T"), d = c.dim("d"), n = c.dim("n", 0);
  const bool mean = c.flag("mean", true);
  float* X = c.f32("X", numel({B, T, d}, "B*T*d"));
  uint8_t* mask = c.mask("mask", numel({B, T}, "B*T"));
  int32_t* ex = c.i32("ex", n, 0, B - 1);
  const int64_t no = numel({n, d}, "n*d");
  float* out = c.zeros(no);
  c.be().token_reduce(out, X, mask, ex, n, T, d, mean);
  return c.out(out, no);
}

// S [d x d] (float64, default zeros) += scale * X^T X, X [n x d] with row stride ldx (default d).
Napi::Value kfac_accumulate(const Napi::CallbackInfo& info) {
  Call c(info);
  int n = c.dim("n", 0), d = c.dim("d");
  int ldx = c.has("ldx") ? c.dim("ldx") : d;
  if (ldx < d) fail(code::kInvalidArgument, "ldx must be >= d");
  const double scale = c.num("scale");
  float* X = c.f32("X", n == 0 ? 0 : numel({n - 1, ldx}, "(n-1)*ldx") + d);
  const int64_t nd = numel({d, d}, "d*d");
  double* S = c.has("S") ? c.f64("S", nd) : c.zeros64(nd);
  float* work = c.zeros(nd);
  c.be().kfac_accumulate(S, X, n, d, ldx, scale, work);
  return c.out64(S, nd);
}

// G [n x n] = M^T M for M [d x n] (float64) with row stride ldm (default n).
Napi::Value gram64(const Napi::CallbackInfo& info) {
  Call c(info);
  int d = c.dim("d"), n = c.dim("n");
  int ldm = c.has("ldm") ? c.dim("ldm") : n;
  if (ldm < n) fail(code::kInvalidArgument, "ldm must be >= n");
  double* M = c.f64("M", numel({d - 1, ldm}, "(d-1)*ldm") + n);
  const int64_t nn = numel({n, n}, "n*n");
  double* G = c.zeros64(nn);
  c.be().gram64(G, M, d, n, ldm);
  return c.out64(G, nn);
}

// C [M x N] = alpha op(A) op(W) + beta C with W bfloat16 bit patterns (Uint16Array), row-major, tight.
Napi::Value gemm_bf16w(const Napi::CallbackInfo& info) {
  Call c(info);
  const bool ta = c.flag("ta", false), tb = c.flag("tb", false);
  int M = c.dim("M"), N = c.dim("N"), K = c.dim("K");
  const float alpha = c.num("alpha"), beta = c.has("beta") ? c.num("beta") : 0.0f;
  float* A = c.f32("A", numel({M, K}, "M*K"));
  uint16_t* W = c.u16("W", numel({K, N}, "K*N"));
  const int64_t mn = numel({M, N}, "M*N");
  float* C = c.grad("C", mn);
  c.be().gemm_bf16w(ta, tb, M, N, K, alpha, A, ta ? M : K, W, tb ? K : N, beta, C, N);
  return c.out(C, mn);
}

}  // namespace

void init_ops(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
#define BL_OP(name) ops.Set(#name, Napi::Function::New(env, BL_NAPI(name)))
  BL_OP(embedding_fwd);
  BL_OP(embedding_bwd);
  BL_OP(gather_rows);
  BL_OP(scatter_add_rows);
  BL_OP(rmsnorm_fwd);
  BL_OP(rmsnorm_bwd);
  BL_OP(add_bias);
  BL_OP(bias_bwd);
  BL_OP(rope_fwd);
  BL_OP(rope_bwd);
  BL_OP(attention_saved_floats);
  BL_OP(attention_fwd);
  BL_OP(attention_bwd);
  BL_OP(swiglu_fwd);
  BL_OP(swiglu_bwd);
  BL_OP(dropout_fwd);
  BL_OP(dropout_bwd);
  BL_OP(rows_dot_fwd);
  BL_OP(rows_dot_bwd);
  BL_OP(softmax_xent);
  BL_OP(adamw);
  BL_OP(lora_fwd);
  BL_OP(lora_bwd);
  BL_OP(token_reduce);
  BL_OP(kfac_accumulate);
  BL_OP(gram64);
  BL_OP(gemm_bf16w);
#undef BL_OP
  exports.Set("ops", ops);
}

}  // namespace bl::napi
