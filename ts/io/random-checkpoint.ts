// Tiny LLaMA-family checkpoints made on the fly, in exactly the Hugging Face
// on-disk layout (config.json + model.safetensors, or shards +
// model.safetensors.index.json), so model tests exercise the real loading
// path. Weights are seeded random: matrices ~ N(0, 0.02^2), norm weights
// near 1. Pure TypeScript (no addon needed). Tokenizer files are not written.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeSafetensorsFile, type TensorToWrite } from './safetensors.ts';

export type TinyArch = 'llama' | 'mistral' | 'qwen2' | 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM';

export type TinyRopeScaling =
  | null
  | { rope_type: 'llama3'; factor: number; low_freq_factor: number; high_freq_factor: number; original_max_position_embeddings: number }
  | { rope_type: 'linear'; factor: number };

export interface TinyCheckpointOptions {
  arch?: TinyArch; // default llama
  vocab?: number; // default 64
  hidden?: number; // d, default 32
  layers?: number; // default 2
  heads?: number; // H, default 4
  kvHeads?: number; // Hkv, default heads
  intermediate?: number; // default 64
  headDim?: number; // written to config.json only when given; default hidden / heads
  tie?: boolean; // tie_word_embeddings (no lm_head.weight), default false
  dtype?: 'F32' | 'F16' | 'BF16'; // default F32
  shards?: number; // > 1: sharded with an index, default 1
  seed?: number; // default 1
  ropeTheta?: number; // default 10000
  ropeScaling?: TinyRopeScaling; // default null
  maxPositionEmbeddings?: number; // default 256
  rmsNormEps?: number; // default 1e-5
  slidingWindow?: number | null; // Mistral only, default null
  std?: number; // matrix init std, default 0.02
}

const ARCH: Record<string, { arch: string; modelType: string }> = {
  llama: { arch: 'LlamaForCausalLM', modelType: 'llama' },
  mistral: { arch: 'MistralForCausalLM', modelType: 'mistral' },
  qwen2: { arch: 'Qwen2ForCausalLM', modelType: 'qwen2' },
};

