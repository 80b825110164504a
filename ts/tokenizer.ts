// Tokenizer: a validated wrapper around Hugging Face's `tokenizers` npm binding
// (the Rust library behind every `tokenizer.json`), plus an offline trainer
// that writes a `tokenizer.json` HF's library itself can load.
//
// Owns: loading (validate the file before the library sees it), encode/decode,
// special-token ids (BOS/EOS/PAD/UNK), what the tokenizer's post-processor
// adds around a text, and `Tokenizer.train` for small WordLevel or byte-level
// BPE tokenizers (tests, toy models, from-scratch pretraining).
//
// Encoding runs in the library's Rust thread pool, so `encode`/`decode` are
// async like the binding they wrap.
import { promises as fsp, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tokenizers from 'tokenizers';
import { BayesLoraError, invalid } from './errors.ts';
import { checkAddedTokens, checkTokenizerJson } from './tokenizer-guards.ts';

type HfTokenizer = InstanceType<typeof tokenizers.Tokenizer>;

/** Largest tokenizer.json we accept; real ones are 2-20 MB. */
export const MAX_TOKENIZER_BYTES = 50 * 1024 * 1024;
/** Largest sibling tokenizer_config.json / config.json we read. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

export interface TokenizerLoadOptions {
  /** Size limit for the tokenizer.json (bytes). Default MAX_TOKENIZER_BYTES. */
  maxBytes?: number;
  /** Special tokens by their text; each must be in the vocabulary. Overrides every other source. */
  bosToken?: string | null;
  eosToken?: string | null;
  padToken?: string | null;
  /**
   * Where to look for `tokenizer_config.json` / `config.json` naming the special
   * tokens. Default: the tokenizer file's directory. `false` disables the lookup.
   */
  configDir?: string | false;
}

export interface EncodeOptions {
  /** Let the tokenizer's post-processor add its special tokens (e.g. BOS). Default true, as in HF. */
  addSpecialTokens?: boolean;
}

export interface TrainTokenizerOptions {
  /** `wordlevel`: one id per whole word/punctuation mark. `bpe`: byte-level BPE (never unknown tokens). */
  kind: 'wordlevel' | 'bpe';
  /** Training texts (each may contain newlines). */
  corpus?: string[];
  /** Training text files (UTF-8). Either `corpus` or `files` (or both) must be given. */
  files?: string[];
  /** Vocabulary size including the special tokens (an upper bound: a small corpus may give fewer). */
  vocabSize: number;
  /** Special tokens, given ids 0..k-1 in this order. Default ['<unk>', '<pad>', '<s>', '</s>']. */
  specialTokens?: string[];
  /** Unknown-word token for `wordlevel` (must be one of specialTokens). Default '<unk>'. */
  unkToken?: string;
  /** Token the post-processor prepends to every text; default '<s>' when it is a special token; null for none. */
  bosToken?: string | null;
  /** `wordlevel`: drop words seen fewer times than this. Default 1. */
  minFrequency?: number;
  /**
   * `wordlevel`: add a Lowercase normalizer, so that text in any case maps to the
   * (lower-case) vocabulary instead of the unknown token. Words are counted after
   * lower-casing. Default false.
   */
  lowercase?: boolean;
  /** Where to write tokenizer.json (atomically). */
  out: string;
  /** Per-file size limit when reading `files`. Default 1 GiB. */
  maxBytes?: number;
}

