// Numerical faults in the Laplace path: a K-FAC factor that is not positive
// semidefinite (a damaged posterior file) gets its negative eigenvalues
// clamped to 0 with a warning (Laplace.warnings); prior precisions are kept in
// [1e-12, 1e12] (set, optimised, loaded) with a warning; the logit covariance
// is symmetrised and jittered only when needed before its Cholesky, the
// jitter reported in Laplace.predict's warnings; an indefinite Lambda beyond
// jitter is NUMERICAL_ERROR. (NaN/Inf in training: test/model/resume.test.ts.)
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { McBatch } from '../../ts/data/batch.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { predictiveProbs, predictiveProbsReport } from '../../ts/laplace/kfac.ts';
import { Laplace } from '../../ts/laplace/laplace.ts';
import { Model } from '../../ts/model.ts';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-laplace-num-'));
let model: Model;
const VOCAB = 32;

function batch(B: number, T: number, C: number, seed: number): McBatch {
  let s = seed >>> 0;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  return {
    B, T, C,
    ids: Int32Array.from({ length: B * T }, () => 4 + Math.floor(r() * (VOCAB - 4))),
    mask: new Uint8Array(B * T).fill(1),
    last: new Int32Array(B).fill(T - 1),
    rows: Int32Array.from({ length: B * C }, (_, i) => 4 + (i % C)),
    labels: Int32Array.from({ length: B }, (_, i) => i % C),
  };
}
const data = [batch(6, 5, 3, 1), batch(6, 5, 3, 2)];

/** Flip the sign of every float64 of tensor `name` in a safetensors file (a "damaged" factor). */
function negateTensor(file: string, name: string): void {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const [b, e] = header[name].data_offsets as [number, number];
  expect(header[name].dtype).toBe('F64');
  for (let p = 8 + n + b; p < 8 + n + e; p += 8) buf.writeDoubleLE(-buf.readDoubleLE(p), p);
  writeFileSync(file, buf);
}

async function code(f: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    return (e as BayesLoraError).code;
  }
  return undefined;
}

