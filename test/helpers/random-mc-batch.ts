// A seeded random multiple-choice batch (full-length rows, random answer ids
// and labels) for tests that need one shape of data, not particular values.
import type { McBatch } from '../../ts/data/batch.ts';
import { Rng } from './reference.ts';

export function randomMcBatch(vocab: number, B = 4, T = 24, C = 4, seed = 11): McBatch {
  const r = new Rng(seed);
  const tok = () => r.int(4, vocab - 1);
  return {
    B, T, C,
    ids: Int32Array.from({ length: B * T }, tok),
    mask: new Uint8Array(B * T).fill(1),
    last: new Int32Array(B).fill(T - 1),
    rows: Int32Array.from({ length: B * C }, tok),
    labels: Int32Array.from({ length: B }, () => r.int(0, C - 1)),
  };
}
