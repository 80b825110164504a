// The main job (`bayeslora run`): fine-tune LoRA (MAP) with checkpoints and,
// at each checkpoint, compare MAP with Laplace-LoRA and the usual baselines on
// ACC, ECE, NLL and Brier, in distribution and under distribution shift,
// averaged over seeds. Methods:
//   MAP        softmax of the fine-tuned model's class logits
//   LA         Laplace over all LoRA matrices, marglik prior, MC predictive
//   LA-probit  the same posterior, probit predictive
//   LLLA       last-layer Laplace (LM-head LoRA only), MC predictive
//   TS         temperature scaling fitted on the validation split
//   MCD        MC dropout: mean of 10 dropout forward passes
//   CKPT-ENS   mean probabilities of the last 3 checkpoints
//   ENS        deep ensemble of independently seeded fine-tunings (final step)
// MCD and the Laplace methods run at `checkpoints` of the checkpoints (the
// last included); before the last one on the test split only.
// And, at the final checkpoint of the first seed only: LA-expand (tokens: expand), LA-sampled
// (sampled Fisher), LA-val (prior chosen by validation NLL instead of marglik).
// Interruptions: training writes checkpoints at every evaluation step and
// progress.json (run/progress.ts) records the seeds done and, for the seed in
// progress, the checkpoint reached and everything evaluated up to it;
// `resume: true` continues from there (completed seeds and steps are not redone).
import { mkdirSync, rmSync } from 'node:fs';
import { PROGRESS_FILE, readProgress, writeProgress } from './progress.ts';
import { writeFileAtomic } from '../io/safetensors.ts';
import path from 'node:path';
import { Model } from '../model.ts';
import { Tokenizer } from '../tokenizer.ts';
import { train } from '../train.ts';
import { Laplace, type LaplaceFitOptions } from '../laplace/laplace.ts';
import { softmaxRows, fitTemperature, reliabilityBins } from '../eval/metrics.ts';
import { loadTask, evalBatches, trainBatches, collateOptions, taskNames, type TaskData } from './datasets.ts';
import { aggregate, averageProbs, seedRow, type SeedRow, type Split } from './aggregate.ts';
import type { McBatch } from '../data/batch.ts';
import type { AnswerFormat } from '../data/format.ts';
import { BayesLoraError } from '../errors.ts';
import { checkRunOptions } from './check-options.ts';

export interface RunOptions {
  model: string;
  /** Backend the models run on (default 'cpu'); 'cuda' needs a build with CUDA and a usable device. */
  backend?: 'cpu' | 'cuda';
  train: string;
  test: string;
  validation: string;
  shift: string[];
  out: string;
  seeds: number;
  ensembleMembers: number; // 0 = no deep ensemble
  format: AnswerFormat;
  maxLength: number;
  lora: { r: number; alpha: number; dropout: number; targetModules: string[] };
  lr: number;
  epochs: number;
  batchSize: number;
  checkpoints: number; // checkpoints with the full evaluation (MCD, Laplace); MAP/TS/CKPT-ENS at 6
  mcdPasses: number;
  laSamples: number; // MC samples of the predictive
  /**
   * Rank kept by low-rank factor sides. 'auto': max(10, distinct answer tokens
   * of the training set), since the LM head's LoRA-B gradient side has one
   * direction per answer token and dropping some leaves those rows with
   * prior-only variance (docs/laplace-tokens.md).
   */
  nKfac: number | 'auto';
  extras: boolean; // LA-expand, LA-sampled, LA-val at the final checkpoint
  limits?: { train?: number; test?: number; validation?: number; shift?: number };
  log: (s: string) => void;
  progress?: (label: string, done: number, total: number) => void;
  /** Continue the interrupted run in `out` (its progress.json) instead of starting afresh. */
  resume?: boolean;
}

type RunConfig = Omit<RunOptions, 'log' | 'progress' | 'resume'>;

