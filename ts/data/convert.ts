// Converters from public benchmark files to our multiple-choice examples.
//
// Inputs (the files as the dataset authors distribute them; the flattened
// Hugging Face `datasets` JSON exports are accepted too):
//   arc         JSONL {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}
//               (HF: {"question": str, "choices": {"text": [], "label": []}, "answerKey"})
//   openbookqa  same shape as ARC (HF: "question_stem" instead of "question")
//   boolq       JSONL {"question", "passage", "answer": bool} (SuperGLUE: "label": bool)
//   winogrande  JSONL {"sentence" (with "_"), "option1", "option2", "answer": "1" | "2"}
//   mmlu        CSV rows: question, A, B, C, D, answer letter (no header; a
//               "question,A,B,C,D,answer" header row is skipped)
// The answer is matched by choice label (ARC mixes "A".."E" and "1".."5").
//
// Style 'paper' (default) reproduces the Laplace-LoRA prompts (Yang et al.
// 2024), used with the answer format it names:
//   arc/openbookqa/winogrande/mmlu: prompt "Select one of the choices that
//     answers the following question: {question}", letter format, layout
//     'paper' -> "... {question} Choices: A. {c0} B. {c1} ... Answer:".
//     ARC/OBQA choices get a capital first letter and a final period and only
//     4-choice questions are kept, as in the paper; WinoGrande options get a
//     final period (the paper writes "A. {option1}. B {option2}."; we do not
//     reproduce its missing period after "B").
//   boolq: prompt "Answer the question with only True or False: {question}
//     Context: {passage}", choices ["False", "True"], choice format.
// Style 'plain' keeps the text as given: the question (sentence for
// WinoGrande) as prompt with the letter format, layout 'lines'; BoolQ becomes
// "{passage}\nQuestion: {question}?\nAnswer:" with choices ["no", "yes"].
//
// Structural problems (bad JSON, missing or mistyped fields, an answer that
// names no choice) are BAD_FILE errors naming file:line. Records that are
// well formed but do not fit the task (duplicate choices, a choice count the
// options exclude) are skipped and reported in `skipped`.
import { BayesLoraError, invalid } from '../errors.ts';
import { parseCsv } from './csv.ts';
import type { AnswerFormat, LetterLayout } from './format.ts';
import {
  badLine,
  checkMcExample,
  DEFAULT_MAX_JSONL_BYTES,
  jsonLines,
  readLimited,
  writeMcJsonl,
  type McExample,
} from './jsonl.ts';

export type SourceKind = 'arc' | 'openbookqa' | 'boolq' | 'winogrande' | 'mmlu';
export const SOURCE_KINDS: readonly SourceKind[] = ['arc', 'openbookqa', 'boolq', 'winogrande', 'mmlu'];

export interface ConvertOptions {
  /** Prompt style. Default 'paper'. */
  style?: 'paper' | 'plain';
  /**
   * Keep only examples with exactly this many choices (others are skipped).
   * Default 4 for arc/openbookqa in paper style, otherwise no filter; null disables.
   */
  choiceCount?: number | null;
  /** Accept records without an answer (test splits); their answer is -1. Default false. */
  allowUnlabelled?: boolean;
  /** Input size limit in bytes. Default 256 MiB. */
  maxBytes?: number;
}

export interface ConvertResult {
  examples: McExample[];
  skipped: { line: number; reason: string }[];
  /** The answer format these prompts are written for. */
  format: { format: AnswerFormat; layout?: LetterLayout };
}

/** The instruction the Laplace-LoRA paper puts before every multiple-choice question. */
export const PAPER_MC_INSTRUCTION = 'Select one of the choices that answers the following question:';
/** The Laplace-LoRA BoolQ instruction. */
export const PAPER_BOOLQ_INSTRUCTION = 'Answer the question with only True or False:';

export async function convertFile(kind: SourceKind, file: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  checkKind(kind);
  if (typeof file !== 'string' || file.length === 0) throw invalid('convertFile: path must be a non-empty string');
  const buf = await readLimited(file, opts.maxBytes ?? DEFAULT_MAX_JSONL_BYTES);
  return convertData(kind, buf, file, opts);
}

/** Convert and write our JSONL (atomically). Returns what convertFile returns. */
export async function convertToJsonl(kind: SourceKind, input: string, output: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const r = await convertFile(kind, input, opts);
  await writeMcJsonl(output, r.examples);
  return r;
}

