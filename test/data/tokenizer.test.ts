import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { Tokenizer, writeWordLevelTokenizer } from '../../ts/tokenizer.ts';
import { makeTinyTokenizer, tinyVocab, TINY_SPECIALS } from '../helpers/tiny-tokenizer.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bl-tok-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function expectCode(p: Promise<unknown> | (() => unknown), code: string, match?: RegExp): Promise<BayesLoraError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BayesLoraError);
  const be = err as BayesLoraError;
  expect(be.code).toBe(code);
  if (match) expect(be.message).toMatch(match);
  return be;
}

describe('Tokenizer.fromFile validation', () => {
  it('rejects a missing file with BAD_FILE naming it', async () => {
    const f = path.join(dir, 'nope.json');
    await expectCode(Tokenizer.fromFile(f), 'BAD_FILE', /nope\.json.*ENOENT/);
  });
  it('rejects a directory', async () => {
    await expectCode(Tokenizer.fromFile(dir), 'BAD_FILE', /not a regular file/);
  });
  it('rejects a file over the size limit before reading it', async () => {
    const f = path.join(dir, 'big.json');
    writeFileSync(f, '{"model": {}}' + ' '.repeat(2000));
    await expectCode(Tokenizer.fromFile(f, { maxBytes: 1000 }), 'BAD_FILE', /big\.json.*limit/);
  });
  it('rejects non-JSON, non-object JSON, a missing model, invalid UTF-8', async () => {
    const cases: [string, string | Buffer, RegExp][] = [
      ['notjson.json', '{"model": ', /not valid JSON/],
      ['array.json', '[1,2]', /JSON object/],
      ['nomodel.json', '{"version": "1.0"}', /no "model" object/],
      ['modelstr.json', '{"model": "BPE"}', /no "model" object/],
      ['notype.json', '{"model": {"vocab": {}}}', /no "type"/],
      ['utf8.json', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /UTF-8/],
    ];
    for (const [name, body, re] of cases) {
      const f = path.join(dir, name);
      writeFileSync(f, body);
      const e = await expectCode(Tokenizer.fromFile(f), 'BAD_FILE', re);
      expect(e.message).toContain(name);
    }
  });
  it('turns errors of the tokenizers library into BAD_FILE', async () => {
    const f = path.join(dir, 'lib.json');
    writeFileSync(f, JSON.stringify({ model: { type: 'WordLevel', vocab: { a: 0 } } })); // no unk_token
    await expectCode(Tokenizer.fromFile(f), 'BAD_FILE', /lib\.json.*tokenizers library rejected/);
  });
});

describe('tiny WordLevel tokenizer', () => {
  let tok: Tokenizer;
  beforeAll(async () => {
    tok = await makeTinyTokenizer(dir);
  });
  it('has the documented ids and special tokens', () => {
    expect(tok.kind).toBe('WordLevel');
    expect(tok.vocabSize).toBe(TINY_SPECIALS.length + tinyVocab().length);
    expect([tok.unkId, tok.padId, tok.bosId, tok.eosId]).toEqual([0, 1, 2, 3]);
    expect(tok.tokenToId('A')).toBe(4);
    expect(tok.tokenToId('E')).toBe(8);
    expect(tok.tokenToId('nonexistentword')).toBeUndefined();
    expect(tok.idToToken(4)).toBe('A');
    expect(tok.idToToken(-1)).toBeUndefined();
    expect(tok.idToToken(tok.vocabSize)).toBeUndefined();
    expect(tok.specialPrefix).toEqual([2]);
    expect(tok.specialSuffix).toEqual([]);
  });
  it('splits words and isolates punctuation; unknown words map to <unk>', async () => {
    const A = tok.tokenToId('A')!;
    const dot = tok.tokenToId('.')!;
    const colon = tok.tokenToId(':')!;
    const answer = tok.tokenToId('Answer')!;
    expect(await tok.encode('Answer: A.', { addSpecialTokens: false })).toEqual([answer, colon, A, dot]);
    expect(await tok.encode('Answer: A.')).toEqual([2, answer, colon, A, dot]);
    expect(await tok.encode('?!', { addSpecialTokens: false })).toEqual([tok.tokenToId('?'), tok.tokenToId('!')]);
    expect(await tok.encode('zzzz', { addSpecialTokens: false })).toEqual([0]);
    expect(await tok.encodeBatch(['A', 'B C'], { addSpecialTokens: false })).toEqual([[4], [5, 6]]);
    expect(await tok.decode([2, A, dot], { skipSpecialTokens: true })).toBe('A .');
  });
  it('validates ids and arguments with typed errors', async () => {
    await expectCode(tok.decode([0, tok.vocabSize]), 'INVALID_ARGUMENT', /ids\[1\]/);
    await expectCode(tok.decode([1.5]), 'INVALID_ARGUMENT');
    await expectCode(tok.decode([-1]), 'INVALID_ARGUMENT');
    await expectCode(tok.encode(42 as unknown as string), 'INVALID_ARGUMENT');
    await expectCode(tok.encodeBatch(['a', 3 as unknown as string]), 'INVALID_ARGUMENT', /texts\[1\]/);
  });
});

