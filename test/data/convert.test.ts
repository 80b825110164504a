import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { convertData, convertFile, convertToJsonl, type SourceKind } from '../../ts/data/convert.ts';
import { parseCsv } from '../../ts/data/csv.ts';
import { encodeMc, renderLetterPrompt } from '../../ts/data/format.ts';
import { readMcJsonl } from '../../ts/data/jsonl.ts';
import { makeTinyTokenizer } from '../helpers/tiny-tokenizer.ts';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data');
const fx = (name: string) => path.join(fixtures, name);
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bl-conv-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SELECT = 'Select one of the choices that answers the following question:';

function badFile(fn: () => unknown, where: RegExp): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    expect((e as BayesLoraError).code).toBe('BAD_FILE');
    expect((e as Error).message).toMatch(where);
    return (e as Error).message;
  }
  throw new Error('expected a BAD_FILE error');
}

describe('ARC', () => {
  it('paper style: instruction, normalized choices, 4-choice filter, labels matched by key', async () => {
    const r = await convertFile('arc', fx('arc.jsonl'));
    expect(r.format).toEqual({ format: 'letter', layout: 'paper' });
    expect(r.examples).toEqual([
      {
        prompt: `${SELECT} Which gas do green plants take in from the air to make food?`,
        choices: ['Oxygen.', 'Carbon dioxide.', 'Nitrogen.', 'Helium.'],
        answer: 1,
      },
      {
        prompt: `${SELECT} A student leaves a cup of ice on a sunny table. What happens to the ice?`,
        choices: ['It melts.', 'It gets colder.', 'It turns into sand.', 'It grows.'],
        answer: 0,
      },
      {
        prompt: `${SELECT} Which is the best tool to measure the length of a leaf?`,
        choices: ['A ruler.', 'A thermometer.', 'A balance.', 'A clock.'],
        answer: 0,
      },
    ]);
    // The 3- and 5-choice questions (lines 4 and 5; line 3 is blank) are skipped, with reasons.
    expect(r.skipped).toEqual([
      { line: 4, reason: '3 choices (keeping only 4)' },
      { line: 5, reason: '5 choices (keeping only 4)' },
    ]);
    // The paper's prompt string, rendered by the letter format.
    expect(renderLetterPrompt(r.examples[0], 'paper')).toBe(
      `${SELECT} Which gas do green plants take in from the air to make food? Choices: A. Oxygen. B. Carbon dioxide. C. Nitrogen. D. Helium. Answer:`,
    );
  });
  it('plain style keeps texts and every choice count', async () => {
    const r = await convertFile('arc', fx('arc.jsonl'), { style: 'plain' });
    expect(r.format).toEqual({ format: 'letter', layout: 'lines' });
    expect(r.examples.map((e) => e.choices.length)).toEqual([4, 4, 3, 5, 4]);
    expect(r.examples[2]).toEqual({ prompt: 'Which object gives off its own light?', choices: ['the Moon', 'the Sun', 'a mirror'], answer: 1 });
    expect(r.examples[3].answer).toBe(0);
    expect(r.skipped).toEqual([]);
  });
  it('accepts the Hugging Face export layout', async () => {
    const r = await convertFile('arc', fx('arc-hf.jsonl'), { style: 'plain' });
    expect(r.examples).toEqual([
      { prompt: 'Which animal lives in the ocean?', choices: ['cow', 'fish', 'horse', 'dog'], answer: 1 },
      { prompt: 'What falls from clouds when it is cold?', choices: ['snow', 'sand', 'salt', 'milk'], answer: 0 },
    ]);
  });
  it('rejects malformed records with file:line', () => {
    const good = '{"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "A"}';
    const cases: [string, RegExp][] = [
      ['{"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}]}, "answerKey": "A"}', /at least 2 choices/],
      ['{"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "C"}', /"answerKey" "C" is not one of the labels/],
      ['{"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}}', /missing "answerKey"/],
      ['{"question": {"stem": "", "choices": []}, "answerKey": "A"}', /"stem" is empty/],
      ['{"question": {"stem": "q", "choices": "A B"}, "answerKey": "A"}', /"question.choices" must be an array/],
      ['{"question": {"stem": "q", "choices": [{"text": 3, "label": "A"}, {"text": "b", "label": "B"}]}, "answerKey": "A"}', /"text" must be a string/],
      ['{"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "A"}]}, "answerKey": "A"}', /labels repeat/],
      ['{"question": "q", "choices": {"text": ["a"], "label": ["A", "B"]}, "answerKey": "A"}', /equally long/],
      ['{"question": "q"}', /missing "question" object/],
      ['[]', /JSON object/],
      ['{"question": ', /not valid JSON/],
    ];
    for (const [bad, re] of cases) {
      badFile(() => convertData('arc', `${good}\n${bad}\n`, 'arc.jsonl', { style: 'plain' }), /^arc\.jsonl:2: /);
      badFile(() => convertData('arc', `${good}\n${bad}\n`, 'arc.jsonl', { style: 'plain' }), re);
    }
    badFile(() => convertData('arc', '\n\n', 'arc.jsonl'), /no records/);
  });
  it('accepts unlabelled records only when asked', () => {
    const t = '{"question": {"stem": "q", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "B"}]}}';
    expect(convertData('arc', t, 'x', { style: 'plain', allowUnlabelled: true }).examples[0].answer).toBe(-1);
  });
  it('skips (does not fail on) records with duplicate choices after normalization', () => {
    const t = '{"question": {"stem": "q", "choices": [{"text": "yes", "label": "A"}, {"text": "Yes.", "label": "B"}, {"text": "c", "label": "C"}, {"text": "d", "label": "D"}]}, "answerKey": "A"}';
    const r = convertData('arc', t, 'x');
    expect(r.examples).toEqual([]);
    expect(r.skipped[0].line).toBe(1);
    expect(r.skipped[0].reason).toMatch(/duplicates/);
  });
});

