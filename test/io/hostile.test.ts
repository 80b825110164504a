// Hostile inputs for the native readers: every malformed safetensors file or
// checkpoint directory must raise a typed BayesLoraError naming the file
// (BAD_FILE, or IO_ERROR for files that are missing), never crash, hang or
// read out of bounds. Ends with a bounded random-mutation loop.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BayesLoraError } from '../../ts/errors.ts';
import { encodeSafetensors, f32ToF16Bits } from '../../ts/io/safetensors.ts';
import { checkpointNames, readCheckpointTensor, readSafetensorsInfo, readTensor } from '../../ts/io/native-io.ts';
import { makeTinyCheckpoint } from '../helpers/tiny-checkpoint.ts';
import { expectTypedError, rawSafetensors, tempDir } from './helpers.ts';

const { dir, cleanup } = tempDir('hostile');
afterAll(cleanup);

let counter = 0;
function fileWith(bytes: Uint8Array | string): string {
  const p = path.join(dir, `case-${counter++}.safetensors`);
  writeFileSync(p, bytes);
  return p;
}

const entry = (dtype: string, shape: unknown[], begin: unknown, end: unknown) => ({ dtype, shape, data_offsets: [begin, end] });
const header = (o: unknown) => JSON.stringify(o);

describe('malformed safetensors files', () => {
  const cases: [string, () => Uint8Array | string, string?][] = [
    ['empty file', () => new Uint8Array(0), 'too small'],
    ['truncated length prefix', () => new Uint8Array([8, 0, 0]), 'too small'],
    ['header length past end', () => rawSafetensors('{}', new Uint8Array(0), 3n), 'past the end'],
    ['header length huge (2^63)', () => rawSafetensors('{}', new Uint8Array(0), 1n << 63n), 'exceeds'],
    ['header length all ones', () => rawSafetensors('{}', new Uint8Array(0), (1n << 64n) - 1n), 'exceeds'],
    ['header length over 100 MB', () => rawSafetensors('{}', new Uint8Array(0), 100n * 1024n * 1024n + 1n), 'exceeds'],
    ['zero-length header', () => rawSafetensors('', new Uint8Array(4)), 'JSON'],
    ['non-JSON header', () => rawSafetensors('not json at all'), 'invalid JSON'],
    ['truncated JSON header', () => rawSafetensors('{"a": {"dtype": "F32", "sha'), 'invalid JSON'],
    ['header is an array', () => rawSafetensors('[1,2]'), 'not an object'],
    ['trailing garbage after header JSON', () => rawSafetensors('{} x'), 'invalid JSON'],
    ['NUL padding', () => rawSafetensors('{}\0\0\0\0\0\0'), 'invalid JSON'],
    ['trailing comma', () => rawSafetensors('{"__metadata__": {"a": "b",}}'), 'invalid JSON'],
    ['NaN literal', () => rawSafetensors(header({ t: entry('F32', [1], 0, 4) }).replace('[1]', '[NaN]'), new Uint8Array(4)), 'invalid JSON'],
    ['invalid UTF-8 in header', () => rawSafetensors(new Uint8Array([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d])), 'UTF-8'],
    ['overlong UTF-8 in header', () => rawSafetensors(new Uint8Array([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d])), 'UTF-8'],
    ['lone surrogate escape', () => rawSafetensors('{"__metadata__": {"a": "\\ud800x"}}'), 'surrogate'],
    ['nesting too deep', () => rawSafetensors('{"__metadata__": ' + '['.repeat(100) + ']'.repeat(100) + '}'), 'deep'],
    ['unknown dtype', () => rawSafetensors(header({ t: entry('F8_E4M3', [4], 0, 4) }), new Uint8Array(4)), 'unknown dtype'],
    ['dtype not a string', () => rawSafetensors(header({ t: entry(4 as unknown as string, [1], 0, 4) }), new Uint8Array(4)), 'dtype'],
    ['missing shape', () => rawSafetensors(header({ t: { dtype: 'F32', data_offsets: [0, 4] } }), new Uint8Array(4)), 'shape'],
    ['shape/byte mismatch', () => rawSafetensors(header({ t: entry('F32', [2, 3], 0, 20) }), new Uint8Array(24)), 'does not match'],
    ['negative dimension', () => rawSafetensors(header({ t: entry('F32', [-1], 0, 4) }), new Uint8Array(4)), 'non-negative'],
    ['fractional dimension', () => rawSafetensors(header({ t: entry('F32', [1.5], 0, 4) }), new Uint8Array(4)), 'non-negative'],
    ['string dimension', () => rawSafetensors(header({ t: entry('F32', ['4'], 0, 16) }), new Uint8Array(16)), 'non-negative'],
    [
      'overflowing shape',
      () => rawSafetensors(header({ t: entry('F32', [4294967296, 4294967296, 4], 0, 16) }), new Uint8Array(16)),
      'overflows',
    ],
    [
      'shape overflowing only with the element size',
      () => rawSafetensors(header({ t: entry('F64', [2305843009213693952 /* 2^61 */], 0, 8) }), new Uint8Array(8)),
      'overflows',
    ],
    ['huge dimension beyond int64', () => rawSafetensors('{"t": {"dtype": "F32", "shape": [99999999999999999999], "data_offsets": [0, 4]}}', new Uint8Array(4)), 'non-negative'],
    ['offsets out of range', () => rawSafetensors(header({ t: entry('F32', [2], 4, 12) }), new Uint8Array(8)), 'exceed'],
    ['offsets reversed', () => rawSafetensors(header({ t: entry('F32', [0], 8, 4) }), new Uint8Array(8)), 'reversed'],
    ['negative offset', () => rawSafetensors(header({ t: entry('F32', [1], -4, 0) }), new Uint8Array(8)), 'non-negative'],
    ['offsets not a pair', () => rawSafetensors(header({ t: { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] } }), new Uint8Array(8)), 'data_offsets'],
    [
      'overlapping offsets',
      () => rawSafetensors(header({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 4, 12) }), new Uint8Array(12)),
      'overlapping',
    ],
    [
      'identical offsets',
      () => rawSafetensors(header({ a: entry('F32', [2], 0, 8), b: entry('F32', [2], 0, 8) }), new Uint8Array(8)),
      'overlapping',
    ],
    [
      'duplicate names',
      () => rawSafetensors('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', new Uint8Array(8)),
      'duplicate key',
    ],
    ['metadata value not a string', () => rawSafetensors(header({ __metadata__: { n: 1 } })), '__metadata__'],
    ['metadata not an object', () => rawSafetensors(header({ __metadata__: 'x' })), '__metadata__'],
    ['entry not an object', () => rawSafetensors(header({ t: [1, 2] })), 'not an object'],
    [
      'truncated data section',
      () => encodeSafetensors([{ name: 't', dtype: 'F32', shape: [64], data: new Float32Array(64) }]).subarray(0, 150),
      'exceed',
    ],
  ];
  for (const [name, make, mention] of cases)
    it(name, () => {
      const p = fileWith(make());
      const err = expectTypedError(() => readSafetensorsInfo(p), 'BAD_FILE', p);
      if (mention) expect(err.message).toContain(mention);
      expectTypedError(() => readTensor(p, 't'), 'BAD_FILE', p);
    });

  it('missing file, directory and empty path are IO errors naming the path', () => {
    const missing = path.join(dir, 'does-not-exist.safetensors');
    expectTypedError(() => readSafetensorsInfo(missing), 'IO_ERROR', missing);
    expectTypedError(() => readSafetensorsInfo(dir), 'IO_ERROR', dir);
    expectTypedError(() => readSafetensorsInfo(''), 'IO_ERROR');
    expectTypedError(() => readSafetensorsInfo(42 as unknown as string), 'INVALID_ARGUMENT');
    expectTypedError(() => readSafetensorsInfo(`${missing}\u0000x`), 'INVALID_ARGUMENT', 'NUL');
  });

  it('a FIFO is refused without blocking', () => {
    const fifo = path.join(dir, 'pipe.safetensors');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      return; // no mkfifo on this platform: nothing to check
    }
    expectTypedError(() => readSafetensorsInfo(fifo), 'IO_ERROR', fifo, 'regular');
  });

  it('accepts the edge cases that are valid: empty header object, empty tensors, gaps, scalar', () => {
    expect(readSafetensorsInfo(fileWith(rawSafetensors('{}'))).tensors).toEqual([]);
    expect(readSafetensorsInfo(fileWith(rawSafetensors('{"__metadata__": null}      '))).metadata).toEqual({});
    const p = fileWith(
      rawSafetensors(
        header({ e: entry('F32', [0, 5], 4, 4), s: entry('F16', [], 8, 10), a: entry('F32', [1], 0, 4) }),
        new Uint8Array([0, 0, 0x80, 0x3f, 9, 9, 9, 9, ...new Uint8Array(new Uint16Array([f32ToF16Bits(2)]).buffer), 7]),
      ),
    );
    const info = readSafetensorsInfo(p);
    expect(info.tensors.map((t) => t.name)).toEqual(['a', 'e', 's']);
    expect(Array.from(readTensor(p, 'a'))).toEqual([1]);
    expect(Array.from(readTensor(p, 's'))).toEqual([2]);
    expect(readTensor(p, 'e').length).toBe(0);
  });
});

