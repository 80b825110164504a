// Every crash `npm run fuzz` found becomes an input under fuzz/regressions/:
// here the TypeScript-reachable ones are loaded through the normal API and
// must be typed errors. (C++ targets' regression inputs are replayed by
// scripts/fuzz.mjs before each fuzzing run.)
//   tokenizer/: tokenizer.json files the tokenizers library accepted but then
//   panicked on while encoding (TemplateProcessing naming an undefined special
//   token), which aborted the whole process.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { Tokenizer } from '../../ts/tokenizer.ts';

const dir = path.resolve(import.meta.dirname, '..', '..', 'fuzz', 'regressions', 'tokenizer');

describe('fuzz regressions: tokenizer.json', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  it('has the inputs', () => expect(files.length).toBeGreaterThanOrEqual(2));
  for (const f of files) {
    it(`${f}: BAD_FILE, not a process abort`, async () => {
      const text = readFileSync(path.join(dir, f), 'utf8');
      const e = await Tokenizer.fromJson(text, { source: f }).then(
        async (t) => {
          await t.encode('a definition of a word'); // would abort the process before the fix
          return null;
        },
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(BayesLoraError);
      expect((e as BayesLoraError).code).toBe('BAD_FILE');
      expect(String((e as Error).message)).toMatch(/special token .* does not define/);
    });
  }
  it('a template whose special tokens are all defined still loads and encodes', async () => {
    const t = JSON.parse(readFileSync(path.resolve(dir, '..', '..', '..', 'models', 'wordnet-tiny', 'tokenizer.json'), 'utf8'));
    expect(t.post_processor.type).toBe('TemplateProcessing');
    const tok = await Tokenizer.fromJson(JSON.stringify(t), { source: 'builtin' });
    expect((await tok.encode('a word')).length).toBeGreaterThan(0);
    // ids / tokens length mismatch in a special token entry is refused too
    t.post_processor.special_tokens['<s>'].ids = [2, 2];
    await expect(Tokenizer.fromJson(JSON.stringify(t), { source: 'bad' })).rejects.toMatchObject({ code: 'BAD_FILE' });
  });
});
