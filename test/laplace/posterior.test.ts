// Posterior eigen form (cpp/laplace/posterior, marglik, jacobian_projector)
// against dense float64 algebra on tiny layers: log|P_l| vs a dense slogdet of
// the explicit Kronecker precision, quadratic forms and Lambda vs dense P^-1,
// marginal likelihood value, analytic log-delta gradient vs finite
// differences, the optimiser vs a grid, and N-scaling of the posterior.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KfacAccumulator, Posterior } from '../../ts/laplace/kfac.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { dot, factorDense, kronPrecision, logdetSpd, randnArray, rng, solveSpd } from './dense.ts';

// Layer 0: dense both sides (dIn 5, dOut 3). Layer 1: low-rank input side
// (dIn 6 > threshold 5, nKfac 2), dense output side (dOut 3). Layer 2: no data.
const LAYERS = [
  { name: 'a', dIn: 5, dOut: 3 },
  { name: 'b', dIn: 6, dOut: 3 },
  { name: 'c', dIn: 2, dOut: 2 },
];
const OPTS = { layers: LAYERS, threshold: 5, nKfac: 2 };

async function fill(acc: KfacAccumulator, seed: number, n: number): Promise<void> {
  const r = rng(seed);
  for (let l = 0; l < 2; l++) {
    const { dIn, dOut } = LAYERS[l];
    await acc.add(l, randnArray(r, n * dIn), randnArray(r, n * dOut), { B: n });
  }
}

interface Dense {
  P: Float64Array[];
  D: number[];
}

function densePrecisions(acc: KfacAccumulator, deltas: ArrayLike<number>): Dense {
  const Z = acc.counts();
  const P: Float64Array[] = [];
  const D: number[] = [];
  LAYERS.forEach((s, l) => {
    const SA = factorDense(acc.factor(l, 'A'));
    const SG = factorDense(acc.factor(l, 'G'));
    // a layer without data has P = delta I
    P.push(kronPrecision(SA, SG, s.dIn, s.dOut, Math.max(Z[l], 1), deltas[l]));
    D.push(s.dIn * s.dOut);
  });
  return { P, D };
}

function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
}

async function expectCode(f: () => unknown, code: string): Promise<void> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    expect((e as BayesLoraError).code).toBe(code);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

describe('posterior eigen form vs dense algebra', () => {
  let acc: KfacAccumulator;
  let post: Posterior;
  const deltas = [0.7, 2.5, 1.3];

  beforeAll(async () => {
    acc = new KfacAccumulator(OPTS);
    await fill(acc, 1, 9);
    post = await acc.posterior({ deltas });
  });
  afterAll(() => {
    post.dispose();
    acc.dispose();
  });

  it('has the expected structure', () => {
    const ls = post.layers();
    expect(ls.map((l) => [l.ka, l.kg, l.count])).toEqual([
      [5, 3, 9],
      [2, 3, 9],
      [0, 0, 0],
    ]);
    expect(post.numParams()).toBe(15 + 18 + 4);
    expect(Array.from(post.prior())).toEqual(deltas);
  });

  it('log|P_l| equals a dense slogdet of the Kronecker precision', () => {
    const { P, D } = densePrecisions(acc, deltas);
    const ld = post.logDetLayers();
    for (let l = 0; l < 3; l++) expect(rel(ld[l], logdetSpd(P[l], D[l]))).toBeLessThan(1e-12);
    expect(rel(post.logDet(), ld[0] + ld[1] + ld[2])).toBeLessThan(1e-14);
  });

  it('quadratic forms equal J^T P^-1 J2 with P dense', () => {
    const { P, D } = densePrecisions(acc, deltas);
    const r = rng(9);
    for (let l = 0; l < 3; l++) {
      const J = randnArray(r, D[l]);
      const J2 = randnArray(r, D[l]);
      const ref = dot(J, solveSpd(P[l], D[l], J2));
      expect(rel(post.quadForm(l, J, J2), ref)).toBeLessThan(1e-10);
      expect(rel(post.quadForm(LAYERS[l].name, J), dot(J, solveSpd(P[l], D[l], J)))).toBeLessThan(1e-10);
    }
  });

  it('Lambda from Jacobians equals sum_l J_c P_l^-1 J_c\' and is symmetric', async () => {
    const { P, D } = densePrecisions(acc, deltas);
    const r = rng(10);
    const B = 2;
    const C = 3;
    const jac = D.map((d) => randnArray(r, B * C * d));
    jac[2] = null as never; // a layer without Jacobians contributes nothing
    const lam = await post.lambda(jac, { B, C });
    expect(lam.length).toBe(B * C * C);
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++)
        for (let c2 = 0; c2 < C; c2++) {
          let ref = 0;
          for (let l = 0; l < 2; l++) {
            const Jc = jac[l].subarray((b * C + c) * D[l], (b * C + c + 1) * D[l]);
            const Jc2 = jac[l].subarray((b * C + c2) * D[l], (b * C + c2 + 1) * D[l]);
            ref += dot(Jc, solveSpd(P[l], D[l], Jc2));
          }
          expect(rel(lam[(b * C + c) * C + c2], ref)).toBeLessThan(1e-9);
          expect(lam[(b * C + c) * C + c2]).toBe(lam[(b * C + c2) * C + c]);
        }
  });

  it('log marginal likelihood matches its dense formula', () => {
    const { P, D } = densePrecisions(acc, deltas);
    const theta = [1.7, 0.4, 2.2];
    const logLik = -12.5;
    let ref = logLik;
    for (let l = 0; l < 3; l++)
      ref += -0.5 * deltas[l] * theta[l] + 0.5 * D[l] * Math.log(deltas[l]) - 0.5 * logdetSpd(P[l], D[l]);
    expect(rel(post.logMarglik({ logLik, thetaNormSq: theta }), ref)).toBeLessThan(1e-12);
  });
});

