// K-FAC accumulator (cpp/laplace/kfac, lowrank_factor): token handling on
// hand-computed inputs, pass semantics (inputs once, gradients every pass),
// low-rank factors vs dense sums, truncation, merge, memory, errors.
import { describe, expect, it } from 'vitest';
import { KfacAccumulator } from '../../ts/laplace/kfac.ts';
import { BayesLoraError } from '../../ts/errors.ts';
import { factorDense, gram, jacobiEigenvalues, maxAbs, maxAbsDiff, randn, randnArray, rng } from './dense.ts';

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    expect((e as BayesLoraError).code).toBe(code);
    return;
  }
  expect.unreachable(`expected ${code}`);
}

/** A random d x rank basis; integer entries in [-2, 2] when `integer` (exact float32 data). */
function basis(r: () => number, d: number, rank: number, integer = false): number[] {
  return Array.from({ length: d * rank }, () => (integer ? Math.floor(r() * 5) - 2 : randn(r)));
}

/**
 * n rows x = U z in the span of the basis U (d x rank); z_k ~ N(0, scales_k^2), or
 * integers in [-3, 3] when `integer` (then every row, and its Gram, is exact in float32).
 */
function rowsIn(r: () => number, U: number[], n: number, d: number, rank: number, o: { scales?: number[]; integer?: boolean } = {}): Float32Array {
  const X = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: rank }, (_, k) =>
      o.integer ? Math.floor(r() * 7) - 3 : randn(r) * (o.scales ? o.scales[k] : 1),
    );
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += U[j * rank + k] * z[k];
      X[i * d + j] = s;
    }
  }
  return X;
}

