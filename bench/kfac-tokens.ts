// How good is each K-FAC token treatment, measured against the exact per-layer
// GGN, and why is Laplace (marglik prior) underconfident on the built-in task?
//
// On the built-in model and default task (wn-category, train-small, LoRA as in
// the default run: r 8 / alpha 16 on every linear layer + lm_head, lr 2e-3,
// 8 epochs, seed 0 of `bayeslora run`), or on `--adapter DIR`:
//   1. For a few LoRA matrices, the exact GGN block of the layer,
//      F_l = sum_n J_n^T (diag p_n - p_n p_n^T) J_n, is built densely from
//      per-example Jacobians on the training split (one backward per class).
//   2. Per token mode (reduce, expand, aligned): Laplace.fit (exact Fisher,
//      marglik prior), then on the first `--nval` validation examples the sum
//      over classes of the quadratic forms J^T P^-1 J with P = F_l + delta I
//      (exact) and with K-FAC's P_l (same delta), and the prior-only value
//      |J|^2 / delta. kfac/exact > 1 means K-FAC inflates the predictive
//      variance in that layer; exact/prior near 1 means the data barely
//      constrain the directions the predictive needs.
//   3. Per token mode: validation ACC/ECE/NLL of the MC predictive at the
//      marglik prior and at 3x and 10x it, and the mean logit variance.
// Validation only: nothing here looks at the test split.
// Writes bench/results/kfac-tokens.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Model } from '../ts/model.ts';
import { Tokenizer } from '../ts/tokenizer.ts';
import { train } from '../ts/train.ts';
import { Laplace } from '../ts/laplace/laplace.ts';
import { predictiveProbs, type TokenHandling } from '../ts/laplace/kfac.ts';
import { computeMetrics, softmaxRows } from '../ts/eval/metrics.ts';
import { collateOptions, evalBatches, loadTask, trainBatches } from '../ts/run/datasets.ts';
import type { McBatch } from '../ts/data/batch.ts';
import { machineRecord } from './machine.ts';
import { intFlag } from './flags.ts';

const args = process.argv.slice(2);
const strFlag = (name: string, dflt: string) => {
  const a = args.find((s) => s.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : dflt;
};
const MODEL = strFlag('model', 'models/wordnet-tiny');
const TASK = strFlag('task', 'wn-category');
const ADAPTER = strFlag('adapter', '');
const NVAL = intFlag(args, 'kfac-tokens', 'nval', 160);
const NJAC = intFlag(args, 'kfac-tokens', 'njac', 40);
const MODES = strFlag('modes', 'reduce,expand,aligned').split(',') as TokenHandling[];
const LAYERS = strFlag(
  'layers',
  'model.layers.0.self_attn.q_proj.lora_B,model.layers.3.mlp.gate_proj.lora_B,model.layers.0.self_attn.q_proj.lora_A,model.layers.0.self_attn.k_proj.lora_A',
).split(',');
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'lm_head'];
const MAXLEN = 96;

const tok = await Tokenizer.fromFile(path.join(MODEL, 'tokenizer.json'));
const enc = { format: 'choice' as const, maxLength: MAXLEN };
const trainSet = await loadTask(tok, `data/${TASK}/train-small.jsonl`, enc);
const valAll = await loadTask(tok, `data/${TASK}/validation.jsonl`, enc);
const val = { ...valAll, encoded: valAll.encoded.slice(0, NVAL), labels: valAll.labels.slice(0, NVAL) };
const C = trainSet.C;
const model = await Model.load(MODEL);
model.addLora({ r: 8, alpha: 16, dropout: 0.1, targetModules: TARGETS, seed: 1000 });
const t0 = performance.now();
if (ADAPTER) await model.loadAdapter(ADAPTER);
else
  await train(model, trainSet.encoded, {
    epochs: 8, batchSize: 16, lr: 2e-3, warmupRatio: 0.1, schedule: 'linear', weightDecay: 0, seed: 2000,
    collate: collateOptions(tok, MAXLEN),
  });