describe('marginal likelihood in log delta', () => {
  let acc: KfacAccumulator;
  let post: Posterior;
  const theta = [3.1, 0.8, 0.5];
  const logLik = -20;

  beforeAll(async () => {
    acc = new KfacAccumulator(OPTS);
    await fill(acc, 2, 12);
    post = await acc.posterior({ delta: 1 });
  });
  afterAll(() => {
    post.dispose();
    acc.dispose();
  });

  const value = (deltas: number[]): number => {
    post.setPrior({ deltas });
    return post.logMarglik({ logLik, thetaNormSq: theta });
  };

  it('analytic gradient matches central finite differences (shared and per layer)', () => {
    const h = 1e-5;
    for (const d of [1e-3, 0.3, 1, 7, 250]) {
      post.setPrior({ delta: d });
      const g = post.logMarglikGrad({ thetaNormSq: theta })[0];
      const fd = (value([d * Math.exp(h), d * Math.exp(h), d * Math.exp(h)]) - value([d * Math.exp(-h), d * Math.exp(-h), d * Math.exp(-h)])) / (2 * h);
      expect(Math.abs(g - fd)).toBeLessThan(1e-6 * Math.max(1, Math.abs(g)));
    }
    const base = [0.5, 3, 0.05];
    post.setPrior({ deltas: base });
    const gl = post.logMarglikGrad({ thetaNormSq: theta, perLayer: true });
    expect(gl.length).toBe(3);
    for (let l = 0; l < 3; l++) {
      const up = base.slice();
      const dn = base.slice();
      up[l] *= Math.exp(h);
      dn[l] *= Math.exp(-h);
      const fd = (value(up) - value(dn)) / (2 * h);
      expect(Math.abs(gl[l] - fd)).toBeLessThan(1e-6 * Math.max(1, Math.abs(gl[l])));
    }
  });

  it('the optimiser finds the maximiser (vs a grid), shared and per layer', async () => {
    post.setPrior({ delta: 1 });
    const fit = await post.optimizePrior({ logLik, thetaNormSq: theta });
    const dOpt = fit.deltas[0];
    expect(Array.from(fit.deltas).every((d) => d === dOpt)).toBe(true);
    expect(Array.from(post.prior())).toEqual(Array.from(fit.deltas));
    expect(rel(fit.logMarglik, value([dOpt, dOpt, dOpt]))).toBeLessThan(1e-14);
    // grid over log delta in [-8, 8]
    let best = -Infinity;
    let bestRho = 0;
    for (let i = 0; i <= 3200; i++) {
      const rho = -8 + i * 0.005;
      const v = value([Math.exp(rho), Math.exp(rho), Math.exp(rho)]);
      if (v > best) {
        best = v;
        bestRho = rho;
      }
    }
    expect(fit.logMarglik).toBeGreaterThanOrEqual(best - 1e-12);
    expect(Math.abs(Math.log(dOpt) - bestRho)).toBeLessThanOrEqual(0.005);
    post.setPrior({ delta: dOpt });
    expect(Math.abs(post.logMarglikGrad({ thetaNormSq: theta })[0])).toBeLessThan(1e-8);

    const fl = await post.optimizePrior({ logLik, thetaNormSq: theta, perLayer: true });
    expect(fl.logMarglik).toBeGreaterThanOrEqual(fit.logMarglik - 1e-12);
    post.setPrior({ deltas: Array.from(fl.deltas) });
    for (const g of post.logMarglikGrad({ thetaNormSq: theta, perLayer: true })) expect(Math.abs(g)).toBeLessThan(1e-8);
    // layer 'c' has no data: its term -delta ||theta||^2 / 2 increases as delta -> 0
    expect(fl.deltas[2]).toBe(1e-8);
    // per-layer optimum also beats a perturbation of each layer (inside the bounds)
    for (let l = 0; l < 3; l++)
      for (const f of l === 2 ? [1.1] : [0.9, 1.1]) {
        const p = Array.from(fl.deltas);
        p[l] *= f;
        expect(value(p)).toBeLessThan(fl.logMarglik);
      }
  });

  it('lands on a bound when the maximiser lies outside the range', async () => {
    const fit = await post.optimizePrior({ logLik, thetaNormSq: [0, 0, 0], min: 1e-4, max: 1e4 });
    expect(Array.from(fit.deltas)).toEqual([1e4, 1e4, 1e4]);
    const fit2 = await post.optimizePrior({ logLik, thetaNormSq: [1e9, 1e9, 1e9], min: 1e-4, max: 1e4 });
    expect(Array.from(fit2.deltas)).toEqual([1e-4, 1e-4, 1e-4]);
  });
});

