// bf16 frozen-weight store (Model.load weightDtype, cpp/model/weights): the
// linear weights kept as bfloat16 and multiplied by Backend::gemm_bf16w.
//
// Tolerance: on the CPU gemm_bf16w widens W to float32 exactly and runs the
// same float32 GEMM with the same shapes (one panel at these sizes), so on a
// checkpoint whose weights are bf16-representable every result — logits, LM
// loss, LoRA gradients, K-FAC factors, AdamW trajectories — is bit-equal to
// the f32 store, and the tests ask for equality. On a general f32 checkpoint
// the bf16 store must equal the f32 store of the nearest-even-rounded
// checkpoint exactly, and differ from the unrounded one only by that rounding.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { KfacAccumulator } from '../../ts/laplace/kfac.ts';
import { Model } from '../../ts/model.ts';
import { loadNative } from '../../ts/native.ts';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { writeSafetensorsFile, readSafetensorsFile } from '../../ts/io/safetensors.ts';
import {
  ALL_MODULES,
  expectCode,
  lmBatch,
  maxAbs,
  maxAbsDiff,
  mcBatch,
  randomExamples,
  randomizeLora,
  tinyCheckpoint,
  tmpDir,
} from './util.ts';

const SHAPE = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 64, seed: 3 };
const LINEAR = /\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)\.weight$/;