const trainS = (performance.now() - t0) / 1000;
console.error(`adapter ready (${ADAPTER || `trained in ${trainS.toFixed(0)} s`})`);
const fitBatches = () => trainBatches(trainSet, tok, 16, MAXLEN, 99);

/** Per selected layer: the C x D Jacobian rows J_c = sum_t g_t x_t^T of one example (batch of one). */
async function jacobians(b: McBatch, ids: number[], dims: number[]): Promise<{ J: Float64Array[]; logits: Float32Array }> {
  const r = await model.forward(b);
  const J = dims.map((d) => new Float64Array(C * d));
  for (let c = 0; c < C; c++) {
    const seed = new Float32Array(C);
    seed[c] = 1;
    for (const m of await model.observeBackward(seed)) {
      const k = ids.indexOf(m.id);
      if (k < 0) continue;
      const out = J[k].subarray(c * dims[k], (c + 1) * dims[k]);
      for (let t = 0; t < m.T; t++) {
        if (m.mask && !m.mask[t]) continue;
        for (let o = 0; o < m.dOut; o++) {
          const g = m.g[t * m.dOut + o];
          if (g !== 0) for (let i = 0; i < m.dIn; i++) out[o * m.dIn + i] += g * m.x[t * m.dIn + i];
        }
      }
    }
  }
  return { J, logits: r.logits };
}

function cholesky(A: Float64Array, n: number): Float64Array {
  const L = Float64Array.from(A);
  for (let j = 0; j < n; j++) {
    let s = L[j * n + j];
    for (let k = 0; k < j; k++) s -= L[j * n + k] ** 2;
    const dj = Math.sqrt(s);
    L[j * n + j] = dj;
    for (let i = j + 1; i < n; i++) {
      let t = L[i * n + j];
      for (let k = 0; k < j; k++) t -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = t / dj;
    }
  }
  return L;
}
/** b^T (L L^T)^-1 b. */
function quadChol(L: Float64Array, n: number, b: ArrayLike<number>): number {
  const y = new Float64Array(n);
  let q = 0;
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= L[i * n + k] * y[k];
    y[i] = s / L[i * n + i];
    q += y[i] * y[i];
  }
  return q;
}

// 1. the exact GGN blocks (independent of the token mode and of delta).
const infos = model.loraMatrices().map((i) => ({ ...i, name: `${i.path}.lora_${i.isB ? 'B' : 'A'}` }));
const sel = LAYERS.map((n) => {
  const m = infos.find((i) => i.name === n);
  if (!m) throw new Error(`no LoRA matrix named ${n}`);
  return m;
});
const ids = sel.map((m) => m.id);
const dims = sel.map((m) => m.dIn * m.dOut);
const F = dims.map((d) => new Float64Array(d * d));
for (const b of evalBatches(trainSet, tok, 1, MAXLEN)) {
  const { J, logits } = await jacobians(b, ids, dims);
  const mx = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - mx));
  const z = e.reduce((s, v) => s + v, 0);
  const p = e.map((v) => v / z);
  dims.forEach((d, k) => {
    // J^T (diag p - p p^T) J = sum_c p_c (J_c - Jbar)(J_c - Jbar)^T, Jbar = sum_c p_c J_c
    const bar = new Float64Array(d);
    for (let c = 0; c < C; c++) for (let i = 0; i < d; i++) bar[i] += p[c] * J[k][c * d + i];
    for (let c = 0; c < C; c++) {
      const v = Float64Array.from({ length: d }, (_, i) => J[k][c * d + i] - bar[i]);
      for (let i = 0; i < d; i++) {
        const vi = p[c] * v[i];
        if (vi === 0) continue;
        const row = F[k].subarray(i * d, (i + 1) * d);
        for (let j = 0; j < d; j++) row[j] += vi * v[j];
      }
    }
  });
}
const valJ: Float64Array[][] = [];
for (const b of evalBatches(val, tok, 1, MAXLEN).slice(0, NJAC)) valJ.push((await jacobians(b, ids, dims)).J);
console.error('exact GGN blocks built');

