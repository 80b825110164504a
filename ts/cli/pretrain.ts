// `bayeslora pretrain`: reproduce the built-in model (models/wordnet-tiny) or
// pre-train another small LLaMA-architecture model on a text corpus.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../native.ts';
import { pretrain } from '../pretrain.ts';

export async function run(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      corpus: { type: 'string', default: path.join(packageRoot, '.tmp', 'pretrain', 'corpus.txt') },
      tokenizer: { type: 'string', default: path.join(packageRoot, 'models', 'wordnet-tiny', 'tokenizer.json') },
      out: { type: 'string', default: path.join(packageRoot, 'models', 'wordnet-tiny') },
      hidden: { type: 'string', default: '192' },
      layers: { type: 'string', default: '4' },
      heads: { type: 'string', default: '4' },
      intermediate: { type: 'string', default: '512' },
      'seq-len': { type: 'string', default: '64' },
      batch: { type: 'string', default: '32' },
      epochs: { type: 'string', default: '1' },
      'max-steps': { type: 'string', default: '1400' },
      lr: { type: 'string', default: '3e-3' },
      seed: { type: 'string', default: '1' },
    },
  });
  const rec = await pretrain({
    corpus: values.corpus!,
    tokenizer: values.tokenizer!,
    out: values.out!,
    hidden: Number(values.hidden),
    layers: Number(values.layers),
    heads: Number(values.heads),
    intermediate: Number(values.intermediate),
    seqLen: Number(values['seq-len']),
    batchSize: Number(values.batch),
    epochs: Number(values.epochs),
    maxSteps: values['max-steps'] ? Number(values['max-steps']) : undefined,
    lr: Number(values.lr),
    seed: Number(values.seed),
    log: (s) => process.stderr.write(`pretrain: ${s}\n`),
  });
  process.stdout.write(JSON.stringify(rec, null, 2) + '\n');
  return 0;
}
