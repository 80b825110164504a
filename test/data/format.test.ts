import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { encodeMc, letterTokenIds, renderLetterPrompt } from '../../ts/data/format.ts';
import type { McExample } from '../../ts/data/jsonl.ts';
import { Tokenizer, writeWordLevelTokenizer } from '../../ts/tokenizer.ts';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

let dir: string;
let tiny: Tokenizer;
beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bl-fmt-'));
  tiny = await makeTinyTokenizer(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function rejects(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BayesLoraError);
  expect((err as BayesLoraError).code).toBe(code);
  expect((err as Error).message).toMatch(re);
}

/**
 * A LLaMA-2-style SentencePiece BPE tokenizer.json: the normalizer prepends
 * "▁" and turns spaces into "▁", no pre-tokenizer, BOS added by a template.
 * Encoding " A" on its own gives ["▁", "▁A"]; after "Answer:" it gives "▁A".
 */
function sentencePieceJson(firstMerges: [string, string][] = []): string {
  const chars = ['▁', 'A', 'B', 'C', 'D', 'n', 's', 'w', 'e', 'r', ':', 'T', 'u', 'F', 'a', 'l'];
  const merges: [string, string][] = [
    ...firstMerges, // highest priority
    ['▁', 'A'],
    ['▁', 'B'],
    ['▁', 'C'],
    ['▁', 'D'],
    ['n', 's'],
    ['w', 'e'],
    ['we', 'r'],
    ['▁A', 'ns'],
    ['▁Ans', 'wer'],
    ['▁', 'T'],
    ['r', 'u'],
    ['ru', 'e'],
    ['▁T', 'rue'],
  ];
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (const t of [...chars, ...merges.map(([a, b]) => a + b)]) if (!(t in vocab)) vocab[t] = Object.keys(vocab).length;
  const bos = { SpecialToken: { id: '<s>', type_id: 0 } };
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['<unk>', '<s>', '</s>'].map((t, i) => ({
      id: i,
      content: t,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: null,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: false,
      vocab,
      merges,
    },
  });
}

const ex3: McExample = { prompt: 'Which gas do plants need?  ', choices: ['oxygen', 'carbon dioxide', 'sand'], answer: 1 };