describe('special tokens from options and HF config files', () => {
  it('reads tokenizer_config.json (string or AddedToken object) and config.json ids', async () => {
    const d = path.join(dir, 'cfg1');
    mkdirSync(d);
    await writeWordLevelTokenizer(path.join(d, 'tokenizer.json'), ['x', 'y', '<bos>', '<eos>'], {
      specialTokens: ['<unk>'],
      bosToken: null,
    });
    writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ bos_token: { content: '<bos>' }, eos_token: '<eos>' }));
    writeFileSync(path.join(d, 'config.json'), JSON.stringify({ pad_token_id: 1, eos_token_id: [2, 3] }));
    const t = await Tokenizer.fromFile(path.join(d, 'tokenizer.json'));
    expect(t.bosId).toBe(t.tokenToId('<bos>'));
    expect(t.eosId).toBe(t.tokenToId('<eos>')); // tokenizer_config wins over config.json
    expect(t.padId).toBe(1);
    expect(t.specialPrefix).toEqual([]); // no post-processor
    const o = await Tokenizer.fromFile(path.join(d, 'tokenizer.json'), { bosToken: 'x', padToken: null });
    expect(o.bosId).toBe(o.tokenToId('x'));
    expect(o.padId).toBe(o.eosId); // pad falls back to eos
    await expectCode(Tokenizer.fromFile(path.join(d, 'tokenizer.json'), { eosToken: 'nope' }), 'INVALID_ARGUMENT', /nope/);
  });
  it('rejects malformed config files with BAD_FILE naming them', async () => {
    const d = path.join(dir, 'cfg2');
    mkdirSync(d);
    await writeWordLevelTokenizer(path.join(d, 'tokenizer.json'), ['x']);
    writeFileSync(path.join(d, 'tokenizer_config.json'), '{"bos_token": ');
    await expectCode(Tokenizer.fromFile(path.join(d, 'tokenizer.json')), 'BAD_FILE', /tokenizer_config\.json/);
    writeFileSync(path.join(d, 'tokenizer_config.json'), '{"bos_token": 5}');
    await expectCode(Tokenizer.fromFile(path.join(d, 'tokenizer.json')), 'BAD_FILE', /bos_token/);
    writeFileSync(path.join(d, 'tokenizer_config.json'), '{"bos_token": "<missing>"}');
    await expectCode(Tokenizer.fromFile(path.join(d, 'tokenizer.json')), 'BAD_FILE', /<missing>/);
    rmSync(path.join(d, 'tokenizer_config.json'));
    writeFileSync(path.join(d, 'config.json'), '{"pad_token_id": 99999}');
    await expectCode(Tokenizer.fromFile(path.join(d, 'tokenizer.json')), 'BAD_FILE', /outside the vocabulary/);
    // configDir: false ignores the broken sibling.
    const t = await Tokenizer.fromFile(path.join(d, 'tokenizer.json'), { configDir: false });
    expect(t.padId).toBe(1);
  });
});

