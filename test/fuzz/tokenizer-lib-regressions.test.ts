// Fuzz regressions (fuzz/regressions/tokenizer-lib/): tokenizer.json shapes the
// bundled tokenizers library accepted but then panicked on (a Rust panic in the
// binding aborts the whole process), one minimal file per crash class the TS
// fuzz loop found: corrupt SentencePiece charsmaps, empty Prepend/Replace
// normalizers, a zero FixedLength, a Strip decoder with stop > 0, an added
// token normalized to nothing, chained or mis-sequenced templates, BPE merges
// whose result is not in the vocabulary, components of unknown type (read by
// shape), and a truncation stride past the length. Each must be BAD_FILE naming the file
// and the component (ts/tokenizer-guards.ts), except `loads-*` files, whose
// problem (truncation/padding) the loader now ignores. Before the fixes, any
// of them killed this test's worker. Also: the real tokenizer shapes the
// guards look at still load.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { Tokenizer } from '../../ts/tokenizer.ts';
import { buildCharsmap, ENCODE_TEXTS, tokenizerSeeds } from '../../fuzz/ts/tokenizer-seeds.ts';

const dir = path.resolve(import.meta.dirname, '..', '..', 'fuzz', 'regressions', 'tokenizer-lib');

/** Load, then encode and decode every probe text (what crashed before the fixes). */
async function exercise(t: Tokenizer): Promise<void> {
  for (const x of ENCODE_TEXTS) {
    for (const addSpecialTokens of [true, false]) {
      const ids = await t.encode(x, { addSpecialTokens });
      await t.encodeBatch([x, ENCODE_TEXTS[0]], { addSpecialTokens });
      await t.decode(ids, { skipSpecialTokens: !addSpecialTokens });
    }
  }
}

describe('fuzz regressions: tokenizer.json shapes the tokenizers library panics on', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  it('has the inputs', () => expect(files.length).toBeGreaterThanOrEqual(16));
  for (const f of files) {
    const text = () => readFileSync(path.join(dir, f), 'utf8');
    if (f.startsWith('loads-')) {
      it(`${f}: loads and encodes (its truncation/padding are ignored)`, async () => {
        const t = await Tokenizer.fromJson(text(), { source: f });
        await exercise(t);
        // untruncated: the file asks for max_length 2
        expect((await t.encode('a definition of a word')).length).toBeGreaterThan(2);
      });
      continue;
    }
    it(`${f}: BAD_FILE naming the file, not a process abort`, async () => {
      const e = await Tokenizer.fromJson(text(), { source: f }).then(
        async (t) => {
          await exercise(t);
          return null;
        },
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(BayesLoraError);
      expect((e as BayesLoraError).code).toBe('BAD_FILE');
      expect((e as Error).message.startsWith(`${f}: tokenizer.json `)).toBe(true);
    });
  }
});

describe('tokenizer guards keep real shapes loading', () => {
  for (const [family, json] of Object.entries(tokenizerSeeds())) {
    it(`${family} seed loads, encodes and decodes`, async () => {
      const t = await Tokenizer.fromJson(json, { source: family });
      await exercise(t);
      expect(await t.decode(await t.encode('a word', { addSpecialTokens: false }))).toMatch(/a word/);
    });
  }
  it('a valid SentencePiece charsmap (Precompiled normalizer) loads and normalizes', async () => {
    const t = JSON.parse(tokenizerSeeds().unigram);
    t.normalizer = { type: 'Sequence', normalizers: [{ type: 'Precompiled', precompiled_charsmap: buildCharsmap([['ａ', 'a'], ['ﬁ', 'fi']]).toString('base64') }, { type: 'Lowercase' }] };
    const tok = await Tokenizer.fromJson(JSON.stringify(t), { source: 'p.json' });
    expect(await tok.encode('ａ ﬁ')).toEqual(await tok.encode('a fi'));
    // one corrupted byte in the root's offset: refused, not a crash
    const b = buildCharsmap([['ａ', 'a']]);
    b.writeUInt32LE(0xffff << 10, 4);
    t.normalizer.normalizers[0].precompiled_charsmap = b.toString('base64');
    await expect(Tokenizer.fromJson(JSON.stringify(t), { source: 'p.json' })).rejects.toMatchObject({ code: 'BAD_FILE' });
  });
  it('a Replace regex that cannot match empty loads; padding in the file is ignored', async () => {
    const t = JSON.parse(tokenizerSeeds().llama3);
    t.normalizer = { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' };
    t.padding = { strategy: { Fixed: 64 }, direction: 'Right', pad_to_multiple_of: null, pad_id: 1, pad_type_id: 0, pad_token: '<|end_of_text|>' };
    const tok = await Tokenizer.fromJson(JSON.stringify(t), { source: 'r.json' });
    expect(await tok.encode('a   word', { addSpecialTokens: false })).toEqual(await tok.encode('a word', { addSpecialTokens: false }));
    expect((await tok.encode('a word')).length).toBeLessThan(64);
  });
});