describe('OpenBookQA', () => {
  it('converts both layouts with the ARC template', async () => {
    const r = await convertFile('openbookqa', fx('openbookqa.jsonl'));
    expect(r.examples.map((e) => e.answer)).toEqual([1, 2, 0]);
    expect(r.examples[0]).toEqual({
      prompt: `${SELECT} A plant placed in a dark closet will`,
      choices: ['Grow faster.', 'Stop making food.', 'Turn into a rock.', 'Give off light.'],
      answer: 1,
    });
    expect(r.examples[2].prompt).toBe(`${SELECT} Birds use what to fly?`);
  });
});

describe('BoolQ', () => {
  it('paper style: True/False with the paper instruction, choice format', async () => {
    const r = await convertFile('boolq', fx('boolq.jsonl'));
    expect(r.format).toEqual({ format: 'choice' });
    expect(r.examples[0]).toEqual({
      prompt:
        'Answer the question with only True or False: is paris the capital of france Context: Paris is the capital and largest city of France, on the river Seine.',
      choices: ['False', 'True'],
      answer: 1,
    });
    expect(r.examples.map((e) => e.answer)).toEqual([1, 0, 1]); // SuperGLUE "label" read too
  });
  it('plain style: passage, question, yes/no', async () => {
    const r = await convertFile('boolq', fx('boolq.jsonl'), { style: 'plain' });
    expect(r.examples[1]).toEqual({
      prompt: 'Fish are animals that live in water: rivers, lakes and the sea.\nQuestion: do fish live in trees?\nAnswer:',
      choices: ['no', 'yes'],
      answer: 0,
    });
  });
  it('rejects non-boolean answers and missing fields', () => {
    badFile(() => convertData('boolq', '{"question": "q", "passage": "p", "answer": "yes"}', 'b.jsonl'), /^b\.jsonl:1: "answer" must be true or false/);
    badFile(() => convertData('boolq', '{"question": "q", "answer": true}', 'b.jsonl'), /missing "passage"/);
    badFile(() => convertData('boolq', '{"question": "q", "passage": "p"}', 'b.jsonl'), /missing "answer"/);
  });
});

