// The seeded multiple-choice batch of test/api/worker-threads.test.ts.
import type { McBatch } from '../../ts/data/batch.ts';

export function wtBatch(vocab: number, B = 4, T = 24, C = 4): McBatch {
  let s = 11;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const tok = () => 4 + Math.floor(rnd() * (vocab - 4));
  return {
    B, T, C,
    ids: Int32Array.from({ length: B * T }, tok),
    mask: new Uint8Array(B * T).fill(1),
    last: new Int32Array(B).fill(T - 1),
    rows: Int32Array.from({ length: B * C }, tok),
    labels: Int32Array.from({ length: B }, () => Math.floor(rnd() * C)),
  };
}
