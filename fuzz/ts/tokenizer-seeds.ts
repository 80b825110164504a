// Seed tokenizer.json files for the TypeScript fuzz loop (fuzz/ts/worker.ts),
// one per tokenizer family a LLaMA-family checkpoint ships with, so mutations
// reach the parts of HF's tokenizers library each family uses (models,
// normalizers, pre-tokenizers, post-processors, decoders):
//   llama3:    byte-level BPE, Split(regex) + ByteLevel pre-tokenizer, Sequence post-processor
//   llama2:    SentencePiece-style BPE with byte_fallback, Prepend/Replace normalizers,
//              Replace/ByteFallback/Fuse/Strip decoders
//   unigram:   Unigram with Metaspace pre-tokenizer/decoder, NFKC + Strip normalizers
//   wordpiece: BERT-style WordPiece, BertNormalizer, BertProcessing
// Each is small (hand-built, deterministic) and loads and encodes as given.

/** GPT-2's byte -> printable character map used by byte-level BPE vocabularies. */
function byteLevelAlphabet(): string[] {
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return out;
}

const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });

/** Vocabulary from tokens in id order (after `first` already-assigned ids). */
function vocabOf(tokens: string[], first = 0): Record<string, number> {
  const v: Record<string, number> = {};
  for (const t of tokens) if (!Object.hasOwn(v, t)) v[t] = first + Object.keys(v).length;
  return v;
}

/** Merges whose results are added to the vocabulary (in order). */
function withMerges(vocab: Record<string, number>, merges: [string, string][]): string[] {
  let next = Object.keys(vocab).length;
  for (const [a, b] of merges) if (!Object.hasOwn(vocab, a + b)) vocab[a + b] = next++;
  return merges.map(([a, b]) => `${a} ${b}`);
}

function llama3(): object {
  const alpha = byteLevelAlphabet();
  const vocab = vocabOf(['<|begin_of_text|>', '<|end_of_text|>', ...alpha]);
  const G = alpha[32]; // 'Ġ' (a space)
  const merges = withMerges(vocab, [
    ['t', 'h'], ['th', 'e'], [G, 'a'], [G, 'the'], ['o', 'r'], [G, 'w'], [G + 'w', 'or'], [G + 'wor', 'd'], ['d', 'e'], ['i', 'n'],
  ]);
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<|begin_of_text|>'), added(1, '<|end_of_text|>')],
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
          behavior: 'Isolated', invert: false,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [0], tokens: ['<|begin_of_text|>'] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
  };
}

function llama2(): object {
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const letters = [...'▁abcdefghijklmnopqrstuvwxyz'];
  const vocab = vocabOf(['<unk>', '<s>', '</s>', ...bytes, ...letters]);
  const merges = withMerges(vocab, [['▁', 't'], ['h', 'e'], ['▁t', 'he'], ['▁', 'a'], ['o', 'r'], ['▁', 'w'], ['▁w', 'or'], ['▁wor', 'd'], ['i', 'n']]);
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
}

function unigram(): object {
  const pieces: [string, number][] = [['<unk>', 0], ['<s>', 0], ['</s>', 0], ['▁', -2]];
  for (const w of ['▁the', '▁a', '▁word', '▁of', 'ing', 'ed', 's', '▁def', 'in', 'it', 'ion']) pieces.push([w, -3 - pieces.length / 10]);
  for (const c of 'abcdefghijklmnopqrstuvwxyz') pieces.push([c, -8]);
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Strip', strip_left: true, strip_right: true }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '</s>', type_id: 1 } }],
      special_tokens: { '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: false },
  };
}

function wordpiece(): object {
  const words = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'a', 'word', 'of', 'def', '##in', '##ition', '##s', '##ed', '.', ','];
  for (const c of 'abcdefghijklmnopqrstuvwxyz') words.push(c, `##${c}`);
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t, i) => added(i, t)),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', 3], cls: ['[CLS]', 2] },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: vocabOf(words) },
  };
}

/** The seeds as tokenizer.json texts, by family. */
export function tokenizerSeeds(): Record<string, string> {
  return {
    llama3: JSON.stringify(llama3()),
    llama2: JSON.stringify(llama2()),
    unigram: JSON.stringify(unigram()),
    wordpiece: JSON.stringify(wordpiece()),
  };
}