/** Convert file contents held in memory; `source` names them in errors. */
export function convertData(kind: SourceKind, data: Uint8Array | string, source: string, opts: ConvertOptions = {}): ConvertResult {
  checkKind(kind);
  const style = opts.style ?? 'paper';
  if (style !== 'paper' && style !== 'plain') throw invalid(`convert: style must be 'paper' or 'plain', got ${String(style)}`);
  const choiceCount =
    opts.choiceCount === undefined ? (style === 'paper' && (kind === 'arc' || kind === 'openbookqa') ? 4 : null) : opts.choiceCount;
  if (choiceCount !== null && (!Number.isInteger(choiceCount) || choiceCount < 2)) {
    throw invalid(`convert: choiceCount must be an integer >= 2 or null, got ${String(choiceCount)}`);
  }
  const ctx: Ctx = { source, style, allowUnlabelled: opts.allowUnlabelled ?? false };
  const records: { line: number; raw: Raw }[] = [];
  if (kind === 'mmlu') {
    let text: string;
    try {
      text = typeof data === 'string' ? data : new TextDecoder('utf-8', { fatal: true }).decode(data);
    } catch {
      throw new BayesLoraError('BAD_FILE', `${source}: not valid UTF-8`);
    }
    const rows = parseCsv(text, source);
    rows.forEach((r, k) => {
      if (k === 0 && isMmluHeader(r.fields)) return;
      records.push({ line: r.line, raw: mmluRecord(r.fields, { ...ctx, line: r.line }) });
    });
  } else {
    for (const { line, text } of jsonLines(data, source)) {
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        throw badLine(source, line, `not valid JSON (${(e as Error).message})`);
      }
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badLine(source, line, 'each line must be a JSON object');
      const c = { ...ctx, line };
      const o = v as Record<string, unknown>;
      const raw = kind === 'boolq' ? boolqRecord(o, c) : kind === 'winogrande' ? winograndeRecord(o, c) : arcRecord(o, c, kind);
      records.push({ line, raw });
    }
  }
  if (records.length === 0) throw new BayesLoraError('BAD_FILE', `${source}: no records (the file is empty or blank)`);

  const examples: McExample[] = [];
  const skipped: { line: number; reason: string }[] = [];
  for (const { line, raw } of records) {
    if (choiceCount !== null && raw.choices.length !== choiceCount) {
      skipped.push({ line, reason: `${raw.choices.length} choices (keeping only ${choiceCount})` });
      continue;
    }
    // The schema spells "unlabelled" as a null answer.
    const r = checkMcExample(raw.answer < 0 ? { ...raw, answer: null } : raw, ctx.allowUnlabelled);
    if (typeof r === 'string') {
      // Structural problems were rejected while reading; what remains is content that does not fit.
      skipped.push({ line, reason: r });
      continue;
    }
    examples.push(r);
  }
  const format: ConvertResult['format'] =
    kind === 'boolq' ? { format: 'choice' } : { format: 'letter', layout: style === 'paper' ? 'paper' : 'lines' };
  return { examples, skipped, format };
}

interface Ctx {
  source: string;
  style: 'paper' | 'plain';
  allowUnlabelled: boolean;
  line?: number;
}

/** An example before the final schema check (answer -1 = unlabelled). */
type Raw = McExample;

function fail(c: Ctx, problem: string): never {
  throw badLine(c.source, c.line ?? 0, problem);
}

function str(o: Record<string, unknown>, key: string, c: Ctx): string {
  if (!Object.hasOwn(o, key)) fail(c, `missing "${key}"`);
  const v = o[key];
  if (typeof v !== 'string') fail(c, `"${key}" must be a string`);
  if (v.trim().length === 0) fail(c, `"${key}" is empty`);
  return v.trim();
}

/** ARC/OBQA paper normalization: capital first letter, final period. */
function sentenceCase(t: string): string {
  const s = t.trim();
  const withDot = s.endsWith('.') ? s : s + '.';
  return withDot.charAt(0).toUpperCase() + withDot.slice(1);
}

function arcRecord(o: Record<string, unknown>, c: Ctx, kind: SourceKind): Raw {
  let stem: string;
  let texts: string[];
  let labels: string[];
  const q = o.question;
  if (typeof q === 'object' && q !== null && !Array.isArray(q)) {
    // Original AI2 layout.
    const qo = q as Record<string, unknown>;
    stem = str(qo, 'stem', { ...c });
    if (!Array.isArray(qo.choices)) fail(c, '"question.choices" must be an array');
    texts = [];
    labels = [];
    (qo.choices as unknown[]).forEach((ch, i) => {
      if (typeof ch !== 'object' || ch === null || Array.isArray(ch)) fail(c, `"question.choices"[${i}] must be an object`);
      const co = ch as Record<string, unknown>;
      texts.push(str(co, 'text', c));
      labels.push(str(co, 'label', c));
    });
  } else {
    // Hugging Face export.
    const key = kind === 'openbookqa' && Object.hasOwn(o, 'question_stem') ? 'question_stem' : 'question';
    stem = str(o, key, c);
    const ch = o.choices;
    if (typeof ch !== 'object' || ch === null || Array.isArray(ch)) fail(c, 'missing "question" object (or HF "choices" object)');
    const cho = ch as Record<string, unknown>;
    if (!Array.isArray(cho.text) || !Array.isArray(cho.label) || cho.text.length !== cho.label.length) {
      fail(c, '"choices" must hold equally long "text" and "label" arrays');
    }
    texts = (cho.text as unknown[]).map((t, i) => {
      if (typeof t !== 'string' || t.trim().length === 0) fail(c, `"choices.text"[${i}] must be a non-empty string`);
      return t.trim();
    });
    labels = (cho.label as unknown[]).map((l, i) => {
      if (typeof l !== 'string' || l.trim().length === 0) fail(c, `"choices.label"[${i}] must be a non-empty string`);
      return l.trim();
    });
  }
  if (texts.length < 2) fail(c, `needs at least 2 choices, got ${texts.length}`);
  if (new Set(labels).size !== labels.length) fail(c, `choice labels repeat (${labels.join(', ')})`);
  let answer = -1;
  if (!Object.hasOwn(o, 'answerKey') || o.answerKey === null || o.answerKey === '') {
    if (!c.allowUnlabelled) fail(c, 'missing "answerKey"');
  } else {
    if (typeof o.answerKey !== 'string') fail(c, '"answerKey" must be a string');
    answer = labels.indexOf(o.answerKey.trim());
    if (answer < 0) fail(c, `"answerKey" ${JSON.stringify(o.answerKey)} is not one of the labels (${labels.join(', ')})`);
  }
  if (c.style === 'paper') {
    return { prompt: `${PAPER_MC_INSTRUCTION} ${stem}`, choices: texts.map(sentenceCase), answer };
  }
  return { prompt: stem, choices: texts, answer };
}

