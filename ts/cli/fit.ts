// `bayeslora fit`: fit a Laplace posterior over a fine-tuned PEFT LoRA adapter.
// Loads the model and adapter, encodes the training JSONL the way the main
// job does (ts/run/datasets.ts), runs the K-FAC Fisher passes, chooses the
// prior precision by the marginal likelihood (or takes a fixed one; with
// --validation, the multiple of it that minimises validation NLL), and
// writes <out>/posterior.safetensors next to a copy of the adapter, plus
// <out>/fit.json (the summary and the encoding settings, which `predict`
// reuses as its defaults so test data is encoded like the training data).
import { copyFileSync, mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../io/safetensors.ts';
import path from 'node:path';
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterFiles, isAdapterDir } from '../adapter.ts';
import { invalid } from '../errors.ts';
import { Laplace, type FisherType, type LaplaceSummary } from '../laplace/laplace.ts';
import type { TokenHandling } from '../laplace/kfac.ts';
import { Model } from '../model.ts';
import { Tokenizer } from '../tokenizer.ts';
import { evalBatches, loadTask, trainBatches } from '../run/datasets.ts';
import type { PriorGridPoint } from '../laplace/tune-prior.ts';
import type { McBatch } from '../data/batch.ts';
import type { AnswerFormat } from '../data/format.ts';
import { choiceArg, intArg, parseCli, positiveArg, required, strArg } from './args.ts';

const CMD = 'fit';

const HELP = `usage: bayeslora fit --model DIR --adapter DIR --data train.jsonl --out DIR [options]
  --model DIR          LLaMA-family checkpoint with tokenizer.json
  --device D           cpu (default) | cuda
  --adapter DIR        PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)
  --data FILE          training JSONL ({"prompt", "choices", "answer"} per line)
  --out DIR            writes posterior.safetensors, a copy of the adapter and fit.json
  --fisher F           exact (default) | sampled | empirical
  --samples N          labels drawn per example for --fisher sampled (default 1)
  --seed N             seed of the label sampling and of the batch order (default 0)
  --tokens T           reduce (default: one row per sequence) | expand (every token) | aligned
                       (per sequence, the input weighted by the gradient; see docs/laplace-tokens.md)
  --n-kfac N           rank of low-rank K-FAC factors (default 10; keep >= the number of distinct
                       answer tokens when the LM head carries LoRA, else a warning)
  --last-layer         last-layer Laplace: only the LM head's LoRA matrices
  --prior P            marglik (default: maximise the marginal likelihood) | a precision > 0
  --per-layer-prior    with marglik: one prior precision per LoRA matrix
  --validation FILE    labelled JSONL: choose the prior on it instead (the scale of the marglik or
                       given prior, 0.01x to 10^4x, whose MC predictive has the lowest NLL there;
                       Laplace.tunePrior), recorded as priorTuning
  --format F           answer format: choice (default) | letter
  --batch N            examples per Fisher batch (default 16)
  --max-length N       tokens kept per example, from the right (default min(1024, model context))
Prints a JSON summary (prior, log marginal likelihood, seconds, posterior bytes).
`;

export const FIT_JSON = 'fit.json';
export const POSTERIOR_FILE = 'posterior.safetensors';

export interface FitCliOptions {
  model: string;
  /** Backend the model runs on (default 'cpu'). */
  backend: 'cpu' | 'cuda';
  adapter: string;
  data: string;
  out: string;
  fisher: FisherType;
  samples: number;
  seed: number;
  tokens: TokenHandling;
  nKfac: number;
  lastLayer: boolean;
  prior: number | 'marglik';
  perLayerPrior: boolean;
  /** Held-out JSONL to choose the prior on (Laplace.tunePrior), or undefined. */
  validation?: string;
  format: AnswerFormat;
  batch: number;
  /** undefined: min(1024, the model's max_position_embeddings). */
  maxLength?: number;
}

