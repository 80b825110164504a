// Laplace: the high-level posterior over a model's LoRA weights (Laplace-LoRA).
//   const la = await Laplace.fit(model, trainBatches, { fisher: 'exact', prior: 'marglik' });
//   const { probs } = await la.predict(batch, { method: 'mc', samples: 1000 });
//   await la.save('adapter/laplace.safetensors');
//   const again = await Laplace.load('adapter/laplace.safetensors', model);
// Orchestration only: one native call per batch (Fisher passes, predictive),
// the mathematics lives in cpp/laplace (see SPEC-laplace.md).
import type { McBatch } from '../data/batch.ts';
import { throwIfAborted } from '../abort.ts';
import { invalid, native } from '../errors.ts';
import type { Model } from '../model.ts';
import { loadNative } from '../native.ts';
import {
  KfacAccumulator,
  Posterior,
  predictiveProbsReport,
  type KfacLayerSpec,
  type PredictiveMethod,
  type PriorFit,
  type TokenHandling,
} from './kfac.ts';
import { loadLaplace, saveLaplace } from './persist.ts';
import { tunePrior, type PriorTuning, type TunePriorOptions } from './tune-prior.ts';

export type FisherType = 'exact' | 'sampled' | 'empirical';

export interface LaplaceFitOptions {
  /** Curvature: 'exact' (default; C backward passes), 'sampled' (m labels ~ p), 'empirical' (true labels). */
  fisher?: FisherType;
  /** m for 'sampled' (default 1). */
  samples?: number;
  /** Seed of the label sampling ('sampled'). */
  seed?: number;
  tokens?: TokenHandling;
  threshold?: number;
  nKfac?: number;
  /** Last-layer Laplace: only the LM head's LoRA matrices (needs LoRA on lm_head). */
  lastLayer?: boolean;
  /** Prior precision: a number, or 'marglik' (default) to maximise the marginal likelihood. */
  prior?: number | 'marglik';
  /** With 'marglik': one prior precision per LoRA matrix instead of one shared. */
  perLayerPrior?: boolean;
  /** Search range of the prior precision (default [1e-8, 1e8]). */
  priorRange?: [number, number];
  /**
   * Cancels the fit: checked between batches and, natively, between the
   * backward passes of a batch and between layers of the posterior; rejects
   * with BayesLoraError code 'ABORTED' (the partial accumulator is freed).
   */
  signal?: AbortSignal;
  /** Called after each batch. */
  onBatch?: (index: number, info: { logLik: number; nLabelled: number; nExamples: number }) => void;
}

/**
 * The LM head's LoRA-B gradient side has one direction per distinct answer
 * token (only those rows get gradients), so its rank is the number of answer
 * tokens seen. When that side is low rank with nKfac below that number, the
 * dropped answer rows keep prior-only variance, and those are exactly the rows
 * the predictive's Jacobians use (bench/kfac-tokens.ts; docs/laplace-tokens.md).
 */
function truncatedHeadWarnings(acc: KfacAccumulator, nKfac: number, answerTokens: number): string[] {
  return acc
    .layers()
    .filter((l) => l.lowRankG && /(^|\.)lm_head\.lora_B$/.test(l.name) && answerTokens > nKfac)
    .map(
      (l) =>
        `fit: ${l.name} keeps ${nKfac} gradient directions (nKfac) but the batches use ${answerTokens} distinct answer tokens; ` +
        `the other answer rows get prior-only variance: pass nKfac >= ${answerTokens}`,
    );
}

/** What the Bayesian part costs and what it chose (for reports and the CLI). */
export interface LaplaceSummary {
  fisher: string;
  layers: number;
  /** LoRA parameters covered by the posterior. */
  params: number;
  /** Layers with at least one low-rank factor side. */
  lowRankLayers: number;
  /** Examples (reduce) or tokens (expand) per layer, max over layers. */
  count: number;
  priorPrecision: number[];
  logMarglik: number;
  /** Native bytes: K-FAC factors (accumulator) and eigen form (posterior). */
  factorBytes: number;
  posteriorBytes: number;
  /** Wall-clock seconds of the Fisher passes (fit) and of building the posterior + prior. */
  fisherSeconds: number;
  posteriorSeconds: number;
}