describe('token handling', () => {
  // B = 2, T = 3; example 0 has 2 real tokens, example 1 has 1. Pads hold junk.
  const mask = Uint8Array.from([1, 1, 0, 1, 0, 0]);
  const x = Float32Array.from([1, 2, 3, 4, 100, 100, 2, 0, 9, 9, 9, 9]);
  const g = Float32Array.from([1, 0, 0, 1, 50, 50, 1, 1, 7, 7, 7, 7]);

  it('reduce: mean input, summed gradient per example; Z counts examples', async () => {
    const acc = new KfacAccumulator({ layers: [{ name: 'l', dIn: 2, dOut: 2 }], tokens: 'reduce' });
    await acc.add('l', x, g, { B: 2, T: 3, mask });
    // x~ = [2,3], [2,0];  g~ = [1,1], [1,1]
    expect(Array.from(acc.factor(0, 'A').data)).toEqual([8, 6, 6, 9]);
    expect(Array.from(acc.factor(0, 'G').data)).toEqual([2, 2, 2, 2]);
    expect(Array.from(acc.counts())).toEqual([2]);
    acc.dispose();
  });

  it('expand: every real token is a row; Z counts real tokens', async () => {
    const acc = new KfacAccumulator({ layers: [{ name: 'l', dIn: 2, dOut: 2 }], tokens: 'expand' });
    await acc.add(0, x, g, { B: 2, T: 3, mask });
    expect(Array.from(acc.factor(0, 'A').data)).toEqual([14, 14, 14, 20]);
    expect(Array.from(acc.factor(0, 'G').data)).toEqual([2, 1, 1, 2]);
    expect(Array.from(acc.counts())).toEqual([3]);
    acc.dispose();
  });

  it('aligned: input row J^T g~ / |g~|, summed gradient, Z sums the gradient energy', async () => {
    const acc = new KfacAccumulator({ layers: [{ name: 'l', dIn: 2, dOut: 2 }], tokens: 'aligned' });
    await acc.add('l', x, g, { B: 2, T: 3, mask });
    // example 0: g~ = [1,1], |g~|^2 = 2, g_t . g~ = 1, 1 -> J^T g~ = [4,6]: row outer [16,24,24,36] / 2
    // example 1: g~ = [1,1], |g~|^2 = 2, g . g~ = 2 -> J^T g~ = [4,0]: row outer [16,0,0,0] / 2
    const A = Array.from(acc.factor(0, 'A').data);
    [16, 12, 12, 18].forEach((v, i) => expect(A[i]).toBeCloseTo(v, 5));
    expect(Array.from(acc.factor(0, 'G').data)).toEqual([2, 2, 2, 2]);
    expect(Array.from(acc.counts())).toEqual([4]);
    // a weighted pass uses the inputs again (accumulateInputs does not apply) and scales all three
    await acc.add('l', x, g, { B: 2, T: 3, mask, accumulateInputs: false, weight: 0.5 });
    const A2 = Array.from(acc.factor(0, 'A').data);
    [24, 18, 18, 27].forEach((v, i) => expect(A2[i]).toBeCloseTo(v, 5));
    expect(Array.from(acc.factor(0, 'G').data)).toEqual([3, 3, 3, 3]);
    expect(Array.from(acc.counts())).toEqual([6]);
    // gradients without inputs cannot be placed
    await expectCode(acc.add('l', null, g, { B: 2, T: 3, mask }), 'INVALID_ARGUMENT');
    acc.dispose();
  });

  it('aligned: equals reduce when every token of an example carries the same gradient', async () => {
    const gs = Float32Array.from([1, 2, 1, 2, 50, 50, 3, -1, 7, 7, 7, 7]);
    const one = Uint8Array.from([1, 1, 0, 1, 0, 0]);
    // one example at a time: then (SA / Z) (x) SG must agree
    for (const b of [0, 1]) {
      const xb = x.subarray(b * 6, b * 6 + 6), gb = gs.subarray(b * 6, b * 6 + 6), mb = one.subarray(b * 3, b * 3 + 3);
      const a1 = new KfacAccumulator({ layers: [{ name: 'l', dIn: 2, dOut: 2 }], tokens: 'aligned' });
      const r1 = new KfacAccumulator({ layers: [{ name: 'l', dIn: 2, dOut: 2 }], tokens: 'reduce' });
      await a1.add(0, xb, gb, { B: 1, T: 3, mask: mb });
      await r1.add(0, xb, gb, { B: 1, T: 3, mask: mb });
      const za = a1.counts()[0], zr = r1.counts()[0];
      const Aa = a1.factor(0, 'A').data, Ar = r1.factor(0, 'A').data;
      for (let i = 0; i < 4; i++) expect(Aa[i] / za).toBeCloseTo(Ar[i] / zr, 5);
      expect(Array.from(a1.factor(0, 'G').data)).toEqual(Array.from(r1.factor(0, 'G').data));
      a1.dispose();
      r1.dispose();
    }
  });

  it('inputs are added once per example, gradients on every weighted pass', async () => {
    const acc = new KfacAccumulator({ layers: [{ name: 'l', dIn: 2, dOut: 2 }], tokens: 'reduce' });
    await acc.add('l', x, g, { B: 2, T: 3, mask });
    await acc.add('l', null, g, { B: 2, T: 3, mask, accumulateInputs: false, weight: 0.5 });
    await acc.add('l', x, g, { B: 2, T: 3, mask, accumulateInputs: false, weight: 0.25 });
    expect(Array.from(acc.factor(0, 'A').data)).toEqual([8, 6, 6, 9]);
    expect(Array.from(acc.factor(0, 'G').data)).toEqual([3.5, 3.5, 3.5, 3.5]);
    expect(Array.from(acc.counts())).toEqual([2]);
    // gradients only (g null: inputs only)
    await acc.add('l', x, null, { B: 2, T: 3, mask });
    expect(Array.from(acc.factor(0, 'A').data)).toEqual([16, 12, 12, 18]);
    expect(Array.from(acc.counts())).toEqual([4]);
    acc.dispose();
  });
});

