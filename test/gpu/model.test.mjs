// Whole-model parity, 'cuda' against the CPU reference, on small random
// LLaMA models (grouped-query attention, padding on both sides, LoRA r = 4 on
// q_proj, v_proj and lm_head with non-zero B): logits, LoRA gradients (with
// and without LoRA dropout), K-FAC factors and counts (tokens 'reduce', whose
// token sums run on the device, and 'expand'), the log marginal likelihood
// and the predictive Lambda. Skipped without a usable CUDA device (see
// common.mjs; BAYESLORA_GPU_TEST_BACKEND=cpu self-checks this file cpu vs cpu).
//
// Tolerances are dtype-aware. The float32 cases load both sides with
// weightDtype 'f32' (bf16 checkpoints are widened at load, so both backends
// see the same values); float32 GEMMs differ only in summation order, TF32
// (BAYESLORA_TF32=1) rounds GEMM inputs to 10 mantissa bits and gets bounds
// scaled by 2^-10 / 2^-23 worth of headroom. Errors are measured relative to
// the largest magnitude of the reference tensor (gradients and factors have
// entries near zero whose relative error means nothing).
//
// The bf16-store case loads the device with weightDtype 'bf16' (frozen linear
// weights kept as bfloat16, Backend::gemm_bf16w) against the CPU's f32 store
// of the same BF16 checkpoint: the weights are identical, and the CUDA GEMM
// rounds the activations to bf16 (8 significant bits, relative 2^-9 per
// input, four times TF32's 2^-11), so its bounds are the TF32 ones times ~2.
// In the cpu self-check the CPU bf16 store widens exactly and runs the same
// float32 GEMM, so the comparison there is bit-exact (tolerance 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addon, GPU, skip } from './common.mjs';
import { rng, writeRandomLlama } from './random-model.mjs';

const TF32 = process.env.BAYESLORA_TF32 === '1' && GPU === 'cuda';
// Relative-to-max bounds per quantity (float32 / TF32).
const TOL = TF32
  ? { logits: 2e-2, grads: 5e-2, factors: 5e-2, marglik: 1e-3, lambda: 5e-2 }
  : { logits: 2e-4, grads: 2e-3, factors: 2e-3, marglik: 1e-5, lambda: 2e-3 };

function maxRelErr(got, want, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0, err = 0, at = -1;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) { err = e; at = i; }  // NaN counts as worst
  }
  return { rel: scale > 0 ? err / scale : err, at, scale };
}
function closeRel(got, want, tol, what) {
  const { rel, at, scale } = maxRelErr(got, want, what);
  assert.ok(scale > 0, `${what}: the reference is all zeros (the comparison would prove nothing)`);
  assert.ok(rel <= tol, `${what}: element ${at}: ${GPU} ${got[at]} vs cpu ${want[at]} (max |err| / max |ref| = ${rel.toExponential(2)} > ${tol}, scale ${scale.toExponential(2)})`);
}

// Multiple-choice batch: example b has a padding pattern (none / right / left).
function mcBatch(seed, B, T, C, V) {
  const u = rng(seed);
  const ids = new Int32Array(B * T), mask = new Uint8Array(B * T), last = new Int32Array(B);
  const rows = new Int32Array(B * C), labels = new Int32Array(B);
  for (let b = 0; b < B; b++) {
    const len = b % 3 === 0 ? T : Math.max(2, T - 2 - b);
    const left = b % 3 === 2;
    for (let t = 0; t < T; t++) {
      const real = left ? t >= T - len : t < len;
      mask[b * T + t] = real ? 1 : 0;
      ids[b * T + t] = Math.floor(u() * V);
    }
    last[b] = left ? T - 1 : len - 1;
    for (let c = 0; c < C; c++) rows[b * C + c] = (b * 7 + c * 13 + 5) % V;
    labels[b] = b % C;
  }
  return { B, T, C, ids, mask, last, rows, labels };
}

const SHAPE = { vocab: 96, hidden: 64, intermediate: 96, layers: 2, heads: 4, kvHeads: 2 };
const LORA = { r: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 5 };