export interface LaplacePrediction {
  /** [B*C] predictive probabilities. */
  probs: Float64Array;
  /** [B*C] MAP logits mu. */
  logits: Float32Array;
  /** [B*C*C] logit covariance. */
  lambda: Float64Array;
  /** Numerical adjustments of this prediction (e.g. jitter added to a non-PD Lambda before its Cholesky). */
  warnings: string[];
}

interface AdapterState {
  names: string[];
  thetaNormSq: Float64Array;
  adapterId: string;
}

function adapterState(model: Model): AdapterState {
  const n = loadNative();
  return native(() => n.laplaceAdapterState(model.native));
}

export class Laplace {
  readonly accumulator: KfacAccumulator;
  readonly posterior: Posterior;
  /** Training log-likelihood sum_n log p(y_n | x_n, theta*) over labelled fit examples (0 when loaded). */
  logLik: number;
  nLabelled: number;
  fisherSeconds = 0;
  posteriorSeconds = 0;
  private readonly model: Model;

  private constructor(model: Model, acc: KfacAccumulator, post: Posterior, logLik: number, nLabelled: number) {
    this.model = model;
    this.accumulator = acc;
    this.posterior = post;
    this.logLik = logLik;
    this.nLabelled = nLabelled;
  }

  summary(): LaplaceSummary {
    const f = this.factorFacts();
    return {
      fisher: this.posterior.fisher(),
      layers: f.layers,
      params: this.posterior.numParams(),
      lowRankLayers: f.lowRankLayers,
      count: f.count,
      priorPrecision: Array.from(this.posterior.prior()),
      logMarglik: this.logMarglik(),
      factorBytes: this.accumulator.disposed ? 0 : this.accumulator.memory().currentBytes,
      posteriorBytes: this.posterior.memoryBytes(),
      fisherSeconds: this.fisherSeconds,
      posteriorSeconds: this.posteriorSeconds,
    };
  }

  /** K-FAC Fisher over the batches (one native call each), posterior, prior. */
  static async fit(
    model: Model,
    batches: Iterable<McBatch> | AsyncIterable<McBatch>,
    o: LaplaceFitOptions = {},
  ): Promise<Laplace> {
    const n = loadNative();
    const layers: Required<KfacLayerSpec>[] = native(() => n.laplaceModelLayers(model.native, { lastLayer: o.lastLayer ?? false }));
    const acc = new KfacAccumulator({ layers, tokens: o.tokens, threshold: o.threshold, nKfac: o.nKfac });
    const fisher = o.fisher ?? 'exact';
    let logLik = 0;
    let nLabelled = 0;
    let index = 0;
    const answerRows = new Set<number>(); // distinct LM-head rows (answer tokens) seen
    const t0 = performance.now();
    try {
      throwIfAborted(o.signal, 'Laplace.fit');
      for await (const b of batches) {
        throwIfAborted(o.signal, 'Laplace.fit');
        const r = await acc.fitBatch(model, b, { fisher, samples: o.samples, seed: o.seed, batchIndex: index, signal: o.signal });
        if (answerRows.size <= 4096) for (const row of b.rows) answerRows.add(row);
        logLik += r.logLik;
        nLabelled += r.nLabelled;
        o.onBatch?.(index, r);
        index++;
      }
      if (index === 0) throw invalid('Laplace.fit needs at least one batch');
      const t1 = performance.now();
      const prior = o.prior ?? 'marglik';
      const post = await acc.posterior({ delta: typeof prior === 'number' ? prior : 1, signal: o.signal });
      post.setFisher(fisher);
      const la = new Laplace(model, acc, post, logLik, nLabelled);
      la.fitWarnings.push(...truncatedHeadWarnings(acc, o.nKfac ?? 10, answerRows.size));
      try {
        if (prior === 'marglik') await la.optimizePrior({ perLayer: o.perLayerPrior, range: o.priorRange, signal: o.signal });
      } catch (e) {
        post.dispose();
        throw e;
      }
      la.fisherSeconds = (t1 - t0) / 1000;
      la.posteriorSeconds = (performance.now() - t1) / 1000;
      return la;
    } catch (e) {
      acc.dispose();
      throw e;
    }
  }

  /**
   * Numerical adjustments made while fitting or re-priming (the posterior's
   * warnings): non-PSD factors clamped, prior precisions clamped into
   * [1e-12, 1e12]. The channel for such warnings; nothing is printed.
   */
  get warnings(): string[] {
    return [...this.fitWarnings, ...this.posterior.warnings()];
  }
  private readonly fitWarnings: string[] = [];

