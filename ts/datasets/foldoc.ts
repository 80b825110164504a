// Reader for FOLDOC, the Free On-line Dictionary of Computing, as shipped by
// Debian's `dict-foldoc` (dictd format: foldoc.index + dictzip'd foldoc.dict.dz).
// Used only when building datasets. The package need not be installed: the
// builder can extract the .deb (see tasks.ts).
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import path from 'node:path';
import { BayesLoraError } from '../errors.ts';

export interface FoldocEntry {
  term: string;
  categories: string[]; // the <...> tags at the start of the body
  definition: string; // first sentence of the body, cross-reference braces removed
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** dictd's base64 number encoding (most significant digit first). */
export function dictdNumber(s: string): number {
  let n = 0;
  for (const ch of s) {
    const v = B64.indexOf(ch);
    if (v < 0) throw new BayesLoraError('BAD_FILE', `bad dictd base64 digit '${ch}'`);
    n = n * 64 + v;
  }
  return n;
}

function firstSentence(body: string): string {
  const text = body.replace(/\{([^}]*)\}/g, '$1').replace(/\s+/g, ' ').trim();
  const m = /^(.*?[a-z0-9)][.;])(\s|$)/.exec(text);
  return (m ? m[1] : text).replace(/[.;]$/, '').trim();
}

export function readFoldoc(dir: string): FoldocEntry[] {
  const idx = path.join(dir, 'foldoc.index');
  const dz = path.join(dir, 'foldoc.dict.dz');
  if (!existsSync(idx) || !existsSync(dz)) throw new BayesLoraError('IO_ERROR', `FOLDOC files not found in ${dir}`);
  const dict = gunzipSync(readFileSync(dz));
  const out: FoldocEntry[] = [];
  const seen = new Set<string>();
  for (const line of readFileSync(idx, 'utf8').split('\n')) {
    if (!line) continue;
    const [term, off, len] = line.split('\t');
    if (term === undefined || off === undefined || len === undefined || term.startsWith('00-database')) continue;
    const start = dictdNumber(off);
    const size = dictdNumber(len);
    if (start + size > dict.length) throw new BayesLoraError('BAD_FILE', `${idx}: entry '${term}' points past the dictionary`);
    const key = `${start}:${size}`;
    if (seen.has(key)) continue; // aliases share one body
    seen.add(key);
    const entry = dict.subarray(start, start + size).toString('utf8');
    const lines = entry.split('\n');
    const head = lines[0].trim();
    const body = lines.slice(1).join('\n').trim();
    const cats: string[] = [];
    let rest = body;
    const m = /^<([^>]*)>\s*/.exec(rest);
    if (m) {
      cats.push(...m[1].split(',').map((c) => c.trim()).filter(Boolean));
      rest = rest.slice(m[0].length);
    }
    const definition = firstSentence(rest);
    if (!definition) continue;
    out.push({ term: head.toLowerCase(), categories: cats, definition });
  }
  return out;
}
