// Shared helpers for the model tests: temp checkpoints, batch builders, numerics.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import type { LmBatch, McBatch } from '../../ts/data/batch.ts';
import type { Model } from '../../ts/model.ts';
import type { RefLora } from './llama-reference.ts';
import { makeTinyCheckpoint, type TinyCheckpointOptions } from '../helpers/tiny-checkpoint.ts';

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** A fresh temporary directory removed after the test file. */
export function tmpDir(prefix = 'bl-model-'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  roots.push(d);
  return d;
}

export function tinyCheckpoint(opts: TinyCheckpointOptions = {}): string {
  const d = tmpDir();
  makeTinyCheckpoint(d, opts);
  return d;
}

/** Deterministic pseudo-random integers / floats (mulberry32). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Example {
  ids: number[];
  rows: number[];
  label: number;
}

/** Collate examples into an McBatch with left or right padding (pad id 0). */
export function mcBatch(ex: readonly Example[], side: 'left' | 'right' = 'left', T?: number): McBatch {
  const B = ex.length;
  const C = ex[0].rows.length;
  const TT = T ?? Math.max(...ex.map((e) => e.ids.length));
  const ids = new Int32Array(B * TT);
  const mask = new Uint8Array(B * TT);
  const last = new Int32Array(B);
  const rows = new Int32Array(B * C);
  const labels = new Int32Array(B);
  ex.forEach((e, b) => {
    const off = side === 'left' ? TT - e.ids.length : 0;
    e.ids.forEach((id, t) => {
      ids[b * TT + off + t] = id;
      mask[b * TT + off + t] = 1;
    });
    last[b] = off + e.ids.length - 1;
    e.rows.forEach((r, c) => (rows[b * C + c] = r));
    labels[b] = e.label;
  });
  return { B, T: TT, C, ids, mask, last, rows, labels };
}

/** Random examples with lengths in [minLen, maxLen]. */
export function randomExamples(n: number, vocab: number, C: number, minLen: number, maxLen: number, seed: number): Example[] {
  const r = prng(seed);
  const out: Example[] = [];
  for (let i = 0; i < n; i++) {
    const len = minLen + Math.floor(r() * (maxLen - minLen + 1));
    const ids = Array.from({ length: len }, () => Math.floor(r() * vocab));
    const rows = Array.from({ length: C }, () => Math.floor(r() * vocab));
    out.push({ ids, rows, label: Math.floor(r() * C) });
  }
  return out;
}

/** Next-token batch from sequences, right padded, targets -1 at pads and last token. */
export function lmBatch(seqs: readonly number[][]): LmBatch {
  const B = seqs.length;
  const T = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(B * T);
  const mask = new Uint8Array(B * T);
  const targets = new Int32Array(B * T).fill(-1);
  seqs.forEach((s, b) =>
    s.forEach((id, t) => {
      ids[b * T + t] = id;
      mask[b * T + t] = 1;
      if (t + 1 < s.length) targets[b * T + t] = s[t + 1];
    }),
  );
  return { B, T, ids, mask, targets };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Softmax cross-entropy (float64) of class logits [B*C] with labels. */
export function meanXent(logits: ArrayLike<number>, labels: ArrayLike<number>, C: number): number {
  let s = 0;
  let n = 0;
  for (let b = 0; b < labels.length; b++) {
    if (labels[b] < 0) continue;
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, logits[b * C + c]);
    let z = 0;
    for (let c = 0; c < C; c++) z += Math.exp(logits[b * C + c] - mx);
    s += Math.log(z) + mx - logits[b * C + labels[b]];
    n++;
  }
  return s / n;
}

export async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<Error> {
  try {
    if (typeof p === 'function') await p();
    else await p;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code !== code) throw new Error(`expected ${code}, got ${err.code ?? 'no code'}: ${err.message}`);
    if (err.name !== 'BayesLoraError') throw new Error(`expected a BayesLoraError, got ${err.name}`);
    return err;
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}

export const ALL_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];

/** Give every LoRA matrix random values (B non-zero) and return them for the reference. */
export function randomizeLora(m: Model, seed: number, amp = 0.2): RefLora {
  const r = prng(seed);
  const ref: RefLora = {};
  const entries = m.getLoraWeights().map((w) => {
    const A = Float32Array.from(w.A, () => (r() * 2 - 1) * amp);
    const B = Float32Array.from(w.B, () => (r() * 2 - 1) * amp);
    ref[w.path] = { A, B, r: w.r, scale: w.scale };
    return { path: w.path, A, B };
  });
  m.setLoraWeights(entries);
  return ref;
}

