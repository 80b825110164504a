// PEFT adapters: the files carry PEFT's names, shapes and config fields; a
// save/load round trip restores the weights and the logits exactly; bad or
// mismatched adapters are typed errors that leave the model unchanged.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Model } from '../../ts/model.ts';
import { adapterFiles, readAdapterLoraConfig } from '../../ts/adapter.ts';
import { readSafetensorsFile, writeSafetensorsFile, type TensorToWrite } from '../../ts/io/safetensors.ts';
import { expectCode, mcBatch, randomExamples, randomizeLora, tinyCheckpoint, tmpDir } from './util.ts';

async function trainedAdapter(dir: string, targets: string[] | string = ['q_proj', 'v_proj', 'down_proj', 'lm_head']) {
  const m = await Model.load(dir);
  m.addLora({ r: 4, alpha: 8, dropout: 0.05, targetModules: targets });
  randomizeLora(m, 1);
  const out = tmpDir();
  await m.saveAdapter(out);
  return { m, out };
}

function rewriteWeights(out: string, edit: (ts: TensorToWrite[]) => void) {
  const f = adapterFiles(out).weights;
  const st = readSafetensorsFile(f);
  const ts = st.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], data: t.data as Float32Array }));
  edit(ts);
  writeSafetensorsFile(f, ts, st.metadata);
}