/** What progress.json keeps between processes (see run/progress.ts). */
interface JobState {
  seedRows: SeedRow[];
  priors: RunReport['priors'];
  finalMapProbs: [string, Float64Array[]][];
  reliability: [string, { method: string; probs: Float64Array }[]][];
  ckptHistory: [string, Float64Array[]][]; // of the seed in progress
  timings: Timing;
  spentSeconds: number; // wall-clock of earlier processes
}

interface EvalSet {
  split: Split;
  task: TaskData;
  batches: McBatch[];
}

interface Timing {
  [k: string]: number;
}

function now(): number {
  return performance.now() / 1000;
}

async function mapLogits(model: Model, set: EvalSet, tick?: () => void): Promise<Float32Array> {
  const out = new Float32Array(set.task.encoded.length * set.task.C);
  let o = 0;
  for (const b of set.batches) {
    const r = await model.forward(b);
    out.set(r.logits, o);
    o += r.logits.length;
    tick?.();
  }
  return out;
}

async function mcDropoutProbs(model: Model, set: EvalSet, passes: number, seed: number, tick?: () => void): Promise<Float64Array> {
  const list: Float64Array[] = [];
  for (let k = 0; k < passes; k++) {
    const out = new Float64Array(set.task.encoded.length * set.task.C);
    let o = 0;
    for (const b of set.batches) {
      const r = await model.forward(b, { train: true, dropoutStep: seed * 1000 + k });
      out.set(r.probs, o);
      o += r.probs.length;
      tick?.();
    }
    list.push(out);
  }
  return averageProbs(list);
}

async function laProbs(la: Laplace, set: EvalSet, method: 'mc' | 'probit', samples: number, seed: number, tick?: () => void): Promise<Float64Array> {
  const out = new Float64Array(set.task.encoded.length * set.task.C);
  let o = 0;
  for (const [i, b] of set.batches.entries()) {
    const r = await la.predict(b, { method, samples, seed: seed * 7919 + i });
    out.set(r.probs, o);
    o += r.probs.length;
    tick?.();
  }
  return out;
}

/** Both predictives from one set of Jacobian passes (the covariance does not depend on the link). */
async function laBoth(la: Laplace, set: EvalSet, samples: number, seed: number, tick?: () => void): Promise<{ mc: Float64Array; probit: Float64Array }> {
  const { predictiveProbs } = await import('../laplace/kfac.ts');
  const n = set.task.encoded.length * set.task.C;
  const mc = new Float64Array(n);
  const probit = new Float64Array(n);
  let o = 0;
  for (const [i, b] of set.batches.entries()) {
    const r = await la.predict(b, { method: 'mc', samples, seed: seed * 7919 + i });
    mc.set(r.probs, o);
    probit.set(await predictiveProbs(r.logits, r.lambda, { C: b.C, method: 'probit' }), o);
    o += r.probs.length;
    tick?.();
  }
  return { mc, probit };
}

export interface RunReport {
  rows: ReturnType<typeof aggregate>;
  seedRows: SeedRow[];
  config: RunConfig;
  timings: Timing;
  peakRssBytes: number;
  /** Prior precisions per fit; LA-val's entries also hold its validation grid (prior precision, NLL, ECE, ACC). */
  priors: { seed: number; step: number; method: string; delta: number[]; grid?: { delta: number; nll: number; ece: number; acc: number }[] }[];
  charts: string[];
  /** nKfac the Laplace fits used (config.nKfac resolved). */
  nKfacUsed: number;
}