describe('WinoGrande', () => {
  it('paper style: instruction, options with a final period, letter format', async () => {
    const r = await convertFile('winogrande', fx('winogrande.jsonl'));
    expect(r.examples[0]).toEqual({
      prompt: `${SELECT} John gave his bike to Kyle because _ had a new car.`,
      choices: ['John.', 'Kyle.'],
      answer: 0,
    });
    expect(r.examples.map((e) => e.answer)).toEqual([0, 1, 0]);
    expect(r.format).toEqual({ format: 'letter', layout: 'paper' });
  });
  it('rejects a missing blank or a bad answer; test split answers "" need allowUnlabelled', () => {
    badFile(() => convertData('winogrande', '{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}', 'w'), /^w:1: .*no "_"/);
    badFile(() => convertData('winogrande', '{"sentence": "a _", "option1": "a", "option2": "b", "answer": "3"}', 'w'), /"1" or "2"/);
    const t = '{"sentence": "a _", "option1": "a", "option2": "b", "answer": ""}';
    badFile(() => convertData('winogrande', t, 'w'), /missing "answer"/);
    expect(convertData('winogrande', t, 'w', { allowUnlabelled: true }).examples[0].answer).toBe(-1);
    // Identical options cannot be told apart: skipped, not fatal.
    expect(convertData('winogrande', '{"sentence": "a _", "option1": "x", "option2": "x", "answer": "1"}', 'w').skipped.length).toBe(1);
  });
});

describe('MMLU', () => {
  it('parses quoted, multi-line, CRLF CSV and converts', async () => {
    const r = await convertFile('mmlu', fx('mmlu.csv'), { style: 'plain' });
    expect(r.examples).toEqual([
      { prompt: 'What is the sum of two and three?', choices: ['four', 'five', 'six', 'seven'], answer: 1 },
      {
        prompt: 'Which city is the capital of France, a country in Europe?',
        choices: ['Paris', 'Rome', 'Berlin "the big one"', 'Madrid'],
        answer: 0,
      },
      { prompt: 'Which line is a haiku?', choices: ['old pond\nfrog jumps in', 'a list, of words', 'nothing', 'all of the above'], answer: 0 },
      { prompt: 'Which is a gas?', choices: ['ice', 'rock', 'oxygen', 'sand'], answer: 2 },
    ]);
    const paper = await convertFile('mmlu', fx('mmlu.csv'));
    expect(paper.examples[3].prompt).toBe(`${SELECT} Which is a gas?`);
  });
  it('skips a header row and reports bad rows by line', () => {
    const ok = 'question,A,B,C,D,answer\nq,a,b,c,d,D\n';
    expect(convertData('mmlu', ok, 'm.csv').examples[0].answer).toBe(3);
    badFile(() => convertData('mmlu', 'q,a,b,c,d,A\n\nq,a,b,c,E\n', 'm.csv'), /^m\.csv:3: expected 6 fields/);
    badFile(() => convertData('mmlu', 'q,a,b,c,d,A\nq,a,b,c,d,E\n', 'm.csv'), /^m\.csv:2: answer must be one of A, B, C, D/);
    badFile(() => convertData('mmlu', 'q,a,b,c,d,A\nq,a,,c,d,A\n', 'm.csv'), /^m\.csv:2: empty choice B/);
    badFile(() => convertData('mmlu', 'q,a,b,c,d,A\n"q,a,b,c,d,A\n', 'm.csv'), /^m\.csv:2: unterminated quoted field/);
    badFile(() => convertData('mmlu', 'q,a,b"x,c,d,A\n', 'm.csv'), /^m\.csv:1: a quote inside an unquoted field/);
    badFile(() => convertData('mmlu', '"q"x,a,b,c,d,A\n', 'm.csv'), /^m\.csv:1: unexpected character after a closing quote/);
    badFile(() => convertData('mmlu', Buffer.from([0x71, 0x2c, 0xff, 0x0a]), 'm.csv'), /UTF-8/);
  });
  it('parseCsv: line numbers of records spanning lines, trailing empty field', () => {
    expect(parseCsv('a,"b\nc",d\n\ne,f,\n', 'x')).toEqual([
      { line: 1, fields: ['a', 'b\nc', 'd'] },
      { line: 4, fields: ['e', 'f', ''] },
    ]);
  });
});

