// `exports.io`: bindings for the validated file readers/writers in cpp/io
// (safetensors, checkpoint directories, config.json, PEFT adapter configs).
// Plain objects mirror the C++ structs field for field (HF snake_case keys).
// All calls are synchronous: they read headers/configs or small tensors; bulk
// weight loading happens natively inside the model.
#include <cstring>
#include <limits>

#include "core/dtype.h"
#include "io/adapter.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "napi/modules.h"
#include "napi/util.h"

namespace bl::napi {

namespace {

Napi::Array shape_array(Napi::Env env, const std::vector<int64_t>& shape) {
  Napi::Array a = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i) a.Set(uint32_t(i), Napi::Number::New(env, double(shape[i])));
  return a;
}

Napi::Float32Array tensor_to_f32(Napi::Env env, const TensorEntry& t, const std::string& where) {
  if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
    fail(code::kUnsupported, where, ": tensor ", t.name, " has dtype ", dtype_name(t.dtype),
         "; only F32, F16 and BF16 convert to Float32Array");
  size_t n = t.nbytes / dtype_size(t.dtype);
  if (n > size_t(std::numeric_limits<uint32_t>::max()))
    fail(code::kUnsupported, where, ": tensor ", t.name, " has ", n, " elements, too many for a Float32Array");
  auto out = Napi::Float32Array::New(env, n);
  if (n) convert_to_f32(out.Data(), t.data, t.dtype, n);
  return out;
}

Napi::Value read_safetensors_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto f = SafetensorsFile::open(get_string(info[0], "path"));
  Napi::Array tensors = Napi::Array::New(env, f->tensors().size());
  uint32_t i = 0;
  for (const auto& t : f->tensors()) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", t.name);
    o.Set("dtype", dtype_name(t.dtype));
    o.Set("shape", shape_array(env, t.shape));
    o.Set("nbytes", Napi::Number::New(env, double(t.nbytes)));
    tensors.Set(i++, o);
  }
  Napi::Object md = Napi::Object::New(env);
  for (const auto& kv : f->metadata()) md.Set(kv.first, kv.second);
  Napi::Object out = Napi::Object::New(env);
  out.Set("tensors", tensors);
  out.Set("metadata", md);
  return out;
}

Napi::Value read_tensor(const Napi::CallbackInfo& info) {
  auto f = SafetensorsFile::open(get_string(info[0], "path"));
  return tensor_to_f32(info.Env(), f->get(get_string(info[1], "name")), f->path());
}

Napi::Value checkpoint_names(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Checkpoint c = Checkpoint::open_dir(get_string(info[0], "dir"));
  auto names = c.names();
  Napi::Array a = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); ++i) a.Set(uint32_t(i), names[i]);
  return a;
}

Napi::Value read_checkpoint_tensor(const Napi::CallbackInfo& info) {
  Checkpoint c = Checkpoint::open_dir(get_string(info[0], "dir"));
  return tensor_to_f32(info.Env(), c.get(get_string(info[1], "name")), c.dir());
}