/** What `fit` prints and stores in fit.json. */
export interface FitReport {
  posterior: string;
  adapter: string;
  data: string;
  examples: number;
  C: number;
  fisher: FisherType;
  tokens: TokenHandling;
  nKfac: number;
  lastLayer: boolean;
  format: AnswerFormat;
  maxLength: number;
  batch: number;
  prior: number[];
  /** With --validation: the chosen scale of the first prior, the grid and the examples scored. */
  priorTuning?: { validation: string; scale: number; objective: string; n: number; grid: PriorGridPoint[] };
  logMarglik: number;
  params: number;
  layers: number;
  seconds: { total: number; fisher: number; posterior: number };
  posteriorBytes: number;
  factorBytes: number;
  /** Laplace.warnings: numerical adjustments, truncated LM-head answer rows. */
  warnings: string[];
  summary: LaplaceSummary;
}

export function parseFitArgs(args: string[]): FitCliOptions {
  const v = parseCli(CMD, args, {
    model: { type: 'string' },
    device: { type: 'string' },
    adapter: { type: 'string' },
    data: { type: 'string' },
    out: { type: 'string' },
    fisher: { type: 'string' },
    samples: { type: 'string' },
    seed: { type: 'string' },
    tokens: { type: 'string' },
    'n-kfac': { type: 'string' },
    'last-layer': { type: 'boolean' },
    prior: { type: 'string' },
    'per-layer-prior': { type: 'boolean' },
    validation: { type: 'string' },
    format: { type: 'string' },
    batch: { type: 'string' },
    'max-length': { type: 'string' },
  });
  let prior: number | 'marglik' = 'marglik';
  if (v.prior !== undefined && v.prior !== 'marglik') prior = positiveArg(CMD, v, 'prior')!;
  const o: FitCliOptions = {
    model: path.resolve(required(CMD, v, 'model')),
    backend: choiceArg(CMD, v, 'device', ['cpu', 'cuda'] as const, 'cpu'),
    adapter: path.resolve(required(CMD, v, 'adapter')),
    data: path.resolve(required(CMD, v, 'data')),
    out: path.resolve(required(CMD, v, 'out')),
    fisher: choiceArg(CMD, v, 'fisher', ['exact', 'sampled', 'empirical'] as const, 'exact'),
    samples: intArg(CMD, v, 'samples', 1, 1, 1_000_000),
    seed: intArg(CMD, v, 'seed', 0, 0, 0xffffffff),
    tokens: choiceArg(CMD, v, 'tokens', ['reduce', 'expand', 'aligned'] as const, 'reduce'),
    nKfac: intArg(CMD, v, 'n-kfac', 10, 1, 100_000),
    lastLayer: v['last-layer'] === true,
    prior,
    perLayerPrior: v['per-layer-prior'] === true,
    validation: strArg(v, 'validation') === undefined ? undefined : path.resolve(strArg(v, 'validation')!),
    format: choiceArg(CMD, v, 'format', ['choice', 'letter'] as const, 'choice'),
    batch: intArg(CMD, v, 'batch', 16, 1, 1_000_000),
    maxLength: v['max-length'] === undefined ? undefined : intArg(CMD, v, 'max-length', 0, 2, 1 << 24),
  };
  if (o.perLayerPrior && o.prior !== 'marglik') throw invalid(`${CMD}: --per-layer-prior needs --prior marglik`);
  if (!isAdapterDir(o.adapter)) throw invalid(`${CMD}: --adapter ${o.adapter} must be a directory with ${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}`);
  return o;
}

/** The model's context length caps the default sequence length. */
export function defaultMaxLength(model: Model): number {
  return Math.max(2, Math.min(1024, model.info().config.maxPositionEmbeddings));
}

export interface FitHooks {
  log?: (s: string) => void;
  progress?: (done: number, total: number) => void;
}

