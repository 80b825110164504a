import { describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { deriveSeed, Rng } from '../../ts/data/rng.ts';
import { batchCount, batches, epochOrder, splitTrainVal } from '../../ts/data/sampling.ts';

describe('Rng', () => {
  it('is deterministic per seed and differs across nearby seeds', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    const xa = Array.from({ length: 16 }, () => a.nextU32());
    const xb = Array.from({ length: 16 }, () => b.nextU32());
    const xc = Array.from({ length: 16 }, () => c.nextU32());
    expect(xa).toEqual(xb);
    expect(xa.filter((v, i) => v === xc[i]).length).toBe(0);
    for (const v of xa) expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
    // Seeds beyond 32 bits and negative seeds are distinct streams.
    const hi = new Rng(2 ** 32 + 7).nextU32();
    const neg = new Rng(-7).nextU32();
    expect(new Set([xa[0], hi, neg, new Rng(0).nextU32()]).size).toBe(4);
  });
  it('pins the stream (a change of generator would silently change every run)', () => {
    const r = new Rng(42);
    const first = [r.nextU32(), r.nextU32(), r.nextU32()];
    const again = new Rng(42);
    expect([again.nextU32(), again.nextU32(), again.nextU32()]).toEqual(first);
    expect(first).toEqual([2375388678, 2584357817, 3968302977]);
  });
  it('int(n) is in range and roughly uniform; floats in [0, 1)', () => {
    const r = new Rng(1);
    const counts = new Array(6).fill(0);
    const N = 60000;
    for (let i = 0; i < N; i++) counts[r.int(6)]++;
    // Each bucket ~ 10000 +- 100 (sd); 6 sd bound.
    for (const c of counts) expect(Math.abs(c - N / 6)).toBeLessThan(600);
    let mean = 0;
    let outside = 0;
    for (let i = 0; i < 10000; i++) {
      const f = r.nextFloat();
      if (!(f >= 0 && f < 1)) outside++;
      mean += f / 10000;
    }
    expect(outside).toBe(0);
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02);
    expect(r.int(1)).toBe(0);
    expect(() => r.int(0)).toThrow(BayesLoraError);
    expect(() => new Rng(0.5)).toThrow(BayesLoraError);
  });
  it('shuffle is a permutation and deterministic', () => {
    const xs = Array.from({ length: 50 }, (_, i) => i);
    const s1 = new Rng(3).shuffle(xs.slice());
    const s2 = new Rng(3).shuffle(xs.slice());
    expect(s1).toEqual(s2);
    expect(s1).not.toEqual(xs);
    expect(s1.slice().sort((a, b) => a - b)).toEqual(xs);
  });
  it('deriveSeed separates streams', () => {
    expect(deriveSeed(1, 0)).toBe(deriveSeed(1, 0));
    expect(new Set([deriveSeed(1, 0), deriveSeed(1, 1), deriveSeed(2, 0), deriveSeed(0, 1)]).size).toBe(4);
    expect(Number.isSafeInteger(deriveSeed(2 ** 50, 3))).toBe(true);
  });
});

