// Full-parameter pre-training of a small LLaMA-architecture model from text
// (the built-in model's recipe): seeded random init, packed next-token
// batches, AdamW with warmup + cosine decay, one native call per step.
import { readFileSync, writeFileSync, mkdtempSync, rmSync, mkdirSync, copyFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tokenizer } from './tokenizer.ts';
import { chunkTokens, collateLm } from './data/collate.ts';
import { batches } from './data/sampling.ts';
import { Rng } from './data/rng.ts';
import { makeTinyCheckpoint } from './io/random-checkpoint.ts';
import { Model } from './model.ts';
import { invalid } from './errors.ts';

export interface PretrainOptions {
  corpus: string; // text file, one training text per line
  tokenizer: string; // tokenizer.json
  out: string; // model directory to write (config.json, model.safetensors, tokenizer.json)
  hidden?: number;
  layers?: number;
  heads?: number;
  intermediate?: number;
  seqLen?: number;
  batchSize?: number;
  epochs?: number;
  maxSteps?: number; // stop early after this many steps (for quick runs)
  lr?: number;
  warmup?: number;
  minLrFraction?: number;
  weightDecay?: number;
  seed?: number;
  log?: (s: string) => void;
}

export interface PretrainRecord {
  options: Omit<PretrainOptions, 'log'>;
  params: number;
  tokens: number;
  steps: number;
  seconds: number;
  firstLoss: number;
  finalLoss: number; // mean over the last 50 steps
}

export function lrAt(step: number, total: number, lr: number, warmup: number, minFrac: number): number {
  if (step < warmup) return (lr * (step + 1)) / warmup;
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return lr * (minFrac + (1 - minFrac) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

export async function pretrain(o: PretrainOptions): Promise<PretrainRecord> {
  const log = o.log ?? (() => {});
  const hidden = o.hidden ?? 192;
  const layers = o.layers ?? 4;
  const heads = o.heads ?? 4;
  const intermediate = o.intermediate ?? 512;
  const T = o.seqLen ?? 64;
  const B = o.batchSize ?? 32;
  const epochs = o.epochs ?? 1;
  const lr = o.lr ?? 3e-3;
  const warmup = o.warmup ?? 100;
  const minFrac = o.minLrFraction ?? 0.1;
  const seed = o.seed ?? 1;
  if (hidden % heads !== 0) throw invalid('pretrain: hidden must be divisible by heads');

  const tok = await Tokenizer.fromFile(o.tokenizer);
  if (tok.eosId === undefined || tok.eosId === null) throw invalid('pretrain: the tokenizer needs an end-of-sequence token');
  const lines = readFileSync(o.corpus, 'utf8').split('\n').filter((l) => l.trim().length > 0);
  new Rng(seed).shuffle(lines);
  log(`tokenizing ${lines.length} lines`);
  const stream: number[] = [];
  const CH = 8192;
  for (let i = 0; i < lines.length; i += CH) {
    const enc = await tok.encodeBatch(lines.slice(i, i + CH), { addSpecialTokens: true });
    for (const ids of enc) {
      for (const id of ids) stream.push(id);
      stream.push(tok.eosId as number);
    }
  }
  const seqs = chunkTokens(stream, T, 1);
  const stepsPerEpoch = Math.floor(seqs.length / B);
  const total = Math.min(o.maxSteps ?? Infinity, stepsPerEpoch * epochs);
  log(`${stream.length} tokens, ${seqs.length} sequences of ${T}, ${total} steps`);

  const init = mkdtempSync(path.join(os.tmpdir(), 'bayeslora-init-'));
  try {
    makeTinyCheckpoint(init, {
      arch: 'llama',
      vocab: tok.vocabSize,
      hidden,
      layers,
      heads,
      kvHeads: heads,
      intermediate,
      tie: false,
      seed,
      maxPositionEmbeddings: 512,
    });
    const model = await Model.load(init);
    try {
      model.enableFullTraining();
      const params = model.info().numParams;
      log(`model: ${params} parameters`);
      const t0 = performance.now();
      let step = 0;
      let firstLoss = NaN;
      const recent: number[] = [];
      outer: for (let epoch = 0; epoch < epochs; epoch++) {
        for (const chunk of batches(seqs, B, { seed, shuffle: true, dropLast: true, epoch })) {
          if (step >= total) break outer;
          const batch = collateLm(chunk, { padId: tok.padId ?? (tok.eosId as number), maxLength: T });
          const r = await model.lmStep(batch, { lr: lrAt(step, total, lr, warmup, minFrac), weightDecay: o.weightDecay ?? 0.01, maxGradNorm: 1.0 });
          const loss = Number(r.loss);
          if (step === 0) firstLoss = loss;
          recent.push(loss);
          if (recent.length > 50) recent.shift();
          step++;
          if (step % 50 === 0 || step === total) {
            const s = (performance.now() - t0) / 1000;
            const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
            log(`step ${step}/${total} loss ${mean.toFixed(4)} ${((step * B * T) / s).toFixed(0)} tok/s ${s.toFixed(0)} s`);
          }
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      mkdirSync(o.out, { recursive: true });
      await model.saveModel(o.out);
      // Record the special tokens in config.json, as HF checkpoints do.
      const cfgPath = path.join(o.out, 'config.json');
      const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
      cfg.bos_token_id = tok.bosId ?? null;
      cfg.eos_token_id = tok.eosId ?? null;
      cfg.pad_token_id = tok.padId ?? null;
      writeFileSync(cfgPath, JSON.stringify(cfg, null, 2) + '\n');
      const tokOut = path.join(o.out, 'tokenizer.json');
      if (path.resolve(o.tokenizer) !== path.resolve(tokOut)) copyFileSync(o.tokenizer, tokOut);
      const { log: _l, ...options } = o;
      const record: PretrainRecord = {
        options,
        params,
        tokens: step * B * T,
        steps: step,
        seconds,
        firstLoss,
        finalLoss: recent.reduce((a, b) => a + b, 0) / Math.max(1, recent.length),
      };
      writeFileSync(path.join(o.out, 'pretrain.json'), JSON.stringify(record, null, 2) + '\n');
      return record;
    } finally {
      model.dispose();
    }
  } finally {
    if (existsSync(init)) rmSync(init, { recursive: true, force: true });
  }
}
