// AbortSignal reaches native work: training steps, Laplace.fit (Fisher passes,
// posterior, prior), Laplace.predict (Jacobian passes, MC predictive) and
// predictiveProbs reject with BayesLoraError 'ABORTED' from inside the native
// call (not only between calls), leave no half-applied update behind, and
// stop well before the call would have finished. A bad `cancel` option is a
// typed error.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { McBatch } from '../../ts/data/batch.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { KfacAccumulator, predictiveProbs } from '../../ts/laplace/kfac.ts';
import { Laplace } from '../../ts/laplace/laplace.ts';
import { Model } from '../../ts/model.ts';
import { loadNative } from '../../ts/native.ts';
import { train } from '../../ts/train.ts';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-abort-'));
const VOCAB = 96;
// Big enough that one native call takes tens of milliseconds.
const CKPT = { hidden: 128, layers: 4, heads: 4, intermediate: 256, vocab: VOCAB, seed: 2 };
let model: Model;

function batch(B: number, T: number, C: number, seed: number): McBatch {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const ids = Int32Array.from({ length: B * T }, () => 4 + Math.floor(r() * (VOCAB - 4)));
  return {
    B, T, C, ids,
    mask: new Uint8Array(B * T).fill(1),
    last: new Int32Array(B).fill(T - 1),
    rows: Int32Array.from({ length: B * C }, (_, i) => 4 + (i % C)),
    labels: Int32Array.from({ length: B }, (_, i) => i % C),
  };
}
const big = batch(16, 64, 4, 1);

async function code(p: Promise<unknown>): Promise<{ code: string | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    return { code: (e as BayesLoraError).code, message: (e as Error).message };
  }
  return { code: undefined, message: '' };
}

