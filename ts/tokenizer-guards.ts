// Guards for tokenizer.json files that HF's tokenizers library (the bundled
// npm binding) accepts but then panics on. A Rust panic inside the binding
// cannot unwind into Node: it aborts the whole process, so a hostile or
// corrupt tokenizer.json would take down a long-running server. Each rule
// below refuses exactly a shape the fuzz loop (`npm run fuzz`) crashed the
// library with; inputs are in fuzz/regressions/tokenizer-*/ and replayed by
// test/fuzz/tokenizer-*-regressions.test.ts. The rules refuse shapes that no
// real tokenizer uses (an empty Prepend, a Replace that matches nothing, a
// zero-length chunk, a corrupt SentencePiece charsmap, ...).
//
// Owns: checkTokenizerJson (before the library parses the file) and
// checkAddedTokens (after: needs the library's own normalizer).
import { BayesLoraError } from './errors.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(source: string, problem: string): BayesLoraError {
  return new BayesLoraError('BAD_FILE', `${source}: tokenizer.json ${problem}`);
}

// The component types the bundled library knows. A node with any other `type`
// is not refused by the library: it falls back to matching the node's shape
// against every variant (a Sequence's `normalizers`, a Prepend's `prepend`,
// ...), so such a node gets every shape check below.
const KNOWN: Record<string, Set<string>> = {
  normalizers: new Set(['BertNormalizer', 'Strip', 'StripAccents', 'NFC', 'NFD', 'NFKC', 'NFKD', 'Sequence', 'Lowercase', 'Nmt', 'Precompiled', 'Replace', 'Prepend', 'ByteLevel']),
  pretokenizers: new Set(['BertPreTokenizer', 'ByteLevel', 'CharDelimiterSplit', 'Metaspace', 'Whitespace', 'Sequence', 'Split', 'Punctuation', 'WhitespaceSplit', 'Digits', 'UnicodeScripts', 'FixedLength']),
  decoders: new Set(['BPEDecoder', 'ByteLevel', 'WordPiece', 'Metaspace', 'CTC', 'Sequence', 'Replace', 'Fuse', 'Strip', 'ByteFallback']),
  processors: new Set(['RobertaProcessing', 'BertProcessing', 'ByteLevel', 'TemplateProcessing', 'Sequence']),
};

/** Whether `node` is (or, with an unknown type, may be read as) a `type` in the component family `key`. */
function is(node: Obj, key: string, type: string): boolean {
  return node.type === type || !(typeof node.type === 'string' && KNOWN[key].has(node.type));
}

/** The node's children when it is (or may be read as) a Sequence (normalizers / pretokenizers / decoders / processors), or null. */
function children(node: Obj, key: string): unknown[] | null {
  return is(node, key, 'Sequence') && Array.isArray(node[key]) ? (node[key] as unknown[]) : null;
}

/**
 * Whether an Oniguruma pattern can match the empty string, decided with the
 * JavaScript engine on a few probe texts (a lookahead or `\b` matches empty
 * only next to certain characters). Inline flag groups `(?i:...)`, which V8
 * lacks, become plain groups: flags do not change whether a match can be empty.
 * Returns null when the pattern does not compile as JavaScript.
 */