beforeAll(async () => {
  makeTinyCheckpoint(path.join(dir, 'ckpt'), { hidden: 16, layers: 1, heads: 2, vocab: VOCAB, intermediate: 24, seed: 8 });
  model = await Model.load(path.join(dir, 'ckpt'));
  model.addLora({ r: 2, alpha: 4, targetModules: ['q_proj', 'lm_head'], seed: 3 });
  model.setLoraWeights(model.getLoraWeights().map((m) => ({ path: m.path, B: m.B.map((_, i) => Math.cos(i) * 0.3) })));
});
afterAll(() => {
  model.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('numerical faults (Laplace)', () => {
  it('a non-PSD factor is clamped to PSD with a warning naming the layer', async () => {
    const la = await Laplace.fit(model, data, { prior: 1 });
    expect(la.warnings).toEqual([]); // healthy sums of outer products: nothing to report
    const file = path.join(dir, 'post.safetensors');
    await la.save(file);
    const eig0 = la.posterior.eigen(0);
    la.dispose();
    negateTensor(file, 'l0.A'); // -S: every eigenvalue <= 0
    const bad = await Laplace.load(file, model);
    try {
      expect(bad.warnings.length).toBe(1);
      expect(bad.warnings[0]).toMatch(/layer '.*lora_A' input factor is not positive semidefinite.*clamped to 0/);
      // Clamped: what is left of the damaged side is rounding (the original's tiny
      // negative eigenvalues, negated), so layer 0's precision is ~ delta I there;
      // eigenvalues at rounding level are not stored (the complement is delta).
      const e = bad.posterior.eigen(0);
      expect(e.la.every((v) => v >= 0)).toBe(true);
      expect(e.ka).toBeLessThan(eig0.ka);
      expect(Math.max(...eig0.la)).toBeGreaterThan(0);
      expect(Math.max(...e.la)).toBeLessThan(1e-6 * Math.max(...eig0.la));
      expect(Number.isFinite(bad.posterior.logDet())).toBe(true);
      const p = await bad.predict(data[0], { method: 'probit' });
      expect(p.probs.every((x) => x > 0 && x < 1)).toBe(true);
    } finally {
      bad.dispose();
    }
  });

  it('prior precision stays in [1e-12, 1e12]: set, optimised and created', async () => {
    const la = await Laplace.fit(model, data, { prior: 1e-30 });
    try {
      expect(Array.from(la.posterior.prior()).every((d) => d === 1e-12)).toBe(true);
      expect(la.warnings.some((w) => /prior precision 1e-30 of layer .* clamped to 1e-12/.test(w))).toBe(true);
      la.posterior.setPrior({ delta: 1e40 });
      expect(Array.from(la.posterior.prior()).every((d) => d === 1e12)).toBe(true);
      la.posterior.setPrior({ deltas: la.posterior.prior().map((_, i) => (i ? 2 : 3)) });
      expect(Array.from(la.posterior.prior())).toEqual(Array.from(la.posterior.prior(), (_, i) => (i ? 2 : 3)));
      // The marglik search never leaves the safe range, whatever range is asked for.
      const fit = await la.optimizePrior({ range: [1e-300, 1e300] });
      for (const d of fit.deltas) {
        expect(d).toBeGreaterThanOrEqual(1e-12);
        expect(d).toBeLessThanOrEqual(1e12);
      }
      expect(Number.isFinite(fit.logMarglik)).toBe(true);
      // Non-finite or non-positive stays an error.
      expect(await code(async () => la.posterior.setPrior({ delta: 0 }))).toBe('INVALID_ARGUMENT');
      expect(await code(async () => la.posterior.setPrior({ delta: Infinity }))).toBe('INVALID_ARGUMENT');
    } finally {
      la.dispose();
    }
  });

  it('Lambda is symmetrised and jittered only when needed before the Cholesky', async () => {
    const mu = new Float64Array([0.3, -0.2, 0.1, 1, 0, -1]);
    // Row 0: SPD but asymmetric (its symmetric part is used). Row 1: singular PSD (rank 1).
    const asym = new Float64Array([2, 0.9, 0.1, 0.3, 1, 0.2, 0.5, 0, 1.5, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    const sym = Float64Array.from(asym);
    for (const o of [0, 9])
      for (let i = 0; i < 3; i++)
        for (let j = 0; j < 3; j++) sym[o + i * 3 + j] = 0.5 * (asym[o + i * 3 + j] + asym[o + j * 3 + i]);
    const a = await predictiveProbsReport(mu, asym, { C: 3, samples: 2000, seed: 5 });
    const s = await predictiveProbsReport(mu, sym, { C: 3, samples: 2000, seed: 5 });
    expect(Array.from(a.probs)).toEqual(Array.from(s.probs));
    expect(a.jitteredRows).toBe(1); // only the singular row
    expect(a.maxJitter).toBeGreaterThan(0);
    expect(a.maxJitter).toBeLessThan(1e-6);
    for (let b = 0; b < 2; b++) expect(a.probs.subarray(3 * b, 3 * b + 3).reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
    // The plain function returns the same probabilities.
    expect(Array.from(await predictiveProbs(mu, asym, { C: 3, samples: 2000, seed: 5 }))).toEqual(Array.from(a.probs));
    // SPD rows need no jitter.
    const spd = await predictiveProbsReport(mu.subarray(0, 3), sym.subarray(0, 9), { C: 3, samples: 10 });
    expect(spd.jitteredRows).toBe(0);
    // Strongly indefinite (eigenvalue -4): not fixable by jitter -> NUMERICAL_ERROR.
    const indef = new Float64Array([1, 5, 5, 1]);
    expect(await code(() => predictiveProbs(new Float64Array([0, 0]), indef, { C: 2, samples: 10 }))).toBe('NUMERICAL_ERROR');
  });

  it('Laplace.predict reports jitter in its warnings (none for a healthy posterior)', async () => {
    const la = await Laplace.fit(model, data, { prior: 1 });
    try {
      const p = await la.predict(data[0], { samples: 100 });
      expect(p.warnings).toEqual([]);
    } finally {
      la.dispose();
    }
  });

  it('a low-rank LM-head gradient side with nKfac below the distinct answer tokens is reported', async () => {
    // data uses answer rows 4, 5, 6; threshold 8 < vocab 32 makes lm_head.lora_B's gradient side low rank
    const short = await Laplace.fit(model, data, { prior: 1, threshold: 8, nKfac: 2 });
    const enough = await Laplace.fit(model, data, { prior: 1, threshold: 8, nKfac: 3 });
    const dense = await Laplace.fit(model, data, { prior: 1, nKfac: 2 }); // vocab 32 <= 512: dense, nothing dropped
    try {
      expect(short.accumulator.layers().find((l) => l.name === 'lm_head.lora_B')!.lowRankG).toBe(true);
      expect(short.warnings.length).toBe(1);
      expect(short.warnings[0]).toMatch(/lm_head\.lora_B keeps 2 gradient directions .* 3 distinct answer tokens.*nKfac >= 3/);
      expect(enough.warnings).toEqual([]);
      expect(dense.warnings).toEqual([]);
      // and the truncation is real: the dropped answer row gets more variance than with every row kept
      const b = data[0];
      const vs = await short.predict(b, { method: 'probit' });
      const ve = await enough.predict(b, { method: 'probit' });
      const C = b.C;
      let sumS = 0, sumE = 0;
      for (let e = 0; e < b.B; e++) for (let c = 0; c < C; c++) { sumS += vs.lambda[e * C * C + c * C + c]; sumE += ve.lambda[e * C * C + c * C + c]; }
      expect(sumS).toBeGreaterThan(sumE);
    } finally {
      for (const l of [short, enough, dense]) l.dispose();
    }
  });
});