describe('low-rank factors', () => {
  it('with k >= rank equal the dense factor to float rounding', async () => {
    const r = rng(1);
    const d = 20;
    const opts = { layers: [{ name: 'l', dIn: d, dOut: 3 }], nKfac: 10, chunk: 7 };
    const dense = new KfacAccumulator({ ...opts, threshold: 100 });
    const lowr = new KfacAccumulator({ ...opts, threshold: 8 });
    expect(lowr.layers()[0].lowRankA).toBe(true);
    expect(lowr.layers()[0].lowRankG).toBe(false);
    const all = new Float32Array(45 * d);
    const U = basis(r, d, 6, true);
    for (let it = 0; it < 5; it++) {
      const X = rowsIn(r, U, 9, d, 6, { integer: true });
      const G = randnArray(r, 9 * 3);
      all.set(X, it * 9 * d);
      await dense.add(0, X, G, { B: 9 });
      await lowr.add(0, X, G, { B: 9 });
    }
    const fd = dense.factor(0, 'A');
    const fl = lowr.factor(0, 'A');
    expect(fd.kind).toBe('dense');
    expect(fl.kind).toBe('lowrank');
    expect(fl.k).toBe(6); // only the data's rank is kept
    const S = fd.data;
    // integer data: the float32 GEMM sums are exact, so both must match the
    // float64 reference Gram to float64 rounding of the low-rank update
    expect(maxAbsDiff(S, gram(all, 45, d))).toBe(0);
    expect(maxAbsDiff(factorDense(fl), S) / maxAbs(S)).toBeLessThan(1e-13);
    dense.dispose();
    lowr.dispose();
  });

  it('truncation keeps the top of the spectrum and only ever drops PSD parts', async () => {
    const r = rng(2);
    const d = 16;
    const k = 4;
    const scales = [8, 5, 3, 2, 0.05, 0.04, 0.03, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01];
    const U = basis(r, d, d);
    const all: Float32Array[] = [];
    for (let i = 0; i < 6; i++) all.push(rowsIn(r, U, 10, d, d, { scales }));
    const X = new Float32Array(60 * d);
    all.forEach((a, i) => X.set(a, i * 10 * d));
    const S = gram(X, 60, d);
    const wS = jacobiEigenvalues(S, d);

    // one compression of all columns: exactly the best rank-k approximation
    const one = new KfacAccumulator({ layers: [{ name: 'l', dIn: d, dOut: 2 }], threshold: 8, nKfac: k, chunk: 1000 });
    await one.add(0, X, null, { B: 60 });
    const f1 = one.factor(0, 'A');
    expect(f1.k).toBe(k);
    const w1 = jacobiEigenvalues(factorDense(f1), d);
    for (let i = 0; i < k; i++) expect(Math.abs(w1[i] - wS[i]) / wS[i]).toBeLessThan(1e-6);

    // many small chunks: residual S - L L^T stays PSD, error small for a decaying spectrum
    const many = new KfacAccumulator({ layers: [{ name: 'l', dIn: d, dOut: 2 }], threshold: 8, nKfac: k, chunk: 3 });
    for (const a of all) await many.add(0, a, null, { B: 10 });
    const Lm = factorDense(many.factor(0, 'A'));
    const R = S.map((v, i) => v - Lm[i]);
    const wR = jacobiEigenvalues(R, d);
    expect(wR[d - 1]).toBeGreaterThan(-1e-5 * wS[0]);
    expect(wR[0]).toBeLessThan(0.02 * wS[0]); // only the small tail is lost
    one.dispose();
    many.dispose();
  });

  it('merge(a, b) equals a fit on the union: exact for dense, within truncation for low rank', async () => {
    const r = rng(3);
    const d = 12;
    const U = basis(r, d, 5);
    const batches = Array.from({ length: 4 }, () => ({ x: rowsIn(r, U, 5, d, 5), g: randnArray(r, 5 * 3) }));
    for (const [threshold, nKfac] of [
      [100, 10], // dense
      [8, 8], // low rank, k >= rank (5): exact
      [8, 3], // low rank, truncated
    ]) {
      const mk = () => new KfacAccumulator({ layers: [{ name: 'l', dIn: d, dOut: 3 }], threshold, nKfac, chunk: 4 });
      const a = mk();
      const b = mk();
      const u = mk();
      for (let i = 0; i < 4; i++) {
        await (i < 2 ? a : b).add(0, batches[i].x, batches[i].g, { B: 5 });
        await u.add(0, batches[i].x, batches[i].g, { B: 5 });
      }
      await a.merge(b);
      expect(Array.from(a.counts())).toEqual([20]);
      const Sa = factorDense(a.factor(0, 'A'));
      const Su = factorDense(u.factor(0, 'A'));
      const Sg = a.factor(0, 'G').data;
      expect(maxAbsDiff(Sg, u.factor(0, 'G').data) / maxAbs(Sg)).toBeLessThan(1e-12);
      const err = maxAbsDiff(Sa, Su) / maxAbs(Su);
      if (threshold === 100) expect(err).toBeLessThan(1e-12);
      else if (nKfac >= 5) expect(err).toBeLessThan(1e-9);
      else {
        // both are rank-3 truncations of the same S: compare with the truncation error itself
        const ref = new KfacAccumulator({ layers: [{ name: 'l', dIn: d, dOut: 3 }], threshold: 100 });
        for (const bt of batches) await ref.add(0, bt.x, bt.g, { B: 5 });
        const S = ref.factor(0, 'A').data;
        const w = jacobiEigenvalues(S, d);
        const truncErr = w[3]; // spectral norm of the best rank-3 residual
        expect(maxAbsDiff(Sa, S)).toBeLessThan(3 * truncErr + 1e-6 * w[0]);
        expect(maxAbsDiff(Su, S)).toBeLessThan(3 * truncErr + 1e-6 * w[0]);
        ref.dispose();
      }
      for (const o of [a, b, u]) o.dispose();
    }
  });

  it('merging an accumulator with itself doubles sums and counts', async () => {
    const r = rng(4);
    const acc = new KfacAccumulator({ layers: [{ name: 'l', dIn: 10, dOut: 2 }], threshold: 5, nKfac: 6 });
    await acc.add(0, rowsIn(r, basis(r, 10, 3), 4, 10, 3), randnArray(r, 8), { B: 4 });
    const A0 = factorDense(acc.factor(0, 'A'));
    const G0 = acc.factor(0, 'G').data.slice();
    await acc.merge(acc);
    expect(maxAbsDiff(factorDense(acc.factor(0, 'A')), A0.map((v) => 2 * v))).toBeLessThan(1e-9 * maxAbs(A0));
    expect(maxAbsDiff(acc.factor(0, 'G').data, G0.map((v) => 2 * v))).toBe(0);
    expect(Array.from(acc.counts())).toEqual([8]);
    acc.dispose();
  });

  it('a d_in = 4096 layer never allocates d x d', async () => {
    const r = rng(5);
    const d = 4096;
    const acc = new KfacAccumulator({
      layers: [{ name: 'q.lora_A', dIn: d, dOut: 8 }],
      tokens: 'expand',
      threshold: 512,
      nKfac: 10,
    });
    expect(acc.layers()[0].lowRankA).toBe(true);
    // inputs in a rank-6 subspace so that the rank-10 factor is exact
    const U = randnArray(r, d * 6);
    const rows: Float32Array[] = [];
    for (let it = 0; it < 3; it++) {
      const B = 4;
      const T = 40;
      const X = new Float32Array(B * T * d);
      for (let i = 0; i < B * T; i++) {
        const z = [randn(r), randn(r), randn(r), randn(r), randn(r), randn(r)];
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let k = 0; k < 6; k++) s += U[j * 6 + k] * z[k];
          X[i * d + j] = s;
        }
      }
      rows.push(X);
      await acc.add(0, X, randnArray(r, B * T * 8), { B, T });
    }
    const f = acc.factor(0, 'A');
    expect(f.kind).toBe('lowrank');
    expect(f.k).toBe(6);
    const { peakBytes, currentBytes } = acc.memory();
    const dd = d * d * 8;
    expect(peakBytes).toBeGreaterThan(0);
    expect(peakBytes).toBeLessThan(dd / 20);
    expect(currentBytes).toBeLessThanOrEqual(peakBytes);
    // L L^T v == sum_r x_r (x_r . v) for a random v
    const v = randnArray(r, d);
    const Sv = new Float64Array(d);
    for (const X of rows)
      for (let i = 0; i < X.length / d; i++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += X[i * d + j] * v[j];
        for (let j = 0; j < d; j++) Sv[j] += X[i * d + j] * s;
      }
    const L = f.data;
    const Ltv = new Float64Array(f.k);
    for (let j = 0; j < d; j++) for (let c = 0; c < f.k; c++) Ltv[c] += L[j * f.k + c] * v[j];
    const LLtv = new Float64Array(d);
    for (let j = 0; j < d; j++) for (let c = 0; c < f.k; c++) LLtv[j] += L[j * f.k + c] * Ltv[c];
    expect(maxAbsDiff(LLtv, Sv) / maxAbs(Sv)).toBeLessThan(1e-9);
    // nor does its posterior: Ua is d x 6
    const post = await acc.posterior();
    expect(post.layers()[0]).toMatchObject({ ka: 6, kg: 8 });
    expect(post.memoryBytes()).toBeLessThan(dd / 100);
    post.dispose();
    acc.dispose();
  });

  it('a dense side from fewer rows than its size keeps only the data span in the posterior', async () => {
    const r = rng(11);
    const d = 40;
    const acc = new KfacAccumulator({ layers: [{ name: 'l', dIn: d, dOut: 3 }], threshold: 100 });
    // 5 integer rows (exact in float32, so the Gram sum is exact): rank 5, and the
    // complement's eigenvalues are double rounding, which the posterior drops
    const X = Array.from({ length: 5 * d }, () => Math.floor(r() * 5) - 2);
    await acc.add(0, Float32Array.from(X), Float32Array.from(randnArray(r, 5 * 3)), { B: 5 });
    expect(acc.layers()[0].lowRankA).toBe(false);
    const post = await acc.posterior({ delta: 0.7 });
    const e = post.eigen(0);
    expect(e.ka).toBe(5);
    expect(e.ua.length).toBe(d * 5);
    // the dropped complement is delta: a direction orthogonal to the rows has quadratic form |v|^2 / delta
    const S = factorDense(acc.factor(0, 'A'));
    const v = Float64Array.from({ length: d }, () => randn(r));
    // project v onto the orthogonal complement of the rows (Gram-Schmidt against the 5 rows)
    const rows = Array.from({ length: 5 }, (_, i) => Float64Array.from(X.slice(i * d, (i + 1) * d)));
    const basisRows: Float64Array[] = [];
    for (const row of rows) {
      const w = Float64Array.from(row);
      for (const b of basisRows) { let dot = 0; for (let j = 0; j < d; j++) dot += w[j] * b[j]; for (let j = 0; j < d; j++) w[j] -= dot * b[j]; }
      let n = 0; for (const x of w) n += x * x; n = Math.sqrt(n); for (let j = 0; j < d; j++) w[j] /= n;
      basisRows.push(w);
    }
    for (const b of basisRows) { let dot = 0; for (let j = 0; j < d; j++) dot += v[j] * b[j]; for (let j = 0; j < d; j++) v[j] -= dot * b[j]; }
    let Sv = 0; for (let j = 0; j < d; j++) for (let q = 0; q < d; q++) Sv += v[j] * S[j * d + q] * v[q];
    expect(Math.abs(Sv)).toBeLessThan(1e-6);
    const J = new Float64Array(3 * d); // J = e_0 v^T (output row 0)
    for (let j = 0; j < d; j++) J[j] = v[j];
    let n2 = 0; for (const x of v) n2 += x * x;
    expect(post.quadForm(0, J)).toBeCloseTo(n2 / 0.7, 6);
    post.dispose();
    acc.dispose();
  });
});