function regexMatchesEmpty(pattern: string): boolean | null {
  const src = pattern.replace(/\(\?[imx]*-?[imx]*:/g, '(?:');
  let re: RegExp | null = null;
  for (const flags of ['gu', 'g']) {
    try {
      re = new RegExp(src, flags);
      break;
    } catch {
      // try the next flag set
    }
  }
  if (!re) return null;
  for (const probe of ['', ' ', 'a', 'ab c', 'A.', 'é', '1 2', '\n', '▁x', '中']) {
    for (const m of probe.matchAll(re)) if (m[0] === '') return true;
  }
  return false;
}

/**
 * A SentencePiece `precompiled_charsmap`: [u32 trie bytes][trie: u32 units][normalized
 * strings, UTF-8, NUL-terminated]. The library walks the double-array trie without
 * bounds checks (a unit index past the array, or a replacement offset past the
 * strings, is a panic), so every node reachable from the root is visited here:
 * each of its 255 byte transitions must stay inside the array (true of
 * darts-clone arrays, built in 256-unit blocks), and every leaf's value must
 * be a character boundary of the strings.
 */
function checkPrecompiled(b64: unknown, source: string, where: string): void {
  if (typeof b64 !== 'string' || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
    throw bad(source, `"${where}".precompiled_charsmap is not base64`);
  const buf = Buffer.from(b64, 'base64');
  if (buf.length < 4) throw bad(source, `"${where}".precompiled_charsmap is ${buf.length} bytes (no trie size)`);
  const n = Math.floor(buf.readUInt32LE(0) / 4);
  if (n === 0 || 4 + 4 * n > buf.length)
    throw bad(source, `"${where}".precompiled_charsmap: a trie of ${n} units does not fit in ${buf.length} bytes`);
  const strings = buf.subarray(4 + 4 * n);
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(strings);
  } catch {
    throw bad(source, `"${where}".precompiled_charsmap: the replacement strings are not UTF-8`);
  }
  const unit = (i: number) => buf.readUInt32LE(4 + 4 * i);
  const offset = (u: number) => (u >>> 10) * ((u & 0x200) !== 0 ? 256 : 1);
  const label = (u: number) => (u & 0xff) + ((u & 0x80000000) !== 0 ? 0x80000000 : 0);
  const root = offset(unit(0));
  const seen = new Set<number>([root]);
  const todo = [root];
  while (todo.length) {
    const pos = todo.pop()!;
    if ((pos | 0xff) >= n || pos > 0x7fffffff)
      throw bad(source, `"${where}".precompiled_charsmap: a trie node at ${pos} reaches past the ${n}-unit array`);
    for (let c = 1; c < 256; c++) {
      const p = pos ^ c;
      const u = unit(p);
      if (label(u) !== c) continue;
      const next = p ^ offset(u);
      if ((u >>> 8) & 1) {
        if (next >= n) throw bad(source, `"${where}".precompiled_charsmap: a trie leaf at ${next} is past the ${n}-unit array`);
        const v = unit(next) & 0x7fffffff;
        if (v > strings.length || (v < strings.length && (strings[v] & 0xc0) === 0x80))
          throw bad(source, `"${where}".precompiled_charsmap: a replacement offset ${v} is not a character of the ${strings.length}-byte strings`);
      }
      if (!seen.has(next)) {
        seen.add(next);
        todo.push(next);
      }
    }
  }
}

function checkNormalizer(node: unknown, source: string, where: string, depth: number): void {
  if (!isObj(node)) return; // null, or a shape the library itself rejects
  if (depth > 16) throw bad(source, `"${where}" nests too deeply`);
  children(node, 'normalizers')?.forEach((c, i) => checkNormalizer(c, source, `${where}.normalizers[${i}]`, depth + 1));
  const K = 'normalizers';
  if (is(node, K, 'Prepend') && node.prepend === '') throw bad(source, `"${where}" (Prepend) prepends an empty string`);
  if (is(node, K, 'Replace') && isObj(node.pattern)) {
    const { String: s, Regex: r } = node.pattern;
    if (s === '') throw bad(source, `"${where}" (Replace) has an empty pattern`);
    if (typeof r === 'string') {
      const empty = regexMatchesEmpty(r);
      if (empty === null) throw bad(source, `"${where}" (Replace) regex ${JSON.stringify(r)} cannot be checked (not a pattern this loader understands)`);
      if (empty) throw bad(source, `"${where}" (Replace) regex ${JSON.stringify(r)} can match an empty string`);
    }
  }
  if (is(node, K, 'Precompiled') && (node.type === 'Precompiled' || node.precompiled_charsmap !== undefined)) checkPrecompiled(node.precompiled_charsmap, source, where);
}

function checkPreTokenizer(node: unknown, source: string, where: string, depth: number): void {
  if (!isObj(node)) return;
  if (depth > 16) throw bad(source, `"${where}" nests too deeply`);
  children(node, 'pretokenizers')?.forEach((c, i) => checkPreTokenizer(c, source, `${where}.pretokenizers[${i}]`, depth + 1));
  if (is(node, 'pretokenizers', 'FixedLength') && (node.type === 'FixedLength' || node.length !== undefined) && !(typeof node.length === 'number' && node.length >= 1))
    throw bad(source, `"${where}" (FixedLength) needs a length of at least 1, got ${JSON.stringify(node.length)}`);
}

function checkDecoder(node: unknown, source: string, where: string, depth: number): void {
  if (!isObj(node)) return;
  if (depth > 16) throw bad(source, `"${where}" nests too deeply`);
  children(node, 'decoders')?.forEach((c, i) => checkDecoder(c, source, `${where}.decoders[${i}]`, depth + 1));
  // The bundled library indexes past the token when stripping from the end of
  // a token shorter than `stop` (an empty one, for any stop > 0).
  if (is(node, 'decoders', 'Strip') && node.stop !== undefined && node.stop !== 0)
    throw bad(source, `"${where}" (Strip) with stop ${JSON.stringify(node.stop)} is not supported (only 0: the tokenizers library crashes on short tokens)`);
}

/**
 * BPE merges, checked the way the library builds its merge table, which
 * panicked instead of returning its error on two shapes (fuzzing):
 *  - with a `continuing_subword_prefix`, a merge whose second token is shorter
 *    than the prefix (the library strips the prefix's byte length from it). The
 *    second token of a merge is always a continuation, so a consistent file
 *    spells it with the prefix: that is what we require;
 *  - a merge whose result (first + second without the prefix) is missing from
 *    the vocabulary, when the tokens are not ASCII (e.g. "▁wor d" without "▁word").
 * So every merge's two tokens and its result must be in the vocabulary.
 */
function checkBpeMerges(model: Obj, source: string): void {
  if (model.type !== 'BPE' || !Array.isArray(model.merges) || !isObj(model.vocab)) return;
  const vocab = model.vocab;
  const prefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '';
  model.merges.forEach((m, i) => {
    // Either "a b" or ["a", "b"]; other shapes are the library's to reject.
    const parts = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(parts) || parts.length !== 2 || typeof parts[0] !== 'string' || typeof parts[1] !== 'string') return;
    const [a, b] = parts as [string, string];
    const where = `model.merges[${i}] (${JSON.stringify(m)})`;
    if (prefix && !b.startsWith(prefix))
      throw bad(source, `${where}: the second token does not start with the continuing_subword_prefix ${JSON.stringify(prefix)}`);
    for (const t of [a, b, a + b.slice(prefix.length)])
      if (!Object.hasOwn(vocab, t)) throw bad(source, `${where}: ${JSON.stringify(t)} is not in the vocabulary`);
  });
}

