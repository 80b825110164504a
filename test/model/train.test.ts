// Training: AdamW steps reduce the loss on a tiny learnable task, runs are
// bit-reproducible with a seed, gradient accumulation equals the big batch,
// NaN/Inf are typed errors (or skipped), full-parameter LM training reduces
// the LM loss and round-trips through saveModel; train() schedules, evaluates,
// checkpoints and aborts.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { McBatch } from '../../ts/data/batch.ts';
import { Model } from '../../ts/model.ts';
import { learningRate, train, type TrainProgress } from '../../ts/train.ts';
import { isAdapterDir } from '../../ts/adapter.ts';
import { expectCode, lmBatch, mcBatch, maxAbs, maxAbsDiff, prng, tinyCheckpoint, tmpDir, type Example } from './util.ts';

/** Label = parity of the last prompt token; answers are tokens 10 and 11. */
function parityTask(n: number, seed: number): Example[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => {
    const len = 3 + Math.floor(r() * 4);
    const ids = Array.from({ length: len }, () => 12 + Math.floor(r() * 50));
    return { ids, rows: [10, 11], label: ids[len - 1] % 2 };
  });
}

function toBatches(ex: Example[], bs: number): McBatch[] {
  const out: McBatch[] = [];
  for (let i = 0; i < ex.length; i += bs) out.push(mcBatch(ex.slice(i, i + bs), i % 2 ? 'left' : 'right'));
  return out;
}

async function meanLoss(m: Model, batches: McBatch[]): Promise<number> {
  let s = 0;
  for (const b of batches) s += (await m.forward(b)).loss!;
  return s / batches.length;
}

