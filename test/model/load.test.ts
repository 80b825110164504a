// Loading: every architecture and storage variant gives the float64
// reference's class logits; malformed checkpoints give typed errors.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Model } from '../../ts/model.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../../ts/io/safetensors.ts';
import type { TinyCheckpointOptions } from '../helpers/tiny-checkpoint.ts';
import { RefLlama } from './llama-reference.ts';
import { expectCode, mcBatch, randomExamples, tinyCheckpoint, tmpDir } from './util.ts';

async function checkAgainstReference(opts: TinyCheckpointOptions, refOpts?: TinyCheckpointOptions, given?: string): Promise<void> {
  const dir = given ?? tinyCheckpoint(opts);
  const refDir = refOpts ? tinyCheckpoint(refOpts) : dir;
  const ref = new RefLlama(refDir);
  const m = await Model.load(dir);
  try {
    const ex = randomExamples(3, ref.V, 4, 2, 7, 11);
    const r = await m.forward(mcBatch(ex, 'left'));
    let worst = 0;
    ex.forEach((e, b) => {
      const want = ref.classLogits(e.ids, e.rows);
      want.forEach((w, c) => (worst = Math.max(worst, Math.abs(r.logits[b * 4 + c] - w))));
    });
    // Logits are O(1); float32 through a 2-layer stack agrees to ~4e-7.
    expect(worst).toBeLessThan(5e-6);
    // Probabilities are the softmax of the logits.
    for (let b = 0; b < 3; b++) {
      let z = 0;
      for (let c = 0; c < 4; c++) z += Math.exp(r.logits[b * 4 + c]);
      for (let c = 0; c < 4; c++) expect(r.probs[b * 4 + c]).toBeCloseTo(Math.exp(r.logits[b * 4 + c]) / z, 6);
    }
  } finally {
    m.dispose();
  }
}

describe('model loading matches the float64 reference', () => {
  it('llama', () => checkAgainstReference({ arch: 'llama', std: 0.1 }));
  it('llama with GQA, tied embeddings and llama3 rope scaling', () =>
    checkAgainstReference({
      arch: 'llama',
      heads: 4,
      kvHeads: 2,
      tie: true,
      std: 0.1,
      ropeTheta: 500000,
      ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
    }));
  it('llama with linear rope scaling and an explicit head_dim', () =>
    checkAgainstReference({ arch: 'llama', hidden: 32, heads: 2, headDim: 8, kvHeads: 1, std: 0.1, ropeScaling: { rope_type: 'linear', factor: 4 } }));
  it('mistral', () => checkAgainstReference({ arch: 'mistral', kvHeads: 1, std: 0.1, slidingWindow: 64 }));
  it('qwen2 (q/k/v biases)', () => checkAgainstReference({ arch: 'qwen2', kvHeads: 2, std: 0.1 }));
  it('F16 and BF16 weights are converted at load', async () => {
    await checkAgainstReference({ arch: 'llama', dtype: 'F16', std: 0.1 });
    await checkAgainstReference({ arch: 'qwen2', dtype: 'BF16', std: 0.1 });
  });
  it('sharded checkpoints (index + shards)', () =>
    checkAgainstReference({ arch: 'llama', shards: 3, std: 0.1, seed: 5 }, { arch: 'llama', std: 0.1, seed: 5 }));

  it('llama with attention_bias (q/k/v and o_proj biases)', async () => {
    const dir = tinyCheckpoint({ arch: 'llama', std: 0.1, kvHeads: 2 });
    const cfgPath = path.join(dir, 'config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), attention_bias: true }));
    const f = path.join(dir, 'model.safetensors');
    const st = readSafetensorsFile(f);
    const ts = st.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], data: t.data as Float32Array }));
    let k = 0;
    for (const t of [...ts]) {
      const m = /^(model\.layers\.\d+\.self_attn\.[qkvo]_proj)\.weight$/.exec(t.name);
      if (m) ts.push({ name: `${m[1]}.bias`, dtype: 'F32', shape: [t.shape[0]], data: Float32Array.from({ length: t.shape[0] }, () => Math.sin(++k) * 0.3) });
    }
    writeSafetensorsFile(f, ts, st.metadata);
    // The config reader (cpp/io) may refuse attention_bias for Llama; when it
    // accepts it, the model must use all four biases like HF does.
    const probe = await Model.load(dir).then(
      (m) => (m.dispose(), null),
      (e) => e,
    );
    if (probe) {
      expect(probe.code).toBe('UNSUPPORTED');
      return;
    }
    await checkAgainstReference({}, undefined, dir);
    // Without the o_proj biases the checkpoint is incomplete.
    writeSafetensorsFile(f, ts.filter((t) => !t.name.endsWith('o_proj.bias')), st.metadata);
    const e = await expectCode(Model.load(dir), 'BAD_FILE');
    expect(e.message).toContain('o_proj.bias');
  });

  it('reports parameter counts and config', async () => {
    const m = await Model.load(tinyCheckpoint({ arch: 'qwen2', vocab: 64, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48 }));
    try {
      const i = m.info();
      const d = 32, V = 64, I = 48, kvd = 16;
      const layer = d * d * 2 + kvd * d * 2 + d + 2 * kvd + 3 * d * I + 2 * d;
      expect(i.numParams).toBe(V * d * 2 + 2 * layer + d);
      expect(i.config.architecture).toBe('Qwen2ForCausalLM');
      expect(i.config.numKeyValueHeads).toBe(2);
      expect(i.lora).toBeNull();
      expect(i.numTrainable).toBe(0);
      m.addLora({ r: 2, targetModules: ['q_proj', 'lm_head'] });
      const j = m.info();
      expect(j.numLoraParams).toBe(2 * (2 * d + d * 2) + (2 * d + V * 2));
      expect(j.lora?.modules).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj', 'lm_head']);
    } finally {
      m.dispose();
    }
  });
});

