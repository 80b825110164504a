// A float64 reference of the LLaMA-family forward pass, written directly from
// the HF modelling code's definitions (pre-norm decoder, rotate-half RoPE with
// HF's rope-init rules, GQA, SwiGLU, q/k/v biases, tied embeddings) and PEFT's
// LoRA linear. Runs one unpadded sequence at positions 0..n-1. Test-only.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readSafetensorsFile } from '../../ts/io/safetensors.ts';

export interface RefLora {
  // module path -> {A [r x in], B [out x r], scale}
  [path: string]: { A: Float32Array; B: Float32Array; r: number; scale: number };
}

export class RefLlama {
  readonly cfg: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly w = new Map<string, Float64Array>();
  readonly d: number;
  readonly H: number;
  readonly Hkv: number;
  readonly hd: number;
  readonly I: number;
  readonly V: number;
  readonly L: number;
  readonly invFreq: Float64Array;

  constructor(dir: string) {
    this.cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    const st = readSafetensorsFile(path.join(dir, 'model.safetensors'));
    for (const t of st.tensors) this.w.set(t.name, Float64Array.from(t.data as Float32Array));
    const c = this.cfg;
    this.d = c.hidden_size;
    this.H = c.num_attention_heads;
    this.Hkv = c.num_key_value_heads ?? this.H;
    this.hd = c.head_dim ?? this.d / this.H;
    this.I = c.intermediate_size;
    this.V = c.vocab_size;
    this.L = c.num_hidden_layers;
    this.invFreq = refInvFreq(c, this.hd);
    // Tied embeddings: the LM head is the embedding matrix.
    if (c.tie_word_embeddings) this.w.set('lm_head.weight', this.get('model.embed_tokens.weight'));
  }

  get(name: string): Float64Array {
    const v = this.w.get(name);
    if (!v) throw new Error(`reference: missing ${name}`);
    return v;
  }

  /** y[n x out] = x[n x in] W^T (+ b) (+ s B A x). */
  private linear(x: Float64Array, n: number, inD: number, name: string, lora?: RefLora): Float64Array {
    const W = this.get(`${name}.weight`);
    const out = W.length / inD;
    const b = this.w.get(`${name}.bias`);
    const y = new Float64Array(n * out);
    for (let i = 0; i < n; i++)
      for (let o = 0; o < out; o++) {
        let s = b ? b[o] : 0;
        for (let k = 0; k < inD; k++) s += x[i * inD + k] * W[o * inD + k];
        y[i * out + o] = s;
      }
    const modPath = name;
    const l = lora?.[modPath];
    if (l) {
      for (let i = 0; i < n; i++) {
        const u = new Float64Array(l.r);
        for (let a = 0; a < l.r; a++) {
          let s = 0;
          for (let k = 0; k < inD; k++) s += l.A[a * inD + k] * x[i * inD + k];
          u[a] = s;
        }
        for (let o = 0; o < out; o++) {
          let s = 0;
          for (let a = 0; a < l.r; a++) s += l.B[o * l.r + a] * u[a];
          y[i * out + o] += l.scale * s;
        }
      }
    }
    return y;
  }

  private rms(x: Float64Array, n: number, w: Float64Array): Float64Array {
    const d = this.d;
    const eps = this.cfg.rms_norm_eps ?? 1e-6;
    const y = new Float64Array(n * d);
    for (let i = 0; i < n; i++) {
      let ss = 0;
      for (let k = 0; k < d; k++) ss += x[i * d + k] ** 2;
      const r = 1 / Math.sqrt(ss / d + eps);
      for (let k = 0; k < d; k++) y[i * d + k] = x[i * d + k] * r * w[k];
    }
    return y;
  }

  private rope(x: Float64Array, n: number, heads: number): void {
    const hd = this.hd;
    const half = hd / 2;
    for (let i = 0; i < n; i++)
      for (let h = 0; h < heads; h++) {
        const o = (i * heads + h) * hd;
        for (let j = 0; j < half; j++) {
          const ang = i * this.invFreq[j];
          const c = Math.cos(ang);
          const s = Math.sin(ang);
          const x1 = x[o + j];
          const x2 = x[o + j + half];
          x[o + j] = x1 * c - x2 * s;
          x[o + j + half] = x2 * c + x1 * s;
        }
      }
  }

