// The main job end to end on the CUDA backend against the CPU backend:
// `bayeslora run` (fine-tuning with checkpoints, MAP, LA with MC and probit
// predictives, LLLA, temperature scaling, MC dropout, checkpoint ensemble) on
// a tiny random LLaMA with the built-in tokenizer and small slices of the
// built-in tasks, once with --device cpu and once with --device cuda; every
// report row (task, split, step, method) must agree: accuracy exactly, ECE,
// NLL and Brier within 1e-4, and every fitted marglik prior precision within
// 1e-4 relative. Run by scripts/cuda-emu-check.sh on the
// emulated device (30 s, about 2 minutes under ASan; the parity suite covers ops and single
// model calls, this covers what the job does with them: checkpoints,
// dropout passes, posterior fits and predictives over many batches, device
// memory across phases). Works on a real GPU too, where tsx and the npm
// dependencies are installed.
//   node --import tsx test/gpu/main-job-e2e.mts [--keep DIR]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTinyCheckpoint } from '../../ts/io/random-checkpoint.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const keepAt = process.argv.indexOf('--keep');
const dir = keepAt > 0 ? path.resolve(process.argv[keepAt + 1]) : mkdtempSync(path.join(os.tmpdir(), 'bl-e2e-'));
mkdirSync(dir, { recursive: true });

const model = path.join(dir, 'model');
makeTinyCheckpoint(model, { vocab: 5000, hidden: 32, layers: 2, heads: 4, intermediate: 64, seed: 3, std: 0.1 });
copyFileSync(path.join(root, 'models/wordnet-tiny/tokenizer.json'), path.join(model, 'tokenizer.json'));
const slice = (from: string, to: string, n: number) => {
  const lines = readFileSync(path.join(root, 'data', from), 'utf8').split('\n').filter(Boolean);
  writeFileSync(path.join(dir, to), lines.slice(0, n).join('\n') + '\n');
};
slice('wn-category/train-small.jsonl', 'train.jsonl', 16);
slice('wn-category/test.jsonl', 'wn-category.jsonl', 8);
slice('wn-category/validation.jsonl', 'validation.jsonl', 8);
slice('foldoc-word/test.jsonl', 'foldoc.jsonl', 8);

type Row = { task: string; split: string; step: number; method: string; acc: number; ece: number; nll: number; brier: number };
type Prior = { seed: number; step: number; method: string; delta: number[] };
function run(device: string): { rows: Row[]; priors: Prior[] } {
  const out = path.join(dir, `run-${device}`);
  rmSync(out, { recursive: true, force: true });
  const args = [path.join(root, 'bin/bayeslora.mjs'), 'run', '--quick', '--epochs', '2', '--device', device,
    '--model', model, '--train', path.join(dir, 'train.jsonl'), '--test', path.join(dir, 'wn-category.jsonl'),
    '--validation', path.join(dir, 'validation.jsonl'), '--shift', path.join(dir, 'foldoc.jsonl'), '--out', out];
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    console.error(r.stdout, r.stderr);
    throw new Error(`bayeslora run --device ${device} exited with ${r.status}`);
  }
  const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
  if (report.config.backend !== device) throw new Error(`report says backend ${report.config.backend}, asked for ${device}`);
  console.log(`main-job-e2e: --device ${device}: ${report.rows.length} rows in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { rows: report.rows, priors: report.priors };
}

const cpuRun = run('cpu');
const cudaRun = run('cuda');
const cpu = cpuRun.rows;
const cuda = cudaRun.rows;
const key = (r: Row) => `${r.task}/${r.split}/${r.step}/${r.method}`;
const byKey = new Map(cuda.map((r) => [key(r), r]));
const problems: string[] = [];
if (cpu.length !== cuda.length) problems.push(`row count: cpu ${cpu.length}, cuda ${cuda.length}`);
const methods = new Set(cpu.map((r) => r.method));
for (const m of ['MAP', 'LA', 'LA-probit', 'LLLA', 'TS', 'MCD', 'CKPT-ENS']) if (!methods.has(m)) problems.push(`no ${m} rows`);
let worst = 0;
for (const a of cpu) {
  const b = byKey.get(key(a));
  if (!b) {
    problems.push(`${key(a)}: missing on cuda`);
    continue;
  }
  if (a.acc !== b.acc) problems.push(`${key(a)}: acc cpu ${a.acc} cuda ${b.acc}`);
  for (const k of ['ece', 'nll', 'brier'] as const) {
    const d = Math.abs(a[k] - b[k]);
    worst = Math.max(worst, d);
    if (!(d <= 1e-4)) problems.push(`${key(a)}: ${k} cpu ${a[k]} cuda ${b[k]}`);
  }
}
// The marglik prior precisions of every posterior fit (LA, LLLA at each
// checkpoint): the fit's whole curvature and evidence path in one number each.
const pkey = (p: Prior) => `${p.seed}/${p.step}/${p.method}`;
const cudaPriors = new Map(cudaRun.priors.map((p) => [pkey(p), p.delta]));
if (!cpuRun.priors.length) problems.push('no prior precisions in the report');
let worstPrior = 0;
for (const p of cpuRun.priors) {
  const d = cudaPriors.get(pkey(p));
  if (!d || d.length !== p.delta.length) {
    problems.push(`prior ${pkey(p)}: missing or a different count on cuda`);
    continue;
  }
  for (let i = 0; i < d.length; i++) {
    const rel = Math.abs(d[i] - p.delta[i]) / Math.abs(p.delta[i]);
    worstPrior = Math.max(worstPrior, rel);
    if (!(rel <= 1e-4)) problems.push(`prior ${pkey(p)}[${i}]: cpu ${p.delta[i]} cuda ${d[i]}`);
  }
}
if (keepAt < 0) rmSync(dir, { recursive: true, force: true });
if (problems.length) {
  console.error(`main-job-e2e: FAILED\n  ${problems.slice(0, 20).join('\n  ')}`);
  process.exit(1);
}
console.log(
  `main-job-e2e: ${cpu.length} rows agree (largest ECE/NLL/Brier difference ${worst.toExponential(2)}, accuracy identical); ` +
    `${cpuRun.priors.length} marglik priors agree (largest relative difference ${worstPrior.toExponential(2)})`,
);
