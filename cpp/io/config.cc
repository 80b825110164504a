// Parsing, validation and writing of Hugging Face config.json for the
// LLaMA family (see config.h). Anything that would silently change the
// forward pass if ignored (other activations, MLP biases, unsupported rope
// scaling, Qwen2 sliding windows) is rejected as UNSUPPORTED rather than
// skipped.
#include "io/config.h"

#include <cmath>

#include "core/error.h"
#include "io/files.h"
#include "io/json.h"

namespace bl {

namespace {

constexpr size_t kMaxConfigBytes = 4u << 20;

struct ArchInfo {
  const char* arch;
  const char* model_type;
};
constexpr ArchInfo kArchs[] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};

const char* model_type_of(const std::string& arch) {
  for (const auto& a : kArchs)
    if (arch == a.arch) return a.model_type;
  return nullptr;
}

std::string quoted(const std::string& s) {
  std::string out;
  if (json::valid_utf8(s) && s.size() <= 200) json::dump_string(out, s);
  else out = "<unprintable>";
  return out;
}

// Typed field access on the top-level object; every error names the origin and key.
class Fields {
 public:
  Fields(const json::Value& obj, const std::string& origin) : o_(obj), origin_(origin) {}

  // Present and not null.
  const json::Value* get(const char* key) const {
    const json::Value* v = o_.find(key);
    return v && !v->is_null() ? v : nullptr;
  }

  template <class... A>
  [[noreturn]] void bad(const char* key, const A&... what) const {
    fail(code::kBadFile, origin_, ": ", key, " ", what...);
  }

  int64_t integer(const json::Value& v, const char* key, int64_t lo, int64_t hi) const {
    if (!v.is_integer()) bad(key, "must be an integer, got ", describe(v));
    int64_t i = v.integer();
    if (i < lo || i > hi) bad(key, "must be in [", lo, ", ", hi, "], got ", i);
    return i;
  }
  int req_int(const char* key, int64_t lo, int64_t hi) const {
    const json::Value* v = get(key);
    if (!v) bad(key, "is required");
    return int(integer(*v, key, lo, hi));
  }
  int opt_int(const char* key, int fallback, int64_t lo, int64_t hi) const {
    const json::Value* v = get(key);
    return v ? int(integer(*v, key, lo, hi)) : fallback;
  }
  double number(const json::Value& v, const char* key, double lo, double hi, bool lo_open) const {
    if (!v.is_number()) bad(key, "must be a number, got ", describe(v));
    double d = v.number();
    if (!(lo_open ? d > lo : d >= lo) || !(d <= hi))
      bad(key, "must be in ", lo_open ? "(" : "[", lo, ", ", hi, "], got ", d);
    return d;
  }
  double opt_number(const char* key, double fallback, double lo, double hi, bool lo_open) const {
    const json::Value* v = get(key);
    return v ? number(*v, key, lo, hi, lo_open) : fallback;
  }
  bool opt_bool(const char* key, bool fallback) const {
    const json::Value* v = get(key);
    if (!v) return fallback;
    if (!v->is_bool()) bad(key, "must be true or false, got ", describe(*v));
    return v->boolean();
  }
  const std::string* opt_string(const char* key) const {
    const json::Value* v = get(key);
    if (!v) return nullptr;
    if (!v->is_string()) bad(key, "must be a string, got ", describe(*v));
    return &v->str();
  }

  static std::string describe(const json::Value& v) {
    if (v.is_number()) return json::format_double(v.number());
    if (v.is_string()) return quoted(v.str());
    return json::type_name(v.type());
  }

  const std::string& origin() const { return origin_; }

