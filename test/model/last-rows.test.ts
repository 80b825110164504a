// The multiple-choice last-layer shortcut (llama.h forward_mc): the
// last layer runs o_proj, its residual, norm and MLP on the answer rows only.
// It must give the full path's numbers: eval logits, a training trajectory
// (dropout 0, and dropout 0.1 both where the shortcut steps aside and where
// only q/v carry dropout), and observer passes after a shortened forward
// (which recompute the last layer in full only when its o_proj or MLP has
// LoRA; otherwise they observe q/k/v on the answer-rows backward). The full path is forced with
// BAYESLORA_FULL_LAST_LAYER=1 (read at each forward; this file runs in its
// own forked process).
//
// Tolerance: the shortcut changes only the row count of the last layer's
// GEMMs, so each kept row is the same float32 dot products, at most reordered
// by the BLAS blocking; 1e-5 relative is ~100 float32 ulps, far below any
// real difference (a wrong row or a missing term moves logits by >= 1e-2).
import { afterEach, describe, expect, it } from 'vitest';
import type { McBatch } from '../../ts/data/batch.ts';
import { Model } from '../../ts/model.ts';
import { Laplace } from '../../ts/laplace/laplace.ts';
import { ALL_MODULES, maxAbs, maxAbsDiff, mcBatch, randomExamples, randomizeLora, tinyCheckpoint } from './util.ts';

const ENV = 'BAYESLORA_FULL_LAST_LAYER';
const REL = 1e-5;

function setFull(full: boolean): void {
  if (full) process.env[ENV] = '1';
  else delete process.env[ENV];
}
afterEach(() => setFull(false));

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  const tol = REL * Math.max(1, maxAbs(a));
  const d = maxAbsDiff(a, b);
  expect(d, `${what}: max diff ${d} > ${tol}`).toBeLessThanOrEqual(tol);
}

const dir = tinyCheckpoint({ arch: 'llama', kvHeads: 2, std: 0.15, layers: 2 });
const batches: McBatch[] = [0, 1, 2, 3].map((k) =>
  mcBatch(randomExamples(4, 64, 3, 2, 7, 100 + k), k % 2 ? 'left' : 'right'),
);

async function trajectory(full: boolean, dropout: number, targets: string[]) {
  setFull(full);
  const m = await Model.load(dir);
  m.addLora({ r: 3, alpha: 6, dropout, targetModules: targets, seed: 7 });
  randomizeLora(m, 5, 0.3); // nonzero B: every LoRA term is live from step 1
  const losses: number[] = [];
  for (let s = 0; s < 8; s++) losses.push((await m.trainStep(batches[s % batches.length], { lr: 2e-2 })).loss!);
  const logits = (await m.forward(batches[0])).logits;
  const w = m.getLoraWeights();
  m.dispose();
  return { losses, logits, w };
}

