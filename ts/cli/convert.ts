// `bayeslora data convert --format arc|obqa|boolq|winogrande|mmlu FILE [--out FILE]`:
// public QA dataset files -> our multiple-choice JSONL with the paper's prompts.
import { convertFile, SOURCE_KINDS, type SourceKind } from '../data/convert.ts';
import { writeMcJsonl } from '../data/jsonl.ts';
import { invalid } from '../errors.ts';
import { choiceArg, parseCliPositionals, strArg } from './args.ts';

const ALIASES: Record<string, SourceKind> = { obqa: 'openbookqa' };

export async function runConvert(args: string[]): Promise<number> {
  const { values, positionals } = parseCliPositionals('data convert', args, {
    format: { type: 'string' },
    out: { type: 'string' },
    style: { type: 'string' },
    'allow-unlabelled': { type: 'boolean', default: false },
  });
  const f = strArg(values, 'format') ?? '';
  const kind = (ALIASES[f] ?? f) as SourceKind;
  if (!SOURCE_KINDS.includes(kind)) throw invalid(`--format must be one of arc, obqa, boolq, winogrande, mmlu (got '${f}')`);
  if (positionals.length !== 1) throw invalid('give exactly one input FILE');
  const r = await convertFile(kind, positionals[0], {
    style: choiceArg('data convert', values, 'style', ['paper', 'plain'] as const, 'paper'),
    allowUnlabelled: values['allow-unlabelled'] === true,
  });
  const out = strArg(values, 'out');
  if (out) {
    await writeMcJsonl(out, r.examples);
  } else {
    for (const ex of r.examples) process.stdout.write(JSON.stringify(ex) + '\n');
  }
  process.stderr.write(
    `data convert: ${r.examples.length} examples (${r.skipped.length} skipped), answer format: ${r.format.format}` +
      `${r.format.layout ? ` (${r.format.layout})` : ''}\n`,
  );
  return 0;
}
