// Multiple-choice JSONL: the one task-file format bayeslora trains and predicts on.
//
// One JSON object per line:
//   {"prompt": "Which gas do plants absorb?", "choices": ["Oxygen", "Carbon dioxide"], "answer": 1}
// - prompt: non-empty string (not only whitespace)
// - choices: array of >= 2 (at most MAX_CHOICES) distinct non-empty strings
// - answer: integer index into choices (0-based). With `allowUnlabelled`, a
//   missing or null answer is accepted and read as -1 (prediction inputs).
// Other keys are ignored (datasets carry ids and metadata). Blank lines are
// skipped; CRLF line ends and a leading UTF-8 BOM are accepted. Every problem
// is a BayesLoraError 'BAD_FILE' whose message starts with `file:line:`.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { BayesLoraError, invalid } from '../errors.ts';

export interface McExample {
  prompt: string;
  choices: string[];
  /** Index of the correct choice, or -1 when unlabelled. */
  answer: number;
}

export interface ReadMcOptions {
  /** File size limit in bytes. Default 256 MiB. */
  maxBytes?: number;
  /** Accept examples without an answer (answer missing or null -> -1). Default false. */
  allowUnlabelled?: boolean;
}

export const DEFAULT_MAX_JSONL_BYTES = 256 * 1024 * 1024;
/** More choices than this is surely a broken file, and would not fit one class-logit row. */
export const MAX_CHOICES = 1024;

/**
 * Check one parsed JSON value against the example schema. Returns the
 * problem as a sentence, or the example. Shared by the reader and the writer.
 */
export function checkMcExample(v: unknown, allowUnlabelled = false): McExample | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'each line must be a JSON object';
  const o = v as Record<string, unknown>;
  if (!Object.hasOwn(o, 'prompt')) return 'missing "prompt"';
  if (typeof o.prompt !== 'string') return `"prompt" must be a string, got ${typeName(o.prompt)}`;
  if (o.prompt.trim().length === 0) return '"prompt" is empty';
  if (!Object.hasOwn(o, 'choices')) return 'missing "choices"';
  if (!Array.isArray(o.choices)) return `"choices" must be an array of strings, got ${typeName(o.choices)}`;
  const choices = o.choices as unknown[];
  if (choices.length < 2) return `"choices" needs at least 2 entries, got ${choices.length}`;
  if (choices.length > MAX_CHOICES) return `"choices" has ${choices.length} entries, more than ${MAX_CHOICES}`;
  const seen = new Map<string, number>();
  for (let i = 0; i < choices.length; i++) {
    const c = choices[i];
    if (typeof c !== 'string') return `"choices"[${i}] must be a string, got ${typeName(c)}`;
    if (c.trim().length === 0) return `"choices"[${i}] is empty`;
    const prev = seen.get(c);
    if (prev !== undefined) return `"choices"[${i}] duplicates "choices"[${prev}] (${JSON.stringify(clip(c))})`;
    seen.set(c, i);
  }
  let answer: number;
  if (!Object.hasOwn(o, 'answer') || o.answer === null) {
    if (!allowUnlabelled) return 'missing "answer"';
    answer = -1;
  } else {
    const a = o.answer;
    if (typeof a !== 'number' || !Number.isInteger(a)) return `"answer" must be an integer index into "choices", got ${describe(a)}`;
    if (a < 0 || a >= choices.length) return `"answer" ${a} is out of range for ${choices.length} choices`;
    answer = a;
  }
  return { prompt: o.prompt, choices: (choices as string[]).slice(), answer };
}

/** Read and validate a multiple-choice JSONL file. */
export async function readMcJsonl(file: string, opts: ReadMcOptions = {}): Promise<McExample[]> {
  if (typeof file !== 'string' || file.length === 0) throw invalid('readMcJsonl: path must be a non-empty string');
  const buf = await readLimited(file, opts.maxBytes ?? DEFAULT_MAX_JSONL_BYTES);
  return parseMcJsonl(buf, file, opts);
}