describe('end to end: convert, write, read, encode', () => {
  it('every converter output is valid JSONL our reader accepts, and encodes with the suggested format', async () => {
    const tok = await makeTinyTokenizer(dir);
    const files: [SourceKind, string][] = [
      ['arc', 'arc.jsonl'],
      ['openbookqa', 'openbookqa.jsonl'],
      ['boolq', 'boolq.jsonl'],
      ['winogrande', 'winogrande.jsonl'],
      ['mmlu', 'mmlu.csv'],
    ];
    for (const [kind, name] of files) {
      const out = path.join(dir, `${kind}.jsonl`);
      const r = await convertToJsonl(kind, fx(name), out);
      const back = await readMcJsonl(out);
      expect(back).toEqual(r.examples);
      const enc = await encodeMc(tok, back, { ...r.format, source: out });
      expect(enc.length).toBe(back.length);
      for (const e of enc) expect(e.rows.length).toBe(kind === 'boolq' ? 2 : kind === 'winogrande' ? 2 : 4);
    }
  });
  it('rejects an unknown source kind and a missing file', async () => {
    expect(() => convertData('squad' as SourceKind, '', 'x')).toThrow(BayesLoraError);
    await expect(convertFile('arc', path.join(dir, 'nope.jsonl'))).rejects.toMatchObject({ code: 'BAD_FILE' });
  });
});

describe('hostile converter input (mutation fuzz)', () => {
  it('gives only valid examples or BAD_FILE errors naming file:line', async () => {
    const { readFileSync } = await import('node:fs');
    const { Rng } = await import('../../ts/data/rng.ts');
    const kinds: [SourceKind, string][] = [
      ['arc', 'arc.jsonl'],
      ['openbookqa', 'openbookqa.jsonl'],
      ['boolq', 'boolq.jsonl'],
      ['winogrande', 'winogrande.jsonl'],
      ['mmlu', 'mmlu.csv'],
    ];
    const inserts = ['"', ',', '{', '}', '[', ']', ':', '\n', '\r\n', 'null', '""', '"answerKey"', '"label"', '\\', '_'];
    const rng = new Rng(99);
    let ok = 0;
    let bad = 0;
    for (let i = 0; i < 2000; i++) {
      const [kind, name] = kinds[i % kinds.length];
      const b = Array.from(readFileSync(fx(name)));
      for (let k = 1 + rng.int(3); k > 0; k--) {
        const at = rng.int(b.length + 1);
        const op = rng.int(4);
        if (op === 0 && b.length) b[Math.min(at, b.length - 1)] = rng.int(256);
        else if (op === 1) b.splice(at, 1 + rng.int(6));
        else if (op === 2) b.splice(at, 0, ...Buffer.from(inserts[rng.int(inserts.length)]));
        else b.length = at;
      }
      try {
        const r = convertData(kind, Buffer.from(b), name, { style: i % 2 ? 'plain' : 'paper', allowUnlabelled: i % 3 === 0 });
        for (const e of r.examples) {
          if (!(e.choices.length >= 2 && e.answer >= -1 && e.answer < e.choices.length && e.prompt.trim().length > 0)) {
            throw new Error(`invalid example accepted: ${JSON.stringify(e)}`);
          }
        }
        ok++;
      } catch (e) {
        if (!(e instanceof BayesLoraError) || e.code !== 'BAD_FILE' || !e.message.startsWith(`${name}:`)) throw e;
        bad++;
      }
    }
    expect(ok).toBeGreaterThan(100);
    expect(bad).toBeGreaterThan(300);
  });
});