function badFile(file: string, problem: string, cause?: unknown): BayesLoraError {
  return new BayesLoraError('BAD_FILE', `${file}: ${problem}`, cause === undefined ? undefined : { cause });
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * What the tokenizers library accepts but then panics on while encoding (a
 * Rust panic that cannot unwind aborts the whole process; found by
 * `npm run fuzz`, inputs in fuzz/regressions/tokenizer/): a TemplateProcessing
 * step whose `single`/`pair` template names a special token missing from its
 * `special_tokens`, or an entry whose `ids` and `tokens` differ in length.
 * Sequence processors are checked step by step.
 */
function checkPostProcessor(pp: unknown, source: string, where: string, depth = 0): void {
  if (pp === undefined || pp === null) return;
  if (!isPlainObject(pp)) throw badFile(source, `tokenizer.json "${where}" must be an object or null`);
  if (depth > 16) throw badFile(source, `tokenizer.json "${where}" nests processors too deeply`);
  if (pp.type === 'Sequence') {
    if (!Array.isArray(pp.processors)) throw badFile(source, `tokenizer.json "${where}" (Sequence) has no "processors" array`);
    pp.processors.forEach((p, i) => checkPostProcessor(p, source, `${where}.processors[${i}]`, depth + 1));
    return;
  }
  if (pp.type !== 'TemplateProcessing') return;
  const specials = pp.special_tokens;
  if (!isPlainObject(specials)) throw badFile(source, `tokenizer.json "${where}" (TemplateProcessing) has no "special_tokens" object`);
  for (const [name, e] of Object.entries(specials)) {
    if (!isPlainObject(e) || !Array.isArray(e.ids) || !Array.isArray(e.tokens))
      throw badFile(source, `tokenizer.json "${where}".special_tokens[${JSON.stringify(name)}] needs "ids" and "tokens" arrays`);
    if (e.ids.length !== e.tokens.length)
      throw badFile(source, `tokenizer.json "${where}".special_tokens[${JSON.stringify(name)}] has ${e.ids.length} ids for ${e.tokens.length} tokens`);
  }
  for (const key of ['single', 'pair'] as const) {
    const tpl = pp[key];
    if (tpl === undefined) continue;
    if (!Array.isArray(tpl)) throw badFile(source, `tokenizer.json "${where}".${key} must be an array`);
    for (const piece of tpl) {
      const st = isPlainObject(piece) && isPlainObject(piece.SpecialToken) ? piece.SpecialToken : null;
      if (st && !(typeof st.id === 'string' && Object.hasOwn(specials, st.id)))
        throw badFile(source, `tokenizer.json "${where}".${key} uses special token ${JSON.stringify(st.id)}, which its "special_tokens" does not define`);
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Read a user file as text after checking that it exists, is a regular file, and is not too large. */
async function readTextFile(file: string, maxBytes: number, what: string): Promise<string> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch (e) {
    throw badFile(file, `cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? errMessage(e)})`, e);
  }
  if (!st.isFile()) throw badFile(file, `${what} is not a regular file`);
  if (st.size > maxBytes) throw badFile(file, `${what} is ${st.size} bytes, over the ${maxBytes}-byte limit`);
  let buf: Buffer;
  try {
    buf = await fsp.readFile(file);
  } catch (e) {
    throw badFile(file, `cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? errMessage(e)})`, e);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch (e) {
    throw badFile(file, `${what} is not valid UTF-8`, e);
  }
}

async function readJsonFile(file: string, maxBytes: number, what: string): Promise<unknown> {
  const text = await readTextFile(file, maxBytes, what);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badFile(file, `${what} is not valid JSON (${errMessage(e)})`, e);
  }
}

function fileExists(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

// Names that identify special tokens when no config says which is which, in
// order of preference (LLaMA-1/2/Mistral, LLaMA-3, Gemma, GPT-2/Qwen, BERT).
const BOS_NAMES = ['<s>', '<|begin_of_text|>', '<bos>', '<|startoftext|>'];
const EOS_NAMES = ['</s>', '<|end_of_text|>', '<eos>', '<|endoftext|>', '<|eot_id|>'];
const PAD_NAMES = ['<pad>', '<|pad|>', '[PAD]', '<|finetune_right_pad_id|>'];

/** One special token's source: undefined = not stated, null = stated absent, string = token text, number = id. */
type SpecialSpec = string | number | null | undefined;

export class Tokenizer {
  /** The file it came from ('<memory>' for fromJson). */
  readonly source: string;
  /** The model type of tokenizer.json: 'BPE', 'WordLevel', 'Unigram', 'WordPiece'. */
  readonly kind: string;
  /** Number of ids, including added tokens. */
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** The pad token; falls back to eosId when the tokenizer has no pad token (padding positions are masked anyway). */
  readonly padId: number | undefined;
  /** The unknown-token id, when the model has one (byte-level BPE has none). */
  readonly unkId: number | undefined;
  /** Ids the post-processor puts before a text when addSpecialTokens is true (usually [bosId] or []). */
  readonly specialPrefix: readonly number[];
  /** Ids the post-processor puts after a text when addSpecialTokens is true (usually [] or [eosId]). */
  readonly specialSuffix: readonly number[];

  private readonly hf: HfTokenizer;

  private constructor(
    hf: HfTokenizer,
    info: {
      source: string;
      kind: string;
      bosId?: number;
      eosId?: number;
      padId?: number;
      unkId?: number;
      prefix: number[];
      suffix: number[];
    },
  ) {
    this.hf = hf;
    this.source = info.source;
    this.kind = info.kind;
    this.vocabSize = hf.getVocabSize(true);
    this.bosId = info.bosId;
    this.eosId = info.eosId;
    this.padId = info.padId;
    this.unkId = info.unkId;
    this.specialPrefix = Object.freeze(info.prefix.slice());
    this.specialSuffix = Object.freeze(info.suffix.slice());
  }

  /** Load a `tokenizer.json`, validating it first. Every failure is a BAD_FILE naming the file. */
  static async fromFile(file: string, opts: TokenizerLoadOptions = {}): Promise<Tokenizer> {
    if (typeof file !== 'string' || file.length === 0) throw invalid('tokenizer path must be a non-empty string');
    const maxBytes = opts.maxBytes ?? MAX_TOKENIZER_BYTES;
    const text = await readTextFile(file, maxBytes, 'tokenizer.json');
    const configDir = opts.configDir === undefined ? path.dirname(file) : opts.configDir;
    return Tokenizer.build(text, file, opts, configDir);
  }

  /** Build from the text of a tokenizer.json held in memory (same validation as fromFile). */
  static async fromJson(text: string, opts: TokenizerLoadOptions & { source?: string } = {}): Promise<Tokenizer> {
    if (typeof text !== 'string') throw invalid('tokenizer JSON must be a string');
    const source = opts.source ?? '<memory>';
    const maxBytes = opts.maxBytes ?? MAX_TOKENIZER_BYTES;
    if (Buffer.byteLength(text, 'utf8') > maxBytes) throw badFile(source, `tokenizer.json is over the ${maxBytes}-byte limit`);
    return Tokenizer.build(text, source, opts, opts.configDir ?? false);
  }

  private static async build(
    text: string,
    source: string,
    opts: TokenizerLoadOptions,
    configDir: string | false,
  ): Promise<Tokenizer> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw badFile(source, `tokenizer.json is not valid JSON (${errMessage(e)})`, e);
    }
    if (!isPlainObject(json)) throw badFile(source, 'tokenizer.json must be a JSON object');
    const model = json.model;
    if (!isPlainObject(model)) throw badFile(source, 'tokenizer.json has no "model" object');
    if (typeof model.type !== 'string') throw badFile(source, 'tokenizer.json "model" has no "type"');
    checkPostProcessor(json.post_processor, source, 'post_processor');
    checkTokenizerJson(json, source);
    let hf: HfTokenizer;
    try {
      hf = tokenizers.Tokenizer.fromString(text);
    } catch (e) {
      throw badFile(source, `the tokenizers library rejected it: ${errMessage(e)}`, e);
    }
    // Lengths are ours (ts/data/collate.ts truncates and pads): a file's own
    // truncation/padding would change what encode() returns, and the library
    // panics on some of them (a stride not below the length, found by fuzzing).
    hf.disableTruncation();
    hf.disablePadding();
    const norm = hf.getNormalizer();
    checkAddedTokens(json, source, norm ? (t) => norm.normalizeString(t) : null);
    const kind = model.type;

    // Special tokens: explicit options, then the HF config files, then well-known names.
    const specs: Record<'bos' | 'eos' | 'pad', SpecialSpec> = {
      bos: opts.bosToken,
      eos: opts.eosToken,
      pad: opts.padToken,
    };
    const fromOpts = { bos: opts.bosToken !== undefined, eos: opts.eosToken !== undefined, pad: opts.padToken !== undefined };
    if (configDir !== false) {
      const tc = path.join(configDir, 'tokenizer_config.json');
      if (fileExists(tc)) {
        const cfg = await readJsonFile(tc, MAX_CONFIG_BYTES, 'tokenizer_config.json');
        if (!isPlainObject(cfg)) throw badFile(tc, 'tokenizer_config.json must be a JSON object');
        for (const k of ['bos', 'eos', 'pad'] as const) {
          if (specs[k] !== undefined || !Object.hasOwn(cfg, `${k}_token`)) continue;
          specs[k] = tokenSpecFromConfig(cfg[`${k}_token`], tc, `${k}_token`);
        }
      }
      const mc = path.join(configDir, 'config.json');
      if (fileExists(mc)) {
        const cfg = await readJsonFile(mc, MAX_CONFIG_BYTES, 'config.json');
        if (!isPlainObject(cfg)) throw badFile(mc, 'config.json must be a JSON object');
        for (const k of ['bos', 'eos', 'pad'] as const) {
          if (specs[k] !== undefined || !Object.hasOwn(cfg, `${k}_token_id`)) continue;
          specs[k] = idSpecFromConfig(cfg[`${k}_token_id`], mc, `${k}_token_id`);
        }
      }
    }
    const vocabSize = hf.getVocabSize(true);
    const resolve = (k: 'bos' | 'eos' | 'pad', names: string[]): number | undefined => {
      const s = specs[k];
      if (s === null) return undefined;
      if (typeof s === 'number') {
        if (s < 0 || s >= vocabSize) throw badFile(source, `${k} token id ${s} is outside the vocabulary (size ${vocabSize})`);
        return s;
      }
      if (typeof s === 'string') {
        const id = hf.tokenToId(s);
        if (id === null || id === undefined) {
          if (fromOpts[k]) throw invalid(`${k} token ${JSON.stringify(s)} is not in the vocabulary of ${source}`);
          throw badFile(source, `${k} token ${JSON.stringify(s)} named by the config is not in the vocabulary`);
        }
        return id;
      }
      for (const n of names) {
        const id = hf.tokenToId(n);
        if (id !== null && id !== undefined) return id;
      }
      return undefined;
    };
    const bosId = resolve('bos', BOS_NAMES);
    const eosId = resolve('eos', EOS_NAMES);
    const padId = resolve('pad', PAD_NAMES) ?? eosId;

    let unkId: number | undefined;
    if (typeof model.unk_token === 'string') {
      const id = hf.tokenToId(model.unk_token);
      if (id !== null && id !== undefined) unkId = id;
    } else if (typeof model.unk_id === 'number' && Number.isInteger(model.unk_id)) {
      unkId = model.unk_id;
    }

    // What the post-processor wraps around a text: encode a probe with and
    // without special tokens and locate the plain encoding inside the full one.
    let prefix: number[] = [];
    let suffix: number[] = [];
    try {
      const probe = 'Hello';
      const plain = (await hf.encode(probe, null, { addSpecialTokens: false })).getIds();
      const full = (await hf.encode(probe, null, { addSpecialTokens: true })).getIds();
      const at = indexOfSeq(full, plain);
      if (at >= 0 && plain.length > 0) {
        prefix = full.slice(0, at);
        suffix = full.slice(at + plain.length);
      }
    } catch (e) {
      throw badFile(source, `the tokenizer fails to encode a probe text: ${errMessage(e)}`, e);
    }
    return new Tokenizer(hf, { source, kind, bosId, eosId, padId, unkId, prefix, suffix });
  }

  /** Token ids of `text`. */
  async encode(text: string, opts: EncodeOptions = {}): Promise<number[]> {
    if (typeof text !== 'string') throw invalid('encode: text must be a string');
    try {
      const enc = await this.hf.encode(text, null, { addSpecialTokens: opts.addSpecialTokens ?? true });
      return enc.getIds();
    } catch (e) {
      throw invalid(`encode: the tokenizer failed on the text: ${errMessage(e)}`);
    }
  }

  /** Token ids of many texts in one call into the library's thread pool. */
  async encodeBatch(texts: string[], opts: EncodeOptions = {}): Promise<number[][]> {
    if (!Array.isArray(texts)) throw invalid('encodeBatch: texts must be an array of strings');
    for (let i = 0; i < texts.length; i++) {
      if (typeof texts[i] !== 'string') throw invalid(`encodeBatch: texts[${i}] is not a string`);
    }
    if (texts.length === 0) return [];
    try {
      const encs = await this.hf.encodeBatch(texts, { addSpecialTokens: opts.addSpecialTokens ?? true });
      return encs.map((e) => e.getIds());
    } catch (e) {
      throw invalid(`encodeBatch: the tokenizer failed: ${errMessage(e)}`);
    }
  }

  /** The tokens (strings) of `text`, for diagnostics. */
  async tokens(text: string, opts: EncodeOptions = {}): Promise<string[]> {
    if (typeof text !== 'string') throw invalid('tokens: text must be a string');
    try {
      const enc = await this.hf.encode(text, null, { addSpecialTokens: opts.addSpecialTokens ?? true });
      return enc.getTokens();
    } catch (e) {
      throw invalid(`tokens: the tokenizer failed on the text: ${errMessage(e)}`);
    }
  }

  /** Text of `ids`. Every id must be an integer in [0, vocabSize). */
  async decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): Promise<string> {
    const list = this.checkIds(ids, 'decode');
    try {
      return await this.hf.decode(list, opts.skipSpecialTokens ?? false);
    } catch (e) {
      throw invalid(`decode: ${errMessage(e)}`);
    }
  }

  /** Id of one token (its vocabulary string, e.g. 'ĠA' or '▁A'), or undefined. */
  tokenToId(token: string): number | undefined {
    if (typeof token !== 'string') throw invalid('tokenToId: token must be a string');
    const id = this.hf.tokenToId(token);
    return id === null ? undefined : id;
  }

  /** Vocabulary string of one id, or undefined. */
  idToToken(id: number): string | undefined {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) return undefined;
    const t = this.hf.idToToken(id);
    return t === null ? undefined : t;
  }

  private checkIds(ids: ArrayLike<number>, where: string): number[] {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
      throw invalid(`${where}: ids must be an array of token ids`);
    }
    const out = new Array<number>(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= this.vocabSize) {
        throw invalid(`${where}: ids[${i}] = ${String(v)} is not a token id in [0, ${this.vocabSize})`);
      }
      out[i] = v;
    }
    return out;
  }

  /**
   * Train a small tokenizer offline and write it as a standard HF tokenizer.json.
   *
   * `wordlevel`: the vocabulary is the special tokens, then the most frequent
   * words (ties broken by code-unit order, so the result is deterministic).
   * Words are what the pre-tokenizer yields: HF `Whitespace` (runs of word
   * characters or of other non-space characters) followed by `Punctuation`
   * (each punctuation mark on its own), so "Answer: A." -> Answer : A .
   * Unknown words map to `unkToken`.
   *
   * `bpe`: GPT-2-style byte-level BPE (ByteLevel pre-tokenizer without prefix
   * space, ByteLevel decoder). Merges are learned by the binding's own BPE
   * trainer (the binding offers no trainer options, so it learns up to its
   * default 30000-token budget); we keep the special tokens, the full 256-symbol
   * byte alphabet (so no text is ever unknown) and the first merges in learned
   * order until `vocabSize` is reached. Greedy BPE makes this identical to
   * training with the smaller budget. The binding's trainer is synchronous.
   *
   * When `bosToken` is set, a TemplateProcessing post-processor prepends it
   * (LLaMA convention). The file is validated by loading it back through HF's
   * library before it is moved into place.
   */
  static async train(opts: TrainTokenizerOptions): Promise<Tokenizer> {
    if (!isPlainObject(opts)) throw invalid('train: options object required');
    const { kind, out } = opts;
    if (kind !== 'wordlevel' && kind !== 'bpe') throw invalid(`train: kind must be 'wordlevel' or 'bpe', got ${String(kind)}`);
    if (typeof out !== 'string' || out.length === 0) throw invalid('train: out must be a file path');
    const specials = opts.specialTokens ?? ['<unk>', '<pad>', '<s>', '</s>'];
    if (!Array.isArray(specials) || specials.some((s) => typeof s !== 'string' || s.length === 0)) {
      throw invalid('train: specialTokens must be non-empty strings');
    }
    if (new Set(specials).size !== specials.length) throw invalid('train: specialTokens contains duplicates');
    const vocabSize = opts.vocabSize;
    const minVocab = specials.length + (kind === 'bpe' ? 256 : 1);
    if (!Number.isInteger(vocabSize) || vocabSize < minVocab || vocabSize > 1 << 24) {
      throw invalid(`train: vocabSize must be an integer in [${minVocab}, ${1 << 24}] for ${kind}, got ${String(vocabSize)}`);
    }
    const minFrequency = opts.minFrequency ?? 1;
    if (!Number.isInteger(minFrequency) || minFrequency < 1) throw invalid('train: minFrequency must be a positive integer');
    const bos = opts.bosToken === undefined ? (specials.includes('<s>') ? '<s>' : null) : opts.bosToken;
    if (bos !== null && !specials.includes(bos)) throw invalid(`train: bosToken ${JSON.stringify(bos)} is not one of specialTokens`);
    const texts = await collectCorpus(opts);

    let json: Record<string, unknown>;
    if (kind === 'wordlevel') {
      const unk = opts.unkToken ?? '<unk>';
      if (!specials.includes(unk)) throw invalid(`train: unkToken ${JSON.stringify(unk)} must be one of specialTokens`);
      const lower = opts.lowercase === true;
      const counts = countWords(lower ? texts.map((t) => t.toLowerCase()) : texts, specials);
      const words = [...counts.entries()]
        .filter(([, c]) => c >= minFrequency)
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .slice(0, vocabSize - specials.length)
        .map(([w]) => w);
      json = wordLevelJson([...specials, ...words], specials, unk, bos, lower);
    } else {
      json = await trainByteLevelBpe(texts, vocabSize, specials, bos);
    }
    return writeTokenizerJson(out, json, bos);
  }
}

