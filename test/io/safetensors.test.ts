// Safetensors round trips between the pure-TS writer/reader and the native
// reader/writer, f16/bf16 rounding exactness, checkpoint directories (single
// and sharded, HF layout from makeTinyCheckpoint), and writer argument checks.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  decodeSafetensors,
  encodeSafetensors,
  f16BitsToF32,
  f32Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
  readSafetensorsFile,
  writeSafetensorsFile,
} from '../../ts/io/safetensors.ts';
import {
  checkpointNames,
  readCheckpointTensor,
  readSafetensorsInfo,
  readTensor,
  writeSafetensors,
} from '../../ts/io/native-io.ts';
import { makeTinyCheckpoint, tinyConfig, tinyTensors } from '../helpers/tiny-checkpoint.ts';
import { expectTypedError, rawSafetensors, tempDir } from './helpers.ts';

const { dir, cleanup } = tempDir('st');
afterAll(cleanup);

// ---- independent float64 reference for rounding onto the f16 / bf16 grids ----------------

// All finite non-negative f16 values in increasing order (index = bit pattern).
const F16_GRID = Array.from({ length: 0x7c00 }, (_, h) => (h < 0x400 ? h * 2 ** -24 : (1 + (h & 0x3ff) / 1024) * 2 ** ((h >> 10) - 15)));
const F16_MAX = F16_GRID[0x7bff];

/** Round-to-nearest-even of |x| onto a sorted grid of bit patterns 0..n-1; `overflowAt` is where inf begins. */
function roundRef(x: number, grid: number[], infBits: number, overflowAt: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= overflowAt) return sign | infBits;
  let lo = 0;
  let hi = grid.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (grid[mid] <= a) lo = mid;
    else hi = mid;
  }
  if (a >= grid[hi]) return sign | hi;
  const dl = a - grid[lo];
  const dh = grid[hi] - a;
  if (dl < dh) return sign | lo;
  if (dh < dl) return sign | hi;
  return sign | (lo % 2 === 0 ? lo : hi);
}
// A value rounds to inf once it reaches max + half an ulp (65520 for f16).
const f16Ref = (x: number) => roundRef(x, F16_GRID, 0x7c00, F16_MAX + 2 ** (15 - 11));

// bf16: the grid is the f32 values whose low 16 bits are zero; positive finite patterns 0..0x7f7f.
const BF16_GRID = Array.from({ length: 0x7f80 }, (_, h) => bf16BitsToF32(h));
const bf16Ref = (x: number) => roundRef(x, BF16_GRID, 0x7f80, BF16_GRID[0x7f7f] + 2 ** (127 - 8));

/** Count of positions where got[i] is not exactly (Object.is) want(i). */
function mismatches(got: Float32Array, want: (i: number) => number): number {
  let n = 0;
  for (let i = 0; i < got.length; i++) if (!Object.is(got[i], want(i))) n++;
  return n;
}

function nextUp(x: number): number {
  const u = f32Bits(x);
  const f = new Float32Array(new Uint32Array([x >= 0 ? u + 1 : u - 1]).buffer);
  return f[0];
}
function nextDown(x: number): number {
  return -nextUp(-x);
}

/** Hard cases: every f16 value, midpoints between neighbours and their f32 neighbours, specials. */
function hardF16Cases(): number[] {
  const out: number[] = [0, -0, Infinity, -Infinity, 65504, 65519.99, 65520, 65536, 1e-8, 2 ** -25, 2 ** -26, 3 * 2 ** -26];
  for (let h = 0; h < 0x7c00; h += 1) {
    const v = F16_GRID[h];
    out.push(v, -v);
    if (h + 1 < 0x7c00) {
      const m = (v + F16_GRID[h + 1]) / 2; // exact in f32
      out.push(m, nextUp(m), nextDown(m), -m);
    }
  }
  return out;
}

