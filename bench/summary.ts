// bench/results/SUMMARY.md from the benchmark JSONs present in bench/results:
// one table per benchmark with its target and met / not met, and the machine,
// commit, command and load average each was measured with. Written by
// bench/run.ts after every run (also usable alone: tsx bench/summary.ts).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../ts/io/safetensors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type J = any;

const f = (x: number | null | undefined, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const ok = (b: boolean | null | undefined) => (b === true ? 'met' : b === false ? '**not met**' : 'n/a');

function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function machineLine(j: J): string {
  const m = j.machine ?? {};
  const la = j.load_average;
  const load = la ? `; load average (1/5/15 min) at start ${la.start.map((x: number) => x.toFixed(2)).join('/')}, at end ${la.end.map((x: number) => x.toFixed(2)).join('/')}` : '';
  return `_${m.cpu}, ${m.cores} cores, ${m.threads} threads, ${m.simd}, BLAS ${m.blas} (core type ${m.openblasCoretype})${m.gemm ? `, large GEMMs: ${m.gemm}` : ''}; commit ${String(m.commit).slice(0, 10)}${m.dirty ? ' (dirty tree)' : ''}; \`${m.command}\`; ${m.date}; ${f(j.seconds, 0)} s${load}_`;
}

function engine(j: J): string {
  const t = j.targets;
  return table(
    ['quantity', 'value', 'target', ''],
    [
      ['built-in GEMM / BLAS GFLOP/s', f(j.builtin_vs_blas), `>= ${t.builtin_vs_blas_min}`, ok(j.builtin_vs_blas >= t.builtin_vs_blas_min)],
      ['120m step GFLOP/s / GEMM GFLOP/s', f(t.model_vs_gemm_120m), `>= ${t.model_vs_gemm_min_120m}`, ok(t.model_vs_gemm_120m >= t.model_vs_gemm_min_120m)],
      ...j.models.map((m: J) => [`${m.name} training step (B ${m.batch}, T ${m.seq})`, `${f(m.step_s)} s, ${f(m.gflops, 0)} GFLOP/s`, '', '']),
    ],
  );
}

function laplace(j: J): string {
  const rows: (string | number)[][] = [];
  for (const m of j.models) {
    const t = m.targets;
    rows.push([m.name, 'fit, sampled Fisher', `${f(m.fit_sampled_s)} s`, `<= ${f(t.fit_sampled_max_s)} s (1.1 epochs)`, ok(t.fit_sampled_ok)]);
    rows.push([m.name, 'fit, exact Fisher', `${f(m.fit_exact_s)} s`, `<= ${f(t.fit_exact_max_s)} s`, ok(t.fit_exact_ok)]);
    rows.push([m.name, 'posterior bytes', mib(m.posterior_bytes), `<= ${mib(t.posterior_bytes_max)}`, ok(t.posterior_bytes_ok)]);
    rows.push([m.name, 'predict s/example', f(m.predict_s_per_example, 3), `<= ${f(t.predict_s_per_example_max, 3)}`, ok(t.predict_ok)]);
    if (typeof m.tune_prior_s_per_example === 'number')
      rows.push([m.name, 'tunePrior s/example (25 priors)', `${f(m.tune_prior_s_per_example, 3)} (${f(m.tune_prior_s_per_example / m.predict_s_per_example)}x predict)`, '', '']);
  }
  return table(['model', 'quantity', 'value', 'target', ''], rows);
}

function peers(j: J): string {
  if (j.skipped) return j.skipped;
  const par = Object.entries(j.parity ?? {})
    .map(([k, v]: [string, J]) => `${k}: ${v.ok ? 'ok' : 'FAILED'} (max rel. err. ${Object.entries(v.rel_max_err ?? {}).filter(([, x]) => typeof x === 'number' && !Number.isInteger(x)).map(([n, x]) => `${n} ${(x as number).toExponential(1)}`).join(', ')})`)
    .join('; ');
  const sp = (s: J) => (s ? `${f(s.min)}-${f(s.max)}` : 'n/a');
  return [
    `Peer: PyTorch ${j.peer?.torch} (${j.peer?.python}), ${j.setup.threads} threads both sides; batch ${j.setup.batch} x ${j.setup.seq} tokens, C = ${j.setup.classes}, fit over ${j.setup.fit_examples} examples (exact Fisher), predictive = Jacobians + Lambda + probit. Ratio = peer / ours (median of ${j.setup.repeats.train} runs, fit ${j.setup.repeats.fit}).`,
    '',
    `Parity before timing (tolerance ${j.setup.parity_tolerance}): ${par}`,
    '',
    ...(typeof j.like_for_like === 'string' ? [`**Not like for like** (${j.like_for_like}); the ratios compare GEMM kernels as much as implementations.`, ''] : []),
    table(
      ['model', 'task', 'ours (s)', 'range', 'PyTorch (s)', 'range', 'ratio', 'target', ''],
      j.rows.map((r: J) => [r.model, r.task, f(r.ours_s, 3), sp(r.ours_spread), f(r.peer_s, 3), sp(r.peer_spread), f(r.ratio), `>= ${j.targets.ratio_min}x`, ok(r.met)]),
    ),
    ...j.rows
      .filter((r: J) => r.gemm_floor_s)
      .map(
        (r: J) =>
          `\n${r.model} training step: its unavoidable frozen-weight GEMMs alone take ${f(r.gemm_floor_s, 3)} s with this BLAS (ours = ${f(r.ours_over_floor)}x that), so no implementation on this BLAS can beat the peer by more than ${f(r.max_ratio)}x.`,
      ),
  ].join('\n');
}

function memory(j: J): string {
  const note =
    'Overhead = median peak RSS of fresh LoRA + Laplace processes over that of fresh LoRA-only processes (range: every pair of runs). ' +
    'In-run increment = in each LoRA + Laplace process, how far the fit, prior and predictive raise the peak above that process\'s own training peak (median): ' +
    'the Laplace part\'s addition without the spread of the training peak between processes.';
  return note + '\n\n' + table(
    ['model', 'LoRA peak RSS', 'LoRA + Laplace peak RSS', 'overhead', 'range', 'of what the run adds', 'target', '', 'in-run increment', '', 'all sides low rank: peak', 'overhead', 'Laplace state', 'state / LoRA peak'],
    j.rows.map((r: J) => [
      r.model,
      mib(r.lora_peak_bytes),
      mib(r.laplace_peak_bytes),
      pct(r.overhead),
      r.overhead_range ? `${pct(r.overhead_range[0])} to ${pct(r.overhead_range[1])}` : 'n/a',
      r.overhead_vs_run_added === null ? 'n/a' : pct(r.overhead_vs_run_added),
      `<= ${pct(j.targets.overhead_max)}`,
      ok(r.met),
      r.overhead_in_run !== undefined ? pct(r.overhead_in_run) : 'n/a',
      r.met_in_run !== undefined ? ok(r.met_in_run) : '',
      r.laplace_lowrank_peak_bytes ? mib(r.laplace_lowrank_peak_bytes) : 'n/a',
      r.overhead_lowrank !== undefined ? pct(r.overhead_lowrank) : 'n/a',
      r.laplace_state_bytes !== undefined ? mib(r.laplace_state_bytes) : 'n/a',
      r.laplace_state_vs_lora_peak !== undefined ? pct(r.laplace_state_vs_lora_peak) : 'n/a',
    ]),
  );
}

function scaling(j: J): string {
  const rows = j.axes.map((a: J) => [
    a.label,
    a.points.map((p: J) => p.x).join(', '),
    `${f(a.fit_exponent)} (R² ${f(a.fit_r2)})`,
    `${f(a.predict_exponent)} (R² ${f(a.predict_r2)})`,
    `[svg](${path.basename(a.chart.svg)}) [png](${path.basename(a.chart.png)})`,
  ]);
  return [
    `Growth exponents (log-log least squares of median seconds); base ${JSON.stringify(j.setup.base)}, ${j.setup.fit}; ${j.setup.predict}. No target in the issue: informational.`,
    '',
    table(['axis', 'values', 'fit exponent', 'predict exponent', 'chart'], rows),
  ].join('\n');
}

function pool(j: J): string {
  const rows = j.rows.map((r: J) => [r.model, r.task, f(r.sleep_s, 3), f(r.spin_s, 3), f(r.ratio), `${f(r.ratio_range[0])}-${f(r.ratio_range[1])}`]);
  return [
    `${j.what}; ${j.config.rounds} rounds, ${j.config.threads} threads; ${j.config.lora}; fit: ${j.config.fit}; predict: ${j.config.predict}. Ratio = sleep / spin (median of per-round ratios). No target in an issue: informational.`,
    '',
    table(['model', 'task', 'sleep (s)', 'spin (s)', 'ratio', 'range'], rows),
  ].join('\n');
}

const SECTIONS: [string, string, (j: J) => string][] = [
  ['peers', 'PyTorch peer, side by side', peers],
  ['memory', 'Memory overhead of the Bayesian part (peak RSS)', memory],
  ['scaling', 'Scaling of fit and predictive cost', scaling],
  ['laplace', 'Laplace cost next to training', laplace],
  ['engine', 'Engine: GEMM and training step', engine],
  ['pool', 'Kernel thread pool: spin vs sleep between jobs', pool],
];

export function writeSummary(dir = path.join(here, 'results')): string {
  const parts = ['# Benchmark summary', '', 'Generated by `npm run bench` (bench/summary.ts) from the JSON files in this folder; each section names the machine, commit and command it was measured with. The machine was shared with other work while these ran: see the load averages.', ''];
  for (const [name, title, fn] of SECTIONS) {
    const file = path.join(dir, `${name}.json`);
    if (!existsSync(file)) continue;
    const j = JSON.parse(readFileSync(file, 'utf8'));
    parts.push(`## ${title} (\`${name}.json\`)`, '', fn(j), '', machineLine(j), '');
  }
  const out = path.join(dir, 'SUMMARY.md');
  writeFileAtomic(out, parts.join('\n'));
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) writeSummary();