/**
 * Write the tokenizer.json of a WordLevel tokenizer over `vocab` (ids in order)
 * and load it back. Used by tests to get a small tokenizer with known ids.
 */
export async function writeWordLevelTokenizer(
  out: string,
  vocab: string[],
  opts: { specialTokens?: string[]; unkToken?: string; bosToken?: string | null } = {},
): Promise<Tokenizer> {
  const specials = opts.specialTokens ?? ['<unk>', '<pad>', '<s>', '</s>'];
  const unk = opts.unkToken ?? '<unk>';
  const bos = opts.bosToken === undefined ? (specials.includes('<s>') ? '<s>' : null) : opts.bosToken;
  const seen = new Set<string>();
  const ordered: string[] = [];
  for (const t of [...specials, ...vocab]) {
    if (typeof t !== 'string' || t.length === 0) throw invalid('writeWordLevelTokenizer: tokens must be non-empty strings');
    if (!seen.has(t)) {
      seen.add(t);
      ordered.push(t);
    }
  }
  if (!seen.has(unk)) throw invalid(`writeWordLevelTokenizer: unkToken ${JSON.stringify(unk)} is not in the vocabulary`);
  if (bos !== null && !seen.has(bos)) throw invalid(`writeWordLevelTokenizer: bosToken ${JSON.stringify(bos)} is not in the vocabulary`);
  return writeTokenizerJson(out, wordLevelJson(ordered, specials, unk, bos), bos);
}