/** float32 -> bfloat16 -> float32 with round-to-nearest-even (finite inputs). */
function roundBf16(a: Float32Array): Float32Array {
  const u = new Uint32Array(a.slice().buffer);
  for (let i = 0; i < u.length; i++) {
    const x = u[i];
    u[i] = (((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) << 16) >>> 0;
  }
  return new Float32Array(u.buffer);
}

async function loraModel(dir: string, weightDtype?: 'bf16' | 'f32'): Promise<Model> {
  const m = await Model.load(dir, weightDtype ? { weightDtype } : {});
  m.addLora({ r: 4, alpha: 8, targetModules: ALL_MODULES, seed: 7 });
  randomizeLora(m, 11);
  return m;
}

const examples = randomExamples(3, SHAPE.vocab, 3, 3, 7, 5);
const batch = mcBatch(examples, 'left');

describe('bf16 weight store on a BF16 checkpoint (bit-equal to the f32 store)', () => {
  const dir = tinyCheckpoint({ ...SHAPE, dtype: 'BF16' });

  it('defaults to f32 on the CPU; bf16 halves the linear weight bytes', async () => {
    const d = await Model.load(dir);
    const f = await Model.load(dir, { weightDtype: 'f32' });
    const b = await Model.load(dir, { weightDtype: 'bf16' });
    expect(d.info().weightDtype).toBe('f32');
    expect(f.info().weightDtype).toBe('f32');
    expect(b.info().weightDtype).toBe('bf16');
    let linear = 0;
    let all = 0;
    for (const n of f.weightNames()) {
      const k = f.getWeight(n).length;
      all += k;
      if (LINEAR.test(n)) linear += k;
    }
    expect(f.info().weightBytes).toBe(4 * all);
    expect(b.info().weightBytes).toBe(4 * all - 2 * linear);
    // f32 store: the BF16 tensors are widened into owned memory; bf16 store:
    // the linear ones are borrowed from the mmap (no backend memory).
    expect(f.info().nativeBytes - b.info().nativeBytes).toBe(4 * linear);
    for (const n of f.weightNames()) expect(b.getWeight(n)).toEqual(f.getWeight(n));
    for (const m of [d, f, b]) m.dispose();
  });

  it('logits, LM loss, LoRA gradients and observed K-FAC inputs are bit-equal', async () => {
    const f = await loraModel(dir, 'f32');
    const b = await loraModel(dir, 'bf16');
    const ff = await f.forward(batch);
    const fb = await b.forward(batch);
    expect(fb.logits).toEqual(ff.logits);
    expect(fb.loss).toBe(ff.loss);
    await f.backward(batch);
    await b.backward(batch);
    const gf = f.getLoraGrads();
    const gb = b.getLoraGrads();
    for (let i = 0; i < gf.length; i++) {
      expect(maxAbs(gf[i].A) + maxAbs(gf[i].B)).toBeGreaterThan(0);
      expect(gb[i].A).toEqual(gf[i].A);
      expect(gb[i].B).toEqual(gf[i].B);
    }
    const lm = lmBatch([[1, 5, 9, 2, 7], [3, 4, 60, 8]]);
    expect((await b.lmLoss(lm)).loss).toBe((await f.lmLoss(lm)).loss);

    const layers = loadNative().laplaceModelLayers(f.native, {});
    const af = new KfacAccumulator({ layers, threshold: 1000 });
    const ab = new KfacAccumulator({ layers, threshold: 1000 });
    await af.fitBatch(f, batch, { fisher: 'exact' });
    await ab.fitBatch(b, batch, { fisher: 'exact' });
    for (let i = 0; i < layers.length; i++)
      for (const w of ['A', 'G'] as const) expect(ab.factor(i, w).data).toEqual(af.factor(i, w).data);
    af.dispose();
    ab.dispose();
    f.dispose();
    b.dispose();
  });

  it('training a few steps follows the f32 store exactly; adapters save and load', async () => {
    const f = await loraModel(dir, 'f32');
    const b = await loraModel(dir, 'bf16');
    for (let s = 0; s < 3; s++) {
      const opts = { lr: 1e-2, weightDecay: 0.01 };
      const rf = await f.trainStep(batch, opts);
      const rb = await b.trainStep(batch, opts);
      expect(rb.loss).toBe(rf.loss);
    }
    const wf = f.getLoraWeights();
    const wb = b.getLoraWeights();
    for (let i = 0; i < wf.length; i++) expect(wb[i].B).toEqual(wf[i].B);
    const out = tmpDir();
    await b.saveAdapter(out);
    const fresh = await Model.load(dir, { weightDtype: 'bf16' });
    await fresh.loadAdapter(out);
    expect((await fresh.forward(batch)).logits).toEqual((await b.forward(batch)).logits);
    for (const m of [f, b, fresh]) m.dispose();
  });
});

describe('bf16 weight store on a general f32 checkpoint', () => {
  const dir = tinyCheckpoint({ ...SHAPE, dtype: 'F32' });

  it('rounds to nearest-even: equals the f32 store of the rounded checkpoint, within bf16 rounding of the original', async () => {
    // The rounded twin: linear weights replaced by their RNE bf16 values.
    const twin = tmpDir();
    makeTinyCheckpoint(twin, { ...SHAPE, dtype: 'F32' });
    const file = path.join(twin, 'model.safetensors');
    const st = readSafetensorsFile(file);
    writeSafetensorsFile(
      file,
      st.tensors.map((t) => ({
        name: t.name,
        dtype: 'F32' as const,
        shape: [...t.shape],
        data: LINEAR.test(t.name) ? roundBf16(t.data as Float32Array) : (t.data as Float32Array),
      })),
      st.metadata,
    );
    const f = await loraModel(dir, 'f32');
    const b = await loraModel(dir, 'bf16');
    const t = await loraModel(twin, 'f32');
    for (const n of f.weightNames()) {
      const w = f.getWeight(n);
      expect(b.getWeight(n)).toEqual(LINEAR.test(n) ? roundBf16(w) : w);
    }
    const lf = (await f.forward(batch)).logits;
    const lb = (await b.forward(batch)).logits;
    expect(lb).toEqual((await t.forward(batch)).logits);
    // Each weight moves by at most 2^-9 relative; through 2 layers of
    // near-linear residual blocks the logits move by a few 2^-9 of their scale.
    // Measured 1.9e-3 (about 2^-9) of the max logit here; 2^-6 bounds it with 8x margin and
    // still fails for an un-rounded or mis-rounded (e.g. truncated-to-zero) store.
    const d = maxAbsDiff(lb, lf);
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(2 ** -6 * maxAbs(lf));
    for (const m of [f, b, t]) m.dispose();
  });

  it('invalid options are typed errors; enableFullTraining widens to f32', async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    await expectCode(Model.load(dir, { weightDtype: 'fp8' as any }), 'INVALID_ARGUMENT');
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    await expectCode(Model.load(dir, { weightDtype: 3 as any }), 'INVALID_ARGUMENT');
    await expectCode(Model.load(dir, { weightDtype: 'bf16', fullTraining: true }), 'INVALID_ARGUMENT');
    const b = await Model.load(dir, { weightDtype: 'bf16' });
    const q = b.getWeight('model.layers.0.self_attn.q_proj.weight');
    b.enableFullTraining();
    expect(b.info().weightDtype).toBe('f32');
    expect(b.getWeight('model.layers.0.self_attn.q_proj.weight')).toEqual(q);
    b.dispose();
  });
});