export async function fitPosterior(o: FitCliOptions, hooks: FitHooks = {}): Promise<FitReport> {
  const t0 = performance.now();
  const model = await Model.load(o.model, { backend: o.backend ?? 'cpu' });
  try {
    await model.loadAdapter(o.adapter);
    const tok = await Tokenizer.fromFile(path.join(o.model, 'tokenizer.json'));
    const maxLength = o.maxLength ?? defaultMaxLength(model);
    const task = await loadTask(tok, o.data, { format: o.format, maxLength });
    if (task.encoded.length === 0) throw invalid(`${CMD}: ${o.data} has no examples`);
    hooks.log?.(`${task.encoded.length} examples, C = ${task.C}, ${o.fisher} Fisher, tokens ${o.tokens}${o.lastLayer ? ', last layer' : ''}`);
    const batches = trainBatches(task, tok, o.batch, maxLength, o.seed);
    // The validation file is read before the fit, so that a bad one fails at once.
    let valBatches: McBatch[] | undefined;
    if (o.validation) {
      const val = await loadTask(tok, o.validation, { format: o.format, maxLength });
      if (val.encoded.length === 0) throw invalid(`${CMD}: ${o.validation} has no examples`);
      valBatches = evalBatches(val, tok, o.batch, maxLength);
    }
    const la = await Laplace.fit(model, batches, {
      fisher: o.fisher,
      samples: o.samples,
      seed: o.seed,
      tokens: o.tokens,
      nKfac: o.nKfac,
      lastLayer: o.lastLayer,
      prior: o.prior,
      perLayerPrior: o.perLayerPrior,
      onBatch: (i) => hooks.progress?.(i + 1, batches.length),
    });
    try {
      let priorTuning: FitReport['priorTuning'];
      if (o.validation && valBatches) {
        const t = await la.tunePrior(valBatches, { seed: o.seed });
        for (const w of t.warnings) hooks.log?.(w);
        hooks.log?.(`prior chosen on ${t.n} validation examples: ${t.scale.toPrecision(3)}x, NLL ${t.grid.find((g) => g.scale === t.scale)!.nll.toFixed(4)}`);
        priorTuning = { validation: o.validation, scale: t.scale, objective: t.objective, n: t.n, grid: t.grid };
      }
      mkdirSync(o.out, { recursive: true });
      const from = adapterFiles(o.adapter);
      const to = adapterFiles(o.out);
      if (path.resolve(from.config) !== path.resolve(to.config)) {
        copyFileSync(from.config, to.config);
        copyFileSync(from.weights, to.weights);
      }
      const posterior = path.join(o.out, POSTERIOR_FILE);
      await la.save(posterior);
      const s = la.summary();
      const report: FitReport = {
        posterior,
        adapter: o.out,
        data: o.data,
        examples: task.encoded.length,
        C: task.C,
        fisher: o.fisher,
        tokens: o.tokens,
        nKfac: o.nKfac,
        lastLayer: o.lastLayer,
        format: o.format,
        maxLength,
        batch: o.batch,
        prior: s.priorPrecision,
        priorTuning,
        logMarglik: s.logMarglik,
        params: s.params,
        layers: s.layers,
        seconds: { total: (performance.now() - t0) / 1000, fisher: s.fisherSeconds, posterior: s.posteriorSeconds },
        posteriorBytes: s.posteriorBytes,
        factorBytes: s.factorBytes,
        warnings: la.warnings,
        summary: s,
      };
      const file = path.join(o.out, FIT_JSON);
      writeFileAtomic(file, JSON.stringify(report, null, 2) + '\n');
      return report;
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
  const o = parseFitArgs(args);
  const report = await fitPosterior(o, {
    log: (s) => process.stderr.write(`fit: ${s}\n`),
    progress: (done, total) => {
      if (process.stderr.isTTY) process.stderr.write(`\rfit: batch ${done}/${total}${done === total ? '\n' : ''}`);
    },
  });
  const { summary: _s, ...brief } = report;
  process.stdout.write(JSON.stringify(brief, null, 2) + '\n');
  return 0;
}
