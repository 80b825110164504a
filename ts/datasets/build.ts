// `bayeslora data build`: dictionaries -> tokenizer, pretraining corpus and
// multiple-choice task splits, bit for bit reproducible from the same Debian
// packages (wordnet-base 1:3.0, dict-foldoc 20230119) and seed.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '../tokenizer.ts';
import { buildTasks, pretrainingLines, readDictionaries, writeJsonlAtomic, WORD_RE } from './tasks.ts';

export interface DataBuildOptions {
  dataDir: string; // task splits go to <dataDir>/<task>/<split>.jsonl
  modelDir: string; // tokenizer.json goes here
  corpusFile: string; // pretraining text (one line per sentence)
  vocabSize?: number;
  seed?: number;
  log?: (s: string) => void;
}

export async function buildData(o: DataBuildOptions): Promise<Record<string, Record<string, number>>> {
  const log = o.log ?? (() => {});
  log('reading WordNet and FOLDOC');
  const dict = readDictionaries();
  const lines = pretrainingLines(dict);
  mkdirSync(path.dirname(o.corpusFile), { recursive: true });
  writeFileSync(o.corpusFile, lines.join('\n') + '\n');
  log(`corpus: ${lines.length} lines -> ${o.corpusFile}`);

  mkdirSync(o.modelDir, { recursive: true });
  const tokPath = path.join(o.modelDir, 'tokenizer.json');
  const tok = await Tokenizer.train({
    kind: 'wordlevel',
    corpus: lines,
    vocabSize: o.vocabSize ?? 5000,
    out: tokPath,
    bosToken: '<s>',
    // The corpus is lower case; the normalizer lets prompts in any case (e.g.
    // the letter format's "A." .. "D.") reach the vocabulary.
    lowercase: true,
  });
  log(`tokenizer: ${tok.vocabSize} tokens -> ${tokPath}`);

  // Which words are exactly one known token (choices must be).
  const words = new Set<string>();
  for (const s of dict.synsets) for (const w of s.words) if (WORD_RE.test(w)) words.add(w);
  for (const f of dict.foldoc) if (WORD_RE.test(f.term)) words.add(f.term);
  for (const s of dict.synsets) if (s.lexName.startsWith('noun.')) words.add(s.lexName.slice(5));
  const list = [...words].sort();
  const single = new Set<string>();
  const enc = await tok.encodeBatch(list, { addSpecialTokens: false });
  list.forEach((w, i) => {
    if (enc[i].length === 1 && enc[i][0] !== tok.unkId) single.add(w);
  });
  log(`${single.size} of ${list.length} dictionary words are single tokens`);

  const tasks = buildTasks(dict, { seed: o.seed ?? 1234, isSingleToken: (w) => single.has(w) });
  const summary: Record<string, Record<string, number>> = {};
  for (const t of tasks) {
    summary[t.name] = {};
    for (const [split, rows] of Object.entries(t.splits)) {
      writeJsonlAtomic(path.join(o.dataDir, t.name, `${split}.jsonl`), rows);
      summary[t.name][split] = rows.length;
    }
    log(`${t.name}: ${JSON.stringify(summary[t.name])}`);
  }
  return summary;
}