/** mulberry32 + Box-Muller; deterministic per seed. */
class SeededNormal {
  private s: number;
  constructor(seed: number) {
    this.s = (seed * 0x9e3779b1) >>> 0;
  }
  private uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = 1 - this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
  fill(n: number, std: number, mean = 0): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = mean + std * this.normal();
    return a;
  }
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new Error(`makeTinyCheckpoint: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** HF config.json object (as written) for the given options. */
export function tinyConfig(opts: TinyCheckpointOptions = {}): Record<string, unknown> {
  const key = (opts.arch ?? 'llama').replace(/ForCausalLM$/, '').toLowerCase();
  const a = ARCH[key];
  if (!a) throw new Error(`makeTinyCheckpoint: unknown arch ${opts.arch}`);
  const hidden = positiveInt('hidden', opts.hidden ?? 32);
  const heads = positiveInt('heads', opts.heads ?? 4);
  const kvHeads = positiveInt('kvHeads', opts.kvHeads ?? heads);
  if (heads % kvHeads) throw new Error('makeTinyCheckpoint: kvHeads must divide heads');
  if (opts.headDim === undefined && hidden % heads) throw new Error('makeTinyCheckpoint: heads must divide hidden');
  const vocab = positiveInt('vocab', opts.vocab ?? 64);
  const dtype = opts.dtype ?? 'F32';
  const cfg: Record<string, unknown> = {
    architectures: [a.arch],
    model_type: a.modelType,
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: positiveInt('intermediate', opts.intermediate ?? 64),
    num_hidden_layers: positiveInt('layers', opts.layers ?? 2),
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    hidden_act: 'silu',
    max_position_embeddings: opts.maxPositionEmbeddings ?? 256,
    rms_norm_eps: opts.rmsNormEps ?? 1e-5,
    rope_theta: opts.ropeTheta ?? 10000,
    rope_scaling: opts.ropeScaling ?? null,
    tie_word_embeddings: opts.tie ?? false,
    initializer_range: opts.std ?? 0.02,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    bos_token_id: vocab > 1 ? 1 : 0,
    eos_token_id: vocab > 2 ? 2 : 0,
    use_cache: true,
    attention_dropout: 0.0,
    transformers_version: '4.46.0',
  };
  if (opts.headDim !== undefined) cfg.head_dim = positiveInt('headDim', opts.headDim);
  if (a.modelType === 'llama') {
    cfg.attention_bias = false;
    cfg.mlp_bias = false;
    cfg.pretraining_tp = 1;
  } else if (a.modelType === 'mistral') {
    cfg.sliding_window = opts.slidingWindow ?? null;
  } else {
    cfg.use_sliding_window = false;
    cfg.sliding_window = opts.slidingWindow ?? null;
    cfg.max_window_layers = cfg.num_hidden_layers;
  }
  return cfg;
}

/** The tensors of a tiny checkpoint (F32 values, HF names and shapes, HF order). */
export function tinyTensors(cfg: Record<string, unknown>, seed = 1, std = 0.02): { name: string; shape: number[]; data: Float32Array }[] {
  const V = cfg.vocab_size as number;
  const d = cfg.hidden_size as number;
  const I = cfg.intermediate_size as number;
  const L = cfg.num_hidden_layers as number;
  const H = cfg.num_attention_heads as number;
  const Hkv = cfg.num_key_value_heads as number;
  const hd = (cfg.head_dim as number | undefined) ?? d / H;
  const bias = cfg.model_type === 'qwen2';
  const rng = new SeededNormal(seed);
  const out: { name: string; shape: number[]; data: Float32Array }[] = [];
  const mat = (name: string, shape: number[]) => out.push({ name, shape, data: rng.fill(shape[0] * (shape[1] ?? 1), std) });
  const norm = (name: string, n: number) => out.push({ name, shape: [n], data: rng.fill(n, 0.1, 1) });
  mat('model.embed_tokens.weight', [V, d]);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}`;
    mat(`${p}.self_attn.q_proj.weight`, [H * hd, d]);
    if (bias) mat(`${p}.self_attn.q_proj.bias`, [H * hd]);
    mat(`${p}.self_attn.k_proj.weight`, [Hkv * hd, d]);
    if (bias) mat(`${p}.self_attn.k_proj.bias`, [Hkv * hd]);
    mat(`${p}.self_attn.v_proj.weight`, [Hkv * hd, d]);
    if (bias) mat(`${p}.self_attn.v_proj.bias`, [Hkv * hd]);
    mat(`${p}.self_attn.o_proj.weight`, [d, H * hd]);
    mat(`${p}.mlp.gate_proj.weight`, [I, d]);
    mat(`${p}.mlp.up_proj.weight`, [I, d]);
    mat(`${p}.mlp.down_proj.weight`, [d, I]);
    norm(`${p}.input_layernorm.weight`, d);
    norm(`${p}.post_attention_layernorm.weight`, d);
  }
  norm('model.norm.weight', d);
  if (!cfg.tie_word_embeddings) mat('lm_head.weight', [V, d]);
  return out;
}

/**
 * Write config.json and weights into `dir` (created if needed). Returns the
 * config.json object. With `shards > 1` the tensors are split in order into
 * model-0000k-of-0000n.safetensors files listed by model.safetensors.index.json.
 */
export function makeTinyCheckpoint(dir: string, opts: TinyCheckpointOptions = {}): Record<string, unknown> {
  const cfg = tinyConfig(opts);
  const dtype = opts.dtype ?? 'F32';
  const tensors: TensorToWrite[] = tinyTensors(cfg, opts.seed ?? 1, opts.std ?? 0.02).map((t) => ({ ...t, dtype }));
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
  const shards = opts.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > tensors.length)
    throw new Error(`makeTinyCheckpoint: shards must be in [1, ${tensors.length}]`);
  const meta = { format: 'pt' };
  if (shards === 1) {
    writeSafetensorsFile(path.join(dir, 'model.safetensors'), tensors, meta);
    return cfg;
  }
  const weightMap: Record<string, string> = {};
  const elem = dtype === 'F32' ? 4 : 2;
  let total = 0;
  const pad = (k: number) => String(k).padStart(5, '0');
  for (let s = 0; s < shards; s++) {
    const part = tensors.slice(Math.floor((s * tensors.length) / shards), Math.floor(((s + 1) * tensors.length) / shards));
    const file = `model-${pad(s + 1)}-of-${pad(shards)}.safetensors`;
    writeSafetensorsFile(path.join(dir, file), part, meta);
    for (const t of part) {
      weightMap[t.name] = file;
      total += t.data.length * elem;
    }
  }
  const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  writeFileAtomic(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n',
  );
  return cfg;
}
