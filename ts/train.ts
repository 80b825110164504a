// MAP fine-tuning loop: AdamW with warmup + linear/cosine decay, gradient
// accumulation, global-norm clipping, seeded shuffling, periodic evaluation
// and self-sufficient checkpoints (adapter + optimiser + data position, see
// train-checkpoint.ts) that a later call resumes from bit-identically,
// AbortSignal and progress callbacks. Orchestration only: each micro-batch is
// one asynchronous native call (backward for the first k-1 micro-batches of
// an accumulation group, trainStep for the last).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { checkpointDirName } from './adapter.ts';
import {
  findTrainCheckpoint,
  restoreTrainCheckpoint,
  TRAINER_STATE_FILE,
  writeTrainCheckpoint,
  type TrainerState,
} from './train-checkpoint.ts';
import type { McBatch } from './data/batch.ts';
import { collateMc, type CollateMcOptions } from './data/collate.ts';
import type { EncodedMc } from './data/format.ts';
import { deriveSeed, Rng } from './data/rng.ts';
import { batches } from './data/sampling.ts';
import { cancellable } from './abort.ts';
import { BayesLoraError, invalid } from './errors.ts';
import type { Model, OptimizerOptions } from './model.ts';

export type LrSchedule = 'linear' | 'cosine' | 'constant';

export interface TrainProgress {
  step: number; // optimiser steps done
  totalSteps: number;
  epoch: number;
  loss: number; // mean loss of this step's micro-batches
  lr: number; // learning rate used for this step
  gradNorm: number | null;
  skipped: boolean;
  examples: number; // examples seen so far
  elapsedMs: number;
}

export interface EvalRecord {
  step: number;
  epoch: number;
  result: unknown;
}

export interface TrainOptions extends Omit<OptimizerOptions, 'lr'> {
  /** Peak learning rate (default 1e-4). */
  lr?: number;
  epochs?: number; // default 1
  /** Stop after this many optimiser steps. */
  maxSteps?: number;
  /** Examples per micro-batch when training from encoded examples (default 8). */
  batchSize?: number;
  /** Micro-batches per optimiser step (default 1). */
  gradAccumulation?: number;
  /** Warmup steps (linear from lr/warmup to lr); or warmupRatio of the total. */
  warmupSteps?: number;
  warmupRatio?: number;
  schedule?: LrSchedule; // default 'linear' (decay to minLrRatio * lr at the end)
  minLrRatio?: number; // default 0
  /** Seed of the data order (default 0). */
  seed?: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Collation of encoded examples (padId, maxLength, side, ...). Required for EncodedMc input. */
  collate?: CollateMcOptions;
  /** Called every evalEvery steps and after the last step. */
  evaluate?: (model: Model, at: { step: number; epoch: number }) => unknown | Promise<unknown>;
  evalEvery?: number;
  /**
   * Save a training checkpoint (adapter, AdamW state, data position, options)
   * to checkpointDir/checkpoint-<step> every checkpointEvery steps, after
   * that step's evaluation.
   */
  checkpointDir?: string;
  checkpointEvery?: number;
  /** Called after each checkpoint is complete on disk (e.g. to record progress next to it). */
  onCheckpoint?: (c: { step: number; dir: string }) => void | Promise<void>;
  /**
   * Continue from a checkpoint: a checkpoint directory, or a directory of
   * checkpoint-* subdirectories (the newest complete one is used). The model
   * must have the same LoRA config; data and trajectory options must match
   * the checkpoint's (INVALID_ARGUMENT otherwise). Continues bit-identically.
   */
  resumeFrom?: string;
  /** Resume from the newest complete checkpoint in checkpointDir when there is one (else start fresh). */
  resume?: boolean;
  // (A resumed run's evals before the checkpoint come back in their JSON form.)
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void;
}

export interface TrainResult {
  steps: number;
  epochs: number;
  examples: number;
  losses: number[]; // per optimiser step
  skippedSteps: number;
  evals: EvalRecord[];
  checkpoints: string[];
  seconds: number;
  /** The checkpoint this run continued from, if any. */
  resumedFrom?: { dir: string; step: number };
}