function boolqRecord(o: Record<string, unknown>, c: Ctx): Raw {
  const question = str(o, 'question', c);
  const passage = str(o, 'passage', c);
  const key = Object.hasOwn(o, 'answer') ? 'answer' : Object.hasOwn(o, 'label') ? 'label' : null;
  let answer = -1;
  if (key === null || o[key] === null) {
    if (!c.allowUnlabelled) fail(c, 'missing "answer" (true or false)');
  } else {
    const v = o[key];
    // SuperGLUE stores the label as a bool; some exports use 0/1.
    if (v === true || v === 1) answer = 1;
    else if (v === false || v === 0) answer = 0;
    else if (key === 'label' && v === -1 && c.allowUnlabelled) answer = -1;
    else fail(c, `"${key}" must be true or false`);
  }
  if (c.style === 'paper') {
    return { prompt: `${PAPER_BOOLQ_INSTRUCTION} ${question} Context: ${passage}`, choices: ['False', 'True'], answer };
  }
  const q = question.endsWith('?') ? question : question + '?';
  return { prompt: `${passage}\nQuestion: ${q}\nAnswer:`, choices: ['no', 'yes'], answer };
}

function winograndeRecord(o: Record<string, unknown>, c: Ctx): Raw {
  const sentence = str(o, 'sentence', c);
  if (!sentence.includes('_')) fail(c, '"sentence" has no "_" blank');
  const options = [str(o, 'option1', c), str(o, 'option2', c)];
  let answer = -1;
  const a = o.answer;
  if (!Object.hasOwn(o, 'answer') || a === null || a === '') {
    if (!c.allowUnlabelled) fail(c, 'missing "answer" ("1" or "2")');
  } else if (a === '1' || a === 1) answer = 0;
  else if (a === '2' || a === 2) answer = 1;
  else fail(c, `"answer" must be "1" or "2", got ${JSON.stringify(a)}`);
  if (c.style === 'paper') {
    return {
      prompt: `${PAPER_MC_INSTRUCTION} ${sentence}`,
      choices: options.map((t) => (t.endsWith('.') ? t : t + '.')),
      answer,
    };
  }
  return { prompt: sentence, choices: options, answer };
}

function isMmluHeader(f: string[]): boolean {
  return f.length === 6 && f[0].trim().toLowerCase() === 'question' && f[5].trim().toLowerCase() === 'answer';
}

function mmluRecord(f: string[], c: Ctx): Raw {
  if (f.length !== 6) fail(c, `expected 6 fields (question, A, B, C, D, answer), got ${f.length}`);
  const question = f[0].trim();
  if (question.length === 0) fail(c, 'empty question');
  const choices = f.slice(1, 5).map((t, i) => {
    const s = t.trim();
    if (s.length === 0) fail(c, `empty choice ${'ABCD'[i]}`);
    return s;
  });
  const key = f[5].trim().toUpperCase();
  let answer = -1;
  if (key === '') {
    if (!c.allowUnlabelled) fail(c, 'missing answer letter');
  } else {
    answer = 'ABCD'.indexOf(key);
    if (key.length !== 1 || answer < 0) fail(c, `answer must be one of A, B, C, D, got ${JSON.stringify(f[5])}`);
  }
  const prompt = c.style === 'paper' ? `${PAPER_MC_INSTRUCTION} ${question}` : question;
  return { prompt, choices, answer };
}

function checkKind(kind: SourceKind): void {
  if (!SOURCE_KINDS.includes(kind)) throw invalid(`convert: unknown source format ${String(kind)}; expected one of ${SOURCE_KINDS.join(', ')}`);
}
