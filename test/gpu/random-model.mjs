// Random-weight LLaMA checkpoints written on the fly, in the Hugging Face
// on-disk layout (config.json + model.safetensors), for the GPU checks: plain
// JavaScript (no tsx on the lent GPU machine), streaming so a 7B-shaped file
// (13.5 GB of bf16) never sits in JS memory at once. The library loads only
// from files (there is no from-random-weights constructor), so the whole-model
// parity test and the 7B benchmark go through the real loading path.
//
// Values: matrices ~ std * (sum of 4 uniforms, centred and scaled to unit
// variance), norm weights ~ 1 + 0.1 * that. Small sizes draw every value from
// a seeded generator; above `poolAbove` elements a tensor is filled from a
// seeded 1M-value pool at random offsets (benchmark weights only need the
// right shapes and magnitudes, not independence).
import fs from 'node:fs';
import path from 'node:path';

// mulberry32: deterministic per seed, identical on every machine (also the
// GPU checks' batch generator).
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
// Approximately standard normal (Irwin-Hall of 4, variance 4/12 scaled to 1).
function normal(u) {
  return (u() + u() + u() + u() - 2) * Math.sqrt(3);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
// float32 -> bfloat16 bits, round to nearest even (finite inputs).
export function bf16Bits(v) {
  f32[0] = v;
  const x = u32[0];
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}
export function bf16ToF32(b) {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** HF config.json for a LLaMA model of the given shape. */
export function llamaConfig(s) {
  const heads = s.heads, kv = s.kvHeads ?? s.heads;
  const dtype = s.dtype ?? 'F32';
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: heads,
    num_key_value_heads: kv,
    hidden_act: 'silu',
    max_position_embeddings: s.maxPositions ?? 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    tie_word_embeddings: false,
    initializer_range: s.std ?? 0.02,
    torch_dtype: { F32: 'float32', BF16: 'bfloat16' }[dtype],
    bos_token_id: 1,
    eos_token_id: 2,
    attention_bias: false,
    mlp_bias: false,
    pretraining_tp: 1,
  };
}

/** [name, shape, kind] of every tensor, HF names and order. */
export function llamaTensors(c) {
  const d = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const hd = d / c.num_attention_heads, qd = c.num_attention_heads * hd, kvd = c.num_key_value_heads * hd;
  const t = [['model.embed_tokens.weight', [V, d], 'mat']];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    t.push([`${p}.self_attn.q_proj.weight`, [qd, d], 'mat'], [`${p}.self_attn.k_proj.weight`, [kvd, d], 'mat'],
      [`${p}.self_attn.v_proj.weight`, [kvd, d], 'mat'], [`${p}.self_attn.o_proj.weight`, [d, qd], 'mat'],
      [`${p}.mlp.gate_proj.weight`, [I, d], 'mat'], [`${p}.mlp.up_proj.weight`, [I, d], 'mat'],
      [`${p}.mlp.down_proj.weight`, [d, I], 'mat'], [`${p}.input_layernorm.weight`, [d], 'norm'],
      [`${p}.post_attention_layernorm.weight`, [d], 'norm']);
  }
  t.push(['model.norm.weight', [d], 'norm'], ['lm_head.weight', [V, d], 'mat']);
  return t;
}

/** Parameters of a config (what MFU counts). */
export function llamaParamCount(c) {
  return llamaTensors(c).reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Write config.json + model.safetensors into `dir` (created). Options: the
 * shape (vocab, hidden, intermediate, layers, heads, kvHeads), dtype 'F32' |
 * 'BF16', std (0.02), seed (1), poolAbove (elements; default 1 << 20).
 * Returns { config, bytes }.
 */
export function writeRandomLlama(dir, s) {
  const c = llamaConfig(s);
  const dtype = s.dtype ?? 'F32';
  const es = dtype === 'F32' ? 4 : 2;
  const std = s.std ?? 0.02;
  const u = rng(s.seed ?? 1);
  const tensors = llamaTensors(c);
  const header = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1);
    header[name] = { dtype, shape, data_offsets: [off, off + n * es] };
    off += n * es;
  }
  let h = JSON.stringify(header);
  h += ' '.repeat((8 - (h.length % 8)) % 8);  // data section 8-aligned
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c, null, 2) + '\n');
  const file = path.join(dir, 'model.safetensors');
  const fd = fs.openSync(file, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, Buffer.from(h, 'latin1'));
    const poolAbove = s.poolAbove ?? 1 << 20;
    const POOL = 1 << 20;
    let pool = null;  // lazily: std * normal, already in the file's dtype
    const CH = 1 << 22;  // elements per write
    const buf = Buffer.alloc(CH * es);
    const view = dtype === 'F32' ? new Float32Array(buf.buffer, buf.byteOffset, CH) : new Uint16Array(buf.buffer, buf.byteOffset, CH);
    for (const [, shape, kind] of tensors) {
      const n = shape.reduce((a, b) => a * b, 1);
      const [scale, mean] = kind === 'norm' ? [0.1, 1] : [std, 0];
      // Only matrices are ever this large; the pool holds their distribution.
      const pooled = n > poolAbove && kind === 'mat';
      if (pooled && !pool) {
        pool = dtype === 'F32' ? new Float32Array(POOL) : new Uint16Array(POOL);
        for (let i = 0; i < POOL; i++) pool[i] = dtype === 'F32' ? std * normal(u) : bf16Bits(std * normal(u));
      }
      for (let i0 = 0; i0 < n; i0 += CH) {
        const m = Math.min(CH, n - i0);
        if (pooled) {
          // Runs of up to 4096 values copied from random pool offsets.
          for (let i = 0; i < m; ) {
            const run = Math.min(4096, m - i);
            const o = Math.floor(u() * (POOL - run));
            view.set(pool.subarray(o, o + run), i);
            i += run;
          }
        } else if (dtype === 'F32') {
          for (let i = 0; i < m; i++) view[i] = mean + scale * normal(u);
        } else {
          for (let i = 0; i < m; i++) view[i] = bf16Bits(mean + scale * normal(u));
        }
        fs.writeSync(fd, buf, 0, m * es);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return { config: c, bytes: 8 + h.length + off };
}