describe('PEFT adapters', () => {
  it('writes PEFT names, shapes and config', async () => {
    const dir = tinyCheckpoint({ hidden: 32, intermediate: 48, vocab: 64, kvHeads: 2, heads: 4 });
    const { m, out } = await trainedAdapter(dir);
    try {
      const st = readSafetensorsFile(adapterFiles(out).weights);
      const byName = new Map(st.tensors.map((t) => [t.name, t]));
      expect(st.tensors.length).toBe(2 * 7);
      const expectShape = (n: string, shape: number[]) => expect(byName.get(n)?.shape, n).toEqual(shape);
      expectShape('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', [4, 32]);
      expectShape('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight', [32, 4]);
      expectShape('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight', [16, 4]);
      expectShape('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight', [4, 48]);
      expectShape('base_model.model.lm_head.lora_B.weight', [64, 4]);
      for (const w of m.getLoraWeights()) {
        expect(Array.from(byName.get(`base_model.model.${w.path}.lora_A.weight`)!.data)).toEqual(Array.from(w.A));
        expect(Array.from(byName.get(`base_model.model.${w.path}.lora_B.weight`)!.data)).toEqual(Array.from(w.B));
      }
      const cfg = JSON.parse(readFileSync(adapterFiles(out).config, 'utf8'));
      expect(cfg.peft_type).toBe('LORA');
      expect(cfg.r).toBe(4);
      expect(cfg.lora_alpha).toBe(8);
      expect(cfg.lora_dropout).toBeCloseTo(0.05);
      expect([...cfg.target_modules].sort()).toEqual(['down_proj', 'lm_head', 'q_proj', 'v_proj']);
      const lc = readAdapterLoraConfig(out);
      expect([lc.r, lc.alpha, lc.useRslora]).toEqual([4, 8, false]);
    } finally {
      m.dispose();
    }
  });

  it('round-trips into a fresh model (weights and logits identical) and into a matching LoRA', async () => {
    const dir = tinyCheckpoint({ std: 0.1 });
    const { m, out } = await trainedAdapter(dir);
    const batch = mcBatch(randomExamples(3, 64, 3, 2, 6, 4));
    try {
      const want = await m.forward(batch);
      const fresh = await Model.load(dir);
      try {
        await fresh.loadAdapter(out);
        const a = m.getLoraWeights();
        const b = fresh.getLoraWeights();
        expect(b.map((x) => x.path)).toEqual(a.map((x) => x.path));
        for (let k = 0; k < a.length; k++) {
          expect(Array.from(b[k].A)).toEqual(Array.from(a[k].A));
          expect(Array.from(b[k].B)).toEqual(Array.from(a[k].B));
          expect(b[k].scale).toBe(a[k].scale);
        }
        expect(Array.from((await fresh.forward(batch)).logits)).toEqual(Array.from(want.logits));
        expect(fresh.info().lora?.dropout).toBeCloseTo(0.05);
        // Loading into a model that already has the same LoRA replaces the values.
        randomizeLora(fresh, 99);
        await fresh.loadAdapter(out);
        expect(Array.from((await fresh.forward(batch)).logits)).toEqual(Array.from(want.logits));
      } finally {
        fresh.dispose();
      }
    } finally {
      m.dispose();
    }
  });

  it('regex targets round-trip', async () => {
    const dir = tinyCheckpoint();
    const { m, out } = await trainedAdapter(dir, 'model\\.layers\\.1\\.mlp\\.(gate|up)_proj');
    try {
      const fresh = await Model.load(dir);
      await fresh.loadAdapter(out);
      expect(fresh.info().lora?.modules).toEqual(['model.layers.1.mlp.gate_proj', 'model.layers.1.mlp.up_proj']);
      fresh.dispose();
    } finally {
      m.dispose();
    }
  });

  it('rejects mismatched and malformed adapters without changing the model', async () => {
    const dir = tinyCheckpoint();
    const { m, out } = await trainedAdapter(dir);
    m.dispose();
    const fresh = await Model.load(dir);
    try {
      // r mismatch with an existing LoRA.
      fresh.addLora({ r: 2, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj', 'lm_head'] });
      const before = fresh.getLoraWeights();
      await expectCode(fresh.loadAdapter(out), 'SHAPE_MISMATCH');
      // Different modules.
      fresh.removeLora();
      fresh.addLora({ r: 4, alpha: 8, targetModules: ['k_proj'] });
      await expectCode(fresh.loadAdapter(out), 'INVALID_ARGUMENT');
      fresh.removeLora();
      fresh.addLora({ r: 2, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj', 'lm_head'] });
      fresh.setLoraWeights(before);

      // Missing tensor.
      const missing = tmpDir();
      await (async () => {
        const mm = await Model.load(dir);
        mm.addLora({ r: 4, alpha: 8, targetModules: ['q_proj'] });
        await mm.saveAdapter(missing);
        mm.dispose();
      })();
      rewriteWeights(missing, (ts) => ts.splice(1, 1));
      const m2 = await Model.load(dir);
      try {
        const e = await expectCode(m2.loadAdapter(missing), 'BAD_FILE');
        expect(e.message).toMatch(/lora_[AB]\.weight/);
        expect(m2.info().lora).toBeNull(); // nothing added
        // Extra tensor.
        const extra = tmpDir();
        const mm = await Model.load(dir);
        mm.addLora({ r: 4, alpha: 8, targetModules: ['q_proj'] });
        await mm.saveAdapter(extra);
        mm.dispose();
        rewriteWeights(extra, (ts) => ts.push({ name: 'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight', dtype: 'F32', shape: [4, 32], data: new Float32Array(128) }));
        await expectCode(m2.loadAdapter(extra), 'BAD_FILE');
        // Wrong shape.
        rewriteWeights(extra, (ts) => {
          ts.pop();
          ts[0] = { ...ts[0], shape: [ts[0].shape[1], ts[0].shape[0]] };
        });
        await expectCode(m2.loadAdapter(extra), 'SHAPE_MISMATCH');
        expect(m2.info().lora).toBeNull();
        // Broken config / missing files.
        writeFileSync(adapterFiles(extra).config, '{"r": "four"}');
        await expectCode(m2.loadAdapter(extra), 'BAD_FILE');
        rmSync(adapterFiles(out).weights);
        const e3 = await m2.loadAdapter(out).then(
          () => null,
          (x) => x,
        );
        expect(['IO_ERROR', 'BAD_FILE']).toContain(e3?.code);
        await expectCode(m2.saveAdapter(path.join(tmpDir(), 'a')), 'INVALID_ARGUMENT'); // no LoRA to save
      } finally {
        m2.dispose();
      }
      // The model with LoRA kept its values through the failed loads.
      const after = fresh.getLoraWeights();
      for (let k = 0; k < before.length; k++) expect(Array.from(after[k].A)).toEqual(Array.from(before[k].A));
    } finally {
      fresh.dispose();
    }
  });
});
