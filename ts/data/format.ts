// Answer formats: how a multiple-choice example becomes one token sequence plus
// C "class rows" (LM-head rows whose logits at the last prompt position are the
// class logits). The model is never asked to generate; it is scored on one
// next-token distribution restricted to C tokens, as in Laplace-LoRA.
//
// `letter`: the choices are listed and labelled A, B, C, ... and the classes
// are the letter tokens.
//   layout 'lines' (default):
//     ${prompt}\nA. ${c0}\nB. ${c1}\n...\nAnswer:
//   layout 'paper' (the Laplace-LoRA prompts, choices inline):
//     ${prompt} Choices: A. ${c0} B. ${c1} ... Answer:
//   Class c is the token of " <letter>" exactly as the tokenizer encodes it
//   right after "Answer:" ("ĠA" for GPT-2/LLaMA-3 byte-level BPE, "▁A" for
//   LLaMA-2 SentencePiece, "A" for a whitespace WordLevel). Each must be ONE
//   token, distinct, and not the unknown token; otherwise the tokenizer cannot
//   do this format and the error says to use `choice`. At most 26 choices.
//
// `choice`: the text is the prompt itself and class c is the FIRST token of
//   choice c as it continues the prompt after one space. That is, with
//   P = prompt and S = ' ' + choice (choice's own leading whitespace removed),
//   class c = encode(P + S)[len(encode(P))]. Encoding in context, rather than
//   encoding ' ' + choice alone, handles every tokenizer type the same way: a
//   byte-level BPE gives "ĠTrue", SentencePiece "▁True" (where encoding
//   " True" alone would give "▁", "▁True"), WordLevel drops the space. If
//   appending S changes the prompt's own tokens (a merge across the
//   boundary) the example is rejected. Two choices of one example with the
//   same first token, or a first token that is the unknown token, are errors
//   naming the example: their class logits could not tell them apart.
//
// In both formats trailing whitespace of the prompt is removed first (a
// trailing space before the answer token is the classic tokenization trap),
// the text is encoded without special tokens, and the tokenizer's own
// special prefix (usually BOS; `Tokenizer.specialPrefix`) is prepended.
// Nothing is appended: the last token is where the answer is read.
import { BayesLoraError, invalid } from '../errors.ts';
import type { Tokenizer } from '../tokenizer.ts';
import type { McExample } from './jsonl.ts';

export type AnswerFormat = 'letter' | 'choice';
export type LetterLayout = 'lines' | 'paper';

export interface FormatOptions {
  format: AnswerFormat;
  /** `letter` only. Default 'lines'. */
  layout?: LetterLayout;
  /** Prepend the tokenizer's special prefix (BOS). Default true. */
  addSpecialTokens?: boolean;
  /** Named in error messages, e.g. the JSONL path. */
  source?: string;
}

/** One encoded example: the model input, its C class rows, and its label (-1 = unlabelled). */
export interface EncodedMc {
  ids: number[];
  rows: number[];
  label: number;
}

export const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** The text of an example in the letter format. */
export function renderLetterPrompt(ex: McExample, layout: LetterLayout = 'lines'): string {
  if (ex.choices.length > LETTERS.length) {
    throw new BayesLoraError('UNSUPPORTED', `the letter format labels at most ${LETTERS.length} choices, got ${ex.choices.length}`);
  }
  const prompt = ex.prompt.trimEnd();
  if (layout === 'paper') {
    const listed = ex.choices.map((c, i) => `${LETTERS[i]}. ${c}`).join(' ');
    return `${prompt} Choices: ${listed} Answer:`;
  }
  const listed = ex.choices.map((c, i) => `\n${LETTERS[i]}. ${c}`).join('');
  return `${prompt}${listed}\nAnswer:`;
}

// The text that always precedes the letter in each layout; the letter
// tokens depend only on this local context.
const LETTER_CONTEXT: Record<LetterLayout, string> = { lines: 'B. x\nAnswer:', paper: 'B. x. Answer:' };

const letterCache = new WeakMap<Tokenizer, Map<LetterLayout, number[]>>();

/**
 * Token ids of " A", " B", ... (the first `count` letters) after "Answer:".
 * Throws UNSUPPORTED when a letter is not exactly one distinct, known token.
 */