 private:
  const json::Value& o_;
  const std::string& origin_;
};

void parse_rope_scaling(const json::Value& rs, const Fields& top, RopeScaling* out) {
  const std::string& origin = top.origin();
  if (!rs.is_object()) fail(code::kBadFile, origin, ": rope_scaling must be an object or null");
  Fields f(rs, origin);
  const std::string* rope_type = f.opt_string("rope_type");
  const std::string* type = f.opt_string("type");
  if (rope_type && type && *rope_type != *type)
    fail(code::kBadFile, origin, ": rope_scaling.rope_type ", quoted(*rope_type), " and rope_scaling.type ",
         quoted(*type), " disagree");
  const std::string* t = rope_type ? rope_type : type;
  if (!t) fail(code::kBadFile, origin, ": rope_scaling needs \"rope_type\" (or \"type\")");
  if (*t == "default") {
    *out = RopeScaling{};
    return;
  }
  if (*t == "linear") {
    out->type = "linear";
    const json::Value* fac = f.get("factor");
    if (!fac) fail(code::kBadFile, origin, ": rope_scaling.factor is required for linear scaling");
    out->factor = f.number(*fac, "rope_scaling.factor", 0.0, 1e6, true);
    return;
  }
  if (*t == "llama3") {
    out->type = "llama3";
    auto req = [&](const char* key, const char* full) -> const json::Value& {
      const json::Value* v = f.get(key);
      if (!v) fail(code::kBadFile, origin, ": ", full, " is required for llama3 rope scaling");
      return *v;
    };
    out->factor = f.number(req("factor", "rope_scaling.factor"), "rope_scaling.factor", 0.0, 1e6, true);
    out->low_freq_factor =
        f.number(req("low_freq_factor", "rope_scaling.low_freq_factor"), "rope_scaling.low_freq_factor", 0.0, 1e6, true);
    out->high_freq_factor = f.number(req("high_freq_factor", "rope_scaling.high_freq_factor"),
                                     "rope_scaling.high_freq_factor", 0.0, 1e6, true);
    // The llama3 ramp divides by (high - low).
    if (!(out->high_freq_factor > out->low_freq_factor))
      fail(code::kBadFile, origin, ": rope_scaling.high_freq_factor (", out->high_freq_factor,
           ") must exceed low_freq_factor (", out->low_freq_factor, ")");
    out->original_max_position_embeddings =
        double(f.integer(req("original_max_position_embeddings", "rope_scaling.original_max_position_embeddings"),
                         "rope_scaling.original_max_position_embeddings", 1, 1 << 24));
    return;
  }
  fail(code::kUnsupported, origin, ": rope_scaling type ", quoted(*t),
       " is not supported (supported: llama3, linear, or null)");
}

}  // namespace