async function loadPair(dtype, dropout, devWeightDtype = 'f32') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bl-gpu-model-'));
  writeRandomLlama(dir, { ...SHAPE, dtype, seed: 11, std: 0.05 });
  const cpu = await addon.Model.load(dir, { backend: 'cpu', weightDtype: 'f32' });
  const dev = await addon.Model.load(dir, { backend: GPU, weightDtype: devWeightDtype });
  fs.rmSync(dir, { recursive: true, force: true });
  const u = rng(99);
  for (const m of [cpu, dev]) m.addLora({ ...LORA, dropout });
  // Non-zero B (PEFT starts at 0, which would zero every A gradient).
  const entries = cpu.getLoraWeights().map((e) => ({
    path: e.path,
    A: e.A,
    B: Float32Array.from(e.B, () => (u() * 2 - 1) * 0.05),
  }));
  cpu.setLoraWeights(entries);
  dev.setLoraWeights(entries);
  return { cpu, dev };
}

for (const dtype of ['F32', 'BF16']) {
  test(`logits and LoRA gradients (${dtype} checkpoint)`, { skip }, async () => {
    for (const dropout of [0, 0.1]) {
      const { cpu, dev } = await loadPair(dtype, dropout);
      const batch = mcBatch(3, 5, 12, 4, SHAPE.vocab);
      const fc = await cpu.forward(batch);
      const fd = await dev.forward(batch);
      closeRel(fd.logits, fc.logits, TOL.logits, `logits (dropout ${dropout})`);
      assert.ok(Math.abs(fd.loss - fc.loss) <= TOL.logits * Math.abs(fc.loss) + 1e-6, `loss ${fd.loss} vs ${fc.loss}`);
      // backward() runs the training forward (dropout on, masks from the step counter).
      await cpu.backward(batch);
      await dev.backward(batch);
      const gc = cpu.getLoraGrads(), gd = dev.getLoraGrads();
      assert.equal(gd.length, gc.length);
      for (let i = 0; i < gc.length; i++) {
        assert.equal(gd[i].path, gc[i].path);
        closeRel(gd[i].A, gc[i].A, TOL.grads, `${gc[i].path}.dA (dropout ${dropout})`);
        closeRel(gd[i].B, gc[i].B, TOL.grads, `${gc[i].path}.dB (dropout ${dropout})`);
      }
      cpu.dispose();
      dev.dispose();
    }
  });
}

// L L^T of a low-rank factor (rotation-invariant: the two backends may pick
// different bases of the same span).
function lowRankProduct(f) {
  const { d, k, data } = f;
  const S = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += data[i * k + c] * data[j * k + c];
      S[i * d + j] = s;
    }
  return S;
}

for (const tokens of ['reduce', 'expand']) {
  test(`K-FAC factors, log marginal likelihood and Lambda (tokens ${tokens})`, { skip }, async () => {
    const { cpu, dev } = await loadPair('F32', 0);
    // threshold 48: hidden-size sides (64) are low rank, rank-size sides (4)
    // dense. nKfac = 64 >= every side's rank, so no truncation: a cut between
    // near-equal eigenvalues could pick different spans on the two backends.
    const opts = (m) => ({ layers: addon.laplaceModelLayers(m, {}), tokens, threshold: 48, nKfac: 64 });
    const ac = new addon.KfacAccumulator(opts(cpu)), ad = new addon.KfacAccumulator(opts(dev));
    let llc = 0, lld = 0;
    for (let i = 0; i < 2; i++) {
      const batch = mcBatch(20 + i, 4, 10, 4, SHAPE.vocab);
      llc += (await ac.fitBatch(cpu, batch, { fisher: 'exact' })).logLik;
      lld += (await ad.fitBatch(dev, batch, { fisher: 'exact' })).logLik;
    }
    assert.ok(Math.abs(lld - llc) <= TOL.marglik * Math.abs(llc) + 1e-6, `logLik ${lld} vs ${llc}`);
    assert.deepEqual(Array.from(ad.counts()), Array.from(ac.counts()), 'counts Z');
    const layers = ac.layers();
    let sawLowRank = false, sawDense = false;
    for (let l = 0; l < layers.length; l++)
      for (const side of ['A', 'G']) {
        const fc = ac.factor(l, side), fd = ad.factor(l, side);
        assert.equal(fd.kind, fc.kind);
        const what = `${layers[l].name} ${side} (${fc.kind})`;
        if (fc.kind === 'dense') {
          sawDense = true;
          closeRel(fd.data, fc.data, TOL.factors, what);
        } else {
          sawLowRank = true;
          closeRel(lowRankProduct(fd), lowRankProduct(fc), TOL.factors, what);
        }
      }
    assert.ok(sawDense && sawLowRank, 'both factor kinds are exercised');

    const pc = await ac.posterior({ delta: 1 }), pd = await ad.posterior({ delta: 1 });
    const theta = (m, p) => {
      const s = addon.laplaceAdapterState(m).thetaNormSq;
      return Float64Array.from(p.layers().map((l) => s[l.id]));
    };
    const mc = pc.logMarglik({ logLik: llc, thetaNormSq: theta(cpu, pc) });
    const md = pd.logMarglik({ logLik: lld, thetaNormSq: theta(dev, pd) });
    assert.ok(Math.abs(md - mc) <= TOL.marglik * Math.abs(mc), `log marginal likelihood ${md} vs ${mc}`);

    const batch = mcBatch(40, 3, 9, 4, SHAPE.vocab);
    const rc = await pc.predictBatch(cpu, batch, {}), rd = await pd.predictBatch(dev, batch, {});
    closeRel(rd.logits, rc.logits, TOL.logits, 'predictive mean logits');
    closeRel(rd.lambda, rc.lambda, TOL.lambda, 'Lambda');
    for (const x of [pc, pd, ac, ad, cpu, dev]) x.dispose();
  });
}