export async function letterTokenIds(tok: Tokenizer, count: number, layout: LetterLayout = 'lines'): Promise<number[]> {
  if (!Number.isInteger(count) || count < 1 || count > LETTERS.length) {
    throw invalid(`letterTokenIds: count must be in [1, ${LETTERS.length}], got ${String(count)}`);
  }
  let perLayout = letterCache.get(tok);
  if (!perLayout) letterCache.set(tok, (perLayout = new Map()));
  let all = perLayout.get(layout);
  if (!all) {
    const ctx = LETTER_CONTEXT[layout];
    const conts = await continuations(tok, LETTERS.split('').map((L) => [ctx, ' ' + L]));
    // Store per letter; a letter that fails stays recorded as -1 so only the
    // letters actually used can fail.
    all = conts.map((c) => (c.ok && c.tokens.length === 1 && c.tokens[0] !== tok.unkId ? c.tokens[0] : -1));
    perLayout.set(layout, all);
  }
  const ids = all.slice(0, count);
  for (let i = 0; i < count; i++) {
    if (ids[i] < 0) {
      const shown = await tok.tokens(`${LETTER_CONTEXT[layout]} ${LETTERS[i]}`, { addSpecialTokens: false }).catch(() => []);
      throw new BayesLoraError(
        'UNSUPPORTED',
        `the tokenizer (${tok.source}) does not encode " ${LETTERS[i]}" after "Answer:" as one known token ` +
          `(it gives ${JSON.stringify(shown)}); use the 'choice' answer format`,
      );
    }
    const j = ids.indexOf(ids[i]);
    if (j !== i) {
      throw new BayesLoraError(
        'UNSUPPORTED',
        `the tokenizer (${tok.source}) encodes " ${LETTERS[j]}" and " ${LETTERS[i]}" as the same token; use the 'choice' answer format`,
      );
    }
  }
  return ids;
}

/** Encode examples in one answer format. Errors name the example as `source examples[i]`. */
export async function encodeMc(tok: Tokenizer, examples: McExample[], opts: FormatOptions): Promise<EncodedMc[]> {
  if (!Array.isArray(examples)) throw invalid('encodeMc: examples must be an array');
  if (opts.format !== 'letter' && opts.format !== 'choice') {
    throw invalid(`encodeMc: format must be 'letter' or 'choice', got ${String(opts.format)}`);
  }
  const layout = opts.layout ?? 'lines';
  if (layout !== 'lines' && layout !== 'paper') throw invalid(`encodeMc: layout must be 'lines' or 'paper', got ${String(layout)}`);
  const where = (i: number) => `${opts.source ? opts.source + ' ' : ''}examples[${i}]`;
  examples.forEach((ex, i) => checkShape(ex, where(i)));
  const prefix = opts.addSpecialTokens === false ? [] : tok.specialPrefix.slice();
  const out: EncodedMc[] = [];

  if (opts.format === 'letter') {
    const maxC = examples.reduce((m, ex) => Math.max(m, ex.choices.length), 0);
    if (maxC > LETTERS.length) {
      const i = examples.findIndex((ex) => ex.choices.length > LETTERS.length);
      throw new BayesLoraError('UNSUPPORTED', `${where(i)}: the letter format labels at most ${LETTERS.length} choices, got ${maxC}; use 'choice'`);
    }
    const letters = maxC > 0 ? await letterTokenIds(tok, maxC, layout) : [];
    for (let s = 0; s < examples.length; s += CHUNK) {
      const part = examples.slice(s, s + CHUNK);
      const ids = await tok.encodeBatch(part.map((ex) => renderLetterPrompt(ex, layout)), { addSpecialTokens: false });
      part.forEach((ex, k) => {
        if (ids[k].length === 0) throw invalid(`${where(s + k)}: the prompt encodes to no tokens`);
        out.push({ ids: prefix.concat(ids[k]), rows: letters.slice(0, ex.choices.length), label: ex.answer });
      });
    }
    return out;
  }

  for (let s = 0; s < examples.length; s += CHUNK) {
    const part = examples.slice(s, s + CHUNK);
    const texts = part.map((ex) => ex.prompt.trimEnd());
    const prompts = await tok.encodeBatch(texts, { addSpecialTokens: false });
    const contexts = await answerContexts(tok, texts, prompts);
    const pairs: [string, string][] = [];
    const ctxIds: number[][] = [];
    part.forEach((ex, k) => {
      for (const c of ex.choices) {
        pairs.push([contexts[k].text, ' ' + c.trimStart()]);
        ctxIds.push(contexts[k].ids);
      }
    });
    const conts = await continuations(tok, pairs, ctxIds);
    let q = 0;
    part.forEach((ex, k) => {
      const i = s + k;
      if (prompts[k].length === 0) throw invalid(`${where(i)}: the prompt encodes to no tokens`);
      const rows: number[] = [];
      for (let c = 0; c < ex.choices.length; c++, q++) {
        const r = conts[q];
        const name = JSON.stringify(clip(ex.choices[c]));
        if (!r.ok) {
          throw new BayesLoraError(
            'UNSUPPORTED',
            `${where(i)}: appending choice ${c} (${name}) changes the tokens of the prompt; the tokenizer merges across the boundary`,
          );
        }
        if (r.tokens.length === 0) throw invalid(`${where(i)}: choice ${c} (${name}) encodes to no tokens`);
        const first = r.tokens[0];
        if (tok.unkId !== undefined && first === tok.unkId) {
          throw invalid(`${where(i)}: the first token of choice ${c} (${name}) is the unknown token`);
        }
        const dup = rows.indexOf(first);
        if (dup >= 0) {
          throw invalid(
            `${where(i)}: choices ${dup} (${JSON.stringify(clip(ex.choices[dup]))}) and ${c} (${name}) start with the same token ` +
              `(id ${first}), so the 'choice' format cannot tell them apart; reword them or use 'letter'`,
          );
        }
        rows.push(first);
      }
      out.push({ ids: prefix.concat(prompts[k]), rows, label: ex.answer });
    });
  }
  return out;
}

