// Finite-difference checks of the whole model's backward pass: the mean
// class-logit cross-entropy w.r.t. LoRA A and B entries (B non-zero, every
// module kind, padded batch), w.r.t. base weights in full-training mode, and
// the LM loss w.r.t. LoRA. Float32 forward, so: Richardson-extrapolated
// central differences of a loss of O(1), checked per entry on the largest
// gradients and along the gradient direction of each matrix.
import { describe, expect, it } from 'vitest';
import type { LmBatch, McBatch } from '../../ts/data/batch.ts';
import { Model } from '../../ts/model.ts';
import { ALL_MODULES, lmBatch, mcBatch, prng, randomExamples, randomizeLora, tinyCheckpoint } from './util.ts';

type Loss = () => Promise<number>;

/** Richardson-extrapolated central difference of f along a perturbation applied by set(t). */
async function fd(set: (t: number) => void, loss: Loss, h: number): Promise<number> {
  const at = async (t: number) => {
    set(t);
    return loss();
  };
  const d1 = ((await at(h)) - (await at(-h))) / (2 * h);
  const d2 = ((await at(h / 2)) - (await at(-h / 2))) / h;
  set(0);
  return (4 * d2 - d1) / 3;
}

function topIndices(g: Float32Array, k: number): number[] {
  return Array.from(g.keys())
    .sort((a, b) => Math.abs(g[b]) - Math.abs(g[a]))
    .slice(0, k);
}

/** Check a flat parameter (get/set) against its analytic gradient. */
async function checkParam(
  name: string,
  value: Float32Array,
  grad: Float32Array,
  write: (v: Float32Array) => void,
  loss: Loss,
  h: number,
): Promise<void> {
  const base = Float32Array.from(value);
  const gnorm = Math.hypot(...grad);
  expect(gnorm, `${name}: gradient is zero`).toBeGreaterThan(1e-6);
  // Along the gradient direction: directional derivative = |g|.
  const dir = Float32Array.from(grad, (x) => x / gnorm);
  const dd = await fd(
    (t) => write(Float32Array.from(base, (x, i) => x + t * dir[i])),
    loss,
    h,
  );
  expect(Math.abs(dd - gnorm), `${name}: directional ${dd} vs |g| ${gnorm}`).toBeLessThan(2e-3 * gnorm + 2e-5);
  // The largest entries one by one.
  for (const i of topIndices(grad, 3)) {
    const e = await fd(
      (t) => {
        const v = Float32Array.from(base);
        v[i] += t;
        write(v);
      },
      loss,
      h,
    );
    expect(Math.abs(e - grad[i]), `${name}[${i}]: fd ${e} vs ${grad[i]}`).toBeLessThan(5e-3 * Math.abs(grad[i]) + 3e-5);
  }
  write(base);
}

async function mcLoss(m: Model, batch: McBatch): Promise<number> {
  return (await m.forward(batch)).loss!;
}

async function mcGrads(m: Model, batch: McBatch) {
  m.zeroGrads();
  await m.backward(batch);
  return m.getLoraGrads();
}