describe('letter format', () => {
  it('renders both layouts exactly, trimming the prompt end', () => {
    expect(renderLetterPrompt(ex3)).toBe('Which gas do plants need?\nA. oxygen\nB. carbon dioxide\nC. sand\nAnswer:');
    expect(renderLetterPrompt(ex3, 'paper')).toBe('Which gas do plants need? Choices: A. oxygen B. carbon dioxide C. sand Answer:');
  });
  it('encodes prompt + BOS and uses the letter tokens as class rows', async () => {
    const [e] = await encodeMc(tiny, [ex3], { format: 'letter' });
    const body = await tiny.encode(renderLetterPrompt(ex3), { addSpecialTokens: false });
    expect(e.ids).toEqual([tiny.bosId, ...body]);
    expect(e.ids[e.ids.length - 1]).toBe(tiny.tokenToId(':'));
    expect(e.rows).toEqual(['A', 'B', 'C'].map((l) => tiny.tokenToId(l)));
    expect(e.label).toBe(1);
    const [noBos] = await encodeMc(tiny, [ex3], { format: 'letter', addSpecialTokens: false });
    expect(noBos.ids).toEqual(body);
    const [paper] = await encodeMc(tiny, [ex3], { format: 'letter', layout: 'paper' });
    expect(paper.rows).toEqual(e.rows);
    expect(paper.ids).toEqual([tiny.bosId, ...(await tiny.encode(renderLetterPrompt(ex3, 'paper'), { addSpecialTokens: false }))]);
  });
  it('keeps per-example choice counts and unlabelled -1', async () => {
    const out = await encodeMc(tiny, [ex3, { prompt: 'Is ice cold?', choices: ['no', 'yes'], answer: -1 }], { format: 'letter' });
    expect(out[1].rows).toEqual([tiny.tokenToId('A'), tiny.tokenToId('B')]);
    expect(out[1].label).toBe(-1);
  });
  it('finds the in-context letter token of a SentencePiece tokenizer (" A" alone is two tokens)', async () => {
    const sp = await Tokenizer.fromJson(sentencePieceJson(), { source: 'sp.json' });
    expect(sp.specialPrefix).toEqual([1]);
    expect(await sp.tokens(' A', { addSpecialTokens: false })).toEqual(['▁', '▁A']);
    expect(await letterTokenIds(sp, 4)).toEqual(['▁A', '▁B', '▁C', '▁D'].map((t) => sp.tokenToId(t)));
    // Choice format: first token of " True" after the prompt is "▁True".
    const [e] = await encodeMc(sp, [{ prompt: 'Answer:', choices: ['True', 'A'], answer: 0 }], { format: 'choice' });
    expect(e.rows).toEqual([sp.tokenToId('▁True'), sp.tokenToId('▁A')]);
    expect(e.ids).toEqual([1, sp.tokenToId('▁Answer'), sp.tokenToId(':')]);
  });
  it('finds "ĠA" for a byte-level BPE that merged it, and refuses one that did not', async () => {
    const merged = await Tokenizer.train({
      kind: 'bpe',
      corpus: Array.from({ length: 30 }, () => 'Answer: A\nAnswer: B\nAnswer: C'),
      vocabSize: 300,
      out: path.join(dir, 'bpe-letters.json'),
    });
    expect(await letterTokenIds(merged, 3)).toEqual(['ĠA', 'ĠB', 'ĠC'].map((t) => merged.tokenToId(t)));
    await rejects(letterTokenIds(merged, 4), 'UNSUPPORTED', /" D".*\["Ġ","D"\]|" D".*use the 'choice' answer format/);
    const plain = await Tokenizer.train({
      kind: 'bpe',
      corpus: ['lowercase words only here and there'],
      vocabSize: 270,
      out: path.join(dir, 'bpe-plain.json'),
    });
    await rejects(encodeMc(plain, [ex3], { format: 'letter' }), 'UNSUPPORTED', /" A".*'choice'/);
  });
  it('the built-in lower-case tokenizer reads the letters through its Lowercase normalizer', async () => {
    const wn = await Tokenizer.fromFile(path.join(import.meta.dirname, '../../models/wordnet-tiny/tokenizer.json'));
    const ids = await letterTokenIds(wn, 4);
    expect(ids).toEqual(['a', 'b', 'c', 'd'].map((t) => wn.tokenToId(t)));
    expect(new Set(ids).size).toBe(4);
    const [e] = await encodeMc(wn, [{ prompt: 'a small domestic cat . category :', choices: ['animal', 'artifact'], answer: 0 }], {
      format: 'letter',
    });
    expect(e.ids).not.toContain(wn.unkId);
    expect(e.rows).toEqual(ids.slice(0, 2));
  });
  it('refuses letters that are unknown tokens', async () => {
    const noC = await writeWordLevelTokenizer(path.join(dir, 'noC.json'), ['A', 'B', 'Answer', ':', '.', 'x']);
    expect(await letterTokenIds(noC, 2)).toEqual([noC.tokenToId('A'), noC.tokenToId('B')]);
    await rejects(letterTokenIds(noC, 3), 'UNSUPPORTED', /" C"/);
    // The whole dataset needs C = 3 letters, so the missing one fails the encode.
    await rejects(encodeMc(noC, [ex3], { format: 'letter' }), 'UNSUPPORTED', /" C".*'choice'/);
  });
  it('refuses a merge across the prompt/answer boundary', async () => {
    const sp = await Tokenizer.fromJson(sentencePieceJson([[':', '▁']]), { source: 'sp-merge.json' });
    await rejects(letterTokenIds(sp, 2), 'UNSUPPORTED', /" A"/);
    await rejects(
      encodeMc(sp, [{ prompt: 'Answer:', choices: ['True', 'A'], answer: 0 }], { format: 'choice', source: 'm.jsonl' }),
      'UNSUPPORTED',
      /m\.jsonl examples\[0\]: appending choice 0.*merges across/,
    );
  });
  it('refuses more than 26 choices', async () => {
    const many = { prompt: 'p', choices: Array.from({ length: 27 }, (_, i) => `c${i}`), answer: 0 };
    await rejects(encodeMc(tiny, [many], { format: 'letter' }), 'UNSUPPORTED', /at most 26/);
  });
});

