// The backward pass as the Laplace code uses it: several backward passes after
// one forward (exact Fisher / Jacobian rows) give identical results, the pass
// is linear in its seed, and the observer's x/g are exactly the per-matrix
// inputs and output gradients of lora_observer.h (they reproduce the LoRA
// gradients, and g_u = s g_h B, v = s A x within each module).
import { describe, expect, it } from 'vitest';
import { Model, type ObservedMatrix } from '../../ts/model.ts';
import { ALL_MODULES, mcBatch, maxAbs, maxAbsDiff, prng, randomExamples, randomizeLora, tinyCheckpoint } from './util.ts';

function flatGrads(m: Model): Float32Array {
  const parts = m.getLoraGrads().flatMap((g) => [g.A, g.B]);
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** sum_t g_t x_t^T as a [dOut x dIn] row-major matrix. */
function outerSum(rec: ObservedMatrix): Float64Array {
  const n = rec.B * rec.T;
  const out = new Float64Array(rec.dOut * rec.dIn);
  for (let t = 0; t < n; t++)
    for (let o = 0; o < rec.dOut; o++) {
      const g = rec.g[t * rec.dOut + o];
      if (g === 0) continue;
      for (let i = 0; i < rec.dIn; i++) out[o * rec.dIn + i] += g * rec.x[t * rec.dIn + i];
    }
  return out;
}

async function setup() {
  const m = await Model.load(tinyCheckpoint({ arch: 'llama', kvHeads: 2, std: 0.15, layers: 2 }));
  m.addLora({ r: 3, alpha: 6, targetModules: ALL_MODULES });
  randomizeLora(m, 12, 0.3);
  const batch = mcBatch(randomExamples(3, 64, 4, 2, 7, 41), 'left');
  return { m, batch };
}

function randomSeed(n: number, s: number): Float32Array {
  const r = prng(s);
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

describe('repeated backward after one forward', () => {
  it('gives identical gradients, is linear in the seed, and matches a fresh forward', async () => {
    const { m, batch } = await setup();
    try {
      await m.forward(batch);
      const s1 = randomSeed(12, 1);
      const s2 = randomSeed(12, 2);
      await m.backwardSeed(s1);
      const g1 = flatGrads(m);
      expect(maxAbs(g1)).toBeGreaterThan(1e-3);
      await m.backwardSeed(s2);
      const g2 = flatGrads(m);
      await m.backwardSeed(s1);
      expect(Array.from(flatGrads(m))).toEqual(Array.from(g1)); // bit-identical
      await m.backwardSeed(Float32Array.from(s1, (x, i) => x + s2[i]));
      const g12 = flatGrads(m);
      expect(maxAbsDiff(g12, Float32Array.from(g1, (x, i) => x + g2[i]))).toBeLessThan(1e-5 * maxAbs(g12));
      await m.backwardSeed(s2, { accumulate: true });
      expect(maxAbsDiff(flatGrads(m), Float32Array.from(g12, (x, i) => x + g2[i]))).toBeLessThan(1e-5 * maxAbs(g12));
      // A fresh forward gives the same first gradient.
      await m.forward(batch);
      await m.backwardSeed(s1);
      expect(Array.from(flatGrads(m))).toEqual(Array.from(g1));
    } finally {
      m.dispose();
    }
  });

  it('needs a forward first, and a weight change invalidates it', async () => {
    const { m, batch } = await setup();
    try {
      await expect(m.backwardSeed(new Float32Array(12))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await m.forward(batch);
      await expect(m.backwardSeed(new Float32Array(11))).rejects.toMatchObject({ code: 'SHAPE_MISMATCH' });
      await expect(m.backwardSeed(Float32Array.of(NaN, ...new Float32Array(11)))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      const w = m.getLoraWeights()[0];
      m.setLoraWeights([{ path: w.path, A: w.A }]);
      await expect(m.backwardSeed(new Float32Array(12))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      m.dispose();
    }
  });
});

describe('LoRA observer', () => {
  it('sees every matrix once, with x/g that reproduce the gradients and the spec relations', async () => {
    const { m, batch } = await setup();
    try {
      const mats = m.loraMatrices();
      const weights = m.getLoraWeights();
      await m.forward(batch);
      const seed = randomSeed(12, 7);
      const recs = await m.observeBackward(seed);
      expect(recs.map((r) => r.id).sort((a, b) => a - b)).toEqual(mats.map((x) => x.id));
      await m.backwardSeed(seed);
      const grads = m.getLoraGrads();
      const byId = new Map(recs.map((r) => [r.id, r]));
      for (const info of mats) {
        const rec = byId.get(info.id)!;
        const mod = weights[info.module];
        expect([rec.dIn, rec.dOut, rec.isB, rec.module]).toEqual([info.dIn, info.dOut, info.isB, info.module]);
        expect(info.isB ? [mod.dOut, mod.r] : [mod.r, mod.dIn]).toEqual([info.dOut, info.dIn]);
        if (mod.kind === 'lm_head') {
          expect([rec.B, rec.T, rec.mask]).toEqual([3, 1, null]);
        } else {
          expect([rec.B, rec.T]).toEqual([3, batch.T]);
          expect(Array.from(rec.mask!)).toEqual(Array.from(batch.mask));
          // Padded positions carry no output gradient.
          for (let t = 0; t < rec.B * rec.T; t++)
            if (!batch.mask[t]) for (let o = 0; o < rec.dOut; o++) expect(rec.g[t * rec.dOut + o]).toBe(0);
        }
        // dW = sum_t g_t x_t^T.
        const want = outerSum(rec);
        const got = info.isB ? grads[info.module].B : grads[info.module].A;
        expect(maxAbsDiff(got, want)).toBeLessThan(1e-5 * Math.max(1e-3, maxAbs(want)));
      }
      // Within a module: g_u = s * g_h B and v = s * A x (dropout off).
      for (const mod of weights.map((w, i) => ({ ...w, i }))) {
        const a = byId.get(2 * mod.i)!;
        const b = byId.get(2 * mod.i + 1)!;
        const n = a.B * a.T;
        let errG = 0;
        let errV = 0;
        let scaleG = 0;
        for (let t = 0; t < n; t++)
          for (let k = 0; k < mod.r; k++) {
            let gu = 0;
            for (let o = 0; o < mod.dOut; o++) gu += b.g[t * mod.dOut + o] * mod.B[o * mod.r + k];
            let v = 0;
            for (let i = 0; i < mod.dIn; i++) v += mod.A[k * mod.dIn + i] * a.x[t * mod.dIn + i];
            errG = Math.max(errG, Math.abs(a.g[t * mod.r + k] - mod.scale * gu));
            errV = Math.max(errV, Math.abs(b.x[t * mod.r + k] - mod.scale * v));
            scaleG = Math.max(scaleG, Math.abs(mod.scale * gu));
          }
        expect(errG).toBeLessThan(1e-5 * Math.max(scaleG, 1e-3));
        expect(errV).toBeLessThan(1e-5);
      }
      // The LM-head B sees a dense [B x V] gradient that is the seed at the answer rows.
      const head = weights.findIndex((w) => w.kind === 'lm_head');
      const hb = byId.get(2 * head + 1)!;
      const dense = new Float64Array(3 * 64);
      for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) dense[b * 64 + batch.rows[b * 4 + c]] += seed[b * 4 + c];
      expect(maxAbsDiff(hb.g, dense)).toBeLessThan(1e-7);
    } finally {
      m.dispose();
    }
  });
});
