// `bayeslora pretrain`: reproduce the built-in model (models/wordnet-tiny) or
// pre-train another small LLaMA-architecture model on a text corpus.
import path from 'node:path';
import { packageRoot } from '../native.ts';
import { pretrain } from '../pretrain.ts';
import { intArg, parseCli, positiveArg, strArg } from './args.ts';

const CMD = 'pretrain';

export async function run(args: string[]): Promise<number> {
  const values = parseCli(CMD, args, {
    corpus: { type: 'string', default: path.join(packageRoot, '.tmp', 'pretrain', 'corpus.txt') },
    tokenizer: { type: 'string', default: path.join(packageRoot, 'models', 'wordnet-tiny', 'tokenizer.json') },
    out: { type: 'string', default: path.join(packageRoot, 'models', 'wordnet-tiny') },
    hidden: { type: 'string' },
    layers: { type: 'string' },
    heads: { type: 'string' },
    intermediate: { type: 'string' },
    'seq-len': { type: 'string' },
    batch: { type: 'string' },
    epochs: { type: 'string' },
    'max-steps': { type: 'string' },
    lr: { type: 'string' },
    seed: { type: 'string' },
  });
  const int = (name: string, def: number, min: number) => intArg(CMD, values, name, def, min, 1 << 24);
  const rec = await pretrain({
    corpus: strArg(values, 'corpus')!,
    tokenizer: strArg(values, 'tokenizer')!,
    out: strArg(values, 'out')!,
    hidden: int('hidden', 192, 1),
    layers: int('layers', 4, 1),
    heads: int('heads', 4, 1),
    intermediate: int('intermediate', 512, 1),
    seqLen: int('seq-len', 64, 2),
    batchSize: int('batch', 32, 1),
    epochs: int('epochs', 1, 1),
    maxSteps: values['max-steps'] === '' ? undefined : int('max-steps', 1400, 0) || undefined, // 0 or '': no limit
    lr: positiveArg(CMD, values, 'lr') ?? 3e-3,
    seed: intArg(CMD, values, 'seed', 1, 0, 2 ** 32 - 1),
    log: (s) => process.stderr.write(`pretrain: ${s}\n`),
  });
  process.stdout.write(JSON.stringify(rec, null, 2) + '\n');
  return 0;
}