function hardBf16Cases(): number[] {
  const out: number[] = [0, -0, Infinity, -Infinity, 3.4028234663852886e38, 1e-40, 1e-45];
  for (let h = 0; h < 0x7f80; h += 37) {
    const v = BF16_GRID[h];
    out.push(v, -v);
    if (h + 1 < 0x7f80) {
      const m = (v + BF16_GRID[h + 1]) / 2;
      out.push(m, nextUp(m), nextDown(m), -m);
    }
  }
  out.push(BF16_GRID[0x7f7f] + 2 ** (127 - 8), nextDown(Math.fround(BF16_GRID[0x7f7f] + 2 ** (127 - 8))));
  return out.map((x) => Math.fround(x));
}

describe('TS scalar conversions', () => {
  it('f32 -> f16 matches a float64 round-to-nearest-even reference on every hard case', () => {
    let bad = 0;
    for (const x of hardF16Cases()) {
      const xf = Math.fround(x);
      if (f32ToF16Bits(xf) !== f16Ref(xf)) bad++;
    }
    expect(bad).toBe(0);
  });
  it('f16 bits round-trip through f32 exactly and NaN stays NaN', () => {
    let bad = 0;
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) {
        if (!((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0)) bad++;
        if (!Number.isNaN(f16BitsToF32(f32ToF16Bits(v)))) bad++;
      } else if (f32ToF16Bits(v) !== h) {
        bad++;
      }
    }
    expect(bad).toBe(0);
  });
  it('f32 -> bf16 matches the reference and bf16 round-trips', () => {
    let bad = 0;
    for (const x of hardBf16Cases()) if (f32ToBf16Bits(x) !== bf16Ref(x)) bad++;
    expect(bad).toBe(0);
    for (let h = 0; h < 0x10000; h++) {
      const v = bf16BitsToF32(h);
      if (!Number.isNaN(v) ? f32ToBf16Bits(v) !== h : !Number.isNaN(bf16BitsToF32(f32ToBf16Bits(v)))) bad++;
    }
    expect(bad).toBe(0);
  });
});