describe('validation, busy and dispose', () => {
  it('rejects bad options and inputs with typed errors', async () => {
    await expectCode(() => new KfacAccumulator({ layers: [] }), 'INVALID_ARGUMENT');
    await expectCode(() => new KfacAccumulator({ layers: [{ name: 'a', dIn: 0, dOut: 2 }] }), 'INVALID_ARGUMENT');
    await expectCode(
      () =>
        new KfacAccumulator({
          layers: [
            { name: 'a', dIn: 2, dOut: 2 },
            { name: 'a', dIn: 3, dOut: 2 },
          ],
        }),
      'INVALID_ARGUMENT',
    );
    await expectCode(
      () => new KfacAccumulator({ layers: [{ name: 'a', dIn: 2, dOut: 2 }], tokens: 'tokens' as never }),
      'INVALID_ARGUMENT',
    );
    await expectCode(
      () => new KfacAccumulator({ layers: [{ name: 'a', dIn: 2, dOut: 2 }], nKfac: 0 }),
      'INVALID_ARGUMENT',
    );
    const acc = new KfacAccumulator({ layers: [{ name: 'a', dIn: 2, dOut: 3 }] });
    const x = new Float32Array(4);
    const g = new Float32Array(6);
    await expectCode(acc.add(0, new Float32Array(5), g, { B: 2 }), 'SHAPE_MISMATCH');
    await expectCode(acc.add(0, x, new Float32Array(5), { B: 2 }), 'SHAPE_MISMATCH');
    await expectCode(acc.add(1, x, g, { B: 2 }), 'INVALID_ARGUMENT');
    await expectCode(acc.add('nope', x, g, { B: 2 }), 'INVALID_ARGUMENT');
    await expectCode(acc.add(0, new Float64Array(4) as never, g, { B: 2 }), 'INVALID_ARGUMENT');
    await expectCode(acc.add(0, x, g, { B: 2, weight: -1 }), 'INVALID_ARGUMENT');
    await expectCode(acc.add(0, Float32Array.from([1, NaN, 0, 0]), g, { B: 2 }), 'INVALID_ARGUMENT');
    await expectCode(acc.add(0, x, g, { B: 2, mask: new Uint8Array(3) }), 'SHAPE_MISMATCH');
    await expectCode(acc.add(0, null, g, { B: 2 }), 'INVALID_ARGUMENT');
    const other = new KfacAccumulator({ layers: [{ name: 'a', dIn: 2, dOut: 3 }], tokens: 'expand' });
    await expectCode(acc.merge(other), 'INVALID_ARGUMENT');
    const other2 = new KfacAccumulator({ layers: [{ name: 'b', dIn: 2, dOut: 3 }] });
    await expectCode(acc.merge(other2), 'SHAPE_MISMATCH');
    other.dispose();
    other2.dispose();
    acc.dispose();
  });

  it('concurrent calls get BUSY; dispose is idempotent; use after dispose is DISPOSED', async () => {
    const acc = new KfacAccumulator({ layers: [{ name: 'a', dIn: 64, dOut: 64 }] });
    const r = rng(6);
    const x = randnArray(r, 256 * 64);
    const p = acc.add(0, x, x, { B: 256 });
    await expectCode(acc.add(0, x, x, { B: 256 }), 'BUSY');
    await expectCode(() => acc.dispose(), 'BUSY');
    await p;
    await acc.add(0, x, x, { B: 256 }); // free again
    expect(Array.from(acc.counts())).toEqual([512]);
    acc.dispose();
    acc.dispose();
    expect(acc.disposed).toBe(true);
    await expectCode(acc.add(0, x, x, { B: 256 }), 'DISPOSED');
    await expectCode(() => acc.factor(0, 'A'), 'DISPOSED');
    await expectCode(acc.posterior(), 'DISPOSED');
  });
});
