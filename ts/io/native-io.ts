// Typed facade over the addon's `exports.io` (cpp/napi/io.cc): validated
// safetensors, checkpoint directories, config.json and PEFT adapter configs.
// Objects use the C++ struct field names (HF snake_case) so that they read
// like the files they come from. Native errors become BayesLoraError.
import { loadNative } from '../native.ts';
import { native } from '../errors.ts';

export type Architecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';

export interface RopeScaling {
  type: 'none' | 'llama3' | 'linear';
  factor: number;
  low_freq_factor: number; // llama3
  high_freq_factor: number; // llama3
  original_max_position_embeddings: number; // llama3
}

/** Mirror of bl::ModelConfig (cpp/io/config.h) after validation and defaults. */
export interface ModelConfig {
  architecture: Architecture;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: RopeScaling;
  tie_word_embeddings: boolean;
  attention_bias: boolean;
  sliding_window: number; // 0 = none
  torch_dtype: string;
  bos_token_id: number; // -1 = none
  eos_token_id: number;
  pad_token_id: number;
}

/** Mirror of bl::AdapterConfig (cpp/io/adapter.h). */
export interface AdapterConfig {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  use_rslora: boolean;
  target_modules: string[]; // matched as in PEFT: equal, or ends with "." + name
  target_regex: string; // PEFT's string form of target_modules (full match); '' when a list is used
  base_model_name_or_path: string;
  bias: 'none';
}

export interface SafetensorsInfo {
  tensors: { name: string; dtype: string; shape: number[]; nbytes: number }[]; // file (offset) order
  metadata: Record<string, string>;
}

export interface NativeTensorToWrite {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16' | 'I32';
  shape: readonly number[];
  data: Float32Array | Int32Array; // Float32Array for float dtypes (converted on write), Int32Array for I32
}

function io() {
  return loadNative().io;
}

export function readSafetensorsInfo(path: string): SafetensorsInfo {
  return native(() => io().readSafetensorsInfo(path));
}
/** One tensor as Float32Array (F32/F16/BF16 storage). */
export function readTensor(path: string, name: string): Float32Array {
  return native(() => io().readTensor(path, name));
}
export function writeSafetensors(path: string, tensors: readonly NativeTensorToWrite[], metadata?: Record<string, string>): void {
  native(() => io().writeSafetensors(path, tensors, metadata));
}
/** Tensor names of a checkpoint directory (model.safetensors or sharded index), sorted. */
export function checkpointNames(dir: string): string[] {
  return native(() => io().checkpointNames(dir));
}
export function readCheckpointTensor(dir: string, name: string): Float32Array {
  return native(() => io().readCheckpointTensor(dir, name));
}
export function parseModelConfig(path: string): ModelConfig {
  return native(() => io().parseModelConfig(path));
}
export function parseModelConfigText(text: string, origin?: string): ModelConfig {
  return native(() => io().parseModelConfigText(text, origin));
}
/** HF config.json text for a config (validated: it parses back to the same config). */
export function modelConfigToJson(config: ModelConfig): string {
  return native(() => io().modelConfigToJson(config));
}
export function readAdapterConfig(path: string): AdapterConfig {
  return native(() => io().readAdapterConfig(path));
}
export function parseAdapterConfigText(text: string, origin?: string): AdapterConfig {
  return native(() => io().parseAdapterConfigText(text, origin));
}
/** Write adapter_config.json as PEFT does (atomic). */
export function writeAdapterConfig(path: string, config: Partial<AdapterConfig> & { r: number }): void {
  native(() => io().writeAdapterConfig(path, config));
}
export function adapterConfigToJson(config: Partial<AdapterConfig> & { r: number }): string {
  return native(() => io().adapterConfigToJson(config));
}
export function adapterTargetsModule(config: Partial<AdapterConfig> & { r: number }, modulePath: string): boolean {
  return native(() => io().adapterTargetsModule(config, modulePath));
}
/** "base_model.model.<modulePath>.lora_A.weight" (or lora_B). */
export function peftTensorName(modulePath: string, isB: boolean): string {
  return native(() => io().peftTensorName(modulePath, isB));
}
