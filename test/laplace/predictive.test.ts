// Predictive link approximations (cpp/laplace/predictive): map, probit, mc,
// Laplace bridge — formulas, limits, convergence of mc to a dense numerical
// integration, seeded reproducibility, validation.
import { describe, expect, it } from 'vitest';
import { predictiveProbs } from '../../ts/laplace/kfac.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { loadNative } from '../../ts/native.ts';
import { maxAbsDiff } from './dense.ts';

function softmax(f: number[]): number[] {
  const m = Math.max(...f);
  const e = f.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** E[g(d)], d ~ N(m, s^2), by the trapezoid rule on +-12 s (dense numerical integration). */
function gaussExpect(g: (d: number) => number, m: number, s: number): number {
  const n = 20000;
  const h = (24 * s) / n;
  let acc = 0;
  for (let i = 0; i <= n; i++) {
    const z = -12 + (24 * i) / n;
    const w = i === 0 || i === n ? 0.5 : 1;
    acc += w * g(m + s * z) * Math.exp(-0.5 * z * z);
  }
  return (acc * h) / (s * Math.sqrt(2 * Math.PI));
}

async function expectCode(p: () => Promise<unknown>, code: string): Promise<void> {
  try {
    await p();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    expect((e as BayesLoraError).code).toBe(code);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

const mu = Float64Array.from([1.5, -0.3, 0.2, 0, 0, 0]); // B = 2, C = 3
const Lambda = Float64Array.from([
  // example 0: a full SPD covariance
  2.0, 0.3, -0.4, 0.3, 1.0, 0.2, -0.4, 0.2, 0.5,
  // example 1: isotropic
  1, 0, 0, 0, 1, 0, 0, 0, 1,
]);

describe('predictive probabilities', () => {
  it('map is softmax(mu)', async () => {
    const p = await predictiveProbs(mu, null, { C: 3, method: 'map' });
    expect(maxAbsDiff(p.subarray(0, 3), softmax([1.5, -0.3, 0.2]))).toBeLessThan(1e-15);
    expect(maxAbsDiff(p.subarray(3), [1 / 3, 1 / 3, 1 / 3])).toBeLessThan(1e-15);
  });

  it('probit is softmax(mu_c / sqrt(1 + pi/8 Lambda_cc))', async () => {
    const p = await predictiveProbs(mu, Lambda, { C: 3, method: 'probit' });
    const k = (v: number) => 1 / Math.sqrt(1 + (Math.PI / 8) * v);
    const ref = softmax([1.5 * k(2), -0.3 * k(1), 0.2 * k(0.5)]);
    expect(maxAbsDiff(p.subarray(0, 3), ref)).toBeLessThan(1e-15);
    // variance only softens: the top class loses confidence but keeps the argmax
    const pm = await predictiveProbs(mu, null, { C: 3, method: 'map' });
    expect(p[0]).toBeLessThan(pm[0]);
    expect(p[0]).toBeGreaterThan(p[1]);
  });

  it('mc with a tiny Lambda equals map; with a zero Lambda too (jitter)', async () => {
    const tiny = Lambda.map((v) => v * 1e-10);
    const pm = await predictiveProbs(mu, null, { C: 3, method: 'map' });
    const p = await predictiveProbs(mu, tiny, { C: 3, method: 'mc', samples: 200, seed: 1 });
    expect(maxAbsDiff(p, pm)).toBeLessThan(1e-5);
    const pz = await predictiveProbs(mu, new Float64Array(18), { C: 3, method: 'mc', samples: 50 });
    expect(maxAbsDiff(pz, pm)).toBeLessThan(1e-5);
  });

  it('mc converges to a dense numerical integration for C = 2', async () => {
    const m2 = Float64Array.from([0.8, -0.4]);
    const L2 = Float64Array.from([1.5, 0.6, 0.6, 0.9]);
    // softmax over 2 classes depends on d = f0 - f1 ~ N(1.2, 1.5 + 0.9 - 1.2)
    const m = 1.2;
    const s = Math.sqrt(1.2);
    const p0 = gaussExpect(sigmoid, m, s);
    const v0 = gaussExpect((d) => sigmoid(d) ** 2, m, s) - p0 * p0;
    const errs: number[] = [];
    for (const S of [1000, 16000, 256000]) {
      const p = await predictiveProbs(m2, L2, { C: 2, method: 'mc', samples: S, seed: 7 });
      expect(p[0] + p[1]).toBeCloseTo(1, 14);
      const se = Math.sqrt(v0 / S);
      expect(Math.abs(p[0] - p0)).toBeLessThan(4 * se);
      errs.push(Math.abs(p[0] - p0));
    }
    expect(errs[2]).toBeLessThan(2e-3);
  });

  it('mc is reproducible for a seed and changes with it', async () => {
    const a = await predictiveProbs(mu, Lambda, { C: 3, method: 'mc', samples: 500, seed: 42 });
    const b = await predictiveProbs(mu, Lambda, { C: 3, method: 'mc', samples: 500, seed: 42 });
    const c = await predictiveProbs(mu, Lambda, { C: 3, method: 'mc', samples: 500, seed: 43 });
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-4);
    for (let b0 = 0; b0 < 2; b0++) expect(a[b0 * 3] + a[b0 * 3 + 1] + a[b0 * 3 + 2]).toBeCloseTo(1, 14);
    // the counter-based normals are standard normal
    const z: Float64Array = loadNative().laplaceInternal.counterNormal(3, 200000);
    const mean = z.reduce((s, v) => s + v, 0) / z.length;
    const vr = z.reduce((s, v) => s + (v - mean) ** 2, 0) / z.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(vr - 1)).toBeLessThan(0.01);
  });

  it('bridge returns the mean of the Laplace-bridge Dirichlet', async () => {
    const p = await predictiveProbs(mu, Lambda, { C: 3, method: 'bridge' });
    // reference: condition on a zero logit sum, then alpha_k = (1 - 2/C + e^m_k sum_l e^-m_l / C^2) / var_k
    const C = 3;
    for (let b = 0; b < 2; b++) {
      const m = Array.from(mu.subarray(b * C, b * C + C));
      const S = Array.from(Lambda.subarray(b * C * C, (b + 1) * C * C));
      const s1 = [0, 1, 2].map((i) => S[i * C] + S[i * C + 1] + S[i * C + 2]);
      const tot = s1[0] + s1[1] + s1[2];
      const msum = m[0] + m[1] + m[2];
      const mc = m.map((v, i) => v - (s1[i] * msum) / tot);
      const vc = [0, 1, 2].map((i) => S[i * C + i] - (s1[i] * s1[i]) / tot);
      const se = mc.map((mk) => mc.reduce((a, ml) => a + Math.exp(mk - ml), 0));
      const alpha = se.map((v, k) => (1 - 2 / C + v / (C * C)) / vc[k]);
      const asum = alpha.reduce((a, v) => a + v, 0);
      expect(maxAbsDiff(p.subarray(b * C, b * C + C), alpha.map((a) => a / asum))).toBeLessThan(1e-14);
    }
    // example 1: equal means, isotropic covariance -> uniform
    expect(maxAbsDiff(p.subarray(3), [1 / 3, 1 / 3, 1 / 3])).toBeLessThan(1e-15);
    // isotropic covariance keeps the order of the means
    const q = await predictiveProbs(Float64Array.from([2, 1, 0]), Lambda.subarray(9), { C: 3, method: 'bridge' });
    expect(q[0]).toBeGreaterThan(q[1]);
    expect(q[1]).toBeGreaterThan(q[2]);
    expect(q[0] + q[1] + q[2]).toBeCloseTo(1, 14);
  });

  it('infers C from Lambda', async () => {
    const a = await predictiveProbs(mu, Lambda, { method: 'probit' });
    const b = await predictiveProbs(mu, Lambda, { C: 3, method: 'probit' });
    expect(Array.from(a)).toEqual(Array.from(b));
    await expectCode(() => predictiveProbs(mu, null, { method: 'map' }), 'INVALID_ARGUMENT');
    await expectCode(() => predictiveProbs(mu, Lambda.subarray(2), { method: 'probit' }), 'SHAPE_MISMATCH');
  });

  it('validates its inputs with typed errors', async () => {
    await expectCode(() => predictiveProbs(mu, Lambda, { C: 3, method: 'laplace' as never }), 'INVALID_ARGUMENT');
    await expectCode(() => predictiveProbs(mu, Lambda.subarray(1), { C: 3, method: 'mc' }), 'SHAPE_MISMATCH');
    await expectCode(() => predictiveProbs(mu.subarray(1), null, { C: 3, method: 'map' }), 'SHAPE_MISMATCH');
    await expectCode(() => predictiveProbs(mu, null, { C: 3, method: 'mc' }), 'INVALID_ARGUMENT');
    await expectCode(
      () => predictiveProbs(Float64Array.from([NaN, 0, 0]), Lambda.subarray(9), { C: 3, method: 'probit' }),
      'INVALID_ARGUMENT',
    );
    const neg = Lambda.slice();
    neg[0] = -1;
    await expectCode(() => predictiveProbs(mu, neg, { C: 3, method: 'probit' }), 'NUMERICAL_ERROR');
    const indefinite = Lambda.slice();
    indefinite[1] = indefinite[3] = 10; // |cov| > sqrt(var var)
    await expectCode(() => predictiveProbs(mu, indefinite, { C: 3, method: 'mc', samples: 10 }), 'NUMERICAL_ERROR');
    await expectCode(() => predictiveProbs(mu, Lambda, { C: 3, method: 'mc', samples: 0 }), 'INVALID_ARGUMENT');
  });
});
