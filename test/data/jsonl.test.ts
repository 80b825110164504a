import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { parseMcJsonl, readMcJsonl, writeMcJsonl, type McExample } from '../../ts/data/jsonl.ts';
import { Rng } from '../../ts/data/rng.ts';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'bl-jsonl-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function badFile(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    expect((e as BayesLoraError).code).toBe('BAD_FILE');
    return (e as Error).message;
  }
  throw new Error('expected a BAD_FILE error');
}

describe('readMcJsonl', () => {
  it('reads the fixture, skipping blank lines and ignoring extra keys', async () => {
    const ex = await readMcJsonl(path.join(fixtures, 'mc.jsonl'));
    expect(ex).toEqual([
      { prompt: 'Which gas do plants take in?', choices: ['oxygen', 'carbon dioxide'], answer: 1 },
      { prompt: 'What is the color of the sky on a clear day?', choices: ['blue', 'green', 'red'], answer: 0 },
      { prompt: 'Is ice cold?', choices: ['no', 'yes'], answer: 1 },
    ]);
  });
  it('accepts CRLF line ends and a byte-order mark', () => {
    const text = '\ufeff{"prompt":"p","choices":["a","b"],"answer":0}\r\n\r\n{"prompt":"q","choices":["a","b"],"answer":1}\r\n';
    expect(parseMcJsonl(Buffer.from(text, 'utf8'), 'x.jsonl').map((e) => e.answer)).toEqual([0, 1]);
    expect(parseMcJsonl(text, 'x.jsonl').map((e) => e.prompt)).toEqual(['p', 'q']);
  });
  it('reports each problem as file:line', () => {
    const ok = '{"prompt":"p","choices":["a","b"],"answer":0}';
    const cases: [string, RegExp][] = [
      ['{"prompt": "p", ', /not valid JSON/],
      ['[1, 2]', /JSON object/],
      ['null', /JSON object/],
      ['"text"', /JSON object/],
      ['{"choices":["a","b"],"answer":0}', /missing "prompt"/],
      ['{"prompt":3,"choices":["a","b"],"answer":0}', /"prompt" must be a string, got a number/],
      ['{"prompt":"   ","choices":["a","b"],"answer":0}', /"prompt" is empty/],
      ['{"prompt":"p","answer":0}', /missing "choices"/],
      ['{"prompt":"p","choices":"a,b","answer":0}', /"choices" must be an array/],
      ['{"prompt":"p","choices":["a"],"answer":0}', /at least 2/],
      ['{"prompt":"p","choices":[],"answer":0}', /at least 2/],
      ['{"prompt":"p","choices":["a",2],"answer":0}', /"choices"\[1\] must be a string/],
      ['{"prompt":"p","choices":["a",""],"answer":0}', /"choices"\[1\] is empty/],
      ['{"prompt":"p","choices":["a","b","a"],"answer":0}', /"choices"\[2\] duplicates "choices"\[0\]/],
      ['{"prompt":"p","choices":["a","b"]}', /missing "answer"/],
      ['{"prompt":"p","choices":["a","b"],"answer":null}', /missing "answer"/],
      ['{"prompt":"p","choices":["a","b"],"answer":2}', /out of range/],
      ['{"prompt":"p","choices":["a","b"],"answer":-1}', /out of range/],
      ['{"prompt":"p","choices":["a","b"],"answer":0.5}', /must be an integer/],
      ['{"prompt":"p","choices":["a","b"],"answer":"1"}', /must be an integer.*string/],
      ['{"prompt":"p","choices":["a","b"],"answer":true}', /must be an integer/],
      [`{"prompt":"p","choices":${JSON.stringify(Array.from({ length: 1025 }, (_, i) => `c${i}`))},"answer":0}`, /more than 1024/],
    ];
    for (const [bad, re] of cases) {
      const msg = badFile(() => parseMcJsonl(`${ok}\n\n${bad}\n${ok}\n`, 'task.jsonl'));
      expect(msg).toMatch(/^task\.jsonl:3: /);
      expect(msg).toMatch(re);
    }
  });
  it('reports invalid UTF-8 at its line', () => {
    const buf = Buffer.concat([Buffer.from('{"prompt":"p","choices":["a","b"],"answer":0}\n{"prompt":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","choices":["a","b"],"answer":0}\n')]);
    expect(badFile(() => parseMcJsonl(buf, 'u.jsonl'))).toMatch(/^u\.jsonl:2: not valid UTF-8/);
  });
  it('rejects empty files, missing files and files over the limit', async () => {
    expect(badFile(() => parseMcJsonl('\n  \n', 'e.jsonl'))).toMatch(/no examples/);
    const missing = path.join(dir, 'missing.jsonl');
    await expect(readMcJsonl(missing)).rejects.toMatchObject({ code: 'BAD_FILE', message: expect.stringContaining('missing.jsonl') });
    const f = path.join(dir, 'big.jsonl');
    writeFileSync(f, '{"prompt":"p","choices":["a","b"],"answer":0}\n'.repeat(100));
    await expect(readMcJsonl(f, { maxBytes: 1000 })).rejects.toMatchObject({ code: 'BAD_FILE', message: expect.stringMatching(/too large/) });
    await expect(readMcJsonl(dir)).rejects.toMatchObject({ code: 'BAD_FILE' });
  });
  it('reads unlabelled examples as -1 only when allowed', () => {
    const t = '{"prompt":"p","choices":["a","b"]}\n{"prompt":"p","choices":["a","b"],"answer":null}';
    expect(parseMcJsonl(t, 'u.jsonl', { allowUnlabelled: true }).map((e) => e.answer)).toEqual([-1, -1]);
    expect(badFile(() => parseMcJsonl(t, 'u.jsonl'))).toMatch(/u\.jsonl:1: missing "answer"/);
  });
});

