// Resuming training from a checkpoint: N steps straight equal k steps, an
// interruption, and a resume to N, bit for bit (LoRA weights, losses, AdamW
// state, dropout masks, data order across epochs and accumulation groups);
// half-written checkpoints are never picked; a resume with other options,
// data or LoRA config is refused; NaN/Inf stops training naming the step and
// keeps the last good checkpoint (or skips, when configured).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { McBatch } from '../../ts/data/batch.ts';
import { Model } from '../../ts/model.ts';
import { train, type TrainOptions } from '../../ts/train.ts';
import { CHECKPOINT_MANIFEST, findTrainCheckpoint, OPTIMIZER_FILE, verifyTrainCheckpoint } from '../../ts/train-checkpoint.ts';
import { expectCode, mcBatch, prng, tinyCheckpoint, tmpDir, type Example } from './util.ts';

function task(n: number, seed: number): Example[] {
  const r = prng(seed);
  return Array.from({ length: n }, () => {
    const len = 3 + Math.floor(r() * 4);
    const ids = Array.from({ length: len }, () => 12 + Math.floor(r() * 50));
    return { ids, rows: [10, 11, 12], label: ids[len - 1] % 3 };
  });
}

const data: McBatch[] = [];
{
  const ex = task(30, 7);
  for (let i = 0; i < ex.length; i += 6) data.push(mcBatch(ex.slice(i, i + 6), i % 12 ? 'left' : 'right'));
}
const modelDir = tinyCheckpoint({ std: 0.1, seed: 4 });
const LORA = { r: 2, alpha: 4, dropout: 0.2, targetModules: ['q_proj', 'v_proj', 'down_proj', 'lm_head'], seed: 9 };
// 5 micro-batches, accumulation 2 -> 3 steps per epoch (the last group has one); 4 epochs -> 12 steps.
const OPTS: TrainOptions = { epochs: 4, gradAccumulation: 2, lr: 5e-3, warmupSteps: 2, schedule: 'cosine', seed: 3, weightDecay: 0.01 };

async function fresh(): Promise<Model> {
  const m = await Model.load(modelDir);
  m.addLora(LORA);
  return m;
}

function weights(m: Model): number[] {
  return m.getLoraWeights().flatMap((w) => [...w.A, ...w.B]);
}