Napi::Value write_safetensors_js(const Napi::CallbackInfo& info) {
  std::string path = get_string(info[0], "path");
  if (!info[1].IsArray()) fail(code::kInvalidArgument, "tensors must be an array");
  Napi::Array arr = info[1].As<Napi::Array>();
  // Owned copies: later property getters run user code that could detach or
  // mutate earlier typed arrays, so never keep pointers into JS memory.
  std::vector<std::vector<unsigned char>> store(arr.Length());
  std::vector<TensorToWrite> tensors(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Object o = get_object(arr.Get(i), "tensors[i]");
    TensorToWrite& t = tensors[i];
    t.name = get_string(o.Get("name"), "tensor name");
    std::string dt = get_string(o.Get("dtype"), "tensor dtype");
    Napi::Value sv = o.Get("shape");
    if (!sv.IsArray()) fail(code::kInvalidArgument, "tensor ", t.name, ": shape must be an array");
    Napi::Array sa = sv.As<Napi::Array>();
    uint64_t numel = 1;
    for (uint32_t k = 0; k < sa.Length(); ++k) {
      int64_t d = get_int(sa.Get(k), "shape entry", 0, int64_t(1) << 40);
      t.shape.push_back(d);
      if (__builtin_mul_overflow(numel, uint64_t(d), &numel))
        fail(code::kInvalidArgument, "tensor ", t.name, ": shape element count overflows");
    }
    if (numel > (uint64_t(1) << 40)) fail(code::kInvalidArgument, "tensor ", t.name, ": too many elements");
    Napi::Value data = o.Get("data");
    auto& buf = store[i];
    if (dt == "I32") {
      auto s = get_i32(data, "tensor data (Int32Array)", int64_t(numel));
      t.dtype = DType::I32;
      buf.resize(s.size * 4);
      if (s.size) std::memcpy(buf.data(), s.data, s.size * 4);
    } else if (dt == "F32" || dt == "F16" || dt == "BF16") {
      auto s = get_f32(data, "tensor data (Float32Array)", int64_t(numel));
      if (dt == "F32") {
        t.dtype = DType::F32;
        buf.resize(s.size * 4);
        if (s.size) std::memcpy(buf.data(), s.data, s.size * 4);
      } else {
        t.dtype = dt == "F16" ? DType::F16 : DType::BF16;
        buf.resize(s.size * 2);
        for (size_t k = 0; k < s.size; ++k) {
          uint16_t h = t.dtype == DType::F16 ? f32_to_f16(s.data[k]) : f32_to_bf16(s.data[k]);
          std::memcpy(buf.data() + 2 * k, &h, 2);
        }
      }
    } else {
      fail(code::kInvalidArgument, "tensor ", t.name, ": dtype must be F32, F16, BF16 or I32, got ", dt);
    }
    t.data = buf.data();
  }
  std::map<std::string, std::string> md;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    Napi::Object mo = get_object(info[2], "metadata");
    Napi::Array keys = mo.GetPropertyNames();
    for (uint32_t k = 0; k < keys.Length(); ++k) {
      std::string key = keys.Get(k).ToString().Utf8Value();
      md[key] = get_string(mo.Get(key), "metadata value");
    }
  }
  write_safetensors(path, tensors, md);
  return info.Env().Undefined();
}

// ---- model config -----------------------------------------------------------------