describe('choice format', () => {
  it('uses the first token of each choice after the prompt', async () => {
    const ex: McExample = { prompt: 'The sky on a clear day is', choices: ['blue', 'green light', ' red'], answer: 0 };
    const [e] = await encodeMc(tiny, [ex], { format: 'choice' });
    expect(e.rows).toEqual(['blue', 'green', 'red'].map((w) => tiny.tokenToId(w)));
    expect(e.ids).toEqual([tiny.bosId, ...(await tiny.encode('The sky on a clear day is', { addSpecialTokens: false }))]);
    expect(e.label).toBe(0);
  });
  it('rejects choices whose first tokens collide, naming the example', async () => {
    const good: McExample = { prompt: 'Pick', choices: ['yes', 'no'], answer: 0 };
    const bad: McExample = { prompt: 'Which gas?', choices: ['carbon dioxide', 'carbon', 'oxygen'], answer: 0 };
    await rejects(
      encodeMc(tiny, [good, good, bad], { format: 'choice', source: 'train.jsonl' }),
      'INVALID_ARGUMENT',
      /train\.jsonl examples\[2\]: choices 0 \("carbon dioxide"\) and 1 \("carbon"\) start with the same token/,
    );
  });
  it('rejects a choice whose first token is unknown', async () => {
    await rejects(
      encodeMc(tiny, [{ prompt: 'Pick', choices: ['yes', 'zyzzyva'], answer: 0 }], { format: 'choice' }),
      'INVALID_ARGUMENT',
      /examples\[0\]: the first token of choice 1 \("zyzzyva"\) is the unknown token/,
    );
  });
  it('validates examples and options', async () => {
    await rejects(encodeMc(tiny, [{ prompt: 'p', choices: ['a'], answer: 0 }], { format: 'choice' }), 'INVALID_ARGUMENT', /examples\[0\]/);
    await rejects(encodeMc(tiny, [{ prompt: 'p', choices: ['a', 'b'], answer: 2 }], { format: 'choice' }), 'INVALID_ARGUMENT', /answer 2/);
    await rejects(encodeMc(tiny, [ex3], { format: 'words' as 'choice' }), 'INVALID_ARGUMENT', /format/);
    await rejects(encodeMc(tiny, [ex3], { format: 'letter', layout: 'table' as 'lines' }), 'INVALID_ARGUMENT', /layout/);
    expect(await encodeMc(tiny, [], { format: 'choice' })).toEqual([]);
  });
  it('long prompts (tail context) give the same rows as appending to the full prompt', async () => {
    const sp = await Tokenizer.fromJson(sentencePieceJson(), { source: 'sp.json' });
    const bpe = await Tokenizer.train({
      kind: 'bpe',
      corpus: Array.from({ length: 20 }, (_, i) => `the cat sat on the mat ${i}. Answer: True or False, yes or no?`),
      vocabSize: 320,
      out: path.join(dir, 'bpe-long.json'),
    });
    const cases: [Tokenizer, string, string[]][] = [
      [tiny, 'the cat sat on the mat, '.repeat(20) + 'Answer:', ['yes', 'no', 'cat']],
      [tiny, 'the   cat\n\nsat '.repeat(30) + 'Answer:', ['True', 'False']],
      [sp, 'Answer: '.repeat(40) + 'Answer:', ['True', 'A', 'B']],
      [sp, 'AnswerAnswer'.repeat(30), ['True', 'A']],
      [bpe, 'the cat sat on the mat. '.repeat(15) + 'Answer:', ['True', 'False', 'yes']],
      [bpe, 'the  cat\tsat\non  the mat. '.repeat(15) + 'Answer:', ['True', 'no']],
    ];
    for (const [t, prompt, choices] of cases) {
      const [e] = await encodeMc(t, [{ prompt, choices, answer: 0 }], { format: 'choice' });
      const ctx = await t.encode(prompt, { addSpecialTokens: false });
      const expected: number[] = [];
      for (const c of choices) {
        const joint = await t.encode(prompt + ' ' + c, { addSpecialTokens: false });
        expect(joint.slice(0, ctx.length)).toEqual(ctx);
        expected.push(joint[ctx.length]);
      }
      expect(e.rows).toEqual(expected);
      expect(e.ids).toEqual([...t.specialPrefix, ...ctx]);
    }
  });
  it('encodes many examples in chunks consistently', async () => {
    const exs: McExample[] = Array.from({ length: 1100 }, (_, i) => ({
      prompt: `Question ${i % 10}: is the cat on the mat`,
      choices: i % 2 ? ['yes', 'no'] : ['no', 'yes'],
      answer: i % 2,
    }));
    const out = await encodeMc(tiny, exs, { format: 'choice' });
    expect(out.length).toBe(1100);
    const yes = tiny.tokenToId('yes');
    const no = tiny.tokenToId('no');
    out.forEach((e, i) => {
      expect(e.rows).toEqual(i % 2 ? [yes, no] : [no, yes]);
      expect(e.rows[e.label]).toBe(no);
    });
  });
});
