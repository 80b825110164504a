// PEFT adapter_config.json reading/writing and PEFT module matching (see adapter.h).
#include "io/adapter.h"

#include <cmath>

#include "core/error.h"
#include "io/files.h"
#include "io/json.h"
#include "model/target_regex.h"

namespace bl {

namespace {

constexpr size_t kMaxAdapterConfigBytes = 1u << 20;

// PEFT's shorthand for "every linear layer except the output head".
const char* const kAllLinear[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

std::string quoted(const std::string& s) {
  std::string out;
  if (json::valid_utf8(s) && s.size() <= 200) json::dump_string(out, s);
  else out = "<unprintable>";
  return out;
}

// True when a PEFT option holds a value that changes the adapter (anything
// but absent, null, false, or an empty container).
bool engaged(const json::Value* v) {
  if (!v || v->is_null()) return false;
  if (v->is_bool()) return v->boolean();
  if (v->is_object()) return !v->members().empty();
  if (v->is_array()) return !v->items().empty();
  return true;
}

void check_regex(const std::string& pattern, const std::string& origin) {
  TargetRegex(pattern, origin + ": target_modules", code::kUnsupported);
}

void validate(const AdapterConfig& c, const char* code, const std::string& origin) {
  if (c.r < 1 || c.r > 65536) fail(code, origin, ": r must be in [1, 65536], got ", c.r);
  if (!std::isfinite(c.lora_alpha) || !(c.lora_alpha > 0))
    fail(code, origin, ": lora_alpha must be a positive finite number, got ", c.lora_alpha);
  if (!std::isfinite(c.lora_dropout) || c.lora_dropout < 0 || c.lora_dropout >= 1)
    fail(code, origin, ": lora_dropout must be in [0, 1), got ", c.lora_dropout);
  if (c.bias != "none") fail(code::kUnsupported, origin, ": bias ", quoted(c.bias), " is not supported (only \"none\")");
  if (c.target_modules.empty() == c.target_regex.empty())
    fail(code, origin, ": exactly one of target_modules (a list) or target_regex must be set");
  for (const auto& m : c.target_modules)
    if (m.empty() || !json::valid_utf8(m)) fail(code, origin, ": target_modules entries must be non-empty strings");
  if (!json::valid_utf8(c.target_regex) || !json::valid_utf8(c.base_model_name_or_path))
    fail(code, origin, ": strings must be valid UTF-8");
}

}  // namespace

AdapterConfig parse_adapter_config_text(const std::string& text, const std::string& origin) {
  json::ParseOptions opt;
  opt.max_bytes = kMaxAdapterConfigBytes;
  json::Value root = json::parse(text, origin, opt);
  if (!root.is_object()) fail(code::kBadFile, origin, ": adapter config is not a JSON object");
  auto get = [&](const char* key) -> const json::Value* {
    const json::Value* v = root.find(key);
    return v && !v->is_null() ? v : nullptr;
  };
  auto bad = [&](const char* key, const char* what) { fail(code::kBadFile, origin, ": ", key, " ", what); };

  const json::Value* pt = get("peft_type");
  if (!pt || !pt->is_string()) bad("peft_type", "is required and must be a string");
  if (pt->str() != "LORA")
    fail(code::kUnsupported, origin, ": peft_type ", quoted(pt->str()), " is not supported (only LORA)");
  if (const json::Value* tt = get("task_type")) {
    if (!tt->is_string()) bad("task_type", "must be a string");
    if (tt->str() != "CAUSAL_LM")
      fail(code::kUnsupported, origin, ": task_type ", quoted(tt->str()), " is not supported (only CAUSAL_LM)");
  }

  AdapterConfig c;
  const json::Value* r = get("r");
  if (!r || !r->is_integer()) bad("r", "is required and must be an integer");
  if (r->integer() < 1 || r->integer() > 65536) bad("r", "must be in [1, 65536]");
  c.r = int(r->integer());
  if (const json::Value* a = get("lora_alpha")) {
    if (!a->is_number()) bad("lora_alpha", "must be a number");
    c.lora_alpha = a->number();
  }
  if (const json::Value* d = get("lora_dropout")) {
    if (!d->is_number()) bad("lora_dropout", "must be a number");
    c.lora_dropout = d->number();
  }
  if (const json::Value* u = get("use_rslora")) {
    if (!u->is_bool()) bad("use_rslora", "must be true or false");
    c.use_rslora = u->boolean();
  }
  if (const json::Value* b = get("bias")) {
    if (!b->is_string()) bad("bias", "must be a string");
    c.bias = b->str();
  }
  if (const json::Value* bm = get("base_model_name_or_path")) {
    if (!bm->is_string()) bad("base_model_name_or_path", "must be a string");
    c.base_model_name_or_path = bm->str();
  }

  const json::Value* tm = get("target_modules");
  if (!tm) bad("target_modules", "is required");
  if (tm->is_string()) {
    if (tm->str() == "all-linear") {
      c.target_modules.assign(std::begin(kAllLinear), std::end(kAllLinear));
    } else {
      if (tm->str().empty()) bad("target_modules", "must not be empty");
      c.target_regex = tm->str();
      check_regex(c.target_regex, origin);
    }
  } else if (tm->is_array()) {
    if (tm->items().empty()) bad("target_modules", "must not be empty");
    for (const auto& m : tm->items()) {
      if (!m.is_string() || m.str().empty()) bad("target_modules", "entries must be non-empty strings");
      c.target_modules.push_back(m.str());
    }
  } else {
    bad("target_modules", "must be a list of module names or a regex string");
  }

  // Options that would change the adapter if silently ignored.
  static const char* const kUnsupportedOptions[] = {
      "use_dora", "fan_in_fan_out", "rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform",
      "layers_pattern", "layer_replication", "exclude_modules", "lora_bias", "target_parameters",
      "trainable_token_indices"};
  for (const char* key : kUnsupportedOptions)
    if (engaged(root.find(key)))
      fail(code::kUnsupported, origin, ": PEFT option ", key, " is set; it is not supported");

  validate(c, code::kBadFile, origin);
  return c;
}

AdapterConfig read_adapter_config(const std::string& path) {
  return parse_adapter_config_text(read_text_file(path, kMaxAdapterConfigBytes), path);
}

std::string adapter_config_to_json(const AdapterConfig& c) {
  validate(c, code::kInvalidArgument, "adapter config");
  if (!c.target_regex.empty()) check_regex(c.target_regex, "adapter config");
  // The keys PEFT (0.10+) writes for a plain LoRA, sorted as json.dump(sort_keys=True) does.
  json::Value o = json::Value::object();
  o.set("alpha_pattern", json::Value::object());
  o.set("auto_mapping", nullptr);
  o.set("base_model_name_or_path",
        c.base_model_name_or_path.empty() ? json::Value(nullptr) : json::Value(c.base_model_name_or_path));
  o.set("bias", c.bias);
  o.set("fan_in_fan_out", false);
  o.set("inference_mode", true);
  o.set("init_lora_weights", true);
  o.set("layer_replication", nullptr);
  o.set("layers_pattern", nullptr);
  o.set("layers_to_transform", nullptr);
  o.set("loftq_config", json::Value::object());
  o.set("lora_alpha", c.lora_alpha);
  o.set("lora_dropout", c.lora_dropout);
  o.set("megatron_config", nullptr);
  o.set("megatron_core", "megatron.core");
  o.set("modules_to_save", nullptr);
  o.set("peft_type", "LORA");
  o.set("r", c.r);
  o.set("rank_pattern", json::Value::object());
  o.set("revision", nullptr);
  if (c.target_regex.empty()) {
    json::Value tm = json::Value::array();
    for (const auto& m : c.target_modules) tm.push(m);
    o.set("target_modules", std::move(tm));
  } else {
    o.set("target_modules", c.target_regex);
  }
  o.set("task_type", "CAUSAL_LM");
  o.set("use_dora", false);
  o.set("use_rslora", c.use_rslora);
  return json::dump(o, 2) + "\n";
}

void write_adapter_config(const std::string& path, const AdapterConfig& cfg) {
  write_file_atomic(path, adapter_config_to_json(cfg));
}

bool adapter_targets_module(const AdapterConfig& cfg, const std::string& module_path) {
  if (!cfg.target_regex.empty())
    return target_regex_full_match(cfg.target_regex, module_path, "adapter config: target_modules",
                                   code::kUnsupported);
  for (const auto& t : cfg.target_modules) {
    if (module_path == t) return true;
    if (module_path.size() > t.size() && module_path.compare(module_path.size() - t.size(), t.size(), t) == 0 &&
        module_path[module_path.size() - t.size() - 1] == '.')
      return true;
  }
  return false;
}

std::string peft_tensor_name(const std::string& module_path, bool is_b) {
  if (module_path.empty()) fail(code::kInvalidArgument, "peft_tensor_name: empty module path");
  return "base_model.model." + module_path + (is_b ? ".lora_B.weight" : ".lora_A.weight");
}

}  // namespace bl