describe('weight storage', () => {
  it('F32 weights are used in place; F16 is converted; full training owns copies and gradients', async () => {
    const opts = { vocab: 64, hidden: 32, layers: 2, intermediate: 64 };
    const f32 = await Model.load(tinyCheckpoint(opts));
    const f16 = await Model.load(tinyCheckpoint({ ...opts, dtype: 'F16' }));
    const full = await Model.load(tinyCheckpoint(opts), { fullTraining: true });
    try {
      const bytes = 4 * f32.info().numParams;
      expect(f32.info().nativeBytes).toBeLessThan(bytes / 10); // zero-copy from the mapping
      expect(f16.info().nativeBytes).toBeGreaterThanOrEqual(bytes);
      expect(full.info().nativeBytes).toBeGreaterThanOrEqual(2 * bytes);
      // Base weights are read-only outside full-training mode.
      await expectCode(() => f32.setWeight('model.norm.weight', new Float32Array(32)), 'INVALID_ARGUMENT');
      f32.enableFullTraining();
      f32.setWeight('model.norm.weight', new Float32Array(32).fill(0.5));
      expect(Array.from(f32.getWeight('model.norm.weight'))).toEqual(new Array(32).fill(0.5));
      expect(f32.info().nativeBytes).toBeGreaterThanOrEqual(2 * bytes);
    } finally {
      f32.dispose();
      f16.dispose();
      full.dispose();
    }
  });
});

describe('malformed checkpoints give typed errors', () => {
  function rewrite(dir: string, edit: (ts: { name: string; dtype: string; shape: number[]; data: Float32Array }[]) => void) {
    const f = path.join(dir, 'model.safetensors');
    const st = readSafetensorsFile(f);
    const ts = st.tensors.map((t) => ({ name: t.name, dtype: t.dtype as string, shape: [...t.shape], data: t.data as Float32Array }));
    edit(ts);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    writeSafetensorsFile(f, ts as any, st.metadata);
  }

  it('missing tensor names the tensor', async () => {
    const dir = tinyCheckpoint();
    rewrite(dir, (ts) => ts.splice(ts.findIndex((t) => t.name === 'model.layers.1.mlp.up_proj.weight'), 1));
    const e = await expectCode(Model.load(dir), 'BAD_FILE');
    expect(e.message).toContain('model.layers.1.mlp.up_proj.weight');
  });

  it('wrong shape names the tensor and both shapes', async () => {
    const dir = tinyCheckpoint({ hidden: 32, intermediate: 64 });
    rewrite(dir, (ts) => {
      const t = ts.find((x) => x.name === 'model.layers.0.mlp.gate_proj.weight')!;
      t.shape = [32, 64];
    });
    const e = await expectCode(Model.load(dir), 'BAD_FILE');
    expect(e.message).toContain('model.layers.0.mlp.gate_proj.weight');
    expect(e.message).toContain('[32, 64]');
    expect(e.message).toContain('[64, 32]');
  });

  it('integer dtype is rejected', async () => {
    const dir = tinyCheckpoint();
    rewrite(dir, (ts) => {
      const t = ts.find((x) => x.name === 'model.norm.weight')!;
      t.dtype = 'I32';
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      (t as any).data = new Int32Array(t.data.length);
    });
    const e = await expectCode(Model.load(dir), 'BAD_FILE');
    expect(e.message).toContain('model.norm.weight');
  });

  it('unsupported architecture, missing files, bad backend', async () => {
    const dir = tinyCheckpoint();
    const cfgPath = path.join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
    const e = await Model.load(dir).then(
      () => null,
      (x) => x,
    );
    expect(['UNSUPPORTED', 'BAD_FILE']).toContain(e?.code);
    const e1 = await Model.load(tmpDir()).then(
      () => null,
      (x) => x,
    );
    expect(['IO_ERROR', 'BAD_FILE']).toContain(e1?.code);
    const ok = tinyCheckpoint();
    rmSync(path.join(ok, 'model.safetensors'));
    const e2 = await Model.load(ok).then(
      () => null,
      (x) => x,
    );
    expect(['IO_ERROR', 'BAD_FILE']).toContain(e2?.code);
    await expectCode(Model.load(tinyCheckpoint(), { backend: 'tpu' as 'cpu' }), 'INVALID_ARGUMENT');
  });
});