ModelConfig parse_model_config_text(const std::string& text, const std::string& origin) {
  json::ParseOptions opt;
  opt.max_bytes = kMaxConfigBytes;
  json::Value root = json::parse(text, origin, opt);
  if (!root.is_object()) fail(code::kBadFile, origin, ": config is not a JSON object");
  Fields f(root, origin);
  ModelConfig c;

  // Architecture: architectures[0], or inferred from model_type when absent.
  const std::string* model_type = f.opt_string("model_type");
  if (const json::Value* archs = f.get("architectures")) {
    if (!archs->is_array() || archs->items().empty() || !archs->items()[0].is_string())
      fail(code::kBadFile, origin, ": architectures must be a non-empty array of strings");
    c.architecture = archs->items()[0].str();
    if (!model_type_of(c.architecture))
      fail(code::kUnsupported, origin, ": architecture ", quoted(c.architecture),
           " is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)");
  } else if (model_type) {
    for (const auto& a : kArchs)
      if (*model_type == a.model_type) c.architecture = a.arch;
    if (c.architecture.empty())
      fail(code::kUnsupported, origin, ": model_type ", quoted(*model_type),
           " is not supported (supported: llama, mistral, qwen2)");
  } else {
    fail(code::kBadFile, origin, ": neither architectures nor model_type is present");
  }
  if (model_type && *model_type != model_type_of(c.architecture))
    fail(code::kBadFile, origin, ": model_type ", quoted(*model_type), " does not match architecture ",
         quoted(c.architecture), " (expected ", quoted(model_type_of(c.architecture)), ")");
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  const bool mistral = c.architecture == "MistralForCausalLM";

  c.vocab_size = f.req_int("vocab_size", 1, 10000000);
  c.hidden_size = f.req_int("hidden_size", 1, 65536);
  c.intermediate_size = f.req_int("intermediate_size", 1, 1 << 20);
  c.num_hidden_layers = f.req_int("num_hidden_layers", 1, 1024);
  c.num_attention_heads = f.req_int("num_attention_heads", 1, 4096);
  c.num_key_value_heads = f.opt_int("num_key_value_heads", c.num_attention_heads, 1, 4096);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(code::kBadFile, origin, ": num_key_value_heads (", c.num_key_value_heads,
         ") must divide num_attention_heads (", c.num_attention_heads, ")");
  if (f.get("head_dim")) {
    c.head_dim = f.req_int("head_dim", 1, 4096);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      fail(code::kBadFile, origin, ": hidden_size (", c.hidden_size, ") is not divisible by num_attention_heads (",
           c.num_attention_heads, ") and head_dim is not given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) fail(code::kBadFile, origin, ": head_dim (", c.head_dim, ") must be even for rotary embeddings");

  c.max_position_embeddings = f.opt_int("max_position_embeddings", c.max_position_embeddings, 1, 1 << 24);
  c.rms_norm_eps = f.opt_number("rms_norm_eps", c.rms_norm_eps, 0.0, 1.0, true);
  c.rope_theta = f.opt_number("rope_theta", c.rope_theta, 0.0, 1e12, true);
  if (const json::Value* rs = f.get("rope_scaling")) parse_rope_scaling(*rs, f, &c.rope_scaling);

  if (const std::string* act = f.opt_string("hidden_act"))
    if (*act != "silu")
      fail(code::kUnsupported, origin, ": hidden_act ", quoted(*act), " is not supported (only silu)");
  if (f.opt_bool("mlp_bias", false)) fail(code::kUnsupported, origin, ": mlp_bias = true is not supported");

  c.tie_word_embeddings = f.opt_bool("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases (and no o_proj bias). In Llama the flag
  // also adds an o_proj bias, which this implementation does not carry.
  c.attention_bias = f.opt_bool("attention_bias", qwen2);
  if (qwen2 && !c.attention_bias)
    fail(code::kUnsupported, origin, ": Qwen2 without q/k/v biases (attention_bias = false) is not supported");
  if (!qwen2 && c.attention_bias)
    fail(code::kUnsupported, origin, ": attention_bias = true is not supported for ", c.architecture,
         " (it implies an o_proj bias)");

  if (mistral) {
    // HF MistralConfig defaults sliding_window to 4096 when the key is absent.
    const json::Value* sw = root.find("sliding_window");
    if (!sw) c.sliding_window = 4096;
    else if (sw->is_null()) c.sliding_window = 0;
    else c.sliding_window = int(f.integer(*sw, "sliding_window", 1, 1 << 24));
  } else if (qwen2) {
    // Qwen2 configs carry sliding_window but apply it only with use_sliding_window.
    if (f.opt_bool("use_sliding_window", false))
      fail(code::kUnsupported, origin, ": use_sliding_window = true is not supported for Qwen2");
  }

  const std::string* dt = f.opt_string("torch_dtype");
  if (!dt) dt = f.opt_string("dtype");  // newer transformers name
  if (dt) {
    if (*dt != "float32" && *dt != "float16" && *dt != "bfloat16" && *dt != "float64" && *dt != "auto")
      fail(code::kBadFile, origin, ": torch_dtype ", quoted(*dt), " is not a known dtype");
    c.torch_dtype = *dt;
  }

  auto token_id = [&](const char* key) -> int {
    const json::Value* v = f.get(key);
    if (!v) return -1;
    const json::Value* one = v;
    if (v->is_array()) {  // e.g. Llama 3: "eos_token_id": [128001, 128008, 128009]
      if (v->items().empty()) return -1;
      for (const auto& x : v->items()) f.integer(x, key, -1, c.vocab_size - 1);
      one = &v->items()[0];
    }
    return int(f.integer(*one, key, -1, c.vocab_size - 1));  // -1: "none" in old configs
  };
  c.bos_token_id = token_id("bos_token_id");
  c.eos_token_id = token_id("eos_token_id");
  c.pad_token_id = token_id("pad_token_id");
  return c;
}

ModelConfig parse_model_config(const std::string& path) {
  return parse_model_config_text(read_text_file(path, kMaxConfigBytes), path);
}

std::string model_config_to_json(const ModelConfig& c) {
  const char* mt = model_type_of(c.architecture);
  if (!mt) fail(code::kInvalidArgument, "model config: unsupported architecture ", quoted(c.architecture));
  json::Value o = json::Value::object();
  json::Value archs = json::Value::array();
  archs.push(c.architecture);
  o.set("architectures", std::move(archs));
  o.set("model_type", mt);
  o.set("vocab_size", c.vocab_size);
  o.set("hidden_size", c.hidden_size);
  o.set("intermediate_size", c.intermediate_size);
  o.set("num_hidden_layers", c.num_hidden_layers);
  o.set("num_attention_heads", c.num_attention_heads);
  o.set("num_key_value_heads", c.num_key_value_heads);
  o.set("head_dim", c.head_dim);
  o.set("hidden_act", "silu");
  o.set("max_position_embeddings", c.max_position_embeddings);
  o.set("rms_norm_eps", c.rms_norm_eps);
  o.set("rope_theta", c.rope_theta);
  if (c.rope_scaling.type == "none") {
    o.set("rope_scaling", nullptr);
  } else {
    json::Value rs = json::Value::object();
    rs.set("rope_type", c.rope_scaling.type);
    rs.set("factor", c.rope_scaling.factor);
    if (c.rope_scaling.type == "llama3") {
      rs.set("low_freq_factor", c.rope_scaling.low_freq_factor);
      rs.set("high_freq_factor", c.rope_scaling.high_freq_factor);
      rs.set("original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings);
    }
    o.set("rope_scaling", std::move(rs));
  }
  o.set("tie_word_embeddings", c.tie_word_embeddings);
  o.set("attention_bias", c.attention_bias);
  o.set("mlp_bias", false);
  if (c.architecture == "MistralForCausalLM") {
    o.set("sliding_window", c.sliding_window > 0 ? json::Value(c.sliding_window) : json::Value(nullptr));
  } else if (c.architecture == "Qwen2ForCausalLM") {
    o.set("use_sliding_window", false);
  }
  o.set("torch_dtype", c.torch_dtype);
  auto id = [](int v) { return v >= 0 ? json::Value(v) : json::Value(nullptr); };
  o.set("bos_token_id", id(c.bos_token_id));
  o.set("eos_token_id", id(c.eos_token_id));
  o.set("pad_token_id", id(c.pad_token_id));
  std::string text = json::dump(o, 2) + "\n";

  // Only write what we would accept back: validate the output, and report a
  // field the format cannot carry (e.g. a Llama sliding window) as the caller's error.
  ModelConfig back;
  try {
    back = parse_model_config_text(text, "model config");
  } catch (const Error& e) {
    throw Error(code::kInvalidArgument, e.what());
  }
  auto same_rope = [](const RopeScaling& a, const RopeScaling& b) {
    return a.type == b.type && a.factor == b.factor &&
           (a.type != "llama3" || (a.low_freq_factor == b.low_freq_factor && a.high_freq_factor == b.high_freq_factor &&
                                   a.original_max_position_embeddings == b.original_max_position_embeddings));
  };
  if (back.sliding_window != c.sliding_window)
    fail(code::kInvalidArgument, "model config: sliding_window ", c.sliding_window, " cannot be expressed for ",
         c.architecture);
  if (!same_rope(back.rope_scaling, c.rope_scaling))
    fail(code::kInvalidArgument, "model config: rope_scaling does not survive serialisation");
  return text;
}

}  // namespace bl
