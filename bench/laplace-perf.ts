// Laplace pass benchmark (perf work): Laplace.fit (exact Fisher, reduce and
// expand) and Laplace.predict on a random checkpoint shaped like the main
// job's model (vocab 5000, d 192, 4 layers, 4 heads, MLP 512; LoRA r = 8 on
// q_proj, v_proj, lm_head), batches of 32 sequences of 15-40 tokens, C = 4.
// Also prints a checksum of the results so before/after runs can be compared.
// Usage: BAYESLORA_ADDON=build-x/Release/bayeslora.node npx tsx bench/laplace-perf.ts [nFit] [nPred]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeTinyCheckpoint } from '../ts/io/random-checkpoint.ts';
import { Model } from '../ts/model.ts';
import { Laplace } from '../ts/laplace/laplace.ts';
import type { McBatch } from '../ts/data/batch.ts';

const V = 5000, C = 4, BS = 32;
function batches(n: number, seed: number): McBatch[] {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const out: McBatch[] = [];
  for (let i0 = 0; i0 < n; i0 += BS) {
    const B = Math.min(BS, n - i0);
    const lens = Array.from({ length: B }, () => 15 + Math.floor(rnd() * 26));
    const T = Math.max(...lens);
    const ids = new Int32Array(B * T), mask = new Uint8Array(B * T), last = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < lens[b]; t++) { ids[b * T + t] = 4 + Math.floor(rnd() * (V - 4)); mask[b * T + t] = 1; }
      last[b] = lens[b] - 1;
    }
    const rows = new Int32Array(B * C).map(() => 4 + Math.floor(rnd() * (V - 4)));
    const labels = new Int32Array(B).map(() => Math.floor(rnd() * C));
    out.push({ B, T, C, ids, mask, last, rows, labels });
  }
  return out;
}

const nFit = Number(process.argv[2] ?? 256), nPred = Number(process.argv[3] ?? 352);
const dir = mkdtempSync(path.join(os.tmpdir(), 'bl-laperf-'));
try {
  makeTinyCheckpoint(dir, { arch: 'llama', vocab: V, hidden: 192, layers: 4, heads: 4, intermediate: 512, tie: false, seed: 7 });
  const model = await Model.load(dir);
  model.addLora({ r: 8, alpha: 16, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
  const fit = batches(nFit, 11), pred = batches(nPred, 12);
  for (let i = 0; i < 4; i++) await model.trainStep(fit[i % fit.length], { lr: 1e-2 }); // B != 0
  let t = performance.now();
  for (const b of pred) await model.forward(b);
  const fwd = (performance.now() - t) / 1000;
  const res: Record<string, number> = { forward_pred_s: fwd };
  for (const tokens of ['reduce', 'expand'] as const) {
    t = performance.now();
    const la = await Laplace.fit(model, fit, { fisher: 'exact', tokens, nKfac: 10, prior: 1 });
    res[`fit_${tokens}_s`] = (performance.now() - t) / 1000;
    res[`fit_${tokens}_logdet`] = la.posterior.logDet();
    if (tokens === 'reduce') {
      t = performance.now();
      let cs = 0, cl = 0;
      for (const b of pred) {
        const r = await la.predict(b, { method: 'probit' });
        for (const v of r.lambda) cs += v;
        for (const v of r.logits) cl += v;
      }
      res.predict_s = (performance.now() - t) / 1000;
      res.predict_lambda_sum = cs;
      res.predict_logit_sum = cl;
    }
    la.dispose();
  }
  console.log(JSON.stringify(res, null, 1));
  model.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