/** Prompts longer than this are represented by a tail when finding answer tokens. */
const TAIL_CHARS = 96;

/**
 * The context each choice is appended to when finding its first token.
 * Encoding every prompt again with each choice would cost C full encodes per
 * example; instead a long prompt is represented by a tail starting at a
 * whitespace boundary (with, then without, the whitespace), accepted only
 * when the tail's tokens are exactly the last tokens of the full prompt, i.e.
 * the tokenizer treats the cut as a boundary. Otherwise the full prompt is
 * used, so the result is the same as appending to the full prompt.
 */
async function answerContexts(tok: Tokenizer, texts: string[], full: number[][]): Promise<{ text: string; ids: number[] }[]> {
  const out = texts.map((text, k) => ({ text, ids: full[k] }));
  const cand: { k: number; text: string }[] = [];
  texts.forEach((p, k) => {
    if (p.length <= 2 * TAIL_CHARS) return;
    const from = p.length - TAIL_CHARS;
    const rel = p.slice(from).search(/\s/);
    if (rel < 0) return;
    const ws = from + rel;
    let after = ws;
    while (after < p.length && /\s/.test(p[after])) after++;
    if (after >= p.length) return;
    cand.push({ k, text: p.slice(ws) }, { k, text: p.slice(after) });
  });
  if (cand.length === 0) return out;
  const ids = await tok.encodeBatch(cand.map((c) => c.text), { addSpecialTokens: false });
  const done = new Set<number>();
  cand.forEach((c, j) => {
    if (done.has(c.k)) return;
    const f = full[c.k];
    const t = ids[j];
    if (t.length === 0 || t.length >= f.length) return;
    for (let m = 1; m <= t.length; m++) if (t[t.length - m] !== f[f.length - m]) return;
    out[c.k] = { text: c.text, ids: t };
    done.add(c.k);
  });
  return out;
}

const CHUNK = 512;

interface Continuation {
  ok: boolean; // false when the context's tokens are not a prefix of the joint encoding
  tokens: number[];
}

/**
 * Tokens that `cont` adds when it follows `ctx`: encode ctx and ctx + cont
 * (no special tokens) and take the tail. `ctxIds`, when given, are the
 * already-encoded contexts, one per pair.
 */
async function continuations(tok: Tokenizer, pairs: [string, string][], ctxIds?: number[][]): Promise<Continuation[]> {
  const ctxPerPair = ctxIds ?? (await tok.encodeBatch(pairs.map((p) => p[0]), { addSpecialTokens: false }));
  const joint = await tok.encodeBatch(pairs.map((p) => p[0] + p[1]), { addSpecialTokens: false });
  return joint.map((j, i) => {
    const c = ctxPerPair[i];
    if (j.length < c.length) return { ok: false, tokens: [] };
    for (let k = 0; k < c.length; k++) if (j[k] !== c[k]) return { ok: false, tokens: [] };
    return { ok: true, tokens: j.slice(c.length) };
  });
}

function checkShape(ex: McExample, where: string): void {
  if (ex === null || typeof ex !== 'object') throw invalid(`${where}: not an example object`);
  if (typeof ex.prompt !== 'string' || ex.prompt.trim().length === 0) throw invalid(`${where}: prompt must be a non-empty string`);
  if (!Array.isArray(ex.choices) || ex.choices.length < 2) throw invalid(`${where}: needs at least 2 choices`);
  for (const c of ex.choices) {
    if (typeof c !== 'string' || c.trim().length === 0) throw invalid(`${where}: choices must be non-empty strings`);
  }
  if (!Number.isInteger(ex.answer) || ex.answer < -1 || ex.answer >= ex.choices.length) {
    throw invalid(`${where}: answer ${String(ex.answer)} is not -1 or an index into ${ex.choices.length} choices`);
  }
}

function clip(s: string): string {
  return s.length > 40 ? s.slice(0, 37) + '...' : s;
}