const fmt = (m: { acc: number; ece: number; nll: number }) => ({ acc: m.acc, ece: m.ece, nll: m.nll });
const vb = evalBatches(val, tok, 32, MAXLEN);
const mapLogits = new Float32Array(val.encoded.length * C);
{
  let o = 0;
  for (const b of vb) {
    const r = await model.forward(b);
    mapLogits.set(r.logits, o);
    o += r.logits.length;
  }
}
const mapVal = fmt(computeMetrics(softmaxRows(mapLogits, C), val.labels, C));

const modes = [];
for (const tokens of MODES) {
  const la = await Laplace.fit(model, fitBatches(), { fisher: 'exact', tokens, nKfac: 10 });
  const delta = la.posterior.prior()[0];
  const players = la.posterior.layers();
  const layers = sel.map((m, k) => {
    const li = players.findIndex((l) => l.name === m.name);
    const A = Float64Array.from(F[k]);
    for (let i = 0; i < dims[k]; i++) A[i * dims[k] + i] += delta;
    const L = cholesky(A, dims[k]);
    let prior = 0, exact = 0, kfac = 0;
    for (const J of valJ)
      for (let c = 0; c < C; c++) {
        const v = J[k].subarray(c * dims[k], (c + 1) * dims[k]);
        let n2 = 0;
        for (const x of v) n2 += x * x;
        prior += n2 / delta;
        exact += quadChol(L, dims[k], v);
        kfac += la.posterior.quadForm(li, v);
      }
    return { name: m.name, params: dims[k], exact_over_prior: exact / prior, kfac_over_prior: kfac / prior, kfac_over_exact: kfac / exact };
  });
  const val_by_prior = [];
  for (const scale of [1, 3, 10]) {
    la.posterior.setPrior({ delta: delta * scale });
    const probs = new Float64Array(val.encoded.length * C);
    let o = 0, varSum = 0;
    for (const [i, b] of vb.entries()) {
      const { logits, lambda } = await la.posterior.predictBatch(model, b);
      for (let e = 0; e < b.B; e++) for (let c = 0; c < C; c++) varSum += lambda[e * C * C + c * C + c];
      probs.set(await predictiveProbs(logits, lambda, { C, method: 'mc', samples: 2000, seed: i }), o);
      o += b.B * C;
    }
    val_by_prior.push({ prior_scale: scale, delta: delta * scale, mean_logit_var: varSum / (val.encoded.length * C), ...fmt(computeMetrics(probs, val.labels, C)) });
  }
  modes.push({ tokens, delta_marglik: delta, layers, val_by_prior });
  console.error(`${tokens}: delta ${delta.toFixed(3)}`, layers.map((l) => `${l.name.split('.').slice(-3).join('.')} kfac/exact ${l.kfac_over_exact.toFixed(2)}`).join(', '));
  la.dispose();
}
model.dispose();

const out = {
  description: 'K-FAC token treatments vs the exact per-layer GGN; validation calibration by prior scale (bench/kfac-tokens.ts)',
  model: MODEL, task: TASK, adapter: ADAPTER || 'trained: default-run settings, seed 0', nval: val.encoded.length, njac: valJ.length,
  map_val: mapVal, modes, machine: machineRecord(), command: `npx tsx bench/kfac-tokens.ts ${args.join(' ')}`.trim(), date: new Date().toISOString(),
};
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/kfac-tokens.json', JSON.stringify(out, null, 2) + '\n');
console.log(JSON.stringify(out.modes.map((m) => ({ tokens: m.tokens, delta: m.delta_marglik, layers: m.layers.map((l) => +l.kfac_over_exact.toFixed(2)), val: m.val_by_prior.map((v) => [v.prior_scale, +v.ece.toFixed(3), +v.nll.toFixed(3), +v.acc.toFixed(3)]) }))));
