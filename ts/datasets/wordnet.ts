// Reader for the WordNet 3.0 database files (Debian package `wordnet-base`,
// /usr/share/wordnet/data.{noun,verb,adj,adv}). Used only when building the
// project's datasets and pretraining corpus, never at run time.
// Record format (wndb(5WN)): synset_offset lex_filenum ss_type w_cnt(hex)
// [word lex_id]... p_cnt [pointer]... [frames] | gloss
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { BayesLoraError } from '../errors.ts';

export const WORDNET_DIR = '/usr/share/wordnet';

export interface Synset {
  offset: string;
  pos: 'n' | 'v' | 'a' | 's' | 'r';
  lexFile: number; // lexicographer file number (category)
  lexName: string; // e.g. "noun.animal"
  words: string[]; // lemmas, '_' replaced by ' ', lower-cased
  definition: string; // gloss text before the first quoted example
  examples: string[]; // quoted example sentences
}

/** Lexicographer file names by number, read from the lexnames(5WN) man page shipped with wordnet-base. */
export function readLexNames(manPage = '/usr/share/man/man5/lexnames.5WN.gz'): Map<number, string> {
  const out = new Map<number, string>();
  if (!existsSync(manPage)) throw new BayesLoraError('IO_ERROR', `${manPage} not found: install wordnet-base`);
  const text = gunzipSync(readFileSync(manPage)).toString('utf8');
  for (const line of text.split('\n')) {
    const m = /^(\d\d)\t([a-z]+\.[A-Za-z]+)\s/.exec(line);
    if (m) out.set(Number(m[1]), m[2]);
  }
  if (out.size < 40) throw new BayesLoraError('BAD_FILE', `${manPage}: expected the lexname table, found ${out.size} rows`);
  return out;
}

function splitGloss(gloss: string): { definition: string; examples: string[] } {
  const examples: string[] = [];
  const re = /"([^"]*)"/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(gloss))) if (m[1].trim()) examples.push(m[1].trim());
  const q = gloss.indexOf('"');
  let definition = (q >= 0 ? gloss.slice(0, q) : gloss).trim();
  definition = definition.replace(/[;,:\s]+$/, '').trim();
  return { definition, examples };
}

/** Parse one data.<pos> file. Lines starting with two spaces are the licence header. */
export function readDataFile(file: string, lexNames: Map<number, string>): Synset[] {
  const text = readFileSync(file, 'utf8');
  const out: Synset[] = [];
  let lineNo = 0;
  for (const line of text.split('\n')) {
    lineNo++;
    if (!line || line.startsWith('  ')) continue;
    const bar = line.indexOf(' | ');
    if (bar < 0) throw new BayesLoraError('BAD_FILE', `${file}:${lineNo}: no gloss separator`);
    const f = line.slice(0, bar).split(' ');
    const wCnt = parseInt(f[3], 16);
    if (!Number.isFinite(wCnt) || 4 + 2 * wCnt > f.length) throw new BayesLoraError('BAD_FILE', `${file}:${lineNo}: bad word count`);
    const words: string[] = [];
    for (let i = 0; i < wCnt; i++) {
      const w = f[4 + 2 * i].replace(/\(.*\)$/, '').replace(/_/g, ' ').toLowerCase();
      if (!words.includes(w)) words.push(w);
    }
    const lexFile = Number(f[1]);
    const { definition, examples } = splitGloss(line.slice(bar + 3).trim());
    out.push({
      offset: f[0],
      pos: f[2] as Synset['pos'],
      lexFile,
      lexName: lexNames.get(lexFile) ?? `lex${lexFile}`,
      words,
      definition,
      examples,
    });
  }
  return out;
}

/** All synsets of the four parts of speech, in file order (deterministic). */
export function readWordNet(dir = WORDNET_DIR): Synset[] {
  const lex = readLexNames();
  const all: Synset[] = [];
  for (const pos of ['noun', 'verb', 'adj', 'adv']) {
    const f = path.join(dir, `data.${pos}`);
    if (!existsSync(f)) throw new BayesLoraError('IO_ERROR', `${f} not found: install wordnet-base (apt-get install wordnet-base)`);
    all.push(...readDataFile(f, lex));
  }
  return all;
}