describe('N-scaling', () => {
  it('more data sharpens the posterior', async () => {
    const r = rng(20);
    const J = [randnArray(r, 15), randnArray(r, 18)];
    // dense factors: a rank-2 truncation of isotropic random inputs would
    // depend on the order of the data more than on its amount
    const q = async (seeds: number[], n: number): Promise<{ q: number[]; ld: number }> => {
      const acc = new KfacAccumulator({ ...OPTS, threshold: 100 });
      for (const s of seeds) await fill(acc, s, n);
      const post = await acc.posterior({ delta: 0.5 });
      const out = { q: [post.quadForm(0, J[0]), post.quadForm(1, J[1])], ld: post.logDet() };
      post.dispose();
      acc.dispose();
      return out;
    };
    // the same data twice: F doubles exactly, so every quadratic form shrinks
    const once = await q([31], 50);
    const twice = await q([31, 31], 50);
    // fresh data from the same distribution, 2x and 4x as much
    const n2 = await q([31, 32], 50);
    const n4 = await q([31, 32, 33, 34], 50);
    for (let l = 0; l < 2; l++) {
      expect(twice.q[l]).toBeLessThan(once.q[l]);
      expect(n2.q[l]).toBeLessThan(once.q[l]);
      expect(n4.q[l]).toBeLessThan(n2.q[l]);
    }
    expect(twice.ld).toBeGreaterThan(once.ld);
    expect(n4.ld).toBeGreaterThan(n2.ld);
  });
});

describe('posterior validation and dispose', () => {
  it('rejects bad priors and shapes; DISPOSED after dispose', async () => {
    const acc = new KfacAccumulator(OPTS);
    await fill(acc, 3, 4);
    await expectCode(() => acc.posterior({ delta: -1 }), 'INVALID_ARGUMENT');
    await expectCode(() => acc.posterior({ deltas: [1, 2] }), 'SHAPE_MISMATCH');
    const post = await acc.posterior();
    expect(Array.from(post.prior())).toEqual([1, 1, 1]);
    await expectCode(() => post.setPrior({ delta: 0 }), 'INVALID_ARGUMENT');
    await expectCode(() => post.setPrior({ deltas: [1, NaN, 1] }), 'INVALID_ARGUMENT');
    await expectCode(() => post.quadForm(0, new Float32Array(14)), 'SHAPE_MISMATCH');
    await expectCode(() => post.quadForm(5, new Float32Array(15)), 'INVALID_ARGUMENT');
    await expectCode(() => post.logMarglik({ logLik: 0, thetaNormSq: [1, 2] }), 'SHAPE_MISMATCH');
    await expectCode(() => post.logMarglik({ logLik: 0, thetaNormSq: [1, -2, 0] }), 'INVALID_ARGUMENT');
    await expectCode(() => post.lambda([null, null], { C: 2 }), 'SHAPE_MISMATCH');
    await expectCode(() => post.lambda([new Float32Array(3), null, null], { C: 2 }), 'SHAPE_MISMATCH');
    const p = post.optimizePrior({ logLik: 0, thetaNormSq: [1, 1, 1] });
    await expectCode(() => post.setPrior({ delta: 2 }), 'BUSY');
    await p;
    post.dispose();
    post.dispose();
    expect(post.disposed).toBe(true);
    await expectCode(() => post.logDet(), 'DISPOSED');
    // the accumulator is independent of its posterior
    expect(acc.counts()[0]).toBe(4);
    acc.dispose();
  });
});