describe('malformed checkpoint directories', () => {
  const good = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: [1, 2] }]);
  function makeCk(indexBody: unknown, shards: Record<string, Uint8Array> = { 'a.safetensors': good }) {
    const ck = path.join(dir, `ck-${counter++}`);
    mkdirSync(ck, { recursive: true });
    for (const [n, b] of Object.entries(shards)) writeFileSync(path.join(ck, n), b);
    const index = path.join(ck, 'model.safetensors.index.json');
    writeFileSync(index, typeof indexBody === 'string' ? indexBody : JSON.stringify(indexBody));
    return { ck, index };
  }

  const traversal = ['../a.safetensors', '/etc/passwd', 'sub/a.safetensors', 'a\\b.safetensors', '..', '.', '', 'a\u0000.safetensors', 'x'.repeat(300)];
  for (const shard of traversal)
    it(`rejects shard name ${JSON.stringify(shard).slice(0, 40)}`, () => {
      const { ck, index } = makeCk({ weight_map: { w: shard } });
      expectTypedError(() => checkpointNames(ck), 'BAD_FILE', index, 'shard');
    });

  it('a traversal entry is rejected even when the traversed file exists', () => {
    const outer = makeCk({ weight_map: { w: 'a.safetensors' } });
    const { ck, index } = makeCk({ weight_map: { w: `../${path.basename(outer.ck)}/a.safetensors` } });
    expectTypedError(() => checkpointNames(ck), 'BAD_FILE', index);
  });

  it('missing shard is an IO error naming the index and the shard', () => {
    const { ck, index } = makeCk({ weight_map: { w: 'a.safetensors', v: 'b.safetensors' } });
    expectTypedError(() => checkpointNames(ck), 'IO_ERROR', index, 'b.safetensors');
  });

  it('a tensor listed in the index but absent from its shard is BAD_FILE', () => {
    const { ck, index } = makeCk({ weight_map: { w: 'a.safetensors', missing: 'a.safetensors' } });
    expectTypedError(() => checkpointNames(ck), 'BAD_FILE', index, 'missing');
  });

  it('a corrupt shard is BAD_FILE naming the shard', () => {
    const { ck } = makeCk({ weight_map: { w: 'a.safetensors' } }, { 'a.safetensors': rawSafetensors('{oops') });
    expectTypedError(() => checkpointNames(ck), 'BAD_FILE', path.join(ck, 'a.safetensors'));
  });

  const badIndexes: [string, unknown][] = [
    ['not JSON', '{"weight_map": '],
    ['not an object', '[]'],
    ['no weight_map', { metadata: {} }],
    ['weight_map not an object', { weight_map: ['a.safetensors'] }],
    ['empty weight_map', { weight_map: {} }],
    ['shard not a string', { weight_map: { w: 3 } }],
  ];
  for (const [name, body] of badIndexes)
    it(`index ${name}`, () => {
      const { ck, index } = makeCk(body);
      expectTypedError(() => checkpointNames(ck), 'BAD_FILE', index);
    });

  it('a directory with neither weights file, or no directory at all, is IO_ERROR', () => {
    const empty = path.join(dir, `empty-${counter++}`);
    mkdirSync(empty);
    expectTypedError(() => checkpointNames(empty), 'IO_ERROR', empty);
    expectTypedError(() => checkpointNames(path.join(dir, 'nope')), 'IO_ERROR', 'nope');
    const file = fileWith(good);
    expectTypedError(() => checkpointNames(file), 'IO_ERROR', file);
  });
});