function indexOfSeq(hay: number[], needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function tokenSpecFromConfig(v: unknown, file: string, key: string): SpecialSpec {
  if (v === null) return null;
  if (typeof v === 'string') return v;
  // Newer configs store an AddedToken object: {"content": "<s>", ...}.
  if (isPlainObject(v) && typeof v.content === 'string') return v.content;
  throw badFile(file, `"${key}" must be a string, an object with "content", or null`);
}

function idSpecFromConfig(v: unknown, file: string, key: string): SpecialSpec {
  if (v === null) return null;
  // Some models list several EOS ids (LLaMA-3.1 instruct); the first is the primary one.
  const x = Array.isArray(v) ? v[0] : v;
  if (typeof x === 'number' && Number.isInteger(x) && x >= 0) return x;
  if (Array.isArray(v) && v.length === 0) return null;
  throw badFile(file, `"${key}" must be a non-negative integer, a list of them, or null`);
}

async function collectCorpus(opts: TrainTokenizerOptions): Promise<string[]> {
  const texts: string[] = [];
  if (opts.corpus !== undefined) {
    if (!Array.isArray(opts.corpus)) throw invalid('train: corpus must be an array of strings');
    opts.corpus.forEach((t, i) => {
      if (typeof t !== 'string') throw invalid(`train: corpus[${i}] is not a string`);
      texts.push(t);
    });
  }
  if (opts.files !== undefined) {
    if (!Array.isArray(opts.files)) throw invalid('train: files must be an array of paths');
    for (const f of opts.files) {
      if (typeof f !== 'string') throw invalid('train: files must be an array of paths');
      texts.push(await readTextFile(f, opts.maxBytes ?? 1024 * 1024 * 1024, 'corpus file'));
    }
  }
  if (opts.corpus === undefined && opts.files === undefined) throw invalid('train: give corpus texts or files');
  if (!texts.some((t) => t.trim().length > 0)) throw invalid('train: the corpus is empty');
  return texts;
}

// The WordLevel pre-tokenizer, as HF JSON: whitespace split into word-character
// runs and other runs, then each punctuation mark isolated.
const WORD_PRETOKENIZER = {
  type: 'Sequence',
  pretokenizers: [{ type: 'Whitespace' }, { type: 'Punctuation', behavior: 'Isolated' }],
};

function countWords(texts: string[], specials: string[]): Map<string, number> {
  const pre = tokenizers.sequencePreTokenizer([tokenizers.whitespacePreTokenizer(), tokenizers.punctuationPreTokenizer('isolated')]);
  const skip = new Set(specials);
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (line.trim().length === 0) continue;
      for (const [w] of pre.preTokenizeString(line)) {
        if (skip.has(w)) continue;
        counts.set(w, (counts.get(w) ?? 0) + 1);
      }
    }
  }
  return counts;
}

