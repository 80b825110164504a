// `bayeslora data build|convert`: build the project's tasks from Debian's
// dictionaries, or convert public QA datasets into our JSONL format.
import path from 'node:path';
import { packageRoot } from '../native.ts';
import { intArg, parseCli, strArg } from './args.ts';

const HELP = `usage:
  bayeslora data build [--data DIR] [--model DIR] [--corpus FILE] [--vocab N] [--seed N]
      WordNet + FOLDOC (apt-get install wordnet-base dict-foldoc) -> tokenizer.json,
      pretraining corpus and task splits (default: data/, models/wordnet-tiny/).
  bayeslora data convert --format arc|obqa|boolq|winogrande|mmlu FILE [--out FILE]
`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'build') {
    const values = parseCli('data build', rest, {
      data: { type: 'string', default: path.join(packageRoot, 'data') },
      model: { type: 'string', default: path.join(packageRoot, 'models', 'wordnet-tiny') },
      corpus: { type: 'string', default: path.join(packageRoot, '.tmp', 'pretrain', 'corpus.txt') },
      vocab: { type: 'string' },
      seed: { type: 'string' },
    });
    const { buildData } = await import('../datasets/build.ts');
    const summary = await buildData({
      dataDir: strArg(values, 'data')!,
      modelDir: strArg(values, 'model')!,
      corpusFile: strArg(values, 'corpus')!,
      vocabSize: intArg('data build', values, 'vocab', 5000, 16, 1 << 24),
      seed: intArg('data build', values, 'seed', 1234, 0, 2 ** 32 - 1),
      log: (s) => process.stderr.write(`data build: ${s}\n`),
    });
    process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
    return 0;
  }
  if (sub === 'convert') {
    const { runConvert } = await import('./convert.ts');
    return runConvert(rest);
  }
  process.stdout.write(HELP);
  return sub ? 2 : 1;
}
