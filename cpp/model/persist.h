// Saving and loading what training produces: PEFT LoRA adapters
// (adapter_config.json + adapter_model.safetensors with PEFT's tensor names)
// and whole models in HF layout (config.json + model.safetensors, f32).
// Loading validates names, shapes, rank and target modules against the model
// before anything in the model changes.
#pragma once
#include <string>

#include "model/llama.h"

namespace bl {

// Writes `dir`/adapter_config.json and `dir`/adapter_model.safetensors
// (each atomically; `dir` is created when missing).
void save_adapter(const LlamaModel& m, const std::string& dir);
// Loads a PEFT adapter. A model without LoRA gets LoRA from the adapter's
// config; a model with LoRA must have the same r, scale and adapted modules.
void load_adapter(LlamaModel& m, const std::string& dir);
// Writes config.json and model.safetensors (f32, HF names; LoRA not merged).
void save_model(const LlamaModel& m, const std::string& dir);

}  // namespace bl
