// Dense K-FAC sides held as their rows while few (cpp/laplace/row_stack.h):
// the factor is the same sum, the memory is by rows added (not d x d), the
// posterior keeps only the rows' span, the switch to the d x d sum replays the
// rows, and a save/load round trip gives back the same posterior.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KfacAccumulator } from '../../ts/laplace/kfac.ts';
import { loadLaplace, saveLaplace } from '../../ts/laplace/persist.ts';
import { gram, maxAbs, maxAbsDiff, randnArray, rng } from './dense.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'bl-rowstack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const d = 32; // dense side (threshold 100); held as rows up to d / 2 = 16
const mk = () => new KfacAccumulator({ layers: [{ name: 'l', dIn: d, dOut: 2 }], threshold: 100, tokens: 'expand' });

describe('dense sides held as rows', () => {
  it('hold the same sum in n x d floats and switch to d x d past d / 2 rows', async () => {
    const r = rng(11);
    const acc = mk();
    const all: number[] = [];
    const add = async (n: number) => {
      const x = randnArray(r, n * d);
      all.push(...x);
      await acc.add(0, x, null, { B: n });
    };
    await add(5);
    await add(5);
    const held = acc.memory().currentBytes;
    expect(held).toBeLessThan(d * d * 8 / 2); // 10 rows, not the d x d sum
    const S10 = gram(all, all.length / d, d);
    const F10 = acc.factor(0, 'A');
    expect(F10.kind).toBe('dense');
    expect(maxAbsDiff(F10.data, S10) / maxAbs(S10)).toBeLessThan(1e-6); // float32 Gram of float32 rows
    const post = await acc.posterior({ delta: 1 });
    expect(post.layers()[0].ka).toBe(10); // the rows' span only (rank 10 < d)
    const e = post.eigen(0);
    // the eigenpairs reproduce S: U diag(la) U^T
    const rec = new Float64Array(d * d);
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++) for (let k = 0; k < e.ka; k++) rec[i * d + j] += e.ua[i * e.ka + k] * e.la[k] * e.ua[j * e.ka + k];
    expect(maxAbsDiff(rec, S10) / maxAbs(S10)).toBeLessThan(1e-6);
    post.dispose();

    await add(8); // 18 rows > 16: the d x d sum from here on
    expect(acc.memory().currentBytes).toBeGreaterThanOrEqual(d * d * 8);
    const S18 = gram(all, all.length / d, d);
    expect(maxAbsDiff(acc.factor(0, 'A').data, S18) / maxAbs(S18)).toBeLessThan(1e-6);
    // the same rows added in one accumulator that never held rows: identical sums
    const ref = new KfacAccumulator({ layers: [{ name: 'l', dIn: d, dOut: 2 }], threshold: 100, tokens: 'expand' });
    await ref.add(0, Float32Array.from(all.slice(0, 5 * d)), null, { B: 5 });
    await ref.add(0, Float32Array.from(all.slice(5 * d, 10 * d)), null, { B: 5 });
    await ref.add(0, Float32Array.from(all.slice(10 * d)), null, { B: 8 });
    expect(Array.from(acc.factor(0, 'A').data)).toEqual(Array.from(ref.factor(0, 'A').data));
    acc.dispose();
    ref.dispose();
  });

  it('save and load a held side exactly (same eigen form)', async () => {
    const r = rng(12);
    const acc = mk();
    await acc.add(0, randnArray(r, 6 * d), randnArray(r, 6 * 2), { B: 6 });
    await acc.add(0, randnArray(r, 3 * d), randnArray(r, 3 * 2), { B: 3 });
    const post = await acc.posterior({ delta: 0.5 });
    const file = path.join(dir, 'rows.safetensors');
    await saveLaplace(file, acc, post, { adapterId: 'x' });
    const back = await loadLaplace(file, { adapterId: 'x' });
    expect(back.posterior.logDet()).toBe(post.logDet());
    expect(Array.from(back.posterior.eigen(0).ua)).toEqual(Array.from(post.eigen(0).ua));
    expect(Array.from(back.accumulator.factor(0, 'A').data)).toEqual(Array.from(acc.factor(0, 'A').data));
    back.posterior.dispose();
    back.accumulator.dispose();
    post.dispose();
    acc.dispose();
  });
});
