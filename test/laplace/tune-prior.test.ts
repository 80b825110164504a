// The prior chosen on held-out data (ts/laplace/tune-prior.ts) and what it
// rests on: Posterior.predictBatch's priorScales, Lambda for a grid of prior
// precisions from one set of Jacobian passes. Checked against a fresh
// predictive pass at each prior, on a tiny model with dense and low-rank
// factor sides and one prior precision per layer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { McBatch } from '../../ts/data/batch.ts';
import { computeMetrics } from '../../ts/eval/metrics.ts';
import { Laplace } from '../../ts/laplace/laplace.ts';
import { DEFAULT_PRIOR_SCALES } from '../../ts/laplace/tune-prior.ts';
import { Model } from '../../ts/model.ts';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { paddedMcBatch } from './mc-batch.ts';
import { randnArray, rng } from './dense.ts';

const VOCAB = 32;
const dir = mkdtempSync(path.join(tmpdir(), 'bl-tune-prior-'));
let model: Model;
let la: Laplace;

/** B examples, right-padded to T, real lengths `lens`, C answer rows each. */
const mcBatch = (seed: number, lens: number[], T: number, C: number, labelled = true): McBatch =>
  paddedMcBatch(VOCAB, seed, lens, T, C, labelled);

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

beforeAll(async () => {
  makeTinyCheckpoint(path.join(dir, 'ckpt'), { hidden: 16, layers: 1, heads: 2, vocab: VOCAB, intermediate: 24, seed: 5 });
  model = await Model.load(path.join(dir, 'ckpt'));
  model.addLora({ r: 2, alpha: 4, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
  const r = rng(78); // a "trained" adapter: B != 0, so every LoRA matrix has gradients
  model.setLoraWeights(
    model.getLoraWeights().map((m) => ({ path: m.path, A: randnArray(r, m.A.length, 0.4), B: randnArray(r, m.B.length, 0.4) })),
  );
  // threshold 8: the 16- and 32-sized sides are low rank (nKfac 3), so the
  // Frobenius term comes from the kept Jacobians, not only the projections.
  const train = [mcBatch(60, [3, 3, 2], 3, 3), mcBatch(61, [2, 3, 3], 3, 3)];
  la = await Laplace.fit(model, train, { fisher: 'exact', threshold: 8, nKfac: 3, perLayerPrior: true });
});

afterAll(() => {
  la?.dispose();
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('predictBatch with priorScales', () => {
  it('gives, from one set of passes, the Lambda of a fresh pass at each scaled prior', async () => {
    expect(la.summary().lowRankLayers).toBeGreaterThan(0);
    const base = Array.from(la.posterior.prior());
    expect(new Set(base.map((d) => d.toPrecision(6))).size).toBeGreaterThan(1); // per-layer priors differ
    const test = mcBatch(62, [3, 1, 2], 3, 3);
    const scales = [0.05, 1, 7, 300];
    const r = await la.posterior.predictBatch(model, test, { priorScales: scales });
    const per = test.B * test.C * test.C;
    expect(r.lambdaGrid!.length).toBe(scales.length * per);
    const plain = await la.posterior.predictBatch(model, test);
    expect(relErr(r.lambda, plain.lambda)).toBe(0);
    expect(plain.lambdaGrid).toBeUndefined();
    try {
      for (const [k, s] of scales.entries()) {
        la.posterior.setPrior({ deltas: base.map((d) => d * s) });
        const fresh = await la.posterior.predictBatch(model, test);
        expect(relErr(r.lambdaGrid!.subarray(k * per, (k + 1) * per), fresh.lambda)).toBeLessThan(1e-12);
      }
      // the grid really varies with the scale (a stronger prior, less variance)
      expect(r.lambdaGrid![0]).toBeGreaterThan(r.lambdaGrid![3 * per] * 10);
    } finally {
      la.posterior.setPrior({ deltas: base });
    }
  });

  it('rejects bad scales with INVALID_ARGUMENT before any pass', async () => {
    const test = mcBatch(63, [2], 2, 3);
    for (const priorScales of [[], [0], [-1], [Number.NaN], [1, Number.POSITIVE_INFINITY], [1e30], new Array(257).fill(1)])
      await expect(la.posterior.predictBatch(model, test, { priorScales })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('Laplace.tunePrior', () => {
  it('scores every scale as predict would at that prior, sets the best and reports the grid', async () => {
    const base = Array.from(la.posterior.prior());
    // held-out batches with different class counts (the padding to the largest C must be exact)
    const held = [mcBatch(70, [3, 2, 3, 1], 3, 3), mcBatch(71, [2, 3], 3, 2), mcBatch(72, [3, 3], 3, 3, false)];
    const scales = [0.01, 0.3, 3, 100];
    const t = await la.tunePrior(held, { scales, method: 'mc', samples: 300, seed: 4 });
    expect(t.n).toBe(6); // the unlabelled batch is skipped
    expect(t.objective).toBe('nll');
    expect(t.grid.map((g) => g.scale)).toEqual(scales);
    try {
      for (const g of t.grid) {
        la.posterior.setPrior({ deltas: base.map((d) => d * g.scale) });
        let nll = 0;
        let brier = 0;
        for (const [bi, b] of held.slice(0, 2).entries()) {
          const p = await la.predict(b, { method: 'mc', samples: 300, seed: 4 + bi });
          const m = computeMetrics(p.probs, b.labels, b.C);
          nll += m.nll * b.B;
          brier += m.brier * b.B;
        }
        expect(g.nll).toBeCloseTo(nll / 6, 9);
        expect(g.brier).toBeCloseTo(brier / 6, 9);
      }
    } finally {
      la.posterior.setPrior({ deltas: base });
    }
    // the winner is the argmin, and it is what the posterior holds now
    la.posterior.setPrior({ deltas: base });
    const again = await la.tunePrior(held, { scales, method: 'mc', samples: 300, seed: 4 });
    const best = again.grid.reduce((a, g) => (g.nll < a.nll ? g : a));
    expect(again.scale).toBe(best.scale);
    const now = Array.from(la.posterior.prior());
    now.forEach((d, i) => expect(d).toBeCloseTo(base[i] * best.scale, 9));
    expect(again.priorPrecision).toEqual(now);
    la.posterior.setPrior({ deltas: base });
  });

  it('chooses by the objective asked for, and says when the best is at an end of the grid', async () => {
    const base = Array.from(la.posterior.prior());
    const held = [mcBatch(80, [3, 2, 3, 3, 1, 2], 3, 3)];
    for (const objective of ['brier', 'ece'] as const) {
      const t = await la.tunePrior(held, { scales: [0.1, 1, 10], objective, method: 'probit' });
      const best = t.grid.reduce((a, g) => (g[objective] < a[objective] ? g : a));
      expect(t.scale).toBe(best.scale);
      expect(t.warnings.some((w) => w.includes('end of the grid'))).toBe(t.scale !== 1);
      la.posterior.setPrior({ deltas: base });
    }
    const two = await la.tunePrior(held, { scales: [0.5, 2], method: 'probit' });
    expect(two.warnings.some((w) => w.includes('end of the grid'))).toBe(true);
    la.posterior.setPrior({ deltas: base });
    expect(DEFAULT_PRIOR_SCALES.length).toBe(25);
    expect(DEFAULT_PRIOR_SCALES[0]).toBeCloseTo(0.01, 14);
    expect(DEFAULT_PRIOR_SCALES[24]).toBeCloseTo(1e4, 9);
    const def = await la.tunePrior(held, { method: 'probit' });
    expect(def.grid.length).toBe(25);
    la.posterior.setPrior({ deltas: base });
  });

  it('rejects bad input with typed errors and leaves the prior as it was', async () => {
    const base = Array.from(la.posterior.prior());
    const held = [mcBatch(90, [3, 2], 3, 3)];
    await expect(la.tunePrior([])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(la.tunePrior([mcBatch(91, [3], 3, 3, false)])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(la.tunePrior(held, { scales: [] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(la.tunePrior(held, { scales: [1, 0] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(la.tunePrior(held, { scales: [1e30] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(la.tunePrior(held, { scales: new Array(257).fill(1) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(la.tunePrior(held, { method: 'map' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(la.tunePrior(held, { objective: 'acc' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const ac = new AbortController();
    ac.abort();
    await expect(la.tunePrior(held, { signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
    expect(Array.from(la.posterior.prior())).toEqual(base);
  });
});
