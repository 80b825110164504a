// Positions come from the mask, so left- and right-padded batches give the
// same class logits as each example run alone; LoRA (all module kinds, B
// non-zero) matches the float64 reference's W0 a + s B A a.
import { describe, expect, it } from 'vitest';
import { Model } from '../../ts/model.ts';
import { RefLlama } from './llama-reference.ts';
import { ALL_MODULES as ALL, mcBatch, maxAbsDiff, randomExamples, randomizeLora, tinyCheckpoint } from './util.ts';

describe('padding and LoRA forward', () => {
  it('left, right and no padding give the same logits', async () => {
    const m = await Model.load(tinyCheckpoint({ arch: 'llama', kvHeads: 2, std: 0.1 }));
    try {
      m.addLora({ r: 4, targetModules: ALL, alpha: 8 });
      randomizeLora(m, 3);
      const ex = randomExamples(4, 64, 3, 1, 9, 5);
      const left = await m.forward(mcBatch(ex, 'left'));
      const right = await m.forward(mcBatch(ex, 'right'));
      const wide = await m.forward(mcBatch(ex, 'right', 12));
      expect(maxAbsDiff(left.logits, right.logits)).toBeLessThan(1e-6);
      expect(maxAbsDiff(left.logits, wide.logits)).toBeLessThan(1e-6);
      for (let b = 0; b < ex.length; b++) {
        const alone = await m.forward(mcBatch([ex[b]]));
        expect(maxAbsDiff(alone.logits, left.logits.subarray(b * 3, b * 3 + 3))).toBeLessThan(1e-6);
      }
      expect(left.loss).toBeCloseTo(right.loss!, 6);
    } finally {
      m.dispose();
    }
  });

  it('a padding-token id change does not change the logits', async () => {
    const m = await Model.load(tinyCheckpoint({ std: 0.1 }));
    try {
      const ex = randomExamples(2, 64, 2, 2, 6, 9);
      const a = mcBatch(ex, 'left', 8);
      const b = mcBatch(ex, 'left', 8);
      for (let i = 0; i < b.ids.length; i++) if (!b.mask[i]) b.ids[i] = 63;
      expect(maxAbsDiff((await m.forward(a)).logits, (await m.forward(b)).logits)).toBe(0);
    } finally {
      m.dispose();
    }
  });

  for (const arch of ['llama', 'qwen2'] as const) {
    it(`LoRA on every module kind matches the reference (${arch})`, async () => {
      const dir = tinyCheckpoint({ arch, kvHeads: 2, std: 0.1, tie: arch === 'llama' });
      const ref = new RefLlama(dir);
      const m = await Model.load(dir);
      try {
        m.addLora({ r: 3, alpha: 6, targetModules: ALL, seed: 2 });
        // Fresh LoRA (B = 0) leaves the model unchanged.
        const ex = randomExamples(3, 64, 4, 2, 6, 21);
        const base = await m.forward(mcBatch(ex));
        ex.forEach((e, b) => {
          const want = ref.classLogits(e.ids, e.rows);
          for (let c = 0; c < 4; c++) expect(Math.abs(base.logits[b * 4 + c] - want[c])).toBeLessThan(5e-6);
        });
        const lora = randomizeLora(m, 8);
        const r = await m.forward(mcBatch(ex));
        let moved = 0;
        ex.forEach((e, b) => {
          const want = ref.classLogits(e.ids, e.rows, lora);
          for (let c = 0; c < 4; c++) {
            expect(Math.abs(r.logits[b * 4 + c] - want[c])).toBeLessThan(5e-6);
            moved = Math.max(moved, Math.abs(r.logits[b * 4 + c] - base.logits[b * 4 + c]));
          }
        });
        expect(moved).toBeGreaterThan(1e-2); // LoRA really changed the logits
      } finally {
        m.dispose();
      }
    });
  }

  it('rsLoRA scale and regex targets', async () => {
    const m = await Model.load(tinyCheckpoint());
    try {
      m.addLora({ r: 4, alpha: 8, useRslora: true, targetModules: 'model\\.layers\\.1\\.self_attn\\.(q|v)_proj' });
      const w = m.getLoraWeights();
      expect(w.map((x) => x.path)).toEqual(['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
      expect(w[0].scale).toBeCloseTo(8 / 2, 6);
      // PEFT init: A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)), B = 0.
      const bound = 1 / Math.sqrt(32);
      expect(Math.max(...w[0].A.map(Math.abs))).toBeLessThanOrEqual(bound);
      expect(Math.max(...w[0].A.map(Math.abs))).toBeGreaterThan(0.8 * bound);
      expect(w[0].B.every((x) => x === 0)).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it('LoRA init is seeded and reproducible', async () => {
    const dir = tinyCheckpoint();
    const a = await Model.load(dir);
    const b = await Model.load(dir);
    try {
      a.addLora({ seed: 7 });
      b.addLora({ seed: 7 });
      expect(Array.from(a.getLoraWeights()[1].A)).toEqual(Array.from(b.getLoraWeights()[1].A));
      b.removeLora();
      b.addLora({ seed: 8 });
      expect(maxAbsDiff(a.getLoraWeights()[1].A, b.getLoraWeights()[1].A)).toBeGreaterThan(0);
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});
