// `bayeslora data build|convert`: build the project's tasks from Debian's
// dictionaries, or convert public QA datasets into our JSONL format.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { packageRoot } from '../native.ts';

const HELP = `usage:
  bayeslora data build [--data DIR] [--model DIR] [--corpus FILE] [--vocab N] [--seed N]
      WordNet + FOLDOC (apt-get install wordnet-base dict-foldoc) -> tokenizer.json,
      pretraining corpus and task splits (default: data/, models/wordnet-tiny/).
  bayeslora data convert --format arc|obqa|boolq|winogrande|mmlu FILE [--out FILE]
`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'build') {
    const { values } = parseArgs({
      args: rest,
      options: {
        data: { type: 'string', default: path.join(packageRoot, 'data') },
        model: { type: 'string', default: path.join(packageRoot, 'models', 'wordnet-tiny') },
        corpus: { type: 'string', default: path.join(packageRoot, '.tmp', 'pretrain', 'corpus.txt') },
        vocab: { type: 'string', default: '5000' },
        seed: { type: 'string', default: '1234' },
      },
    });
    const { buildData } = await import('../datasets/build.ts');
    const summary = await buildData({
      dataDir: values.data!,
      modelDir: values.model!,
      corpusFile: values.corpus!,
      vocabSize: Number(values.vocab),
      seed: Number(values.seed),
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