beforeAll(async () => {
  makeTinyCheckpoint(path.join(dir, 'ckpt'), CKPT);
  model = await Model.load(path.join(dir, 'ckpt'));
  model.addLora({ r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
  model.setLoraWeights(model.getLoraWeights().map((m) => ({ path: m.path, B: m.B.map((_, i) => Math.sin(i) * 0.05) })));
});
afterAll(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('AbortSignal', () => {
  it('aborts a training step inside the native call, before any weight changes', async () => {
    const before = model.getLoraWeights();
    const ac = new AbortController();
    const p = train(model, [big], { lr: 1e-2, signal: ac.signal });
    ac.abort(new Error('user'));
    const r = await code(p);
    expect(r.code).toBe('ABORTED');
    expect(r.message).toMatch(/(forward|backward|training step): aborted/); // from the native worker
    expect(model.getLoraWeights()).toEqual(before);
    expect(model.info().optimizerSteps).toBe(0);
    // The model is usable afterwards and the grads were cleared.
    expect(model.getLoraGrads().every((g) => g.A.every((x) => x === 0) && g.B.every((x) => x === 0))).toBe(true);
    const ok = await model.forward(big);
    expect(ok.loss).toBeGreaterThan(0);
  });

  it('aborts Laplace.fit inside a batch and between batches; Laplace.predict and predictiveProbs inside the call', async () => {
    const ac = new AbortController();
    const fit = Laplace.fit(model, [big, big], { signal: ac.signal, prior: 1 });
    await new Promise((r) => setImmediate(r)); // the first fitBatch is running
    ac.abort();
    const r = await code(fit);
    expect(r.code).toBe('ABORTED');
    expect(r.message).toMatch(/Laplace fit: aborted|forward: aborted/);

    // Between batches: abort from onBatch; an already-aborted signal does no native work.
    const ac2 = new AbortController();
    let batches = 0;
    expect((await code(Laplace.fit(model, [big, big, big], { signal: ac2.signal, onBatch: () => (++batches, ac2.abort()) }))).code).toBe('ABORTED');
    expect(batches).toBe(1);
    expect((await code(Laplace.fit(model, [big], { signal: ac2.signal }))).code).toBe('ABORTED');

    const small = batch(4, 8, 4, 3);
    const la = await Laplace.fit(model, [small], { prior: 1 });
    try {
      const ac3 = new AbortController();
      const pp = la.predict(big, { signal: ac3.signal });
      ac3.abort();
      const r3 = await code(pp);
      expect(r3.code).toBe('ABORTED');
      // the posterior stays usable
      const ok = await la.predict(small, { method: 'probit' });
      expect(ok.probs.length).toBe(16);
      expect((await code(la.optimizePrior({ signal: AbortSignal.abort() }))).code).toBe('ABORTED');
    } finally {
      la.dispose();
    }

    // MC predictive with many samples: stops between rows.
    const B = 256;
    const mu = new Float64Array(B * 4);
    const lam = new Float64Array(B * 16);
    for (let b = 0; b < B; b++) for (let c = 0; c < 4; c++) lam[b * 16 + c * 5] = 1;
    const ac4 = new AbortController();
    const t0 = performance.now();
    const pp = predictiveProbs(mu, lam, { C: 4, samples: 200_000, signal: ac4.signal });
    setTimeout(() => ac4.abort(), 20);
    const r4 = await code(pp);
    const ms = performance.now() - t0;
    expect(r4.code).toBe('ABORTED');
    // The whole call (256 rows x 200k samples) takes seconds; abort lands within a few rows.
    expect(ms).toBeLessThan(1500);
  });

  it('is prompt during a long native step: latency well under one step', async () => {
    const acc = new KfacAccumulator({ layers: loadNative().laplaceModelLayers(model.native, {}) });
    try {
      let t = performance.now();
      await acc.fitBatch(model, big); // C = 4 backward passes + a forward
      const full = performance.now() - t;
      const lat: number[] = [];
      for (const frac of [0.3, 0.6]) {
        const ac = new AbortController();
        const p = acc.fitBatch(model, big, { signal: ac.signal });
        let abortedAt = 0;
        setTimeout(() => {
          abortedAt = performance.now();
          ac.abort();
        }, full * frac);
        const r = await code(p);
        t = performance.now();
        if (r.code === 'ABORTED') lat.push(t - abortedAt);
      }
      // At least one abort landed mid-call, and it stopped within about one backward pass.
      expect(lat.length).toBeGreaterThan(0);
      console.log(`fitBatch ${full.toFixed(0)} ms; abort latency ${lat.map((x) => x.toFixed(1)).join(', ')} ms`);
      for (const l of lat) expect(l).toBeLessThan(0.5 * full + 20);

      // A training step: forward and backward check between layers.
      t = performance.now();
      await model.forward(big, { train: true }); // timing only (no weight change)
      const fwd = performance.now() - t;
      const before = model.getLoraWeights();
      const ac = new AbortController();
      let abortedAt = 0;
      const p = train(model, [big], { lr: 1e-2, signal: ac.signal });
      setTimeout(() => {
        abortedAt = performance.now();
        ac.abort();
      }, fwd * 0.5);
      const r = await code(p);
      const trainLat = performance.now() - abortedAt;
      console.log(`training forward ${fwd.toFixed(0)} ms; abort latency ${trainLat.toFixed(1)} ms (${r.code ?? 'finished first'})`);
      if (r.code === 'ABORTED') {
        expect(trainLat).toBeLessThan(0.5 * fwd + 20);
        expect(model.getLoraWeights()).toEqual(before);
      }
    } finally {
      acc.dispose();
    }
  });

  it('rejects a cancel option that is not a CancelToken', async () => {
    const acc = new KfacAccumulator({ layers: loadNative().laplaceModelLayers(model.native, {}) });
    try {
      const r = await code(Promise.resolve().then(() => acc.raw.fitBatch(model.native, big, { cancel: {} })).catch((e) => {
        throw new BayesLoraError(e.code, e.message);
      }));
      expect(r.code).toBe('INVALID_ARGUMENT');
    } finally {
      acc.dispose();
    }
  });
});
