// LoRA configuration as PEFT defines it (r, alpha, dropout, rsLoRA, target
// modules or a target regex) plus this library's seed, with defaults and a
// validating resolver. The native side re-validates; this gives early,
// readable errors and one place for the defaults.
import { invalid } from './errors.ts';

/** Linear modules of a LLaMA-family model that can carry LoRA. */
export const LORA_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'] as const;
export type LoraModuleName = (typeof LORA_MODULES)[number];

export interface LoraConfig {
  /** Rank r of A (r x d_in) and B (d_out x r). */
  r: number;
  /** Scale numerator: s = alpha / r, or alpha / sqrt(r) with useRslora. */
  alpha: number;
  /** LoRA dropout on the module input, training passes only. */
  dropout: number;
  useRslora: boolean;
  /**
   * Module names (a module path matches when it equals or ends with "." + name,
   * as in PEFT), or a string, which PEFT treats as a regex full-matched against
   * module paths such as "model.layers.0.self_attn.q_proj" or "lm_head".
   */
  targetModules: string[] | string;
  /** Seed of A's kaiming-uniform initialisation and of the dropout masks. */
  seed: number;
}

/** PEFT's LLaMA target defaults (q_proj, v_proj); r = 8, alpha = 16 (s = 2). */
export const DEFAULT_LORA: Readonly<LoraConfig> = Object.freeze({
  r: 8,
  alpha: 16,
  dropout: 0,
  useRslora: false,
  targetModules: ['q_proj', 'v_proj'],
  seed: 0,
});

/** Fill defaults and validate (INVALID_ARGUMENT naming the field). */
export function resolveLoraConfig(c: Partial<LoraConfig> = {}): LoraConfig {
  if (c === null || typeof c !== 'object') throw invalid('lora config must be an object');
  const out: LoraConfig = {
    r: c.r ?? DEFAULT_LORA.r,
    alpha: c.alpha ?? DEFAULT_LORA.alpha,
    dropout: c.dropout ?? DEFAULT_LORA.dropout,
    useRslora: c.useRslora ?? DEFAULT_LORA.useRslora,
    targetModules: c.targetModules ?? [...(DEFAULT_LORA.targetModules as string[])],
    seed: c.seed ?? DEFAULT_LORA.seed,
  };
  if (!Number.isInteger(out.r) || out.r < 1 || out.r > 65536) throw invalid(`lora r must be an integer in [1, 65536], got ${String(out.r)}`);
  if (typeof out.alpha !== 'number' || !Number.isFinite(out.alpha) || out.alpha <= 0) throw invalid(`lora alpha must be a positive number, got ${String(out.alpha)}`);
  if (typeof out.dropout !== 'number' || !(out.dropout >= 0 && out.dropout < 1)) throw invalid(`lora dropout must be in [0, 1), got ${String(out.dropout)}`);
  if (typeof out.useRslora !== 'boolean') throw invalid('lora useRslora must be a boolean');
  if (!Number.isSafeInteger(out.seed) || out.seed < 0) throw invalid(`lora seed must be a non-negative safe integer, got ${String(out.seed)}`);
  const t = out.targetModules;
  if (typeof t === 'string') {
    if (t.length === 0) throw invalid('lora targetModules regex is empty');
  } else if (!Array.isArray(t) || t.length === 0 || t.some((x) => typeof x !== 'string' || x.length === 0)) {
    throw invalid('lora targetModules must be a non-empty array of module names or a regex string');
  }
  return out;
}

/** The LoRA scale s. */
export function loraScale(c: Pick<LoraConfig, 'r' | 'alpha' | 'useRslora'>): number {
  return c.useRslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}