  /** ||theta*_l||^2 per posterior layer, from the model's current LoRA weights. */
  thetaNormSq(): Float64Array {
    const s = adapterState(this.model);
    const ls = this.posterior.layers();
    return Float64Array.from(ls.map((l) => s.thetaNormSq[l.id]));
  }

  logMarglik(): number {
    return this.posterior.logMarglik({ logLik: this.logLik, thetaNormSq: this.thetaNormSq() });
  }

  /** Maximise the Laplace marginal likelihood over log delta (training log-likelihood); sets the prior. */
  optimizePrior(o: { perLayer?: boolean; range?: [number, number]; signal?: AbortSignal } = {}): Promise<PriorFit> {
    const [min, max] = o.range ?? [1e-8, 1e8];
    return this.posterior.optimizePrior({ logLik: this.logLik, thetaNormSq: this.thetaNormSq(), perLayer: o.perLayer, min, max, signal: o.signal });
  }

  /**
   * Choose the prior precision on held-out labelled batches instead of the
   * marginal likelihood: every prior precision times each of a grid of scales
   * (default 0.01x to 10^4x), scored by the predictive's NLL (or Brier, ECE)
   * from one predictive pass per batch; the best is set. See tune-prior.ts.
   */
  tunePrior(batches: McBatch[], o: TunePriorOptions = {}): Promise<PriorTuning> {
    return tunePrior(this.posterior, this.model, batches, o);
  }

  /** Linearised predictive of a batch: one forward, C backward passes, then the link approximation. */
  async predict(
    batch: McBatch,
    o: { method?: PredictiveMethod; samples?: number; seed?: number; signal?: AbortSignal } = {},
  ): Promise<LaplacePrediction> {
    // signal: ABORTED between the C Jacobian passes or between predictive rows.
    const { logits, lambda } = await this.posterior.predictBatch(this.model, batch, { signal: o.signal });
    const r = await predictiveProbsReport(logits, lambda, { C: batch.C, method: o.method ?? 'mc', samples: o.samples, seed: o.seed, signal: o.signal });
    const warnings =
      r.jitteredRows > 0
        ? [`predict: Lambda of ${r.jitteredRows} of ${batch.B} example(s) was not positive definite; added diagonal jitter up to ${r.maxJitter.toExponential(2)} before the Cholesky`]
        : [];
    return { probs: r.probs, logits, lambda, warnings };
  }

  /** Save factors, counts, priors and the adapter's identity (a safetensors sidecar). */
  save(path: string): Promise<void> {
    if (this.accumulator.disposed && !this.posterior.disposed)
      return Promise.reject(invalid('Laplace.save: the K-FAC factors were released (releaseFactors); save before releasing them'));
    return saveLaplace(path, this.accumulator, this.posterior, { adapterId: adapterState(this.model).adapterId });
  }

  /**
   * Free the K-FAC factors and keep only the eigen form, which is all that
   * predict, tunePrior, optimizePrior and the marginal likelihood use. About
   * half of the Laplace state when factors are dense (the built-in model:
   * 38.7 of 76 MiB), for a server that holds one posterior per adapter.
   * Afterwards save() rejects (save first) and summary() reports factorBytes 0.
   * Idempotent.
   */
  releaseFactors(): void {
    if (this.accumulator.disposed) return;
    this.facts = this.factorFacts();
    this.accumulator.dispose();
  }
  private facts?: { layers: number; lowRankLayers: number; count: number };
  private factorFacts(): { layers: number; lowRankLayers: number; count: number } {
    if (this.facts) return this.facts;
    const layers = this.accumulator.layers();
    return {
      layers: layers.length,
      lowRankLayers: layers.filter((l) => l.lowRankA || l.lowRankG).length,
      count: Math.max(...this.accumulator.counts()),
    };
  }

  /** Load a saved posterior for `model`, whose current adapter must be the one it was fitted for. */
  static async load(path: string, model: Model): Promise<Laplace> {
    const id = adapterState(model).adapterId;
    const r = await loadLaplace(path, { adapterId: id });
    return new Laplace(model, r.accumulator, r.posterior, 0, 0);
  }

  dispose(): void {
    this.posterior.dispose();
    this.accumulator.dispose();
  }
}
