// Scaling bench (issue 6, part 3): how Laplace fit and predictive cost grow
// with model size (parameters), sequence length, nKfac (rank of the low-rank
// factors), number of classes C and training-set size N. One axis varies at a
// time around a small base configuration; each point is the median of
// repeats; the growth exponent is the least-squares slope of log(seconds)
// against log(x). Charts (log-log SVG + PNG) go to bench/results/scaling-*.
//   fit:     Laplace.fit, exact Fisher (C backward passes), reduce, fixed prior
//            (the marglik search is a separate, size-independent cost)
//   predict: Laplace.predict of one batch (Jacobians, Lambda, probit)
// Expected: fit ~ N (linear), ~ C (one backward per class), ~ T (the passes);
// model size ~ 1 at fixed shape ratio times the factor eigendecompositions
// (cubic in the dense side); predict independent of N.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { summarize } from './machine.ts';
import { logLogChart } from './scaling-chart.ts';
import { makeTinyCheckpoint } from '../ts/io/random-checkpoint.ts';
import { Model } from '../ts/model.ts';
import { Laplace } from '../ts/laplace/laplace.ts';
import type { McBatch } from '../ts/data/batch.ts';

const here = path.dirname(fileURLToPath(import.meta.url));

interface Point {
  hidden: number;
  seq: number;
  nKfac: number;
  classes: number;
  examples: number;
}

const BASE: Point = { hidden: 256, seq: 64, nKfac: 8, classes: 4, examples: 16 };
const BATCH = 4;
const LAYERS = 4;
const VOCAB = 2000;
/** Factor sides above this are low rank, so nKfac matters at every hidden size measured. */
const THRESHOLD = 48;

const AXES: { key: keyof Point; label: string; values: number[] }[] = [
  { key: 'hidden', label: 'parameters', values: [128, 256, 512, 768] },
  { key: 'seq', label: 'sequence length', values: [32, 64, 128, 256] },
  { key: 'nKfac', label: 'nKfac', values: [4, 8, 16, 32] },
  { key: 'classes', label: 'classes C', values: [2, 4, 8, 16] },
  { key: 'examples', label: 'training examples N', values: [8, 16, 32, 64] },
];

function data(p: Point, seed: number): McBatch[] {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const out: McBatch[] = [];
  for (let i0 = 0; i0 < p.examples; i0 += BATCH) {
    const B = Math.min(BATCH, p.examples - i0);
    const T = p.seq;
    const C = p.classes;
    out.push({
      B,
      T,
      C,
      ids: new Int32Array(B * T).map(() => 4 + Math.floor(rnd() * (VOCAB - 4))),
      mask: new Uint8Array(B * T).fill(1),
      last: new Int32Array(B).fill(T - 1),
      rows: new Int32Array(B * C).map((_, i) => 4 + ((Math.floor(rnd() * (VOCAB - 4 - C)) + (i % C)) % (VOCAB - 4))),
      labels: new Int32Array(B).map(() => Math.floor(rnd() * C)),
    });
  }
  return out;
}

/** Least-squares slope and intercept of log y on log x, with R^2. */
export function logLogFit(xs: number[], ys: number[]): { exponent: number; r2: number } {
  const lx = xs.map(Math.log);
  const ly = ys.map(Math.log);
  const n = lx.length;
  const mx = lx.reduce((a, b) => a + b, 0) / n;
  const my = ly.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (lx[i] - mx) * (ly[i] - my);
    sxx += (lx[i] - mx) ** 2;
    syy += (ly[i] - my) ** 2;
  }
  const exponent = sxy / sxx;
  return { exponent, r2: syy > 0 ? (exponent * sxy) / syy : 1 };
}

