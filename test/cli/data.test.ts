// The committed task splits: valid JSONL, the sizes data/README.md states,
// single-token choices under the built-in tokenizer, disjoint splits, and no
// item solvable by copying the answer from its prompt.
import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { readMcJsonl } from '../../ts/data/jsonl.ts';
import { encodeMc } from '../../ts/data/format.ts';
import { Tokenizer } from '../../ts/tokenizer.ts';
import { packageRoot } from '../../ts/native.ts';

const data = (p: string) => path.join(packageRoot, 'data', p);
const SIZES: Record<string, Record<string, number>> = {
  'wn-word': { train: 4000, 'train-small': 640, validation: 500, test: 1000 },
  'wn-category': { train: 4000, 'train-small': 640, validation: 500, test: 1000 },
  'foldoc-word': { test: 356 },
};

describe('committed tasks', () => {
  for (const [task, splits] of Object.entries(SIZES)) {
    it(`${task}: sizes, single-token choices, disjoint splits`, async () => {
      const tok = await Tokenizer.fromFile(path.join(packageRoot, 'models', 'wordnet-tiny', 'tokenizer.json'));
      const prompts: Record<string, Set<string>> = {};
      for (const [split, n] of Object.entries(splits)) {
        const ex = await readMcJsonl(data(`${task}/${split}.jsonl`));
        expect(ex).toHaveLength(n);
        const enc = await encodeMc(tok, ex, { format: 'choice' });
        for (const [i, e] of ex.entries()) {
          expect(e.choices).toHaveLength(4);
          const words = ` ${e.prompt.replace(/[^a-z-]+/g, ' ')} `;
          expect(words.includes(` ${e.choices[e.answer]} `)).toBe(false);
          for (const c of e.choices) {
            const ids = await tok.encode(c, { addSpecialTokens: false });
            expect(ids).toHaveLength(1);
            expect(ids[0]).not.toBe(tok.unkId);
          }
          expect(new Set(enc[i].rows).size).toBe(4);
        }
        prompts[split] = new Set(ex.map((e) => e.prompt));
      }
      if (prompts.train && prompts.test) {
        for (const p of prompts.test) expect(prompts.train.has(p) || prompts.validation.has(p)).toBe(false);
      }
    });
  }
});