/** Texts the fuzzed tokenizers encode: plain, empty, Unicode of several scripts, bytes a byte fallback needs, long. */
export const ENCODE_TEXTS: readonly string[] = [
  'a definition of a word',
  '',
  ' ',
  'The word\'s DEFINITION: "in" (x2)\n\n\tend',
  'naïve café Ångström',
  '中文字符 日本語 한국어',
  '😀👍🏽 e\u0301 \u200d \ufeff',
  '\u0000\u0001\u007f',
  'the '.repeat(300),
  '<s></s><unk>[CLS]<|begin_of_text|>',
];

// ---- component swaps ---------------------------------------------------------------------
// Byte and single-value mutations rarely produce a different but well-formed
// tokenizer component, which is where the library's own assumptions live. A
// component mutation replaces one part (normalizer, pre-tokenizer,
// post-processor, decoder, truncation, padding, added tokens, model options)
// with an edge-case variant: empty patterns and contents, lengths of 0,
// strides past the length, ids outside the vocabulary, garbage charsmaps.

type Rnd = (n: number) => number;
const pickR = <T>(rnd: Rnd, a: readonly T[]): T => a[rnd(a.length)];

const PATTERNS = [{ String: '' }, { String: ' ' }, { String: '▁' }, { Regex: '' }, { Regex: '\\s+' }, { Regex: '(?=a)' }, { Regex: 'a*' }, { Regex: '.' }, { Regex: '\\p{L}+|\\p{N}' }, { Regex: '(' }];
const TEXTS = ['', ' ', '▁', '##', '</w>', '<s>', 'é', 'x'.repeat(300)];

function normalizer(rnd: Rnd): object {
  const simple = ['NFC', 'NFD', 'NFKC', 'NFKD', 'Lowercase', 'StripAccents', 'Nmt'];
  switch (rnd(7)) {
    case 0: return { type: pickR(rnd, simple) };
    case 1: return { type: 'Replace', pattern: pickR(rnd, PATTERNS), content: pickR(rnd, TEXTS) };
    case 2: return { type: 'Prepend', prepend: pickR(rnd, TEXTS) };
    case 3: return { type: 'Strip', strip_left: rnd(2) === 0, strip_right: rnd(2) === 0 };
    case 4: return { type: 'BertNormalizer', clean_text: rnd(2) === 0, handle_chinese_chars: rnd(2) === 0, strip_accents: pickR(rnd, [null, true, false]), lowercase: rnd(2) === 0 };
    case 5: {
      // SentencePiece's precompiled character map: a valid one with a few mutated bytes, or random bytes
      if (rnd(2) === 0) {
        const keys = ['ａ', 'Ⅸ', 'é', 'e\u0301', 'ﬁ', 'a', ' ', '\u00a0', '中'];
        const reps = ['a', 'IX', 'e', '', 'fi', 'A', '  ', ' ', '▁'];
        const b = buildCharsmap(keys.filter(() => rnd(2) === 0).map((k) => [k, pickR(rnd, reps)]));
        for (let m = rnd(3); m > 0; m--) b[rnd(b.length)] = rnd(256);
        return { type: 'Precompiled', precompiled_charsmap: b.toString('base64') };
      }
      const n = pickR(rnd, [0, 1, 4, 8, 64, 1024]);
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = rnd(256);
      if (n >= 4 && rnd(2) === 0) b.writeUInt32LE(pickR(rnd, [0, 1, 4, n - 4, n, 0xffffffff]), 0);
      return { type: 'Precompiled', precompiled_charsmap: b.toString('base64') };
    }
    default: return { type: 'Sequence', normalizers: [normalizer(rnd), normalizer(rnd)] };
  }
}

function preTokenizer(rnd: Rnd): object {
  const behaviors = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];
  switch (rnd(9)) {
    case 0: return { type: pickR(rnd, ['Whitespace', 'WhitespaceSplit', 'BertPreTokenizer', 'UnicodeScripts']) };
    case 1: return { type: 'Split', pattern: pickR(rnd, PATTERNS), behavior: pickR(rnd, behaviors), invert: rnd(2) === 0 };
    case 2: return { type: 'Metaspace', replacement: pickR(rnd, ['▁', '_', ' ', 'ab']), prepend_scheme: pickR(rnd, ['always', 'never', 'first']), split: rnd(2) === 0 };
    case 3: return { type: 'ByteLevel', add_prefix_space: rnd(2) === 0, trim_offsets: rnd(2) === 0, use_regex: rnd(2) === 0 };
    case 4: return { type: 'Digits', individual_digits: rnd(2) === 0 };
    case 5: return { type: 'Punctuation', behavior: pickR(rnd, behaviors) };
    case 6: return { type: 'CharDelimiterSplit', delimiter: pickR(rnd, [' ', '▁', 'a', 'é']) };
    case 7: return { type: 'FixedLength', length: pickR(rnd, [0, 1, 3, 1000]) };
    default: return { type: 'Sequence', pretokenizers: [preTokenizer(rnd), preTokenizer(rnd)] };
  }
}