// bf16 frozen-weight store on the device vs the CPU f32 store (see the header).
const BF16TOL = GPU === 'cpu'
  ? { logits: 0, grads: 0, factors: 0, loss: 0 }
  : { logits: 4e-2, grads: 1e-1, factors: 1e-1, loss: 2e-2 };
function closeOrEqual(got, want, tol, what) {
  if (tol === 0) assert.deepEqual(Array.from(got), Array.from(want), `${what}: bit-exact`);
  else closeRel(got, want, tol, what);
}

test('bf16 weight store: logits, LoRA gradients, K-FAC factors, training steps (BF16 checkpoint)', { skip }, async () => {
  const { cpu, dev } = await loadPair('BF16', 0, 'bf16');
  const ic = cpu.info(), id = dev.info();
  assert.equal(ic.weightDtype, 'f32');
  assert.equal(id.weightDtype, 'bf16');
  const { hidden: d, intermediate: I, layers: L, heads: H, kvHeads: Hkv } = SHAPE;
  const linear = L * (2 * d * d + 2 * d * (d / H) * Hkv + 3 * d * I);
  assert.equal(ic.weightBytes - id.weightBytes, 2 * linear, 'the linear weights take half the bytes');

  const batch = mcBatch(3, 5, 12, 4, SHAPE.vocab);
  const fc = await cpu.forward(batch), fd = await dev.forward(batch);
  closeOrEqual(fd.logits, fc.logits, BF16TOL.logits, 'bf16 store logits');
  await cpu.backward(batch);
  await dev.backward(batch);
  const gc = cpu.getLoraGrads(), gd = dev.getLoraGrads();
  for (let i = 0; i < gc.length; i++) {
    closeOrEqual(gd[i].A, gc[i].A, BF16TOL.grads, `bf16 store ${gc[i].path}.dA`);
    closeOrEqual(gd[i].B, gc[i].B, BF16TOL.grads, `bf16 store ${gc[i].path}.dB`);
  }

  // K-FAC factors, all dense (threshold above every side) so they compare entrywise.
  const opts = (m) => ({ layers: addon.laplaceModelLayers(m, {}), tokens: 'reduce', threshold: 4096 });
  const ac = new addon.KfacAccumulator(opts(cpu)), ad = new addon.KfacAccumulator(opts(dev));
  const kb = mcBatch(21, 4, 10, 4, SHAPE.vocab);
  await ac.fitBatch(cpu, kb, { fisher: 'exact' });
  await ad.fitBatch(dev, kb, { fisher: 'exact' });
  const layers = ac.layers();
  for (let l = 0; l < layers.length; l++)
    for (const side of ['A', 'G']) {
      const xc = ac.factor(l, side), xd = ad.factor(l, side);
      assert.equal(xc.kind, 'dense');
      closeOrEqual(xd.data, xc.data, BF16TOL.factors, `bf16 store ${layers[l].name} ${side}`);
    }

  // A few AdamW steps: LoRA and optimizer state are float32 on both sides.
  for (let s = 0; s < 3; s++) {
    const rc = await cpu.trainStep(batch, { lr: 1e-2 }), rd = await dev.trainStep(batch, { lr: 1e-2 });
    assert.ok(Number.isFinite(rd.loss), `step ${s}: loss ${rd.loss}`);
    assert.ok(Math.abs(rd.loss - rc.loss) <= BF16TOL.loss * Math.abs(rc.loss), `step ${s}: loss ${rd.loss} vs ${rc.loss}`);
  }
  for (const x of [ac, ad, cpu, dev]) x.dispose();
});