describe('round trips between the TS and native implementations', () => {
  const f16cases = Float32Array.from(hardF16Cases());
  const bf16cases = Float32Array.from(hardBf16Cases());
  const ints = Int32Array.from([0, 1, -1, 2147483647, -2147483648, 12345]);

  it('TS writer -> native reader: exact values, shapes, metadata, offset order', () => {
    const p = path.join(dir, 'ts-written.safetensors');
    const f32v = Float32Array.from([1.5, -2.25, 3.4028234663852886e38, 1e-45, -0, 7]);
    writeSafetensorsFile(
      p,
      [
        { name: 'half', dtype: 'F16', shape: [f16cases.length], data: f16cases },
        { name: 'brain', dtype: 'BF16', shape: [bf16cases.length], data: bf16cases },
        { name: 'full', dtype: 'F32', shape: [2, 3], data: f32v },
        { name: 'ids', dtype: 'I32', shape: [6], data: ints },
        { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
        { name: 'scalar', dtype: 'F32', shape: [], data: [0.25] },
      ],
      { format: 'pt', note: 'q"uote\\ \u00e9 \ud83d\ude00 \n' },
    );
    const info = readSafetensorsInfo(p);
    expect(info.metadata).toEqual({ format: 'pt', note: 'q"uote\\ \u00e9 \ud83d\ude00 \n' });
    const byName = Object.fromEntries(info.tensors.map((t) => [t.name, t]));
    expect(byName.full).toEqual({ name: 'full', dtype: 'F32', shape: [2, 3], nbytes: 24 });
    expect(byName.empty.shape).toEqual([0, 4]);
    expect(byName.scalar.shape).toEqual([]);
    expect(byName.ids.dtype).toBe('I32');
    // Element size order (F32/I32 before F16/BF16) keeps everything aligned.
    expect(info.tensors.findIndex((t) => t.dtype === 'F16')).toBeGreaterThan(info.tensors.findIndex((t) => t.name === 'ids'));
    expect(Array.from(readTensor(p, 'full'))).toEqual(Array.from(f32v));
    expect(Object.is(readTensor(p, 'full')[4], -0)).toBe(true);
    const half = readTensor(p, 'half');
    expect(half.length).toBe(f16cases.length);
    expect(mismatches(half, (i) => f16BitsToF32(f16Ref(f16cases[i])))).toBe(0);
    const brain = readTensor(p, 'brain');
    expect(mismatches(brain, (i) => bf16BitsToF32(bf16Ref(bf16cases[i])))).toBe(0);
    expect(readTensor(p, 'empty').length).toBe(0);
    expect(Array.from(readTensor(p, 'scalar'))).toEqual([0.25]);
    expectTypedError(() => readTensor(p, 'ids'), 'UNSUPPORTED', 'ids');
    expectTypedError(() => readTensor(p, 'nope'), 'BAD_FILE', p, 'nope');
  });

  it('native writer -> TS reader: identical bits, including NaN/inf and rounding', () => {
    const p = path.join(dir, 'native-written.safetensors');
    const specials = Float32Array.from([NaN, Infinity, -Infinity, 0, -0]);
    writeSafetensors(
      p,
      [
        { name: 'half', dtype: 'F16', shape: [f16cases.length], data: f16cases },
        { name: 'brain', dtype: 'BF16', shape: [bf16cases.length], data: bf16cases },
        { name: 'special16', dtype: 'F16', shape: [5], data: specials },
        { name: 'specialbf', dtype: 'BF16', shape: [5], data: specials },
        { name: 'full', dtype: 'F32', shape: [5], data: specials },
        { name: 'ids', dtype: 'I32', shape: [2, 3], data: ints },
      ],
      { who: 'native' },
    );
    const bytes = readFileSync(p);
    const hlen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(hlen % 8).toBe(0); // header padded so data starts 8-aligned
    expect(bytes[8 + hlen - 1] === 0x7d || bytes[8 + hlen - 1] === 0x20).toBe(true); // '}' or space padding
    const dec = readSafetensorsFile(p);
    expect(dec.metadata).toEqual({ who: 'native' });
    const t = Object.fromEntries(dec.tensors.map((x) => [x.name, x]));
    // Bits of what the native writer stored, recovered from the raw file.
    const raw16 = (name: string) => {
      const header = JSON.parse(bytes.subarray(8, 8 + hlen).toString('utf8'));
      const [b, e] = header[name].data_offsets;
      const dv = new DataView(bytes.buffer, bytes.byteOffset + 8 + hlen + b, e - b);
      return Array.from({ length: (e - b) / 2 }, (_, i) => dv.getUint16(2 * i, true));
    };
    const diff = (a: number[], b: number[]) => (a.length !== b.length ? -1 : a.filter((v, i) => v !== b[i]).length);
    const half = raw16('half');
    expect(diff(half, Array.from(f16cases, (x) => f16Ref(x)))).toBe(0);
    expect(diff(half, Array.from(f16cases, (x) => f32ToF16Bits(x)))).toBe(0);
    expect(diff(raw16('brain'), Array.from(bf16cases, (x) => f32ToBf16Bits(x)))).toBe(0);
    expect(raw16('special16')).toEqual(Array.from(specials, (x) => f32ToF16Bits(x)));
    expect(raw16('specialbf')).toEqual(Array.from(specials, (x) => f32ToBf16Bits(x)));
    expect(Number.isNaN(t.full.data[0])).toBe(true);
    expect(Array.from(t.full.data).slice(1)).toEqual([Infinity, -Infinity, 0, -0]);
    expect(t.ids.dtype).toBe('I32');
    expect(t.ids.shape).toEqual([2, 3]);
    expect(Array.from(t.ids.data)).toEqual(Array.from(ints));
    // And back through the native reader.
    expect(mismatches(readTensor(p, 'half'), (i) => t.half.data[i])).toBe(0);
  });

  it('TS encoder output is byte-identical to the native writer for the same tensors', () => {
    const p = path.join(dir, 'same.safetensors');
    const a = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 3);
    const ts = [
      { name: 'w', dtype: 'BF16' as const, shape: [4, 6], data: a },
      { name: 'b', dtype: 'F32' as const, shape: [24], data: a },
      { name: 'h', dtype: 'F16' as const, shape: [2, 12], data: a },
    ];
    writeSafetensors(p, ts, { format: 'pt' });
    const nat = readFileSync(p);
    const mine = encodeSafetensors(ts, { format: 'pt' });
    expect(decodeSafetensors(nat).tensors.map((t) => t.name)).toEqual(decodeSafetensors(mine).tensors.map((t) => t.name));
    // Same data section bytes (the header may differ only in JSON key spelling/order).
    const dataOf = (b: Uint8Array) => {
      const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
      return Buffer.from(b.subarray(8 + n));
    };
    expect(dataOf(nat).equals(dataOf(mine))).toBe(true);
  });

  it('reads files whose tensors are not naturally aligned (unpadded header, odd offsets)', () => {
    // Header of odd length, a U8 tensor of 3 bytes, then an F32 and an F16 at odd offsets.
    const vals = [1.5, -2, 1e-3];
    const data = new Uint8Array(3 + 12 + 4);
    data.set([7, 8, 9], 0);
    const dv = new DataView(data.buffer);
    vals.forEach((v, i) => dv.setFloat32(3 + 4 * i, v, true));
    dv.setUint16(15, f32ToF16Bits(0.5), true);
    dv.setUint16(17, f32ToF16Bits(-3), true);
    let header = JSON.stringify({
      u: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
      f: { dtype: 'F32', shape: [3], data_offsets: [3, 15] },
      h: { dtype: 'F16', shape: [2], data_offsets: [15, 19] },
    });
    if (header.length % 2 === 0) header += ' ';
    const p = path.join(dir, 'misaligned.safetensors');
    writeFileSync(p, rawSafetensors(header, data));
    expect(Array.from(readTensor(p, 'f'))).toEqual(vals.map(Math.fround));
    expect(Array.from(readTensor(p, 'h'))).toEqual([0.5, -3]);
    expect(readSafetensorsInfo(p).tensors.map((t) => t.name)).toEqual(['u', 'f', 'h']);
  });
});