function decoder(rnd: Rnd): object {
  switch (rnd(9)) {
    case 0: return { type: pickR(rnd, ['ByteFallback', 'Fuse']) };
    case 1: return { type: 'Strip', content: pickR(rnd, [' ', '▁', 'a']), start: pickR(rnd, [0, 1, 2, 1000]), stop: pickR(rnd, [0, 1, 2, 1000]) };
    case 2: return { type: 'Replace', pattern: pickR(rnd, PATTERNS), content: pickR(rnd, TEXTS) };
    case 3: return { type: 'Metaspace', replacement: pickR(rnd, ['▁', '_', 'ab']), prepend_scheme: pickR(rnd, ['always', 'never', 'first']), split: rnd(2) === 0 };
    case 4: return { type: 'WordPiece', prefix: pickR(rnd, TEXTS), cleanup: rnd(2) === 0 };
    case 5: return { type: 'BPEDecoder', suffix: pickR(rnd, TEXTS) };
    case 6: return { type: 'CTC', pad_token: pickR(rnd, ['<pad>', '', 'a']), word_delimiter_token: pickR(rnd, ['|', '', '▁']), cleanup: rnd(2) === 0 };
    case 7: return { type: 'ByteLevel', add_prefix_space: rnd(2) === 0, trim_offsets: rnd(2) === 0, use_regex: rnd(2) === 0 };
    default: return { type: 'Sequence', decoders: [decoder(rnd), decoder(rnd)] };
  }
}

function postProcessor(rnd: Rnd, t: Record<string, unknown>): object {
  const tok = (): [string, number] => [pickR(rnd, ['<s>', '</s>', '[CLS]', '[SEP]', 'zzz', '']), pickR(rnd, [0, 1, 2, 3, 1000, 4294967295])];
  switch (rnd(5)) {
    case 0: return { type: 'BertProcessing', sep: tok(), cls: tok() };
    case 1: return { type: 'RobertaProcessing', sep: tok(), cls: tok(), trim_offsets: rnd(2) === 0, add_prefix_space: rnd(2) === 0 };
    case 2: return { type: 'ByteLevel', add_prefix_space: rnd(2) === 0, trim_offsets: rnd(2) === 0, use_regex: rnd(2) === 0 };
    case 3: {
      const [name, id] = tok();
      const special = { SpecialToken: { id: name, type_id: pickR(rnd, [0, 1, 7, 4294967295]) } };
      const seq = (id: string) => ({ Sequence: { id, type_id: pickR(rnd, [0, 1, 4294967295]) } });
      return {
        type: 'TemplateProcessing',
        single: rnd(2) === 0 ? [special, seq('A'), special] : [seq('A'), seq('A')],
        pair: [special, seq('A'), seq('B'), special],
        special_tokens: { [name]: { id: name, ids: rnd(4) === 0 ? [] : [id, id].slice(0, 1 + rnd(2)), tokens: [name, name].slice(0, 1 + rnd(2)) } },
      };
    }
    default: return { type: 'Sequence', processors: [postProcessor(rnd, t), postProcessor(rnd, t)] };
  }
}