describe('Tokenizer.train', () => {
  const corpus = [
    'The cat sat on the mat. The dog sat on the log!',
    'Answer: A\nAnswer: B\nAnswer: C\nAnswer: D',
    'the the the cat cat dog',
  ];
  it('wordlevel: specials first, then words by frequency, deterministic, loadable', async () => {
    const out = path.join(dir, 'wl', 'tokenizer.json');
    const t = await Tokenizer.train({ kind: 'wordlevel', corpus, vocabSize: 10, out });
    expect(t.vocabSize).toBe(10);
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.model.type).toBe('WordLevel');
    const byId = Object.entries(json.model.vocab as Record<string, number>).sort((a, b) => a[1] - b[1]).map((e) => e[0]);
    // the x5, Answer x4, : x4, cat x3, then The/dog/on/sat x2 in code-unit order (case-sensitive).
    expect(byId).toEqual(['<unk>', '<pad>', '<s>', '</s>', 'the', ':', 'Answer', 'cat', 'The', 'dog']);
    expect(await t.encode('the cat: zebra')).toEqual([2, 4, 7, 5, 0]);
    // Same input, same file.
    const out2 = path.join(dir, 'wl2.json');
    await Tokenizer.train({ kind: 'wordlevel', corpus, vocabSize: 10, out: out2 });
    expect(readFileSync(out2, 'utf8')).toBe(readFileSync(out, 'utf8'));
    // No temp files left next to the output.
    expect(readdirSync(path.dirname(out))).toEqual(['tokenizer.json']);
  });
  it('wordlevel from files with minFrequency', async () => {
    const f = path.join(dir, 'corpus.txt');
    writeFileSync(f, corpus.join('\n'));
    const t = await Tokenizer.train({ kind: 'wordlevel', files: [f], vocabSize: 100, minFrequency: 3, out: path.join(dir, 'wl3.json') });
    // Words seen >= 3 times: the, Answer, :, cat -> 4 + 4 specials.
    expect(t.vocabSize).toBe(8);
  });
  it('wordlevel with lowercase: counts lower-cased words and normalises input of any case', async () => {
    const out = path.join(dir, 'wl-lower.json');
    const t = await Tokenizer.train({ kind: 'wordlevel', corpus, vocabSize: 10, lowercase: true, out });
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.normalizer).toEqual({ type: 'Lowercase' });
    const byId = Object.entries(json.model.vocab as Record<string, number>).sort((a, b) => a[1] - b[1]).map((e) => e[0]);
    // the x7 (The merged in), answer x4, : x4, cat x3, then dog/on/sat x2.
    expect(byId).toEqual(['<unk>', '<pad>', '<s>', '</s>', 'the', ':', 'answer', 'cat', 'dog', 'on']);
    expect(await t.encode('THE Cat: Answer')).toEqual([2, 4, 7, 5, 6]);
    // Without the option upper-case input is unknown.
    const plain = await Tokenizer.train({ kind: 'wordlevel', corpus: corpus.map((c) => c.toLowerCase()), vocabSize: 10, out: path.join(dir, 'wl-plain.json') });
    expect(await plain.encode('THE')).toEqual([2, 0]);
  });
  it('bpe: byte-level, never unknown, capped vocabulary, round-trips text', async () => {
    const big = Array.from({ length: 40 }, (_, i) => `${corpus.join(' ')} ${i}`);
    const out = path.join(dir, 'bpe.json');
    const t = await Tokenizer.train({ kind: 'bpe', corpus: big, vocabSize: 300, out });
    expect(t.kind).toBe('BPE');
    expect(t.vocabSize).toBe(300);
    expect(t.unkId).toBeUndefined();
    expect(t.bosId).toBe(2);
    const text = 'Answer: B, naïve café ☃';
    const ids = await t.encode(text);
    expect(ids[0]).toBe(2);
    expect(await t.decode(ids, { skipSpecialTokens: true })).toBe(text);
    // Frequent words got merged: "Ġthe" style tokens exist and ' A' after Answer is one token.
    expect((await t.tokens(' the', { addSpecialTokens: false })).length).toBe(1);
  });
  it('rejects bad options with INVALID_ARGUMENT', async () => {
    const out = path.join(dir, 'bad.json');
    await expectCode(Tokenizer.train({ kind: 'sentencepiece' as 'bpe', corpus, vocabSize: 10, out }), 'INVALID_ARGUMENT');
    await expectCode(Tokenizer.train({ kind: 'wordlevel', corpus, vocabSize: 4, out }), 'INVALID_ARGUMENT', /vocabSize/);
    await expectCode(Tokenizer.train({ kind: 'bpe', corpus, vocabSize: 100, out }), 'INVALID_ARGUMENT', /vocabSize/);
    await expectCode(Tokenizer.train({ kind: 'wordlevel', corpus: ['', '  '], vocabSize: 10, out }), 'INVALID_ARGUMENT', /empty/);
    await expectCode(Tokenizer.train({ kind: 'wordlevel', vocabSize: 10, out }), 'INVALID_ARGUMENT', /corpus/);
    await expectCode(Tokenizer.train({ kind: 'wordlevel', corpus, vocabSize: 10, out, unkToken: '<oov>' }), 'INVALID_ARGUMENT');
    await expectCode(Tokenizer.train({ kind: 'wordlevel', corpus, vocabSize: 10, out, specialTokens: ['<unk>', '<unk>'] }), 'INVALID_ARGUMENT');
    await expectCode(Tokenizer.train({ kind: 'wordlevel', files: [path.join(dir, 'missing.txt')], vocabSize: 10, out }), 'BAD_FILE', /missing\.txt/);
  });
});