export async function runMainJob(o: RunOptions): Promise<RunReport> {
  checkRunOptions(o);
  const { log: _l0, progress: _p0, resume: _r0, ...runConfig } = o;
  const prog = o.resume ? readProgress<RunConfig, JobState>(o.out) : null;
  if (prog && JSON.stringify({ ...prog.config, out: o.out }) !== JSON.stringify({ ...runConfig, out: o.out }))
    throw new BayesLoraError('INVALID_ARGUMENT', `resume: the options differ from those the run in ${o.out} started with`);
  const t0 = now() - (prog?.state.spentSeconds ?? 0);
  const timings: Timing = prog?.state.timings ?? {};
  const add = (k: string, s: number) => (timings[k] = (timings[k] ?? 0) + s);
  mkdirSync(o.out, { recursive: true });
  const tok = await Tokenizer.fromFile(path.join(o.model, 'tokenizer.json'));
  const enc = { format: o.format, maxLength: o.maxLength };
  const trainSet = await loadTask(tok, o.train, { ...enc, limit: o.limits?.train });
  const evalNames = taskNames([o.test, ...o.shift]);
  const testSet = await loadTask(tok, o.test, { ...enc, limit: o.limits?.test }, evalNames[0]);
  const valSet = await loadTask(tok, o.validation, { ...enc, limit: o.limits?.validation });
  const answerTokens = new Set(trainSet.encoded.flatMap((e) => e.rows)).size;
  const nKfac = o.nKfac === 'auto' ? Math.max(10, answerTokens) : o.nKfac;
  const shiftSets = await Promise.all(o.shift.map((f, i) => loadTask(tok, f, { ...enc, limit: o.limits?.shift }, evalNames[i + 1])));
  const EB = 32;
  const evalSets: EvalSet[] = [
    { split: 'test', task: testSet, batches: evalBatches(testSet, tok, EB, o.maxLength) },
    ...shiftSets.map((t) => ({ split: 'shift' as const, task: t, batches: evalBatches(t, tok, EB, o.maxLength) })),
  ];
  const valEval: EvalSet = { split: 'validation', task: valSet, batches: evalBatches(valSet, tok, EB, o.maxLength) };
  // The training batches every Laplace fit runs over (fixed order and seed): collated once per run.
  let curvature: McBatch[] | undefined;
  const curvatureBatches = () => (curvature ??= trainBatches(trainSet, tok, 16, o.maxLength, 99));
  o.log(
    `data: train ${trainSet.encoded.length} (${o.train}), validation ${valSet.encoded.length}, test ${testSet.encoded.length}` +
      shiftSets.map((s) => `, shift ${s.name} ${s.encoded.length}`).join('') +
      `; Laplace nKfac ${nKfac} (${answerTokens} distinct answer tokens)`,
  );

  const stepsPerEpoch = Math.ceil(trainSet.encoded.length / o.batchSize);
  const totalSteps = stepsPerEpoch * o.epochs;
  // MAP, TS and CKPT-ENS are cheap and evaluated at every checkpoint (6 per run);
  // MCD and the Laplace methods at `o.checkpoints` evenly spaced ones (the last included).
  const mapCheckpoints = Math.max(o.checkpoints, 6);
  const evalEvery = Math.max(1, Math.floor(totalSteps / mapCheckpoints));
  // A checkpoint gets the full evaluation when it is the first past a multiple of totalSteps / o.checkpoints.
  const stage = (step: number) => Math.floor((Math.max(0, step) * o.checkpoints) / totalSteps);
  const fullAt = (step: number) => stage(step) > stage(step - evalEvery);
  const seedRows: SeedRow[] = prog?.state.seedRows ?? [];
  const priors: RunReport['priors'] = prog?.state.priors ?? [];
  const finalMapProbs: Map<string, Float64Array[]> = new Map(prog?.state.finalMapProbs ?? []); // task -> per ensemble member
  const reliability: Map<string, { method: string; probs: Float64Array }[]> = new Map(prog?.state.reliability ?? []);
  const members = Math.max(o.seeds, o.ensembleMembers);
  const snapshot = (ckptHistory: Map<string, Float64Array[]>): JobState => ({
    seedRows,
    priors,
    finalMapProbs: [...finalMapProbs],
    reliability: [...reliability],
    ckptHistory: [...ckptHistory],
    timings,
    spentSeconds: now() - t0,
  });
  const ckptRoot = path.join(o.out, 'checkpoints');
  if (!prog) writeProgress<RunConfig, JobState>(o.out, { config: runConfig, seedsDone: 0, current: null, state: snapshot(new Map()) });
  else o.log(`resuming ${path.join(o.out, PROGRESS_FILE)}: ${prog.seedsDone} of ${members} seed(s) done`);

  for (let seed = prog?.seedsDone ?? 0; seed < members; seed++) {
    const full = seed < o.seeds; // members beyond `seeds` only train for the deep ensemble
    const cur = prog?.current?.seed === seed ? prog.current : null;
    const seedCkpt = path.join(ckptRoot, `seed-${seed}`);
    if (!cur) rmSync(seedCkpt, { recursive: true, force: true }); // leftovers of an attempt that reached no checkpoint
    o.log(`seed ${seed}: fine-tuning${full ? '' : ' (ensemble member)'}` + (cur ? `, resuming at step ${cur.step} from ${cur.checkpoint}` : ''));
    const model = await Model.load(o.model, { backend: o.backend ?? 'cpu' });
    try {
      model.addLora({ ...o.lora, seed: 1000 + seed });
      const ckptHistory: Map<string, Float64Array[]> = new Map(cur ? prog!.state.ckptHistory : []);
      const evaluate = async (m: Model, at: { step: number }) => {
        if (!full && at.step < totalSteps) return;
        const isFinal = at.step >= totalSteps;
        const te = now();
        // Before the final checkpoint the expensive methods (MCD, Laplace) see the
        // in-distribution test split only; the shift sets get them at the end.
        // This keeps the default run within its 15-minute budget on 2 cores.
        const expensive = full && (isFinal || fullAt(at.step));
        const fullSets = isFinal ? evalSets : evalSets.filter((s) => s.split === 'test');
        const extras = isFinal && o.extras; // every seed of the run, so the extra rows are means over seeds too
        const mcdOn = o.mcdPasses > 0 && o.lora.dropout > 0;
        // One progress bar per evaluated checkpoint; a unit is one batch of one
        // phase below (MAP logits, MC dropout passes, each Laplace fit and its
        // predictive passes, LA-val), counted from the same conditions.
        const nb = (sets: EvalSet[]) => sets.reduce((a, s) => a + s.batches.length, 0);
        const nVariants = 2 + (extras ? 2 : 0);
        const total =
          nb([valEval, ...evalSets]) +
          (expensive
            ? (mcdOn ? o.mcdPasses * nb(fullSets) : 0) +
              nVariants * (curvatureBatches().length + nb(fullSets)) +
              (extras ? nb([valEval]) + nb(evalSets) : 0)
            : 0);
        let done = 0;
        const tick = () => o.progress?.(`seed ${seed} step ${at.step} eval`, ++done, total);
        // MAP logits of every evaluation set and of validation.
        const valLogits = await mapLogits(m, valEval, tick);
        const T = fitTemperature(valLogits, valSet.labels, valSet.C);
        const mapBy: Map<EvalSet, Float64Array> = new Map();
        for (const s of evalSets) {
          const logits = await mapLogits(m, s, tick);
          const map = softmaxRows(logits, s.task.C);
          mapBy.set(s, map);
          if (isFinal) {
            const k = `${s.split}:${s.task.name}`;
            finalMapProbs.set(k, [...(finalMapProbs.get(k) ?? []), map]);
          }
          if (!full) continue;
          seedRows.push(seedRow(seed, s.task.name, s.split, at.step, 'MAP', map, s.task.labels, s.task.C));
          seedRows.push(seedRow(seed, s.task.name, s.split, at.step, 'TS', softmaxRows(logits, s.task.C, T), s.task.labels, s.task.C));
          const hist = [...(ckptHistory.get(s.task.name + s.split) ?? []), map].slice(-3);
          ckptHistory.set(s.task.name + s.split, hist);
          seedRows.push(seedRow(seed, s.task.name, s.split, at.step, 'CKPT-ENS', averageProbs(hist), s.task.labels, s.task.C));
        }
        add('map_eval_s', now() - te);
        if (!expensive) return;
        if (mcdOn) {
          const tm = now();
          for (const s of fullSets) {
            const p = await mcDropoutProbs(m, s, o.mcdPasses, seed, tick);
            seedRows.push(seedRow(seed, s.task.name, s.split, at.step, 'MCD', p, s.task.labels, s.task.C));
          }
          add('mcd_s', now() - tm);
        }
        // Laplace variants.
        const variants: { method: string; opts: LaplaceFitOptions; probit?: string; val?: boolean }[] = [
          { method: 'LA', opts: { fisher: 'exact', tokens: 'reduce', nKfac }, probit: 'LA-probit' },
          { method: 'LLLA', opts: { fisher: 'exact', tokens: 'reduce', nKfac, lastLayer: true } },
        ];
        if (extras) {
          variants.push(
            { method: 'LA-expand', opts: { fisher: 'exact', tokens: 'expand', nKfac } },
            { method: 'LA-sampled', opts: { fisher: 'sampled', samples: 1, seed, tokens: 'reduce', nKfac } },
          );
        }
        for (const v of variants) {
          const tf = now();
          const la = await Laplace.fit(m, curvatureBatches(), { ...v.opts, onBatch: tick });
          add(`fit_${v.method}_s`, now() - tf);
          for (const w of la.warnings) o.log(`${v.method} (seed ${seed}, step ${at.step}): ${w}`);
          try {
            priors.push({ seed, step: at.step, method: v.method, delta: [...la.posterior.prior()] });
            const tp = now();
            for (const s of fullSets) {
              const { mc, probit } = await laBoth(la, s, o.laSamples, seed, tick);
              seedRows.push(seedRow(seed, s.task.name, s.split, at.step, v.method, mc, s.task.labels, s.task.C));
              if (v.probit) seedRows.push(seedRow(seed, s.task.name, s.split, at.step, v.probit, probit, s.task.labels, s.task.C));
              if (isFinal && seed === 0 && s.split === 'test' && v.method === 'LA') {
                reliability.set(s.task.name, [
                  { method: 'MAP', probs: mapBy.get(s)! },
                  { method: 'LA', probs: mc },
                ]);
              }
            }
            add(`predict_${v.method}_s`, now() - tp);
            if (extras && v.method === 'LA') {
              // LA-val: the prior precision that minimises validation NLL (MC, as the LA
              // row), on a grid of 0.01x..10^4x the marglik prior in quarter decades, over
              // the whole validation split: one predictive pass serves every grid point.
              const tv = now();
              const d0 = la.posterior.prior()[0]; // the marglik prior the grid scales
              const tuned = await la.tunePrior(valEval.batches, { objective: 'nll', method: 'mc', samples: 1000, seed, onBatch: tick });
              for (const w of tuned.warnings) o.log(`LA-val (seed ${seed}, step ${at.step}): ${w}`);
              priors.push({
                seed, step: at.step, method: 'LA-val', delta: [tuned.priorPrecision[0]],
                grid: tuned.grid.map((g) => ({ delta: d0 * g.scale, nll: g.nll, ece: g.ece, acc: g.acc })),
              });
              for (const s of evalSets) {
                const p = await laProbs(la, s, 'mc', o.laSamples, seed, tick);
                seedRows.push(seedRow(seed, s.task.name, s.split, at.step, 'LA-val', p, s.task.labels, s.task.C));
              }
              add('la_val_s', now() - tv);
            }
            if (isFinal && seed === 0 && v.method === 'LA') {
              la.posterior.setPrior({ delta: priors.find((p) => p.method === 'LA' && p.step === at.step && p.seed === seed)!.delta[0] });
              await la.save(path.join(o.out, 'posterior.safetensors'));
            }
          } finally {
            la.dispose();
          }
        }
        o.log(`seed ${seed} step ${at.step}: evaluated in ${(now() - te).toFixed(1)} s`);
      };
      if (full && !cur) {
        // Step 0: the base model itself (LoRA B = 0), i.e. zero-shot ranking of the
        // choices by the likelihood the base model gives each answer after the prompt.
        for (const s of evalSets) {
          const p = softmaxRows(await mapLogits(model, s), s.task.C);
          seedRows.push(seedRow(seed, s.task.name, s.split, 0, 'MAP', p, s.task.labels, s.task.C));
        }
      }
      const tt = now();
      let firstStep = 0;
      let lastStep = 0;
      await train(model, trainSet.encoded, {
        epochs: o.epochs,
        batchSize: o.batchSize,
        lr: o.lr,
        warmupRatio: 0.1,
        schedule: 'linear',
        weightDecay: 0,
        seed: 2000 + seed,
        collate: collateOptions(tok, o.maxLength),
        evaluate,
        evalEvery,
        checkpointDir: seedCkpt,
        checkpointEvery: evalEvery,
        resumeFrom: cur?.checkpoint,
        onCheckpoint: (c) =>
          writeProgress<RunConfig, JobState>(o.out, {
            config: runConfig,
            seedsDone: seed,
            current: { seed, checkpoint: c.dir, step: c.step },
            state: snapshot(ckptHistory),
          }),
        onProgress: (p) => {
          if (!firstStep) firstStep = p.step;
          lastStep = p.step;
          o.progress?.(`seed ${seed} train`, p.step, p.totalSteps);
        },
      });
      add('train_total_s', now() - tt);
      o.log(`seed ${seed}: trained steps ${firstStep ? `${firstStep}..${lastStep}` : 'none'} in this process`);
      if (seed === 0) await model.saveAdapter(path.join(o.out, 'adapter'));
    } finally {
      model.dispose();
    }
    writeProgress<RunConfig, JobState>(o.out, { config: runConfig, seedsDone: seed + 1, current: null, state: snapshot(new Map()) });
    rmSync(seedCkpt, { recursive: true, force: true });
  }

  // Deep ensemble over the members' final MAP predictions.
  if (o.ensembleMembers > 1) {
    for (const s of evalSets) {
      const list = finalMapProbs.get(`${s.split}:${s.task.name}`) ?? [];
      if (list.length >= 2) {
        const r = seedRow(0, s.task.name, s.split, totalSteps, 'ENS', averageProbs(list.slice(0, o.ensembleMembers)), s.task.labels, s.task.C);
        seedRows.push(r);
      }
    }
  }

  const rows = aggregate(seedRows);
  timings.total_s = now() - t0;
  const charts = await writeCharts(o.out, rows, reliability, evalSets, priors);
  const report: RunReport = {
    rows,
    seedRows,
    config: runConfig,
    timings,
    peakRssBytes: peakRss(),
    priors,
    charts,
    nKfacUsed: nKfac,
  };
  writeFileAtomic(path.join(o.out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(path.join(o.out, 'report.md'), renderMarkdown(report));
  return report;
}

function peakRss(): number {
  const ru = process.resourceUsage();
  return ru.maxRSS * 1024;
}


async function writeCharts(
  out: string,
  rows: ReturnType<typeof aggregate>,
  reliability: Map<string, { method: string; probs: Float64Array }[]>,
  evalSets: EvalSet[],
  priors: RunReport['priors'],
): Promise<string[]> {
  const { reliabilityDiagram, metricVsStep, priorScan } = await import('../eval/charts.ts');
  const files: string[] = [];
  // LA-val's validation scan (seed 0, final checkpoint): how far the marglik prior is from the held-out best.
  const scan = priors.filter((p) => p.method === 'LA-val' && p.seed === 0 && p.grid).sort((a, b) => b.step - a.step)[0];
  const marglik = scan && priors.find((p) => p.method === 'LA' && p.seed === 0 && p.step === scan.step);
  if (scan && marglik) {
    const c = await priorScan(
      scan.grid!,
      [
        { label: 'marglik', delta: marglik.delta[0] },
        { label: 'LA-val', delta: scan.delta[0] },
      ],
      `LA: validation NLL and ECE against the prior (seed 0, step ${scan.step})`,
      path.join(out, 'prior-scan-validation'),
    );
    files.push(c.svg, c.png);
  }
  for (const [task, series] of reliability) {
    const set = evalSets.find((s) => s.task.name === task && s.split === 'test')!;
    const r = await reliabilityDiagram(
      series.map((s) => ({ method: s.method, bins: reliabilityBins(s.probs, set.task.labels, set.task.C) })),
      `Reliability, ${task} test (seed 0, final checkpoint)`,
      path.join(out, `reliability-${task}`),
    );
    files.push(r.svg, r.png);
  }
  const main = ['MAP', 'LA', 'LA-probit', 'LLLA', 'TS', 'MCD', 'CKPT-ENS'];
  for (const metric of ['ece', 'nll', 'acc'] as const) {
    for (const task of [...new Set(rows.map((r) => `${r.split}:${r.task}`))]) {
      const [split, name] = task.split(':');
      const data = rows
        .filter((r) => r.split === split && r.task === name && main.includes(r.method))
        .map((r) => ({ step: r.step, method: r.method, value: r[metric] }));
      if (!data.length) continue;
      const c = await metricVsStep(data, metric.toUpperCase(), `${metric.toUpperCase()} vs step, ${name} (${split})`, path.join(out, `${metric}-vs-step-${name}`));
      files.push(c.svg, c.png);
    }
  }
  return files.map((f) => path.relative(out, f));
}

const ORDER = ['MAP', 'LA', 'LA-probit', 'LLLA', 'TS', 'MCD', 'CKPT-ENS', 'ENS', 'LA-expand', 'LA-sampled', 'LA-val'];

export function renderMarkdown(r: RunReport): string {
  const lastStep = Math.max(...r.rows.map((x) => x.step));
  const lines: string[] = [];
  lines.push('# bayeslora run report', '');
  lines.push(`Model \`${r.config.model}\`, train \`${r.config.train}\`, ${r.config.seeds} seed(s); values are means over seeds (± std).`, '');
  const fmt = (m: number, s: number) => (r.config.seeds > 1 ? `${m.toFixed(3)} ± ${s.toFixed(3)}` : m.toFixed(3));
  for (const key of [...new Set(r.rows.map((x) => `${x.split}:${x.task}`))]) {
    const [split, task] = key.split(':');
    lines.push(`## ${task} (${split}), final checkpoint (step ${lastStep})`, '');
    lines.push('| method | ACC | ECE | NLL | Brier |', '|---|---|---|---|---|');
    const rows = r.rows
      .filter((x) => x.split === split && x.task === task && x.step === lastStep)
      .sort((a, b) => ORDER.indexOf(a.method) - ORDER.indexOf(b.method));
    for (const x of rows) lines.push(`| ${x.method} | ${fmt(x.acc, x.std.acc)} | ${fmt(x.ece, x.std.ece)} | ${fmt(x.nll, x.std.nll)} | ${fmt(x.brier, x.std.brier)} |`);
    const base = r.rows.find((x) => x.split === split && x.task === task && x.step === 0 && x.method === 'MAP');
    if (base) lines.push('', `Base model before fine-tuning (step 0): ACC ${fmt(base.acc, base.std.acc)}, ECE ${fmt(base.ece, base.std.ece)}, NLL ${fmt(base.nll, base.std.nll)}.`);
    lines.push('');
  }
  lines.push('## Timings (seconds, all seeds)', '');
  for (const [k, v] of Object.entries(r.timings)) lines.push(`- ${k}: ${v.toFixed(1)}`);
  lines.push('', `Peak resident memory: ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`, '');
  for (const c of r.charts.filter((c) => c.endsWith('.svg'))) lines.push(`![${c}](${c})`);
  return lines.join('\n') + '\n';
}