/** Replace one component of a parsed tokenizer.json with an edge-case variant (in place). */
export function mutateTokenizerComponent(t: Record<string, unknown>, rnd: Rnd): void {
  const model = (t.model ?? {}) as Record<string, unknown>;
  switch (rnd(9)) {
    case 0: t.normalizer = normalizer(rnd); break;
    case 1: t.pre_tokenizer = preTokenizer(rnd); break;
    case 2: t.decoder = decoder(rnd); break;
    case 3: t.post_processor = postProcessor(rnd, t); break;
    case 4:
      t.truncation = { direction: pickR(rnd, ['Left', 'Right']), max_length: pickR(rnd, [0, 1, 2, 5, 512]), strategy: pickR(rnd, ['LongestFirst', 'OnlyFirst', 'OnlySecond']), stride: pickR(rnd, [0, 1, 4, 600]) };
      break;
    case 5:
      t.padding = {
        strategy: pickR(rnd, ['BatchLongest', { Fixed: 0 }, { Fixed: 3 }, { Fixed: 700 }]), direction: pickR(rnd, ['Left', 'Right']),
        pad_to_multiple_of: pickR(rnd, [null, 0, 1, 3, 8]), pad_id: pickR(rnd, [0, 1, 1000, 4294967295]), pad_type_id: pickR(rnd, [0, 1, 4294967295]), pad_token: pickR(rnd, ['<pad>', '', 'zzz']),
      };
      break;
    case 6: {
      const list = Array.isArray(t.added_tokens) ? (t.added_tokens as unknown[]).slice() : [];
      const ids = Object.values((model.vocab && typeof model.vocab === 'object' && !Array.isArray(model.vocab) ? model.vocab : {}) as Record<string, number>);
      list.push({
        id: pickR(rnd, [0, 1, ids.length, ids.length + 1, ids.length + 5000, 4294967295]), content: pickR(rnd, [...TEXTS, 'the', 'a', 'de', 'zz']),
        single_word: rnd(2) === 0, lstrip: rnd(2) === 0, rstrip: rnd(2) === 0, normalized: rnd(2) === 0, special: rnd(2) === 0,
      });
      t.added_tokens = list;
      break;
    }
    case 7: {
      // model options
      const opts: [string, unknown[]][] = [
        ['dropout', [null, 0, 0.5, 1]], ['unk_token', [null, '<unk>', 'zzz', '']], ['fuse_unk', [true, false]], ['byte_fallback', [true, false]],
        ['ignore_merges', [true, false]], ['end_of_word_suffix', [null, '', '</w>', 'é']], ['continuing_subword_prefix', [null, '', '##', '▁']],
        ['unk_id', [null, 0, -1, 1000, 4294967295]], ['max_input_chars_per_word', [0, 1, 3]],
      ];
      const [k, vals] = pickR(rnd, opts);
      model[k] = pickR(rnd, vals);
      break;
    }
    default: {
      // drop a share of the vocabulary (merges and specials may now name missing tokens)
      const v = model.vocab;
      if (Array.isArray(v)) model.vocab = v.filter(() => rnd(4) > 0);
      else if (v && typeof v === 'object') model.vocab = Object.fromEntries(Object.entries(v).filter(() => rnd(4) > 0));
    }
  }
  t.model = model;
}

/**
 * A valid SentencePiece `precompiled_charsmap` mapping each key (UTF-8 bytes)
 * to its replacement: [u32 trie bytes][double-array units][NUL-terminated
 * replacements]. Every trie node gets its own 256-unit block (the child for
 * byte c of the node based at block*256 is unit block*256 + c), the layout
 * darts-clone's lookup expects; unit 0 points at the root's block.
 */
export function buildCharsmap(entries: [string, string][]): Buffer {
  type Node = { kids: Map<number, Node>; value?: number; block: number };
  let blocks = 1;
  const root: Node = { kids: new Map(), block: blocks++ };
  const strings: number[] = [];
  for (const [key, rep] of entries) {
    let node = root;
    for (const c of Buffer.from(key, 'utf8')) {
      if (c === 0) break;
      let k = node.kids.get(c);
      if (!k) node.kids.set(c, (k = { kids: new Map(), block: blocks++ }));
      node = k;
    }
    if (node !== root && node.value === undefined) {
      node.value = strings.length;
      strings.push(...Buffer.from(rep, 'utf8'), 0);
    }
  }
  const units = new Uint32Array(blocks * 256);
  units[0] = (root.block * 256) << 10; // offset of the root
  const place = (node: Node) => {
    const base = node.block * 256;
    for (const [c, k] of node.kids) {
      const p = base ^ c;
      const off = p ^ (k.block * 256); // the child's base = p ^ offset
      units[p] = ((off << 10) | (k.value !== undefined ? 0x100 : 0) | c) >>> 0;
      if (k.value !== undefined) units[k.block * 256] = k.value; // the leaf's value unit at the child's base
      place(k);
    }
  };
  place(root);
  const out = Buffer.alloc(4 + units.length * 4 + strings.length);
  out.writeUInt32LE(units.length * 4, 0);
  for (let i = 0; i < units.length; i++) out.writeUInt32LE(units[i], 4 + 4 * i);
  Buffer.from(strings).copy(out, 4 + units.length * 4);
  return out;
}
