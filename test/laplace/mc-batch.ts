// Seeded multiple-choice batches with padding for the Laplace tests: B
// examples right-padded to T with real lengths `lens`, C distinct answer rows
// each, labels in [0, C) (or -1 when unlabelled).
import type { McBatch } from '../../ts/data/batch.ts';
import { rng } from './dense.ts';

export function paddedMcBatch(vocab: number, seed: number, lens: number[], T: number, C: number, labelled = true): McBatch {
  const r = rng(seed);
  const B = lens.length;
  const ids = new Int32Array(B * T);
  const mask = new Uint8Array(B * T);
  const last = new Int32Array(B);
  const rows = new Int32Array(B * C);
  const labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = Math.floor(r() * vocab);
      mask[b * T + t] = t < lens[b] ? 1 : 0;
    }
    last[b] = lens[b] - 1;
    const perm = Array.from({ length: vocab }, (_, i) => i).sort(() => r() - 0.5);
    for (let c = 0; c < C; c++) rows[b * C + c] = perm[c];
    labels[b] = labelled ? Math.floor(r() * C) : -1;
  }
  return { B, T, C, ids, mask, last, rows, labels };
}