  /** Final-norm hidden states [n x d] of one unpadded sequence. */
  hidden(ids: readonly number[], lora?: RefLora): Float64Array {
    const n = ids.length;
    const { d, H, Hkv, hd, I } = this;
    const E = this.get('model.embed_tokens.weight');
    let x = new Float64Array(n * d);
    for (let i = 0; i < n; i++) for (let k = 0; k < d; k++) x[i * d + k] = E[ids[i] * d + k];
    for (let l = 0; l < this.L; l++) {
      const p = `model.layers.${l}`;
      const h1 = this.rms(x, n, this.get(`${p}.input_layernorm.weight`));
      const q = this.linear(h1, n, d, `${p}.self_attn.q_proj`, lora);
      const k = this.linear(h1, n, d, `${p}.self_attn.k_proj`, lora);
      const v = this.linear(h1, n, d, `${p}.self_attn.v_proj`, lora);
      this.rope(q, n, H);
      this.rope(k, n, Hkv);
      const att = new Float64Array(n * H * hd);
      const grp = H / Hkv;
      const scale = 1 / Math.sqrt(hd);
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / grp);
        for (let t = 0; t < n; t++) {
          const sc = new Float64Array(t + 1);
          let mx = -Infinity;
          for (let s = 0; s <= t; s++) {
            let a = 0;
            for (let j = 0; j < hd; j++) a += q[(t * H + h) * hd + j] * k[(s * Hkv + kh) * hd + j];
            sc[s] = a * scale;
            mx = Math.max(mx, sc[s]);
          }
          let z = 0;
          for (let s = 0; s <= t; s++) z += (sc[s] = Math.exp(sc[s] - mx));
          for (let s = 0; s <= t; s++)
            for (let j = 0; j < hd; j++) att[(t * H + h) * hd + j] += (sc[s] / z) * v[(s * Hkv + kh) * hd + j];
        }
      }
      const o = this.linear(att, n, H * hd, `${p}.self_attn.o_proj`, lora);
      for (let i = 0; i < x.length; i++) x[i] += o[i];
      const h2 = this.rms(x, n, this.get(`${p}.post_attention_layernorm.weight`));
      const g = this.linear(h2, n, d, `${p}.mlp.gate_proj`, lora);
      const u = this.linear(h2, n, d, `${p}.mlp.up_proj`, lora);
      const a = new Float64Array(n * I);
      for (let i = 0; i < a.length; i++) a[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
      const dn = this.linear(a, n, I, `${p}.mlp.down_proj`, lora);
      const nx = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) nx[i] = x[i] + dn[i];
      x = nx;
    }
    return this.rms(x, n, this.get('model.norm.weight'));
  }

  /** LM-head logits (all vocab rows) at every position [n x V]. */
  logits(ids: readonly number[], lora?: RefLora): Float64Array {
    return this.linear(this.hidden(ids, lora), ids.length, this.d, 'lm_head', lora);
  }

  /** Class logits at the last token for the given answer rows. */
  classLogits(ids: readonly number[], rows: readonly number[], lora?: RefLora): number[] {
    const lg = this.logits(ids, lora);
    const n = ids.length;
    return rows.map((r) => lg[(n - 1) * this.V + r]);
  }
}

/** HF rope init: default, "linear" (positions / factor) and "llama3". */
export function refInvFreq(c: Record<string, any>, hd: number): Float64Array { // eslint-disable-line @typescript-eslint/no-explicit-any
  const theta = c.rope_theta ?? 10000;
  const half = hd / 2;
  const f = new Float64Array(half);
  for (let j = 0; j < half; j++) f[j] = 1 / Math.pow(theta, (2 * j) / hd);
  const rs = c.rope_scaling;
  const type = rs ? (rs.rope_type ?? rs.type) : 'default';
  if (type === 'linear') for (let j = 0; j < half; j++) f[j] /= rs.factor;
  if (type === 'llama3') {
    const lowWl = rs.original_max_position_embeddings / rs.low_freq_factor;
    const highWl = rs.original_max_position_embeddings / rs.high_freq_factor;
    for (let j = 0; j < half; j++) {
      const wl = (2 * Math.PI) / f[j];
      const base = wl > lowWl ? f[j] / rs.factor : f[j];
      const smooth = (rs.original_max_position_embeddings / wl - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      const medium = !(wl < highWl) && !(wl > lowWl);
      f[j] = medium ? ((1 - smooth) * base) / rs.factor + smooth * base : base;
    }
  }
  return f;
}
