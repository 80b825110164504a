// Fuzz regressions (fuzz/regressions/tokenizer-bpe/): BPE tokenizer.json files
// with a continuing_subword_prefix and a merge whose second token is shorter
// than the prefix. HF's tokenizers library panicked on them while building its
// merge table (an out-of-range slice), which aborted the whole process; they
// must be BAD_FILE at load. Before the fix this file killed its test worker.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { Tokenizer } from '../../ts/tokenizer.ts';

const dir = path.resolve(import.meta.dirname, '..', '..', 'fuzz', 'regressions', 'tokenizer-bpe');

/** A minimal BPE tokenizer.json with prefix '##' and the given merges. */
function bpe(vocab: Record<string, number>, merges: unknown[]): string {
  return JSON.stringify({
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '##', end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  });
}

describe('fuzz regressions: BPE merges vs continuing_subword_prefix', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  it('has the inputs', () => expect(files.length).toBeGreaterThanOrEqual(2));
  for (const f of files) {
    it(`${f}: BAD_FILE naming the merge, not a process abort`, async () => {
      const e = await Tokenizer.fromJson(readFileSync(path.join(dir, f), 'utf8'), { source: f }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(BayesLoraError);
      expect((e as BayesLoraError).code).toBe('BAD_FILE');
      expect((e as Error).message).toMatch(new RegExp(`^${f.replace('.', '\\.')}: .*merges\\[\\d+\\].*continuing_subword_prefix`));
    });
  }
  it('string and array merges are both checked', async () => {
    const vocab = { a: 0, b: 1, ab: 2, '##b': 3 };
    for (const merges of [['a b'], [['a', 'b']]]) {
      await expect(Tokenizer.fromJson(bpe(vocab, merges), { source: 't.json' })).rejects.toMatchObject({ code: 'BAD_FILE' });
    }
  });
  it('a consistent prefixed BPE still loads and merges', async () => {
    const vocab = { a: 0, '##b': 1, ab: 2 };
    for (const merges of [['a ##b'], [['a', '##b']]]) {
      const t = await Tokenizer.fromJson(bpe(vocab, merges), { source: 't.json' });
      expect(await t.encode('ab')).toEqual([2]);
    }
  });
});