function addedTokensJson(vocab: Map<string, number>, specials: string[]): unknown[] {
  return specials.map((s) => ({
    id: vocab.get(s),
    content: s,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
}

function bosPostProcessor(bos: string | null, vocab: Map<string, number>): unknown {
  if (bos === null) return null;
  const special = { SpecialToken: { id: bos, type_id: 0 } };
  return {
    type: 'TemplateProcessing',
    single: [special, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [special, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }],
    special_tokens: { [bos]: { id: bos, ids: [vocab.get(bos)], tokens: [bos] } },
  };
}

function wordLevelJson(tokens: string[], specials: string[], unk: string, bos: string | null, lowercase = false): Record<string, unknown> {
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.set(t, i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokensJson(vocab, specials),
    normalizer: lowercase ? { type: 'Lowercase' } : null,
    pre_tokenizer: WORD_PRETOKENIZER,
    post_processor: bosPostProcessor(bos, vocab),
    // No decoder: HF joins WordLevel tokens with single spaces.
    decoder: null,
    model: { type: 'WordLevel', vocab: Object.fromEntries(vocab), unk_token: unk },
  };
}

async function trainByteLevelBpe(
  texts: string[],
  vocabSize: number,
  specials: string[],
  bos: string | null,
): Promise<Record<string, unknown>> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'bayeslora-bpe-'));
  try {
    const corpusFile = path.join(dir, 'corpus.txt');
    await fsp.writeFile(corpusFile, texts.join('\n'));
    const hf = new tokenizers.Tokenizer(tokenizers.BPE.empty());
    hf.setPreTokenizer(tokenizers.byteLevelPreTokenizer(false, true));
    try {
      hf.train([corpusFile]);
    } catch (e) {
      throw new BayesLoraError('INTERNAL', `train: the tokenizers BPE trainer failed: ${errMessage(e)}`, { cause: e });
    }
    const trainedFile = path.join(dir, 'trained.json');
    hf.save(trainedFile, false);
    const trained = JSON.parse(await fsp.readFile(trainedFile, 'utf8')) as { model: { merges: unknown[] } };
    const vocab = new Map<string, number>();
    const add = (t: string) => {
      if (!vocab.has(t)) vocab.set(t, vocab.size);
    };
    specials.forEach(add);
    for (const ch of tokenizers.byteLevelAlphabet().slice().sort()) add(ch);
    const merges: [string, string][] = [];
    for (const m of trained.model.merges) {
      // Merges are saved as ["a", "b"] pairs (older versions: "a b" strings).
      const pair = Array.isArray(m) ? (m as [string, string]) : (String(m).split(' ') as [string, string]);
      const merged = pair[0] + pair[1];
      if (!vocab.has(pair[0]) || !vocab.has(pair[1])) continue;
      if (!vocab.has(merged)) {
        if (vocab.size >= vocabSize) break;
        add(merged);
      }
      merges.push([pair[0], pair[1]]);
    }
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokensJson(vocab, specials),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: bosPostProcessor(bos, vocab),
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: Object.fromEntries(vocab),
        merges,
      },
    };
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/** Validate `json` by loading it through HF's library, then write it atomically to `out`. */
async function writeTokenizerJson(
  out: string,
  json: Record<string, unknown>,
  bos: string | null,
): Promise<Tokenizer> {
  const text = JSON.stringify(json, null, 1);
  // Throws BAD_FILE if HF's library cannot load what we produced.
  await Tokenizer.fromJson(text, { source: out });
  await fsp.mkdir(path.dirname(path.resolve(out)), { recursive: true });
  const tmp = `${out}.tmp-${process.pid}-${Date.now().toString(36)}`;
  try {
    await fsp.writeFile(tmp, text);
    await fsp.rename(tmp, out);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw new BayesLoraError('IO_ERROR', `cannot write ${out}: ${errMessage(e)}`, { cause: e });
  }
  return Tokenizer.fromFile(out, { configDir: false, ...(bos !== null ? { bosToken: bos } : {}) });
}