describe('checkpoint directories', () => {
  for (const arch of ['llama', 'mistral', 'qwen2'] as const)
    for (const shards of [1, 3])
      it(`${arch}, ${shards} shard(s): names, shapes and values match what was written`, () => {
        const ck = path.join(dir, `${arch}-${shards}`);
        const opts = { arch, shards, layers: 2, hidden: 16, heads: 4, kvHeads: 2, vocab: 40, intermediate: 24, dtype: 'BF16' as const, seed: 7 };
        const cfg = makeTinyCheckpoint(ck, opts);
        const expected = tinyTensors(tinyConfig(opts), 7);
        expect(checkpointNames(ck)).toEqual(expected.map((t) => t.name).sort());
        const files = readdirSync(ck).sort();
        if (shards === 1) expect(files).toEqual(['config.json', 'model.safetensors']);
        else
          expect(files).toEqual([
            'config.json',
            'model-00001-of-00003.safetensors',
            'model-00002-of-00003.safetensors',
            'model-00003-of-00003.safetensors',
            'model.safetensors.index.json',
          ]);
        expect(cfg.architectures).toEqual([{ llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[arch]]);
        for (const t of expected) {
          const got = readCheckpointTensor(ck, t.name);
          expect(got.length, t.name).toBe(t.data.length);
          expect(mismatches(got, (i) => bf16BitsToF32(f32ToBf16Bits(t.data[i]))), t.name).toBe(0);
        }
        // Qwen2 has q/k/v biases, the others none; shapes per HF.
        const hasBias = expected.some((t) => t.name.endsWith('q_proj.bias'));
        expect(hasBias).toBe(arch === 'qwen2');
        const k = expected.find((t) => t.name === 'model.layers.1.self_attn.k_proj.weight')!;
        expect(k.shape).toEqual([2 * 4, 16]);
        expectTypedError(() => readCheckpointTensor(ck, 'model.layers.9.mlp.up_proj.weight'), 'BAD_FILE', ck);
      });

  it('tied embeddings omit lm_head; F32/F16 dtypes; headDim override', () => {
    const ck = path.join(dir, 'tied');
    makeTinyCheckpoint(ck, { tie: true, dtype: 'F16', headDim: 6, hidden: 16, heads: 4, kvHeads: 1 });
    const names = checkpointNames(ck);
    expect(names).not.toContain('lm_head.weight');
    expect(names).toContain('model.embed_tokens.weight');
    const info = readSafetensorsInfo(path.join(ck, 'model.safetensors'));
    const q = info.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!;
    expect(q).toMatchObject({ dtype: 'F16', shape: [24, 16] });
    const o = info.tensors.find((t) => t.name === 'model.layers.0.self_attn.o_proj.weight')!;
    expect(o.shape).toEqual([16, 24]);
    expect(info.metadata).toEqual({ format: 'pt' });
    const norm = readCheckpointTensor(ck, 'model.norm.weight');
    expect(Math.abs(norm.reduce((a, b) => a + b, 0) / norm.length - 1)).toBeLessThan(0.1);
    const emb = readCheckpointTensor(ck, 'model.embed_tokens.weight');
    const sd = Math.sqrt(emb.reduce((a, b) => a + b * b, 0) / emb.length);
    expect(sd).toBeGreaterThan(0.015);
    expect(sd).toBeLessThan(0.025);
  });

  it('same seed gives the same weights, another seed different ones', () => {
    const a = tinyTensors(tinyConfig({}), 3);
    const b = tinyTensors(tinyConfig({}), 3);
    const c = tinyTensors(tinyConfig({}), 4);
    expect(a[0].data).toEqual(b[0].data);
    expect(a[0].data).not.toEqual(c[0].data);
  });
});

describe('writer argument checks', () => {
  it('rejects bad tensors with typed errors and leaves no temp file behind', () => {
    const p = path.join(dir, 'w', 'x.safetensors');
    expectTypedError(() => writeSafetensors(p, [{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(2) }]), 'IO_ERROR', p);
    const q = path.join(dir, 'bad.safetensors');
    expectTypedError(() => writeSafetensors(q, [{ name: 'a', dtype: 'F32', shape: [3], data: new Float32Array(2) }]), 'SHAPE_MISMATCH');
    expectTypedError(
      () => writeSafetensors(q, [{ name: 'a', dtype: 'F64' as 'F32', shape: [2], data: new Float32Array(2) }]),
      'INVALID_ARGUMENT',
    );
    expectTypedError(
      () =>
        writeSafetensors(q, [
          { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(2) },
          { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array(2) },
        ]),
      'INVALID_ARGUMENT',
      'duplicate',
    );
    expectTypedError(() => writeSafetensors(q, [{ name: '', dtype: 'F32', shape: [], data: new Float32Array(1) }]), 'INVALID_ARGUMENT');
    expectTypedError(() => writeSafetensors(q, [{ name: 'a', dtype: 'I32', shape: [1], data: new Float32Array(1) as unknown as Int32Array }]), 'INVALID_ARGUMENT');
    expectTypedError(() => writeSafetensors(q, [{ name: 'a', dtype: 'F32', shape: [-1], data: new Float32Array(1) }]), 'INVALID_ARGUMENT');
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    // The TS writer checks the same things.
    expect(() => encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [3], data: [1, 2] }])).toThrow(/values for shape/);
    expect(() => encodeSafetensors([{ name: 'a', dtype: 'I32', shape: [1], data: [1.5] }])).toThrow(/32-bit integer/);
  });

  it('overwrites atomically: readers holding the old file keep valid data', () => {
    const p = path.join(dir, 'atomic.safetensors');
    writeSafetensors(p, [{ name: 'v', dtype: 'F32', shape: [3], data: Float32Array.from([1, 2, 3]) }]);
    writeSafetensors(p, [{ name: 'v', dtype: 'F32', shape: [2], data: Float32Array.from([4, 5]) }]);
    expect(Array.from(readTensor(p, 'v'))).toEqual([4, 5]);
    expect(readdirSync(dir).filter((f) => f.startsWith('atomic.safetensors.tmp'))).toEqual([]);
  });
});