async function measurePoint(p: Point, reps: number) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bayeslora-bench-scaling-'));
  try {
    const h = p.hidden;
    makeTinyCheckpoint(dir, { arch: 'llama', vocab: VOCAB, hidden: h, layers: LAYERS, heads: h / 32, kvHeads: h / 32, intermediate: Math.round((8 * h) / 3), seed: 7, maxPositionEmbeddings: 1024 });
    const model = await Model.load(dir);
    try {
      model.addLora({ r: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj', 'lm_head'], seed: 1 });
      const batches = data(p, 3);
      await model.trainStep(batches[0], { lr: 1e-3 }); // makes B non-zero, sizes the workspace
      const fit: number[] = [];
      const predict: number[] = [];
      let la: Laplace | null = null;
      for (let i = 0; i < reps; i++) {
        la?.dispose();
        const t0 = performance.now();
        la = await Laplace.fit(model, batches, { fisher: 'exact', prior: 1, nKfac: p.nKfac, threshold: THRESHOLD, tokens: 'reduce' });
        fit.push((performance.now() - t0) / 1000);
      }
      await la!.predict(batches[0], { method: 'probit' });
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        await la!.predict(batches[0], { method: 'probit' });
        predict.push((performance.now() - t0) / 1000);
      }
      la!.dispose();
      return { params: model.info().numParams, lora_params: model.info().numLoraParams, fit: summarize(fit), predict: summarize(predict) };
    } finally {
      model.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Flags: --quick (2 repeats, first three values per axis), --repeats=N (default 3). */
export async function run(args: string[] = []): Promise<object> {
  const quick = args.includes('--quick');
  const rArg = args.find((a) => a.startsWith('--repeats='));
  const reps = rArg ? Math.max(1, Number(rArg.slice(10)) | 0) : quick ? 2 : 3;
  const log = (m: string) => process.stderr.write(`bench scaling: ${m}\n`);
  const outDir = path.join(here, 'results');
  const axes = [];
  for (const ax of AXES) {
    const values = quick ? ax.values.slice(0, 3) : ax.values;
    const points = [];
    for (const v of values) {
      const p = { ...BASE, [ax.key]: v };
      const m = await measurePoint(p, reps);
      const x = ax.key === 'hidden' ? m.params : v;
      log(`${ax.key}=${v} (x=${x}): fit ${m.fit.median.toFixed(3)} s, predict ${m.predict.median.toFixed(3)} s`);
      points.push({ x, ...p, ...m });
    }
    const xs = points.map((q) => q.x);
    const fitExp = logLogFit(xs, points.map((q) => q.fit.median));
    const predExp = logLogFit(xs, points.map((q) => q.predict.median));
    const chart = await logLogChart(
      points.flatMap((q) => [
        { x: q.x, series: `fit (slope ${fitExp.exponent.toFixed(2)})`, seconds: q.fit.median },
        { x: q.x, series: `predict (slope ${predExp.exponent.toFixed(2)})`, seconds: q.predict.median },
      ]),
      ax.label,
      `Laplace cost vs ${ax.label}`,
      path.join(outDir, `scaling-${ax.key}`),
    );
    axes.push({
      axis: ax.key,
      label: ax.label,
      x: ax.key === 'hidden' ? 'total parameters (hidden size varied: ' + values.join(', ') + ')' : ax.key,
      fit_exponent: fitExp.exponent,
      fit_r2: fitExp.r2,
      predict_exponent: predExp.exponent,
      predict_r2: predExp.r2,
      chart: { svg: path.relative(path.dirname(here), chart.svg), png: path.relative(path.dirname(here), chart.png) },
      points,
    });
  }
  return {
    setup: {
      base: BASE,
      batch: BATCH,
      layers: LAYERS,
      vocab: VOCAB,
      heads: 'hidden / 32 (head dim 32)',
      intermediate: '8/3 hidden',
      lora: { r: 8, alpha: 16, targets: ['q_proj', 'v_proj', 'lm_head'] },
      threshold: THRESHOLD,
      fit: 'Laplace.fit: exact Fisher, reduce, prior fixed at 1 (no marglik search)',
      predict: 'Laplace.predict of one batch (B = 4), probit',
      repeats: reps,
      exponent: 'least-squares slope of log(median seconds) on log(x), with R^2',
    },
    axes,
  };
}