/** Learning rate for optimiser step `step` (0-based) of `total`. */
export function learningRate(step: number, total: number, lr: number, warmup: number, schedule: LrSchedule, minLrRatio = 0): number {
  if (warmup > 0 && step < warmup) return (lr * (step + 1)) / warmup;
  if (schedule === 'constant') return lr;
  const span = Math.max(1, total - warmup);
  const p = Math.min(1, Math.max(0, (step - warmup) / span));
  const f = schedule === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - p;
  return lr * (minLrRatio + (1 - minLrRatio) * f);
}

function isMcBatch(x: unknown): x is McBatch {
  return typeof x === 'object' && x !== null && (x as McBatch).ids instanceof Int32Array && typeof (x as McBatch).B === 'number';
}

function posInt(v: number | undefined, dflt: number, name: string): number {
  const x = v ?? dflt;
  if (!Number.isInteger(x) || x < 1) throw invalid(`train: ${name} must be a positive integer, got ${String(v)}`);
  return x;
}

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new BayesLoraError('ABORTED', 'training aborted', { cause: signal.reason });
}

/**
 * Fine-tune `model`'s LoRA (or, in full-training mode, all weights) on
 * multiple-choice data: pre-collated batches (their order is shuffled per
 * epoch) or encoded examples (batched per epoch with `batchSize`, grouped by
 * the number of choices, collated with `collate`).
 */