Napi::Object model_config_to_js(Napi::Env env, const ModelConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("architecture", c.architecture);
  o.Set("vocab_size", c.vocab_size);
  o.Set("hidden_size", c.hidden_size);
  o.Set("intermediate_size", c.intermediate_size);
  o.Set("num_hidden_layers", c.num_hidden_layers);
  o.Set("num_attention_heads", c.num_attention_heads);
  o.Set("num_key_value_heads", c.num_key_value_heads);
  o.Set("head_dim", c.head_dim);
  o.Set("max_position_embeddings", c.max_position_embeddings);
  o.Set("rms_norm_eps", c.rms_norm_eps);
  o.Set("rope_theta", c.rope_theta);
  Napi::Object rs = Napi::Object::New(env);
  rs.Set("type", c.rope_scaling.type);
  rs.Set("factor", c.rope_scaling.factor);
  rs.Set("low_freq_factor", c.rope_scaling.low_freq_factor);
  rs.Set("high_freq_factor", c.rope_scaling.high_freq_factor);
  rs.Set("original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings);
  o.Set("rope_scaling", rs);
  o.Set("tie_word_embeddings", c.tie_word_embeddings);
  o.Set("attention_bias", c.attention_bias);
  o.Set("sliding_window", c.sliding_window);
  o.Set("torch_dtype", c.torch_dtype);
  o.Set("bos_token_id", c.bos_token_id);
  o.Set("eos_token_id", c.eos_token_id);
  o.Set("pad_token_id", c.pad_token_id);
  return o;
}

ModelConfig model_config_from_js(const Napi::Value& v) {
  Napi::Object o = get_object(v, "model config");
  ModelConfig c;
  c.architecture = get_string(o.Get("architecture"), "architecture");
  const int64_t big = int64_t(1) << 30;
  c.vocab_size = int(get_int(o.Get("vocab_size"), "vocab_size", 1, big));
  c.hidden_size = int(get_int(o.Get("hidden_size"), "hidden_size", 1, big));
  c.intermediate_size = int(get_int(o.Get("intermediate_size"), "intermediate_size", 1, big));
  c.num_hidden_layers = int(get_int(o.Get("num_hidden_layers"), "num_hidden_layers", 1, big));
  c.num_attention_heads = int(get_int(o.Get("num_attention_heads"), "num_attention_heads", 1, big));
  c.num_key_value_heads = int(opt_int(o, "num_key_value_heads", c.num_attention_heads, 1, big));
  c.head_dim = int(opt_int(o, "head_dim", c.hidden_size / c.num_attention_heads, 1, big));
  c.max_position_embeddings = int(opt_int(o, "max_position_embeddings", c.max_position_embeddings, 1, big));
  c.rms_norm_eps = opt_number(o, "rms_norm_eps", c.rms_norm_eps);
  c.rope_theta = opt_number(o, "rope_theta", c.rope_theta);
  if (o.Has("rope_scaling") && !o.Get("rope_scaling").IsUndefined() && !o.Get("rope_scaling").IsNull()) {
    Napi::Object rs = get_object(o.Get("rope_scaling"), "rope_scaling");
    RopeScaling& r = c.rope_scaling;
    r.type = opt_string(rs, "type", r.type);
    r.factor = opt_number(rs, "factor", r.factor);
    r.low_freq_factor = opt_number(rs, "low_freq_factor", r.low_freq_factor);
    r.high_freq_factor = opt_number(rs, "high_freq_factor", r.high_freq_factor);
    r.original_max_position_embeddings =
        opt_number(rs, "original_max_position_embeddings", r.original_max_position_embeddings);
  }
  c.tie_word_embeddings = opt_bool(o, "tie_word_embeddings", c.tie_word_embeddings);
  c.attention_bias = opt_bool(o, "attention_bias", c.architecture == "Qwen2ForCausalLM");
  c.sliding_window = int(opt_int(o, "sliding_window", 0, 0, big));
  c.torch_dtype = opt_string(o, "torch_dtype", c.torch_dtype);
  c.bos_token_id = int(opt_int(o, "bos_token_id", -1, -1, big));
  c.eos_token_id = int(opt_int(o, "eos_token_id", -1, -1, big));
  c.pad_token_id = int(opt_int(o, "pad_token_id", -1, -1, big));
  return c;
}

Napi::Value parse_model_config_js(const Napi::CallbackInfo& info) {
  return model_config_to_js(info.Env(), parse_model_config(get_string(info[0], "path")));
}

Napi::Value parse_model_config_text_js(const Napi::CallbackInfo& info) {
  std::string origin = info.Length() > 1 && !info[1].IsUndefined() ? get_string(info[1], "origin") : "config.json";
  return model_config_to_js(info.Env(), parse_model_config_text(get_string(info[0], "text"), origin));
}

Napi::Value model_config_to_json_js(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), model_config_to_json(model_config_from_js(info[0])));
}

// ---- adapter config ---------------------------------------------------------------

Napi::Object adapter_to_js(Napi::Env env, const AdapterConfig& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("r", c.r);
  o.Set("lora_alpha", c.lora_alpha);
  o.Set("lora_dropout", c.lora_dropout);
  o.Set("use_rslora", c.use_rslora);
  Napi::Array tm = Napi::Array::New(env, c.target_modules.size());
  for (size_t i = 0; i < c.target_modules.size(); ++i) tm.Set(uint32_t(i), c.target_modules[i]);
  o.Set("target_modules", tm);
  o.Set("target_regex", c.target_regex);
  o.Set("base_model_name_or_path", c.base_model_name_or_path);
  o.Set("bias", c.bias);
  return o;
}

