import { describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { chunkTokens, collateLm, collateMc } from '../../ts/data/collate.ts';
import type { EncodedMc } from '../../ts/data/format.ts';

const PAD = 1;
const enc = (ids: number[], rows: number[], label: number): EncodedMc => ({ ids, rows, label });

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    return `${(e as BayesLoraError).code}: ${(e as Error).message}`;
  }
  throw new Error('expected a BayesLoraError');
}

describe('collateMc', () => {
  const xs = [enc([2, 10, 11, 12], [4, 5], 1), enc([2, 20], [4, 5], 0), enc([2, 30, 31], [6, 7], -1)];
  it('pads on the left: last real token is at T-1 for every row', () => {
    const b = collateMc(xs, { padId: PAD, side: 'left', maxLength: 16 });
    expect([b.B, b.T, b.C]).toEqual([3, 4, 2]);
    expect(Array.from(b.ids)).toEqual([2, 10, 11, 12, PAD, PAD, 2, 20, PAD, 2, 30, 31]);
    expect(Array.from(b.mask)).toEqual([1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1]);
    expect(Array.from(b.last)).toEqual([3, 3, 3]);
    expect(Array.from(b.rows)).toEqual([4, 5, 4, 5, 6, 7]);
    expect(Array.from(b.labels)).toEqual([1, 0, -1]);
    expect(b.ids).toBeInstanceOf(Int32Array);
    expect(b.mask).toBeInstanceOf(Uint8Array);
  });
  it('pads on the right: last points at each sequence end', () => {
    const b = collateMc(xs, { padId: PAD, side: 'right', maxLength: 16 });
    expect(Array.from(b.ids)).toEqual([2, 10, 11, 12, 2, 20, PAD, PAD, 2, 30, 31, PAD]);
    expect(Array.from(b.mask)).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0]);
    expect(Array.from(b.last)).toEqual([3, 1, 2]);
    // The id at `last` is the final prompt token in both layouts.
    for (let i = 0; i < b.B; i++) expect(b.ids[i * b.T + b.last[i]]).toBe(xs[i].ids[xs[i].ids.length - 1]);
  });
  it('defaults to left padding', () => {
    expect(Array.from(collateMc(xs, { padId: PAD, maxLength: 16 }).last)).toEqual([3, 3, 3]);
  });
  it('truncates from the left, keeping the end of the prompt (and BOS if asked)', () => {
    const long = enc([2, 10, 11, 12, 13, 14], [4, 5], 0);
    const b = collateMc([long, xs[1]], { padId: PAD, side: 'right', maxLength: 3 });
    expect(b.T).toBe(3);
    expect(Array.from(b.ids)).toEqual([12, 13, 14, 2, 20, PAD]);
    expect(Array.from(b.last)).toEqual([2, 1]);
    const k = collateMc([long], { padId: PAD, maxLength: 3, bosId: 2 });
    expect(Array.from(k.ids)).toEqual([2, 13, 14]);
    // A sequence not starting with BOS is cut plainly.
    expect(Array.from(collateMc([enc([9, 8, 7, 6], [4, 5], 0)], { padId: PAD, maxLength: 2, bosId: 2 }).ids)).toEqual([7, 6]);
    // The input arrays are not modified.
    expect(long.ids).toEqual([2, 10, 11, 12, 13, 14]);
  });
  it('requires the same number of choices in a batch', () => {
    expect(code(() => collateMc([xs[0], enc([2, 3], [4, 5, 6], 0)], { padId: PAD, maxLength: 8 }))).toMatch(
      /INVALID_ARGUMENT: .*same number of choices.*encoded\[1\] has 3/,
    );
  });
  it('validates everything before building typed arrays', () => {
    const o = { padId: PAD, maxLength: 8 };
    expect(code(() => collateMc([], o))).toMatch(/non-empty/);
    expect(code(() => collateMc([enc([], [4, 5], 0)], o))).toMatch(/ids must be a non-empty/);
    expect(code(() => collateMc([enc([2, -1], [4, 5], 0)], o))).toMatch(/ids\[1\] = -1/);
    expect(code(() => collateMc([enc([2, 1.5], [4, 5], 0)], o))).toMatch(/ids\[1\]/);
    expect(code(() => collateMc([enc([2, 2 ** 31], [4, 5], 0)], o))).toMatch(/ids\[1\]/);
    expect(code(() => collateMc([enc([2, 50], [4, 5], 0)], { ...o, vocabSize: 50 }))).toMatch(/ids\[1\] = 50/);
    expect(code(() => collateMc([enc([2], [4], 0)], o))).toMatch(/at least 2/);
    expect(code(() => collateMc([enc([2], [4, 5], 2)], o))).toMatch(/label 2/);
    expect(code(() => collateMc([enc([2], [4, 5], -2)], o))).toMatch(/label -2/);
    expect(code(() => collateMc([enc([2], [4, 'x' as unknown as number], 0)], o))).toMatch(/rows\[1\]/);
    expect(code(() => collateMc([xs[0]], { ...o, padId: -1 }))).toMatch(/padId/);
    expect(code(() => collateMc([xs[0]], { ...o, maxLength: 0 }))).toMatch(/maxLength/);
    expect(code(() => collateMc([xs[0]], { ...o, side: 'middle' as 'left' }))).toMatch(/side/);
  });
});