export async function train(model: Model, data: readonly McBatch[] | readonly EncodedMc[], opts: TrainOptions = {}): Promise<TrainResult> {
  if (!Array.isArray(data) || data.length === 0) throw invalid('train: data must be a non-empty array of batches or encoded examples');
  const epochs = posInt(opts.epochs, 1, 'epochs');
  const accum = posInt(opts.gradAccumulation, 1, 'gradAccumulation');
  const batchSize = posInt(opts.batchSize, 8, 'batchSize');
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw invalid('train: seed must be a safe integer');
  const shuffle = opts.shuffle ?? true;
  const schedule = opts.schedule ?? 'linear';
  if (!['linear', 'cosine', 'constant'].includes(schedule)) throw invalid(`train: unknown schedule ${String(schedule)}`);
  const lr = opts.lr ?? 1e-4;
  if (!(lr >= 0) || !Number.isFinite(lr)) throw invalid('train: lr must be a finite number >= 0');
  const minLrRatio = opts.minLrRatio ?? 0;
  if (!(minLrRatio >= 0 && minLrRatio <= 1)) throw invalid('train: minLrRatio must be in [0, 1]');
  const pre = data.every(isMcBatch);
  if (!pre && data.some(isMcBatch)) throw invalid('train: data mixes collated batches and encoded examples');
  if (!pre && !opts.collate) throw invalid('train: encoded examples need opts.collate (padId, maxLength)');
  const evalEvery = opts.evalEvery === undefined ? 0 : posInt(opts.evalEvery, 1, 'evalEvery');
  const ckptEvery = opts.checkpointEvery === undefined ? 0 : posInt(opts.checkpointEvery, 1, 'checkpointEvery');
  if (ckptEvery > 0 && !opts.checkpointDir) throw invalid('train: checkpointEvery needs checkpointDir');

  // Micro-batches per epoch decide the schedule's length.
  const microPerEpoch = pre
    ? data.length
    : [...batches(data as readonly EncodedMc[], batchSize, { seed, shuffle: false, groupBy: (e) => e.rows.length })].length;
  const stepsPerEpoch = Math.ceil(microPerEpoch / accum);
  const total = Math.min(opts.maxSteps ?? Infinity, stepsPerEpoch * epochs);
  if (!(total >= 1)) throw invalid('train: nothing to train (maxSteps < 1)');
  const warmup =
    opts.warmupSteps !== undefined ? Math.max(0, Math.floor(opts.warmupSteps)) : Math.floor((opts.warmupRatio ?? 0) * total);

  const adam: OptimizerOptions = {
    beta1: opts.beta1,
    beta2: opts.beta2,
    eps: opts.eps,
    weightDecay: opts.weightDecay,
    maxGradNorm: opts.maxGradNorm ?? 1.0,
    skipNonFinite: opts.skipNonFinite,
  };
  // What decides the trajectory; a checkpoint records it and a resume must match it.
  const resolved: Record<string, unknown> = {
    lr, epochs, total, warmup, schedule, minLrRatio, seed, shuffle, accum, batchSize: pre ? null : batchSize,
    beta1: adam.beta1 ?? null, beta2: adam.beta2 ?? null, eps: adam.eps ?? null, weightDecay: adam.weightDecay ?? null,
    maxGradNorm: adam.maxGradNorm, skipNonFinite: adam.skipNonFinite ?? false,
    collate: pre ? null : JSON.parse(JSON.stringify(opts.collate ?? null)),
  };
  const dataShape = { items: data.length, microBatchesPerEpoch: microPerEpoch };

  const result: TrainResult = { steps: 0, epochs: 0, examples: 0, losses: [], skippedSteps: 0, evals: [], checkpoints: [], seconds: 0 };
  let t0 = performance.now();
  model.zeroGrads();

  // Resume: restore weights, optimiser and dropout counter, then the position.
  let startEpoch = 0;
  let startMicro = 0;
  const from = opts.resumeFrom ?? (opts.resume && opts.checkpointDir ? opts.checkpointDir : undefined);
  if (opts.resume && !opts.checkpointDir && !opts.resumeFrom) throw invalid('train: resume needs checkpointDir (or give resumeFrom)');
  const ckDir = from === undefined ? null : findTrainCheckpoint(from);
  if (opts.resumeFrom !== undefined && ckDir === null) throw invalid(`train: no complete training checkpoint in ${opts.resumeFrom}`);
  if (ckDir !== null) {
    const st = await readResumable(model, ckDir, resolved, dataShape);
    startEpoch = st.epoch;
    startMicro = st.nextMicroBatch;
    Object.assign(result, {
      steps: st.step, epochs: st.epochs, examples: st.examples, losses: [...st.losses], skippedSteps: st.skippedSteps,
      evals: [...st.evals], checkpoints: [...st.checkpoints], resumedFrom: { dir: ckDir, step: st.step },
    });
    t0 -= st.seconds * 1000;
  }

  const epochBatches = function* (epoch: number): Generator<McBatch> {
    if (pre) {
      const order = Array.from({ length: data.length }, (_, i) => i);
      if (shuffle) new Rng(deriveSeed(seed, epoch)).shuffle(order);
      for (const i of order) yield (data as readonly McBatch[])[i];
    } else {
      for (const chunk of batches(data as readonly EncodedMc[], batchSize, { seed, epoch, shuffle, groupBy: (e) => e.rows.length })) {
        yield collateMc(chunk, opts.collate!);
      }
    }
  };

  const runEval = async (epoch: number) => {
    if (!opts.evaluate) return;
    const r = await opts.evaluate(model, { step: result.steps, epoch });
    result.evals.push({ step: result.steps, epoch, result: r });
  };

  outer: for (let epoch = startEpoch; epoch < epochs; epoch++) {
    const list = [...epochBatches(epoch)];
    for (let g = epoch === startEpoch ? startMicro : 0; g < list.length; g += accum) {
      if (result.steps >= total) break outer;
      aborted(opts.signal);
      const group = list.slice(g, g + accum);
      const scale = 1 / group.length;
      const stepLr = learningRate(result.steps, total, lr, warmup, schedule, minLrRatio);
      let lossSum = 0;
      let skipped = false;
      let gradNorm: number | null = null;
      try {
        for (let k = 0; k < group.length; k++) {
          if (k > 0) aborted(opts.signal);
          const last = k === group.length - 1;
          // The signal also reaches the native step (between layers, before the update).
          const r = await cancellable(opts.signal, 'training', (cancel) =>
            last
              ? model.trainStep(group[k], { ...adam, lr: stepLr, gradScale: scale, cancel } as Parameters<Model['trainStep']>[1])
              : model.backward(group[k], { gradScale: scale, skipNonFinite: adam.skipNonFinite, cancel } as Parameters<Model['backward']>[1]),
          );
          lossSum += r.loss ?? NaN;
          skipped = skipped || r.skipped;
          result.examples += group[k].B;
          if (last) gradNorm = r.gradNorm;
        }
      } catch (e) {
        // Leave no half-accumulated gradients behind (an abort or an error mid-group).
        try {
          model.zeroGrads();
        } catch {
          /* the model may be disposed */
        }
        if (e instanceof BayesLoraError && e.code === 'NUMERICAL_ERROR') {
          // Name train()'s own step (the optimiser's count lags after skipped steps) and what survives.
          const kept = result.checkpoints.at(-1);
          throw new BayesLoraError(
            'NUMERICAL_ERROR',
            `train: step ${result.steps + 1} of ${total} (epoch ${epoch}, micro-batches ${g}..${g + group.length - 1}): ${e.message}; ` +
              (kept ? `the last good checkpoint is ${kept}` : 'no checkpoint was written yet') +
              ' (skipNonFinite: true skips such steps instead)',
            { cause: e },
          );
        }
        throw e;
      }
      result.steps++;
      const loss = lossSum / group.length;
      result.losses.push(loss);
      if (skipped) result.skippedSteps++;
      opts.onProgress?.({
        step: result.steps,
        totalSteps: total,
        epoch,
        loss,
        lr: stepLr,
        gradNorm,
        skipped,
        examples: result.examples,
        elapsedMs: performance.now() - t0,
      });
      if (evalEvery > 0 && result.steps % evalEvery === 0 && result.steps < total) await runEval(epoch);
      if (ckptEvery > 0 && result.steps % ckptEvery === 0) {
        const dir = path.join(opts.checkpointDir!, checkpointDirName(result.steps));
        const epochDone = g + accum >= list.length;
        result.checkpoints.push(dir);
        const state: TrainerState = {
          step: result.steps,
          epoch: epochDone ? epoch + 1 : epoch,
          nextMicroBatch: epochDone ? 0 : g + accum,
          epochs: epochDone ? epoch + 1 : result.epochs,
          examples: result.examples,
          losses: result.losses,
          skippedSteps: result.skippedSteps,
          evals: result.evals,
          checkpoints: result.checkpoints,
          seconds: (performance.now() - t0) / 1000,
          options: resolved,
          data: dataShape,
          lora: model.info().lora,
        };
        await writeTrainCheckpoint(model, dir, state);
        await opts.onCheckpoint?.({ step: result.steps, dir });
      }
    }
    result.epochs = epoch + 1;
  }
  // (A run resumed from its final checkpoint has done every step but not this evaluation.)
  await runEval(Math.max(0, result.epochs - 1));
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}

/** Restore a checkpoint after checking that it belongs to this model, data and options. */
async function readResumable(
  model: Model,
  dir: string,
  resolved: Record<string, unknown>,
  dataShape: TrainerState['data'],
): Promise<TrainerState> {
  let peek: TrainerState;
  try {
    peek = JSON.parse(readFileSync(path.join(dir, TRAINER_STATE_FILE), 'utf8'));
  } catch (e) {
    throw new BayesLoraError('BAD_FILE', `training checkpoint ${dir}: ${(e as Error).message}`);
  }
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const k of Object.keys(resolved)) {
    if (!same(peek.options?.[k], resolved[k]))
      throw invalid(`train: cannot resume from ${dir}: option ${k} was ${JSON.stringify(peek.options?.[k])}, now ${JSON.stringify(resolved[k])}`);
  }
  if (!same(peek.data, dataShape))
    throw invalid(`train: cannot resume from ${dir}: the training data differs (${JSON.stringify(peek.data)} vs ${JSON.stringify(dataShape)})`);
  const lora = model.info().lora;
  if (!same(peek.lora, lora))
    throw invalid(`train: cannot resume from ${dir}: the model's LoRA config differs from the checkpoint's`);
  return restoreTrainCheckpoint(model, dir);
}
