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
