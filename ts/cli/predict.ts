// `bayeslora predict`: the Laplace-LoRA predictive of a fitted posterior on a
// JSONL file. Loads the model, the adapter and the posterior (which must have
// been fitted for this adapter: INVALID_ARGUMENT "adapter mismatch"
// otherwise), and writes one JSON line per example:
//   {"probs": [C], "mean": [C], "cov": [[C x C]], "label": y | null}
// mean = MAP class logits, cov = the linearised logit covariance Lambda,
// probs = the chosen predictive (mc, probit, bridge or map). When the file has
// labels, ACC/ECE/NLL/Brier over the labelled examples go to stderr.
// Encoding (answer format, max length) defaults to what `fit` recorded in the
// fit.json next to the posterior, so test data is encoded like training data.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, isAdapterDir } from '../adapter.ts';
import { invalid } from '../errors.ts';
import { Laplace } from '../laplace/laplace.ts';
import type { PredictiveMethod } from '../laplace/kfac.ts';
import { Model } from '../model.ts';
import { Tokenizer } from '../tokenizer.ts';
import { readMcJsonl } from '../data/jsonl.ts';
import { encodeMc, type AnswerFormat } from '../data/format.ts';
import { evalBatches, type TaskData } from '../run/datasets.ts';
import { computeMetrics, type Metrics } from '../eval/metrics.ts';
import { choiceArg, intArg, parseCli, required } from './args.ts';
import { FIT_JSON, defaultMaxLength } from './fit.ts';

const CMD = 'predict';

const HELP = `usage: bayeslora predict --model DIR --adapter DIR --posterior FILE --data test.jsonl --out preds.jsonl [options]
  --model DIR        LLaMA-family checkpoint with tokenizer.json
  --device D         cpu (default) | cuda
  --adapter DIR      the PEFT LoRA adapter the posterior was fitted for
  --posterior FILE   posterior.safetensors written by 'bayeslora fit'
  --data FILE        JSONL to predict ("answer" optional)
  --out FILE         predictions, one JSON line per example: {probs, mean, cov, label}
  --method M         mc (default) | probit | bridge | map
  --samples N        Monte Carlo samples for mc (default 1000)
  --seed N           seed of the Monte Carlo samples (default 0)
  --batch N          examples per batch (default 16)
  --format F         choice | letter (default: as fitted, from fit.json, else choice)
  --max-length N     tokens kept per example (default: as fitted, else min(1024, model context))
Metrics (ACC, ECE, NLL, Brier) over labelled examples are printed to stderr as JSON.
`;

export interface PredictCliOptions {
  model: string;
  /** Backend the model runs on (default 'cpu'). */
  backend: 'cpu' | 'cuda';
  adapter: string;
  posterior: string;
  data: string;
  out: string;
  method: PredictiveMethod;
  samples: number;
  seed: number;
  batch: number;
  format?: AnswerFormat;
  maxLength?: number;
}

export interface PredictReport {
  out: string;
  examples: number;
  labelled: number;
  C: number;
  method: PredictiveMethod;
  format: AnswerFormat;
  maxLength: number;
  seconds: number;
  /** Over labelled examples; null when none is labelled. */
  metrics: Metrics | null;
}

export function parsePredictArgs(args: string[]): PredictCliOptions {
  const v = parseCli(CMD, args, {
    model: { type: 'string' },
    device: { type: 'string' },
    adapter: { type: 'string' },
    posterior: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    method: { type: 'string' },
    samples: { type: 'string' },
    seed: { type: 'string' },
    batch: { type: 'string' },
    format: { type: 'string' },
    'max-length': { type: 'string' },
  });
  const o: PredictCliOptions = {
    model: path.resolve(required(CMD, v, 'model')),
    backend: choiceArg(CMD, v, 'device', ['cpu', 'cuda'] as const, 'cpu'),
    adapter: path.resolve(required(CMD, v, 'adapter')),
    posterior: path.resolve(required(CMD, v, 'posterior')),
    data: path.resolve(required(CMD, v, 'data')),
    out: path.resolve(required(CMD, v, 'out')),
    method: choiceArg(CMD, v, 'method', ['mc', 'probit', 'bridge', 'map'] as const, 'mc'),
    samples: intArg(CMD, v, 'samples', 1000, 1, 10_000_000),
    seed: intArg(CMD, v, 'seed', 0, 0, 0xffffffff),
    batch: intArg(CMD, v, 'batch', 16, 1, 1_000_000),
    format: v.format === undefined ? undefined : choiceArg(CMD, v, 'format', ['choice', 'letter'] as const, 'choice'),
    maxLength: v['max-length'] === undefined ? undefined : intArg(CMD, v, 'max-length', 0, 2, 1 << 24),
  };
  if (!isAdapterDir(o.adapter)) throw invalid(`${CMD}: --adapter ${o.adapter} must be a directory with ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}`);
  return o;
}