describe('batches', () => {
  const items = Array.from({ length: 10 }, (_, i) => `x${i}`);
  it('is deterministic given the seed, covers every item once per epoch', () => {
    const a = [...batches(items, 3, { seed: 5 })];
    const b = [...batches(items, 3, { seed: 5 })];
    expect(a).toEqual(b);
    expect(a.map((x) => x.length)).toEqual([3, 3, 3, 1]);
    expect(a.flat().sort()).toEqual(items.slice().sort());
    const c = [...batches(items, 3, { seed: 6 })];
    expect(c.flat()).not.toEqual(a.flat());
  });
  it('gives each epoch its own order', () => {
    const e0 = [...batches(items, 10, { seed: 5, epoch: 0 })][0];
    const e1 = [...batches(items, 10, { seed: 5, epoch: 1 })][0];
    expect(e1).not.toEqual(e0);
    expect(e1.slice().sort()).toEqual(items.slice().sort());
  });
  it('keeps order without shuffle and drops the short tail with dropLast', () => {
    expect([...batches(items, 4, { shuffle: false })]).toEqual([items.slice(0, 4), items.slice(4, 8), items.slice(8)]);
    expect([...batches(items, 4, { shuffle: false, dropLast: true })]).toEqual([items.slice(0, 4), items.slice(4, 8)]);
    expect([...batches(items, 20, { dropLast: true })]).toEqual([]);
    expect([...batches([], 4)]).toEqual([]);
    expect(batchCount(10, 4)).toBe(3);
    expect(batchCount(10, 4, true)).toBe(2);
    expect(epochOrder(4, { shuffle: false })).toEqual([0, 1, 2, 3]);
  });
  it('groupBy keeps keys apart, covers every item, and is deterministic', () => {
    const xs = Array.from({ length: 23 }, (_, i) => ({ i, c: i % 3 === 0 ? 2 : 4 }));
    const a = [...batches(xs, 4, { seed: 9, groupBy: (x) => x.c })];
    expect(a).toEqual([...batches(xs, 4, { seed: 9, groupBy: (x) => x.c })]);
    for (const b of a) expect(new Set(b.map((x) => x.c)).size).toBe(1);
    expect(a.flat().map((x) => x.i).sort((p, q) => p - q)).toEqual(xs.map((x) => x.i));
    // 8 items with c=2 -> 2 batches, 15 with c=4 -> 4 batches (one short).
    expect(a.length).toBe(6);
    expect(a.filter((b) => b.length < 4).length).toBe(1);
    const dropped = [...batches(xs, 4, { seed: 9, groupBy: (x) => x.c, dropLast: true })];
    expect(dropped.length).toBe(5);
    expect(dropped.every((b) => b.length === 4)).toBe(true);
    const plain = [...batches(xs, 4, { shuffle: false, groupBy: (x) => x.c })];
    expect(plain[0].map((x) => x.i)).toEqual([0, 3, 6, 9]);
    expect(plain[2].map((x) => x.i)).toEqual([1, 2, 4, 5]);
    expect(() => [...batches(xs, 4, { groupBy: () => ({}) as unknown as string })]).toThrow(BayesLoraError);
  });
  it('rejects bad arguments', () => {
    expect(() => [...batches(items, 0)]).toThrow(BayesLoraError);
    expect(() => [...batches(items, 2.5)]).toThrow(BayesLoraError);
    expect(() => [...batches(items, 2, { seed: 0.5 })]).toThrow(BayesLoraError);
  });
});

describe('splitTrainVal', () => {
  const items = Array.from({ length: 20 }, (_, i) => i);
  it('splits disjointly and completely, deterministically, keeping source order', () => {
    const s = splitTrainVal(items, { valFraction: 0.25, seed: 1 });
    expect(s.val.length).toBe(5);
    expect(s.train.length).toBe(15);
    expect([...s.train, ...s.val].sort((a, b) => a - b)).toEqual(items);
    expect(s.train).toEqual(s.train.slice().sort((a, b) => a - b));
    expect(splitTrainVal(items, { valFraction: 0.25, seed: 1 })).toEqual(s);
    expect(splitTrainVal(items, { valFraction: 0.25, seed: 2 }).val).not.toEqual(s.val);
  });
  it('supports exact counts and the unshuffled tail', () => {
    expect(splitTrainVal(items, { valCount: 3, shuffle: false }).val).toEqual([17, 18, 19]);
    expect(splitTrainVal(items, { valCount: 0 }).val).toEqual([]);
    expect(splitTrainVal(items, { valCount: 20 }).train).toEqual([]);
  });
  it('rejects bad arguments', () => {
    expect(() => splitTrainVal(items, {})).toThrow(BayesLoraError);
    expect(() => splitTrainVal(items, { valFraction: 1 })).toThrow(BayesLoraError);
    expect(() => splitTrainVal(items, { valFraction: -0.1 })).toThrow(BayesLoraError);
    expect(() => splitTrainVal(items, { valCount: 21 })).toThrow(BayesLoraError);
    expect(() => splitTrainVal(items, { valCount: 2, valFraction: 0.1 })).toThrow(BayesLoraError);
  });
});