AdapterConfig adapter_from_js(const Napi::Value& v) {
  Napi::Object o = get_object(v, "adapter config");
  AdapterConfig c;
  c.r = int(get_int(o.Get("r"), "r", 1, 65536));
  c.lora_alpha = opt_number(o, "lora_alpha", c.lora_alpha);
  c.lora_dropout = opt_number(o, "lora_dropout", c.lora_dropout);
  c.use_rslora = opt_bool(o, "use_rslora", c.use_rslora);
  if (o.Has("target_modules") && !o.Get("target_modules").IsUndefined() && !o.Get("target_modules").IsNull()) {
    Napi::Value tv = o.Get("target_modules");
    if (!tv.IsArray()) fail(code::kInvalidArgument, "target_modules must be an array of strings");
    Napi::Array ta = tv.As<Napi::Array>();
    for (uint32_t i = 0; i < ta.Length(); ++i) c.target_modules.push_back(get_string(ta.Get(i), "target_modules[i]"));
  }
  c.target_regex = opt_string(o, "target_regex", "");
  c.base_model_name_or_path = opt_string(o, "base_model_name_or_path", "");
  c.bias = opt_string(o, "bias", c.bias);
  return c;
}

Napi::Value read_adapter_config_js(const Napi::CallbackInfo& info) {
  return adapter_to_js(info.Env(), read_adapter_config(get_string(info[0], "path")));
}

Napi::Value parse_adapter_config_text_js(const Napi::CallbackInfo& info) {
  std::string origin =
      info.Length() > 1 && !info[1].IsUndefined() ? get_string(info[1], "origin") : "adapter_config.json";
  return adapter_to_js(info.Env(), parse_adapter_config_text(get_string(info[0], "text"), origin));
}

Napi::Value write_adapter_config_js(const Napi::CallbackInfo& info) {
  std::string path = get_string(info[0], "path");
  write_adapter_config(path, adapter_from_js(info[1]));
  return info.Env().Undefined();
}

Napi::Value adapter_config_to_json_js(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), adapter_config_to_json(adapter_from_js(info[0])));
}

Napi::Value adapter_targets_module_js(const Napi::CallbackInfo& info) {
  AdapterConfig c = adapter_from_js(info[0]);
  return Napi::Boolean::New(info.Env(), adapter_targets_module(c, get_string(info[1], "module path")));
}

Napi::Value peft_tensor_name_js(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(),
                           peft_tensor_name(get_string(info[0], "module path"), get_bool(info[1], "isB")));
}

}  // namespace

void init_io(Napi::Env env, Napi::Object exports) {
  Napi::Object io = Napi::Object::New(env);
  auto add = [&](const char* name, Napi::Function::Callback cb) { io.Set(name, Napi::Function::New(env, cb)); };
  add("readSafetensorsInfo", BL_NAPI(read_safetensors_info));
  add("readTensor", BL_NAPI(read_tensor));
  add("writeSafetensors", BL_NAPI(write_safetensors_js));
  add("checkpointNames", BL_NAPI(checkpoint_names));
  add("readCheckpointTensor", BL_NAPI(read_checkpoint_tensor));
  add("parseModelConfig", BL_NAPI(parse_model_config_js));
  add("parseModelConfigText", BL_NAPI(parse_model_config_text_js));
  add("modelConfigToJson", BL_NAPI(model_config_to_json_js));
  add("readAdapterConfig", BL_NAPI(read_adapter_config_js));
  add("parseAdapterConfigText", BL_NAPI(parse_adapter_config_text_js));
  add("writeAdapterConfig", BL_NAPI(write_adapter_config_js));
  add("adapterConfigToJson", BL_NAPI(adapter_config_to_json_js));
  add("adapterTargetsModule", BL_NAPI(adapter_targets_module_js));
  add("peftTensorName", BL_NAPI(peft_tensor_name_js));
  exports.Set("io", io);
}

}  // namespace bl::napi