describe('writeMcJsonl', () => {
  it('round-trips, writes atomically, keeps unlabelled as null', async () => {
    const ex: McExample[] = [
      { prompt: 'Line one\nline "two"', choices: ['ä', 'b\u2028c'], answer: 1 },
      { prompt: 'p', choices: ['x', 'y', 'z'], answer: -1 },
    ];
    const f = path.join(dir, 'sub', 'out.jsonl');
    await writeMcJsonl(f, ex);
    expect(readdirSync(path.dirname(f))).toEqual(['out.jsonl']);
    expect(readFileSync(f, 'utf8').split('\n')[1]).toBe('{"prompt":"p","choices":["x","y","z"],"answer":null}');
    expect(await readMcJsonl(f, { allowUnlabelled: true })).toEqual(ex);
  });
  it('validates before writing and leaves an existing file untouched on error', async () => {
    const f = path.join(dir, 'keep.jsonl');
    writeFileSync(f, 'old');
    await expect(writeMcJsonl(f, [{ prompt: 'p', choices: ['a', 'a'], answer: 0 }])).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/examples\[0\].*duplicates/),
    });
    await expect(writeMcJsonl(f, [{ prompt: 'p', choices: ['a', 'b'], answer: 2 }])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(readFileSync(f, 'utf8')).toBe('old');
  });
});

describe('hostile JSONL (mutation fuzz)', () => {
  // Byte-level and structure-level mutations of valid files; the reader may
  // only succeed (with a valid result) or throw BAD_FILE naming file:line.
  const seeds = [
    '{"prompt":"Which gas?","choices":["oxygen","carbon dioxide"],"answer":1}\n{"prompt":"p","choices":["a","b","c"],"answer":2}\n',
    '{"prompt": "Is ice cold?", "choices": ["no", "yes"], "answer": 1, "id": "x"}\r\n\r\n',
    '{"prompt":"ünïcödé ☃","choices":["\\u00e4","\\ud83d\\ude00"],"answer":0}\n',
  ];
  const tokens = ['{', '}', '[', ']', '"', ',', ':', '\\', '\n', '\r', 'null', 'true', '1e309', '-0', '1.5', '"answer"', '"choices"', '"prompt"', '\u0000', '\ufeff', '__proto__', '""'];
  function mutate(rng: Rng, s: Buffer): Buffer {
    const b = Array.from(s);
    const ops = 1 + rng.int(4);
    for (let k = 0; k < ops; k++) {
      const at = b.length ? rng.int(b.length + 1) : 0;
      switch (rng.int(6)) {
        case 0: // flip a byte
          if (b.length) b[Math.min(at, b.length - 1)] = rng.int(256);
          break;
        case 1: // delete a run
          b.splice(at, 1 + rng.int(8));
          break;
        case 2: // insert a JSON-ish token
          b.splice(at, 0, ...Buffer.from(tokens[rng.int(tokens.length)]));
          break;
        case 3: // duplicate a run
          b.splice(at, 0, ...b.slice(at, at + 1 + rng.int(16)));
          break;
        case 4: // truncate
          b.length = at;
          break;
        default: // swap in a high byte (invalid UTF-8 half the time)
          b.splice(at, 0, 0x80 + rng.int(0x80));
      }
    }
    return Buffer.from(b);
  }
  it('gives only valid examples or typed BAD_FILE errors for 3000 mutants', () => {
    const rng = new Rng(1234);
    let ok = 0;
    let bad = 0;
    for (let i = 0; i < 3000; i++) {
      const input = mutate(rng, Buffer.from(seeds[i % seeds.length]));
      try {
        const ex = parseMcJsonl(input, 'fuzz.jsonl', { allowUnlabelled: i % 2 === 0 });
        for (const e of ex) {
          const valid =
            typeof e.prompt === 'string' &&
            e.prompt.trim().length > 0 &&
            e.choices.length >= 2 &&
            e.choices.every((c) => typeof c === 'string' && c.trim().length > 0) &&
            new Set(e.choices).size === e.choices.length &&
            Number.isInteger(e.answer) &&
            e.answer >= -1 &&
            e.answer < e.choices.length;
          if (!valid) throw new Error(`accepted an invalid example: ${JSON.stringify(e)}`);
        }
        ok++;
      } catch (e) {
        if (!(e instanceof BayesLoraError) || e.code !== 'BAD_FILE' || !/^fuzz\.jsonl(:\d+)?: /.test(e.message)) throw e;
        bad++;
      }
    }
    // Both outcomes occur: the mutations are neither all fatal nor all harmless.
    expect(ok).toBeGreaterThan(50);
    expect(bad).toBeGreaterThan(500);
  });
});