describe('last-layer answer-rows shortcut', () => {
  const cases: [number, string[]][] = [
    [0, ALL_MODULES],
    [0.1, ALL_MODULES], // training keeps the full last layer (o/gate/up/down dropout); eval shortens
    [0.1, ['q_proj', 'v_proj', 'lm_head']], // training shortened too: dropout only before attention
  ];
  for (const [dropout, targets] of cases) {
    it(`training trajectory and eval logits equal the full path (dropout ${dropout}, ${targets.length} targets)`, async () => {
      const a = await trajectory(false, dropout, targets);
      const b = await trajectory(true, dropout, targets);
      close(a.losses, b.losses, 'losses');
      close(a.logits, b.logits, 'eval logits');
      for (let k = 0; k < a.w.length; k++) {
        close(a.w[k].A, b.w[k].A, `${a.w[k].path} A`);
        close(a.w[k].B, b.w[k].B, `${a.w[k].path} B`);
      }
      // the run learnt something, so equal trajectories are not trivially equal
      expect(maxAbsDiff(a.losses.slice(0, 1), a.losses.slice(-1))).toBeGreaterThan(1e-3);
    });
  }

  // All modules: the observer pass recomputes the last layer in full (it
  // observes o_proj and the MLP on every row). q/v/lm_head only: the observer
  // pass stays on the answer rows and observes q/k/v through the scattered
  // attention gradient.
  for (const targets of [ALL_MODULES, ['q_proj', 'v_proj', 'lm_head']])
  it(`gradients, and observer passes after a shortened forward, equal the full path (${targets.length} targets)`, async () => {
    const run = async (full: boolean) => {
      setFull(full);
      const m = await Model.load(dir);
      m.addLora({ r: 3, alpha: 6, targetModules: targets, seed: 7 });
      randomizeLora(m, 9, 0.3);
      const out = await m.forward(batches[1]);
      const b = batches[1];
      const seed = new Float32Array(out.probs); // d(sum CE)/dlogits
      for (let i = 0; i < b.B; i++) seed[i * b.C + b.labels![i]] -= 1;
      await m.backwardSeed(seed);
      const grads = m.getLoraGrads();
      const rec = await m.observeBackward(seed);
      await m.backwardSeed(seed); // and the forward stays valid afterwards
      const grads2 = m.getLoraGrads();
      m.dispose();
      return { logits: out.logits, grads, grads2, rec };
    };
    const a = await run(false);
    const b = await run(true);
    close(a.logits, b.logits, 'logits');
    for (let k = 0; k < a.grads.length; k++) {
      close(a.grads[k].A, b.grads[k].A, `${a.grads[k].path} dA`);
      close(a.grads[k].B, b.grads[k].B, `${a.grads[k].path} dB`);
      close(a.grads2[k].A, b.grads2[k].A, `${a.grads[k].path} dA (after observer)`);
      close(a.grads2[k].B, b.grads2[k].B, `${a.grads[k].path} dB (after observer)`);
    }
    expect(a.rec.length).toBe(b.rec.length);
    for (let k = 0; k < a.rec.length; k++) {
      expect([a.rec[k].B, a.rec[k].T]).toEqual([b.rec[k].B, b.rec[k].T]);
      close(a.rec[k].x, b.rec[k].x, `observed x ${k}`);
      close(a.rec[k].g, b.rec[k].g, `observed g ${k}`);
    }
  });
  // Laplace.fit and predict run their forwards on the answer rows (fit.cc
  // forward_chunk): the exact-Fisher passes and the Jacobian passes must give
  // the full path's log-likelihood, log-determinant and Lambda, with and
  // without LoRA on the last layer's o_proj/MLP, for reduce, expand and aligned.
  for (const targets of [ALL_MODULES, ['q_proj', 'v_proj', 'lm_head']])
    for (const tokens of ['reduce', 'expand', 'aligned'] as const)
      it(`Laplace fit and predict equal the full path (${targets.length} targets, ${tokens})`, async () => {
        const run = async (full: boolean) => {
          setFull(full);
          const m = await Model.load(dir);
          m.addLora({ r: 3, alpha: 6, targetModules: targets, seed: 7 });
          randomizeLora(m, 9, 0.3);
          const la = await Laplace.fit(m, batches.slice(0, 3), { fisher: 'exact', prior: 2, nKfac: 8, tokens });
          const s = la.summary();
          const pred = await la.predict(batches[3], { method: 'probit' });
          la.dispose();
          m.dispose();
          return { logMarglik: s.logMarglik, logits: pred.logits, lambda: pred.lambda, probs: pred.probs };
        };
        const a = await run(false);
        const b = await run(true);
        close([a.logMarglik], [b.logMarglik], 'log marginal likelihood');
        close(a.logits, b.logits, 'predict logits');
        close(a.lambda, b.lambda, 'Lambda');
        close(a.probs, b.probs, 'probit probabilities');
      });
});