describe('collateLm', () => {
  it('builds next-token targets with -1 at the last position and padding', () => {
    const b = collateLm([[2, 10, 11, 12], [2, 20]], { padId: PAD, maxLength: 8 });
    expect([b.B, b.T]).toEqual([2, 4]);
    expect(Array.from(b.ids)).toEqual([2, 10, 11, 12, 2, 20, PAD, PAD]);
    expect(Array.from(b.mask)).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    expect(Array.from(b.targets)).toEqual([10, 11, 12, -1, 20, -1, -1, -1]);
  });
  it('keeps the first maxLength tokens and accepts typed arrays', () => {
    const b = collateLm([Int32Array.from([5, 6, 7, 8, 9])], { padId: PAD, maxLength: 3 });
    expect(Array.from(b.ids)).toEqual([5, 6, 7]);
    expect(Array.from(b.targets)).toEqual([6, 7, -1]);
  });
  it('validates input', () => {
    expect(code(() => collateLm([], { padId: PAD, maxLength: 4 }))).toMatch(/non-empty/);
    expect(code(() => collateLm([[]], { padId: PAD, maxLength: 4 }))).toMatch(/sequences\[0\]/);
    expect(code(() => collateLm([[1, 99]], { padId: PAD, maxLength: 4, vocabSize: 50 }))).toMatch(/sequences\[0\]\[1\] = 99/);
    expect(code(() => collateLm([[1, 2]], { padId: PAD, maxLength: 1.5 }))).toMatch(/maxLength/);
  });
});

describe('chunkTokens', () => {
  it('covers every target once with overlap 1', () => {
    const ids = Array.from({ length: 10 }, (_, i) => i);
    const chunks = chunkTokens(ids, 4);
    expect(chunks).toEqual([
      [0, 1, 2, 3],
      [3, 4, 5, 6],
      [6, 7, 8, 9],
    ]);
    const targets = collateLm(chunks, { padId: 0, maxLength: 4 }).targets.filter((t) => t >= 0);
    expect(Array.from(targets)).toEqual(ids.slice(1));
    expect(chunkTokens(ids, 5, 0)).toEqual([ids.slice(0, 5), ids.slice(5)]);
    expect(chunkTokens([1, 2, 3], 8)).toEqual([[1, 2, 3]]);
    expect(chunkTokens([], 8)).toEqual([]);
    expect(code(() => chunkTokens(ids, 1))).toMatch(/length/);
    expect(code(() => chunkTokens(ids, 4, 4))).toMatch(/overlap/);
  });
});