describe('MAP training', () => {
  it('reduces the loss on a tiny task and is bit-reproducible with a seed', async () => {
    const dir = tinyCheckpoint({ arch: 'llama', std: 0.1 });
    const data = toBatches(parityTask(32, 1), 8);
    const run = async (seed: number) => {
      const m = await Model.load(dir);
      m.addLora({ r: 4, alpha: 8, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj', 'lm_head'], seed: 3 });
      const before = await meanLoss(m, data);
      const res = await train(m, data, { epochs: 12, lr: 1e-2, warmupSteps: 4, seed, schedule: 'cosine', maxGradNorm: 1 });
      const after = await meanLoss(m, data);
      const w = m.getLoraWeights();
      m.dispose();
      return { before, after, res, w };
    };
    const a = await run(5);
    expect(a.res.steps).toBe(48);
    expect(a.after).toBeLessThan(0.35 * a.before);
    const b = await run(5);
    expect(b.res.losses).toEqual(a.res.losses);
    for (let k = 0; k < a.w.length; k++) {
      expect(Array.from(b.w[k].A)).toEqual(Array.from(a.w[k].A));
      expect(Array.from(b.w[k].B)).toEqual(Array.from(a.w[k].B));
    }
    const c = await run(6); // another data order
    expect(maxAbsDiff(c.w[0].A, a.w[0].A)).toBeGreaterThan(0);
  });

  it('gradient accumulation equals the full batch', async () => {
    const dir = tinyCheckpoint({ std: 0.1 });
    const ex = parityTask(4, 2);
    const m = await Model.load(dir);
    try {
      m.addLora({ r: 2, targetModules: ['q_proj', 'lm_head'], seed: 1 });
      const B = m.getLoraWeights().map((w) => ({ path: w.path, B: Float32Array.from(w.B, (_, i) => Math.sin(i + 1) * 0.1) }));
      m.setLoraWeights(B);
      await m.backward(mcBatch(ex));
      const full = m.getLoraGrads();
      m.zeroGrads();
      await m.backward(mcBatch(ex.slice(0, 2), 'right'), { gradScale: 0.5 });
      await m.backward(mcBatch(ex.slice(2), 'left'), { gradScale: 0.5 });
      const acc = m.getLoraGrads();
      for (let k = 0; k < full.length; k++) {
        expect(maxAbsDiff(acc[k].A, full[k].A)).toBeLessThan(1e-6 * Math.max(1, maxAbs(full[k].A)));
        expect(maxAbsDiff(acc[k].B, full[k].B)).toBeLessThan(1e-6 * Math.max(1, maxAbs(full[k].B)));
      }
      // The optimiser step reports the global norm of the accumulated gradients and zeroes them.
      const norm = Math.hypot(...acc.flatMap((g) => [...g.A, ...g.B]));
      const st = await m.optimizerStep({ lr: 1e-3 });
      expect(st.gradNorm).toBeCloseTo(norm, 5);
      expect(st.step).toBe(1);
      expect(m.getLoraGrads().every((g) => g.A.every((x) => x === 0) && g.B.every((x) => x === 0))).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it('NaN/Inf loss is NUMERICAL_ERROR naming the step, or a skipped step', async () => {
    const m = await Model.load(tinyCheckpoint(), { fullTraining: true });
    try {
      const batch = mcBatch(parityTask(2, 3));
      await m.trainStep(batch, { lr: 1e-3 });
      // Every LM-head row at float max: the class logits overflow to +-Inf.
      const E = m.getWeight('lm_head.weight');
      m.setWeight('lm_head.weight', E.map(() => 3e38));
      const e = await expectCode(m.trainStep(batch, { lr: 1e-3 }), 'NUMERICAL_ERROR');
      expect(e.message).toContain('step 2');
      const s = await m.trainStep(batch, { lr: 1e-3, skipNonFinite: true });
      expect(s.skipped).toBe(true);
      expect(s.stepped).toBe(false);
      expect(s.step).toBe(1);
      m.setWeight('lm_head.weight', E);
      const ok = await m.trainStep(batch, { lr: 1e-3 });
      expect(ok.stepped).toBe(true);
      expect(ok.step).toBe(2);
    } finally {
      m.dispose();
    }
  });

  it('full-parameter LM training reduces the loss and round-trips through saveModel', async () => {
    const m = await Model.load(tinyCheckpoint({ arch: 'llama', vocab: 32, tie: true }));
    try {
      m.enableFullTraining();
      expect(m.info().numTrainable).toBe(m.info().numParams);
      const r = prng(8);
      const seqs = Array.from({ length: 4 }, (_, b) => Array.from({ length: 6 + b }, (_, t) => (b * 3 + t * 5 + Math.floor(r() * 2)) % 32));
      const batch = lmBatch(seqs);
      const first = (await m.lmLoss(batch)).loss!;
      let last = first;
      for (let i = 0; i < 30; i++) last = (await m.lmStep(batch, { lr: 3e-3, maxGradNorm: 1 })).loss!;
      const after = (await m.lmLoss(batch)).loss!;
      expect(after).toBeLessThan(0.5 * first);
      expect(last).toBeGreaterThan(after - 1e-3); // the step's loss is measured before its update
      const out = tmpDir();
      await m.saveModel(out);
      const m2 = await Model.load(out);
      try {
        expect((await m2.lmLoss(batch)).loss!).toBeCloseTo(after, 6);
        expect(m2.info().config.tieWordEmbeddings).toBe(true);
      } finally {
        m2.dispose();
      }
    } finally {
      m.dispose();
    }
  });
});

describe('train()', () => {
  it('learning-rate schedules', () => {
    expect(learningRate(0, 100, 1, 10, 'linear')).toBeCloseTo(0.1);
    expect(learningRate(9, 100, 1, 10, 'linear')).toBeCloseTo(1);
    expect(learningRate(55, 100, 1, 10, 'linear')).toBeCloseTo(0.5);
    expect(learningRate(100, 100, 1, 10, 'linear', 0.1)).toBeCloseTo(0.1);
    expect(learningRate(55, 100, 1, 10, 'cosine')).toBeCloseTo(0.5);
    expect(learningRate(10, 100, 1, 10, 'cosine')).toBeCloseTo(1);
    expect(learningRate(70, 100, 2, 0, 'constant')).toBe(2);
  });

  it('accumulates, evaluates, checkpoints, reports progress and aborts', async () => {
    const dir = tinyCheckpoint();
    const m = await Model.load(dir);
    try {
      m.addLora({ r: 2 });
      const data = toBatches(parityTask(24, 4), 4); // 6 micro-batches
      const progress: TrainProgress[] = [];
      const evalSteps: number[] = [];
      const ck = tmpDir();
      const res = await train(m, data, {
        epochs: 2,
        gradAccumulation: 2,
        lr: 1e-3,
        warmupRatio: 0.5,
        evalEvery: 2,
        evaluate: async (mm, at) => {
          evalSteps.push(at.step);
          return (await meanLoss(mm, data.slice(0, 1)));
        },
        checkpointDir: ck,
        checkpointEvery: 3,
        onProgress: (p) => progress.push(p),
      });
      expect(res.steps).toBe(6);
      expect(progress.map((p) => p.step)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(progress[0].lr).toBeCloseTo(1e-3 / 3);
      expect(progress[2].lr).toBeCloseTo(1e-3);
      expect(progress.at(-1)!.examples).toBe(48);
      expect(evalSteps).toEqual([2, 4, 6]);
      expect(res.checkpoints.map((p) => path.basename(p))).toEqual(['checkpoint-000003', 'checkpoint-000006']);
      expect(res.checkpoints.every(isAdapterDir)).toBe(true);

      const ac = new AbortController();
      const p = train(m, data, { epochs: 3, lr: 1e-3, signal: ac.signal, onProgress: (pp) => pp.step === 2 && ac.abort() });
      await expectCode(p, 'ABORTED');
      expect(existsSync(ck)).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it('trains from encoded examples with collate options', async () => {
    const m = await Model.load(tinyCheckpoint());
    try {
      m.addLora({ r: 2, targetModules: ['v_proj', 'lm_head'] });
      const ex = parityTask(10, 9);
      const res = await train(m, ex, { batchSize: 4, lr: 1e-3, collate: { padId: 0, maxLength: 16 } });
      expect(res.steps).toBe(3);
      expect(res.examples).toBe(10);
      await expectCode(() => train(m, ex, { batchSize: 4 }), 'INVALID_ARGUMENT');
    } finally {
      m.dispose();
    }
  });
});