/**
 * Post-processors (checked here beyond ts/tokenizer.ts's checkPostProcessor):
 * at most one that adds special tokens (TemplateProcessing, BertProcessing,
 * RobertaProcessing) in the whole Sequence tree, any number of ByteLevel ones
 * (LLaMA-3: Sequence[ByteLevel, TemplateProcessing]); a second template after
 * the first hit a `todo!()` in the library. A `single` template may only use
 * sequence A (B made the library index past its one encoding).
 */
function checkPostProcessors(pp: unknown, source: string): void {
  const leaves: [Obj, string][] = [];
  const walk = (node: unknown, where: string, depth: number) => {
    if (!isObj(node) || depth > 16) return; // depth: checkPostProcessor refuses it
    // Post-processors are matched by shape alone, and ts/tokenizer.ts's template
    // checks go by type: a node must say which one it is.
    if (!(typeof node.type === 'string' && KNOWN.processors.has(node.type)))
      throw bad(source, `"${where}" has an unknown post-processor type ${JSON.stringify(node.type)}`);
    const seq = children(node, 'processors');
    if (seq) seq.forEach((c, i) => walk(c, `${where}.processors[${i}]`, depth + 1));
    else leaves.push([node, where]);
  };
  walk(pp, 'post_processor', 0);
  const adding = leaves.filter(([n]) => n.type !== 'ByteLevel');
  if (adding.length > 1)
    throw bad(source, `"post_processor" chains ${adding.length} processors that add special tokens (${adding.map(([n, w]) => `${w}: ${String(n.type)}`).join(', ')}); at most one is supported`);
  for (const [n, where] of leaves) {
    if (n.type !== 'TemplateProcessing' || !Array.isArray(n.single)) continue;
    n.single.forEach((piece, i) => {
      if (isObj(piece) && isObj(piece.Sequence) && piece.Sequence.id !== 'A')
        throw bad(source, `"${where}".single[${i}] uses sequence ${JSON.stringify(piece.Sequence.id)}; a single-sequence template has only A`);
    });
  }
}

/** Before the library parses it: the component shapes the library panics on. */
export function checkTokenizerJson(json: Obj, source: string): void {
  checkNormalizer(json.normalizer, source, 'normalizer', 0);
  checkPreTokenizer(json.pre_tokenizer, source, 'pre_tokenizer', 0);
  checkDecoder(json.decoder, source, 'decoder', 0);
  checkPostProcessors(json.post_processor, source);
  if (isObj(json.model)) checkBpeMerges(json.model, source);
}

/**
 * After the library parsed it: an added token that goes through the normalizer
 * (`normalized`, by default every non-special one) and normalizes to an empty
 * string (e.g. " " under a Strip normalizer) makes the library's added-token
 * matcher slice inside a character while encoding. `normalize` is the
 * library's own normalizer (null when the file has none).
 */
export function checkAddedTokens(json: Obj, source: string, normalize: ((s: string) => string) | null): void {
  if (!normalize || !Array.isArray(json.added_tokens)) return;
  json.added_tokens.forEach((a, i) => {
    if (!isObj(a) || typeof a.content !== 'string' || a.content === '') return;
    const normalized = typeof a.normalized === 'boolean' ? a.normalized : a.special !== true;
    if (normalized && normalize(a.content) === '')
      throw bad(source, `added_tokens[${i}] ${JSON.stringify(a.content)} is normalized to an empty string by the file's normalizer`);
  });
}
