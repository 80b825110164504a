// PEFT LoRA adapters on disk: file layout, reading an adapter's LoRA config,
// and save/load through a Model. The format (names, shapes, JSON fields) is
// PEFT's, so adapters move between this library and Hugging Face PEFT.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { readAdapterConfig } from './io/native-io.ts';
import type { LoraConfig } from './lora.ts';
import type { Model } from './model.ts';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

export function adapterFiles(dir: string): { config: string; weights: string } {
  return { config: path.join(dir, ADAPTER_CONFIG), weights: path.join(dir, ADAPTER_WEIGHTS) };
}

/** True when `dir` holds both adapter files. */
export function isAdapterDir(dir: string): boolean {
  const f = adapterFiles(dir);
  try {
    return statSync(dir).isDirectory() && existsSync(f.config) && existsSync(f.weights);
  } catch {
    return false;
  }
}

/** The LoRA config an adapter was trained with (validated by the native reader). */
export function readAdapterLoraConfig(dir: string): LoraConfig {
  const a = readAdapterConfig(adapterFiles(dir).config);
  return {
    r: a.r,
    alpha: a.lora_alpha,
    dropout: a.lora_dropout,
    useRslora: a.use_rslora,
    targetModules: a.target_regex ? a.target_regex : a.target_modules,
    seed: 0,
  };
}

/** Name of the checkpoint directory for an optimiser step (zero-padded, sorts by step). */
export function checkpointDirName(step: number): string {
  return `checkpoint-${String(step).padStart(6, '0')}`;
}

export function saveAdapter(model: Model, dir: string): Promise<void> {
  return model.saveAdapter(dir);
}

export function loadAdapter(model: Model, dir: string): Promise<void> {
  return model.loadAdapter(dir);
}