describe('random mutations of valid files', () => {
  // A small valid file with every float dtype and metadata.
  const base = encodeSafetensors(
    [
      { name: 'model.layers.0.w', dtype: 'F32', shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 7) },
      { name: 'model.layers.0.h', dtype: 'F16', shape: [5], data: [1, 2, 3, 4, 5] },
      { name: 'b', dtype: 'BF16', shape: [2, 2], data: [0.5, -1, 2, 3] },
      { name: 'i', dtype: 'I32', shape: [2], data: Int32Array.from([1, 2]) },
      { name: 'z', dtype: 'F32', shape: [0], data: [] },
    ],
    { format: 'pt' },
  );
  const headerLen = Number(new DataView(base.buffer).getBigUint64(0, true));

  function mutate(rng: () => number): Uint8Array {
    const kind = Math.floor(rng() * 6);
    const b = Uint8Array.from(base);
    const at = (limit: number) => Math.floor(rng() * limit);
    const inHeader = () => 8 + at(headerLen);
    switch (kind) {
      case 0: // flip bits of one header byte
        b[inHeader()] ^= 1 << at(8);
        return b;
      case 1: // replace a few header bytes with structural characters or digits
        for (let k = 0; k < 1 + at(3); k++) b[inHeader()] = '{}[]",:0123456789-e. \\u'.charCodeAt(at(23));
        return b;
      case 2: // truncate anywhere
        return b.subarray(0, at(b.length));
      case 3: // corrupt the length prefix
        b[at(8)] = at(256);
        return b;
      case 4: // random byte anywhere (data bytes must be harmless)
        b[at(b.length)] = at(256);
        return b;
      default: {
        // duplicate a slice of the header inside itself (keys, offsets, brackets)
        const s = 8 + at(headerLen);
        const len = 1 + at(12);
        const out = new Uint8Array(b.length + len);
        out.set(b.subarray(0, s + len), 0);
        out.set(b.subarray(s, s + len), s + len);
        out.set(b.subarray(s + len), s + 2 * len);
        return out.subarray(0, b.length + len);
      }
    }
  }

  const mem = tempDir('mutate', true);
  afterAll(mem.cleanup);

  it('only typed errors or success over thousands of mutations (time-bounded)', () => {
    let seed = 12345;
    const rng = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 4294967296;
    };
    const p = path.join(mem.dir, 'mutant.safetensors');
    const deadline = Date.now() + 2000;
    let ok = 0;
    let rejected = 0;
    let iterations = 0;
    const codes = new Set<string>();
    for (; iterations < 5000 && Date.now() < deadline; iterations++) {
      writeFileSync(p, mutate(rng));
      try {
        const info = readSafetensorsInfo(p);
        for (const t of info.tensors) {
          if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') continue;
          const v = readTensor(p, t.name);
          expect(v.length * (t.dtype === 'F32' ? 4 : 2)).toBe(t.nbytes);
        }
        ok++;
      } catch (e) {
        if (!(e instanceof BayesLoraError)) throw e;
        codes.add(e.code);
        expect(e.message).toContain(p);
        rejected++;
      }
    }
    expect([...codes].filter((c) => c !== 'BAD_FILE')).toEqual([]);
    expect(iterations).toBeGreaterThan(500);
    expect(rejected).toBeGreaterThan(iterations / 4);
    expect(ok).toBeGreaterThan(0); // data-byte mutations leave the file valid
  });

  it('mutated shard indexes fail typed too', () => {
    const ck = path.join(dir, 'mutck');
    makeTinyCheckpoint(ck, { shards: 2, layers: 1, hidden: 8, heads: 2, vocab: 16, intermediate: 8 });
    const index = path.join(ck, 'model.safetensors.index.json');
    const text = Buffer.from(JSON.stringify(JSON.parse(readFileSync(index, 'utf8'))));
    let seed = 99;
    const rng = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 4294967296;
    };
    const codes = new Set<string>();
    for (let i = 0; i < 300; i++) {
      const b = Buffer.from(text);
      b[Math.floor(rng() * b.length)] = '{}[]",:./\\'.charCodeAt(Math.floor(rng() * 10));
      writeFileSync(index, b);
      try {
        const names = checkpointNames(ck);
        if (names.length) readCheckpointTensor(ck, names[0]);
      } catch (e) {
        if (!(e instanceof BayesLoraError)) throw e;
        codes.add(e.code);
      }
    }
    expect([...codes].every((c) => c === 'BAD_FILE' || c === 'IO_ERROR')).toBe(true);
    expect(codes.has('BAD_FILE')).toBe(true);
  });
});