/** Encoding settings `fit` recorded next to the posterior, when present and readable. */
function fittedSettings(posterior: string): { format?: AnswerFormat; maxLength?: number } {
  const f = path.join(path.dirname(posterior), FIT_JSON);
  if (!existsSync(f)) return {};
  try {
    const j = JSON.parse(readFileSync(f, 'utf8'));
    return {
      format: j.format === 'choice' || j.format === 'letter' ? j.format : undefined,
      maxLength: Number.isInteger(j.maxLength) && j.maxLength >= 2 ? j.maxLength : undefined,
    };
  } catch {
    return {}; // a damaged sidecar only loses the defaults
  }
}

const round = (x: number) => Number(x.toPrecision(9));

export async function predictPosterior(o: PredictCliOptions, progress?: (done: number, total: number) => void): Promise<PredictReport> {
  const t0 = performance.now();
  const fitted = fittedSettings(o.posterior);
  const format = o.format ?? fitted.format ?? 'choice';
  const model = await Model.load(o.model, { backend: o.backend ?? 'cpu' });
  try {
    await model.loadAdapter(o.adapter);
    const la = await Laplace.load(o.posterior, model);
    try {
      const maxLength = o.maxLength ?? fitted.maxLength ?? defaultMaxLength(model);
      const tok = await Tokenizer.fromFile(path.join(o.model, 'tokenizer.json'));
      const examples = await readMcJsonl(o.data, { allowUnlabelled: true });
      if (examples.length === 0) throw invalid(`${CMD}: ${o.data} has no examples`);
      const encoded = await encodeMc(tok, examples, { format, source: o.data });
      const C = encoded[0].rows.length;
      const odd = encoded.findIndex((e) => e.rows.length !== C);
      if (odd >= 0) throw invalid(`${CMD}: ${o.data}: every example needs the same number of choices (example 0 has ${C}, example ${odd} has ${encoded[odd].rows.length})`);
      const task: TaskData = {
        name: path.basename(o.data),
        file: o.data,
        examples,
        encoded,
        labels: Int32Array.from(encoded.map((e) => e.label)),
        C,
      };
      const batches = evalBatches(task, tok, o.batch, maxLength);
      const probsAll = new Float64Array(examples.length * C);
      mkdirSync(path.dirname(o.out), { recursive: true });
      const tmp = `${o.out}.tmp`;
      writeFileSync(tmp, '');
      try {
        let at = 0;
        for (const [i, b] of batches.entries()) {
          // One seed per batch, derived from --seed: reproducible for a fixed --batch.
          const r = await la.predict(b, { method: o.method, samples: o.samples, seed: (o.seed + i * 7919) >>> 0 });
          const lines: string[] = [];
          for (let k = 0; k < b.B; k++) {
            const probs = Array.from(r.probs.subarray(k * C, (k + 1) * C), round);
            const mean = Array.from(r.logits.subarray(k * C, (k + 1) * C), round);
            const cov = Array.from({ length: C }, (_, c) => Array.from(r.lambda.subarray((k * C + c) * C, (k * C + c + 1) * C), round));
            const y = b.labels[k];
            lines.push(JSON.stringify({ probs, mean, cov, label: y >= 0 ? y : null }));
          }
          probsAll.set(r.probs, at);
          at += r.probs.length;
          appendFileSync(tmp, lines.join('\n') + '\n');
          progress?.(i + 1, batches.length);
        }
        renameSync(tmp, o.out);
      } catch (e) {
        rmSync(tmp, { force: true });
        throw e;
      }
      const idx = [...task.labels.keys()].filter((i) => task.labels[i] >= 0);
      let metrics: Metrics | null = null;
      if (idx.length) {
        const p = new Float64Array(idx.length * C);
        idx.forEach((i, j) => p.set(probsAll.subarray(i * C, (i + 1) * C), j * C));
        metrics = computeMetrics(p, Int32Array.from(idx.map((i) => task.labels[i])), C);
      }
      return {
        out: o.out,
        examples: examples.length,
        labelled: idx.length,
        C,
        method: o.method,
        format,
        maxLength,
        seconds: (performance.now() - t0) / 1000,
        metrics,
      };
    } finally {
      la.dispose();
    }
  } finally {
    model.dispose();
  }
}

export async function run(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  const o = parsePredictArgs(args);
  const r = await predictPosterior(o, (done, total) => {
    if (process.stderr.isTTY) process.stderr.write(`\rpredict: batch ${done}/${total}${done === total ? '\n' : ''}`);
  });
  process.stderr.write(`predict: wrote ${r.examples} predictions to ${r.out} (${r.method}, ${r.seconds.toFixed(1)} s)\n`);
  if (r.metrics) process.stderr.write(JSON.stringify({ labelled: r.labelled, ...r.metrics }) + '\n');
  return 0;
}