describe('finite-difference gradient checks', () => {
  it('LoRA A and B on every module kind (qwen2, GQA, padded batch)', async () => {
    const m = await Model.load(tinyCheckpoint({ arch: 'qwen2', kvHeads: 2, std: 0.15, layers: 2 }));
    try {
      m.addLora({ r: 2, alpha: 4, targetModules: ALL_MODULES });
      randomizeLora(m, 4, 0.3);
      const batch = mcBatch(randomExamples(3, 64, 3, 2, 6, 17), 'left');
      const grads = await mcGrads(m, batch);
      const weights = m.getLoraWeights();
      const loss = () => mcLoss(m, batch);
      for (let k = 0; k < weights.length; k++) {
        const w = weights[k];
        await checkParam(`${w.path}.A`, w.A, grads[k].A, (v) => m.setLoraWeights([{ path: w.path, A: v }]), loss, 2e-2);
        await checkParam(`${w.path}.B`, w.B, grads[k].B, (v) => m.setLoraWeights([{ path: w.path, B: v }]), loss, 2e-2);
      }
    } finally {
      m.dispose();
    }
  });

  it('LoRA in one upper layer and on the LM head only (backward stops early)', async () => {
    for (const targets of [['model.layers.1.mlp.up_proj', 'model.layers.1.self_attn.k_proj'], ['lm_head']]) {
      const m = await Model.load(tinyCheckpoint({ arch: 'llama', std: 0.15, layers: 3, tie: true }));
      try {
        m.addLora({ r: 2, alpha: 2, targetModules: targets });
        randomizeLora(m, 6, 0.3);
        const batch = mcBatch(randomExamples(2, 64, 4, 3, 5, 3), 'right');
        const grads = await mcGrads(m, batch);
        const loss = () => mcLoss(m, batch);
        for (const [k, w] of m.getLoraWeights().entries()) {
          await checkParam(`${w.path}.A`, w.A, grads[k].A, (v) => m.setLoraWeights([{ path: w.path, A: v }]), loss, 2e-2);
          await checkParam(`${w.path}.B`, w.B, grads[k].B, (v) => m.setLoraWeights([{ path: w.path, B: v }]), loss, 2e-2);
        }
      } finally {
        m.dispose();
      }
    }
  });

  it('base weights in full-training mode (untied llama with biases via qwen2)', async () => {
    for (const arch of ['llama', 'qwen2'] as const) {
      const m = await Model.load(tinyCheckpoint({ arch, std: 0.15, kvHeads: 2 }), { fullTraining: true });
      try {
        m.addLora({ r: 2, targetModules: ['v_proj'] });
        randomizeLora(m, 2, 0.3);
        const batch = mcBatch(randomExamples(3, 64, 3, 2, 6, 29), 'left');
        m.zeroGrads();
        await m.backward(batch);
        const names = [
          'model.embed_tokens.weight',
          'model.layers.0.input_layernorm.weight',
          'model.layers.0.self_attn.q_proj.weight',
          'model.layers.0.self_attn.k_proj.weight',
          'model.layers.0.mlp.gate_proj.weight',
          'model.layers.1.self_attn.o_proj.weight',
          'model.layers.1.post_attention_layernorm.weight',
          'model.layers.1.mlp.down_proj.weight',
          'model.norm.weight',
          'lm_head.weight',
          ...(arch === 'qwen2' ? ['model.layers.0.self_attn.k_proj.bias', 'model.layers.1.self_attn.v_proj.bias'] : []),
        ];
        const grads = new Map(names.map((n) => [n, m.getWeightGrad(n)]));
        const loraGrad = m.getLoraGrads();
        const loss = () => mcLoss(m, batch);
        for (const n of names) await checkParam(n, m.getWeight(n), grads.get(n)!, (v) => m.setWeight(n, v), loss, 1e-2);
        // LoRA gradients are still computed in full mode.
        const w = m.getLoraWeights()[0];
        await checkParam('lora v A', w.A, loraGrad[0].A, (v) => m.setLoraWeights([{ path: w.path, A: v }]), loss, 2e-2);
      } finally {
        m.dispose();
      }
    }
  });

  it('LoRA with dropout: backward uses the masks of its forward', async () => {
    const m = await Model.load(tinyCheckpoint({ arch: 'llama', std: 0.15, kvHeads: 2 }));
    try {
      m.addLora({ r: 2, alpha: 4, dropout: 0.3, targetModules: ['q_proj', 'down_proj', 'lm_head'], seed: 4 });
      randomizeLora(m, 5, 0.3);
      const batch = mcBatch(randomExamples(3, 64, 3, 3, 6, 8), 'left');
      const opts = { train: true, dropoutStep: 7 };
      const evalOut = await m.forward(batch);
      const f = await m.forward(batch, opts);
      expect(Math.abs(f.loss! - evalOut.loss!)).toBeGreaterThan(1e-4); // masks applied
      expect((await m.forward(batch, { train: true, dropoutStep: 8 })).loss).not.toBe(f.loss);
      expect((await m.forward(batch, opts)).loss).toBe(f.loss); // masks fixed by the step
      // Seed: d(mean CE)/dlogits = (p - onehot) / n.
      const seed = Float32Array.from(f.probs, (p, i) => (p - (batch.labels[Math.floor(i / 3)] === i % 3 ? 1 : 0)) / 3);
      await m.backwardSeed(seed);
      const grads = m.getLoraGrads();
      const loss = async () => (await m.forward(batch, opts)).loss!;
      for (const [k, w] of m.getLoraWeights().entries()) {
        await checkParam(`${w.path}.A`, w.A, grads[k].A, (v) => m.setLoraWeights([{ path: w.path, A: v }]), loss, 2e-2);
        await checkParam(`${w.path}.B`, w.B, grads[k].B, (v) => m.setLoraWeights([{ path: w.path, B: v }]), loss, 2e-2);
      }
    } finally {
      m.dispose();
    }
  });

  it('LM loss w.r.t. LoRA (lmStep without an optimiser step)', async () => {
    const m = await Model.load(tinyCheckpoint({ arch: 'mistral', std: 0.15, kvHeads: 1, vocab: 48 }));
    try {
      m.addLora({ r: 2, alpha: 4, targetModules: ['o_proj', 'gate_proj', 'lm_head'] });
      randomizeLora(m, 9, 0.3);
      const r = prng(5);
      const seqs = [6, 4, 5].map((n) => Array.from({ length: n }, () => Math.floor(r() * 48)));
      const batch: LmBatch = lmBatch(seqs);
      m.zeroGrads();
      const st = await m.lmStep(batch, { applyStep: false });
      expect(st.stepped).toBe(false);
      const grads = m.getLoraGrads();
      const loss = async () => (await m.lmLoss(batch)).loss!;
      for (const [k, w] of m.getLoraWeights().entries()) {
        await checkParam(`${w.path}.A`, w.A, grads[k].A, (v) => m.setLoraWeights([{ path: w.path, A: v }]), loss, 2e-2);
        await checkParam(`${w.path}.B`, w.B, grads[k].B, (v) => m.setLoraWeights([{ path: w.path, B: v }]), loss, 2e-2);
      }
    } finally {
      m.dispose();
    }
  });
});