describe('training checkpoints and resume', () => {
  it('k steps + kill + resume equals N steps straight, bit for bit', async () => {
    const a = await fresh();
    const straight = await train(a, data, OPTS);
    const wa = weights(a);
    a.dispose();
    expect(straight.steps).toBe(12);

    // Interrupted run: stops (AbortSignal) right after the checkpoint at step 4
    // (mid-epoch: after micro-batch 4 of 5 in epoch 1) and the one at step 8.
    const ck = tmpDir('bl-resume-');
    for (const stopAt of [4, 8]) {
      const ac = new AbortController();
      const b = await fresh();
      await expectCode(
        train(b, data, {
          ...OPTS,
          checkpointDir: ck,
          checkpointEvery: 4,
          resume: true,
          signal: ac.signal,
          onCheckpoint: (c) => {
            if (c.step === stopAt) ac.abort();
          },
        }),
        'ABORTED',
      );
      b.dispose();
    }
    expect(path.basename(findTrainCheckpoint(ck)!)).toBe('checkpoint-000008');

    const c = await fresh();
    const resumed = await train(c, data, { ...OPTS, checkpointDir: ck, checkpointEvery: 4, resumeFrom: ck });
    expect(resumed.resumedFrom?.step).toBe(8);
    expect(resumed.steps).toBe(12);
    expect(resumed.losses).toEqual(straight.losses);
    expect(resumed.examples).toBe(straight.examples);
    expect(resumed.epochs).toBe(straight.epochs);
    expect(weights(c)).toEqual(wa);
    expect(c.info().optimizerSteps).toBe(12);
    c.dispose();
  });

  it('skips a half-written checkpoint and refuses mismatched options, data or LoRA', async () => {
    const ck = tmpDir('bl-resume-');
    const m = await fresh();
    await train(m, data, { ...OPTS, epochs: 2, checkpointDir: ck, checkpointEvery: 2 });
    m.dispose();
    const c2 = path.join(ck, 'checkpoint-000002');
    const c4 = path.join(ck, 'checkpoint-000004');
    const c6 = path.join(ck, 'checkpoint-000006');
    verifyTrainCheckpoint(c6);
    // A crash before the manifest: never picked.
    rmSync(path.join(c6, CHECKPOINT_MANIFEST));
    expect(findTrainCheckpoint(ck)).toBe(c4);
    // A file damaged after the manifest: rejected (size/SHA-256 mismatch).
    const f = path.join(c4, OPTIMIZER_FILE);
    const bytes = readFileSync(f);
    bytes[bytes.length - 1] ^= 0x40;
    writeFileSync(f, bytes);
    expect(() => verifyTrainCheckpoint(c4)).toThrow(/does not match the manifest/);
    expect(findTrainCheckpoint(ck)).toBe(c2);
    expect(findTrainCheckpoint(path.join(ck, 'nothing-here'))).toBe(null);

    const n = await fresh();
    try {
      await expectCode(train(n, data, { ...OPTS, epochs: 2, lr: 1e-3, resumeFrom: c2 }), 'INVALID_ARGUMENT');
      await expectCode(train(n, data.slice(1), { ...OPTS, epochs: 2, resumeFrom: c2 }), 'INVALID_ARGUMENT');
      await expectCode(train(n, data, { ...OPTS, epochs: 2, resumeFrom: c6 }), 'BAD_FILE');
      await expectCode(train(n, data, { ...OPTS, epochs: 2, resumeFrom: path.join(ck, 'nothing-here') }), 'INVALID_ARGUMENT');
      const r = await train(n, data, { ...OPTS, epochs: 2, resumeFrom: c2 });
      expect(r.resumedFrom?.step).toBe(2);
      expect(r.steps).toBe(6);
    } finally {
      n.dispose();
    }
    const other = await Model.load(modelDir);
    try {
      other.addLora({ ...LORA, seed: 10 });
      await expectCode(train(other, data, { ...OPTS, epochs: 2, resumeFrom: c2 }), 'INVALID_ARGUMENT');
    } finally {
      other.dispose();
    }
  });

  it('NaN/Inf stops training naming the step and keeps the last good checkpoint, or skips', async () => {
    const ck = tmpDir('bl-nan-');
    const blowUp = (m: Model) =>
      m.setLoraWeights(m.getLoraWeights().filter((w) => w.kind === 'lm_head').map((w) => ({ path: w.path, B: w.B.map(() => 3e38) })));
    const m = await fresh();
    try {
      const err = await expectCode(
        train(m, data, { ...OPTS, checkpointDir: ck, checkpointEvery: 2, onProgress: (p) => p.step === 3 && blowUp(m) }),
        'NUMERICAL_ERROR',
      );
      expect(err.message).toMatch(/^train: step 4 of 12 \(epoch 1, micro-batches 0\.\.1\): training step 4: loss is not finite/);
      expect(err.message).toContain(`the last good checkpoint is ${path.join(ck, 'checkpoint-000002')}`);
      expect(findTrainCheckpoint(ck)).toBe(path.join(ck, 'checkpoint-000002'));
    } finally {
      m.dispose();
    }
    const s = await fresh();
    try {
      const r = await train(s, data, { ...OPTS, skipNonFinite: true, onProgress: (p) => p.step === 3 && blowUp(s) });
      expect(r.steps).toBe(12);
      expect(r.skippedSteps).toBe(9);
      expect(r.losses.slice(0, 3).every(Number.isFinite)).toBe(true);
    } finally {
      s.dispose();
    }
  });
});