/** Parse JSONL bytes (or text) that came from `source` (used in error messages). */
export function parseMcJsonl(data: Uint8Array | string, source: string, opts: ReadMcOptions = {}): McExample[] {
  const out: McExample[] = [];
  for (const { line, text } of jsonLines(data, source)) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw badLine(source, line, `not valid JSON (${(e as Error).message})`);
    }
    const r = checkMcExample(v, opts.allowUnlabelled ?? false);
    if (typeof r === 'string') throw badLine(source, line, r);
    out.push(r);
  }
  if (out.length === 0) throw new BayesLoraError('BAD_FILE', `${source}: no examples (the file is empty or blank)`);
  return out;
}

/**
 * Write examples as JSONL atomically (a temp file in the same directory, then
 * rename), so a crash never leaves a half-written task file. Examples are
 * validated first (INVALID_ARGUMENT naming the index); unlabelled (-1)
 * examples are written with "answer": null.
 */
export async function writeMcJsonl(file: string, examples: McExample[]): Promise<void> {
  if (typeof file !== 'string' || file.length === 0) throw invalid('writeMcJsonl: path must be a non-empty string');
  if (!Array.isArray(examples)) throw invalid('writeMcJsonl: examples must be an array');
  const lines: string[] = [];
  examples.forEach((ex, i) => {
    const labelled = ex !== null && typeof ex === 'object' && (ex as McExample).answer !== -1;
    const probe = labelled ? ex : { ...ex, answer: null };
    const r = checkMcExample(probe, !labelled);
    if (typeof r === 'string') throw invalid(`writeMcJsonl: examples[${i}]: ${r}`);
    lines.push(JSON.stringify({ prompt: r.prompt, choices: r.choices, answer: r.answer < 0 ? null : r.answer }));
  });
  await atomicWrite(file, lines.length ? lines.join('\n') + '\n' : '');
}

/** Write `text` to `file` through a temp file and rename; IO_ERROR on failure. */
export async function atomicWrite(file: string, text: string): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  try {
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(tmp, text);
    await fsp.rename(tmp, file);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw new BayesLoraError('IO_ERROR', `cannot write ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** Read a user file whole after checking it exists, is regular, and is within `maxBytes`. */
export async function readLimited(file: string, maxBytes: number): Promise<Buffer> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch (e) {
    throw new BayesLoraError('BAD_FILE', `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  if (!st.isFile()) throw new BayesLoraError('BAD_FILE', `${file}: not a regular file`);
  if (st.size > maxBytes) throw new BayesLoraError('BAD_FILE', `${file}: ${st.size} bytes is too large (limit ${maxBytes})`);
  try {
    return await fsp.readFile(file);
  } catch (e) {
    throw new BayesLoraError('BAD_FILE', `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

/**
 * The non-blank lines of a UTF-8 text with their 1-based line numbers. Lines
 * are decoded one by one so invalid UTF-8 is reported at its line.
 */
export function* jsonLines(data: Uint8Array | string, source: string): Generator<{ line: number; text: string }> {
  if (typeof data === 'string') {
    const lines = data.split('\n');
    for (let i = 0; i < lines.length; i++) {
      let t = lines[i];
      if (i === 0 && t.charCodeAt(0) === 0xfeff) t = t.slice(1);
      if (t.endsWith('\r')) t = t.slice(0, -1);
      if (t.trim().length > 0) yield { line: i + 1, text: t };
    }
    return;
  }
  const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let start = 0;
  let line = 1;
  while (start <= data.length) {
    let end = data.indexOf(0x0a, start);
    if (end < 0) end = data.length;
    let stop = end;
    if (stop > start && data[stop - 1] === 0x0d) stop--;
    if (stop > start) {
      let text: string;
      try {
        // The decoder drops a leading byte-order mark (only line 1 should have one).
        text = dec.decode(data.subarray(start, stop));
      } catch {
        throw badLine(source, line, 'not valid UTF-8');
      }
      if (text.trim().length > 0) yield { line, text };
    }
    start = end + 1;
    line++;
  }
}

export function badLine(source: string, line: number, problem: string): BayesLoraError {
  return new BayesLoraError('BAD_FILE', `${source}:${line}: ${problem}`);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function describe(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return `the string ${JSON.stringify(clip(v))}`;
  return typeName(v);
}

function clip(s: string): string {
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
}
