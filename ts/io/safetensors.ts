// Pure-TypeScript safetensors writer (F32/F16/BF16 with round-to-nearest-even,
// I32) and a small reader, for tests and scripts that must run without the
// native addon. The byte layout matches the native writer and Hugging Face's:
// u64 LE header length, JSON header padded with spaces to a multiple of 8,
// tensors ordered by element size (largest first) so all stay aligned.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { BayesLoraError } from '../errors.ts';

export type WriteDType = 'F32' | 'F16' | 'BF16' | 'I32';
export type ReadDType = WriteDType | 'F64' | 'I64' | 'U8';

export interface TensorToWrite {
  name: string;
  dtype: WriteDType;
  shape: readonly number[];
  /** Values; converted to `dtype` on write (floats are first rounded to f32). */
  data: Float32Array | Int32Array | readonly number[];
}

export interface ReadTensor {
  name: string;
  dtype: ReadDType;
  shape: number[];
  /** F32/F16/BF16 as Float32Array, I32 as Int32Array, other dtypes as raw little-endian bytes. */
  data: Float32Array | Int32Array | Uint8Array;
}

const MAX_HEADER = 100 * 1024 * 1024;
const DTYPE_SIZE: Record<ReadDType, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, F64: 8, I64: 8, U8: 1 };
const WRITE_DTYPES = new Set<string>(['F32', 'F16', 'BF16', 'I32']);

// ---- scalar conversions (bit-exact with cpp/core/dtype.h) ---------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of `x` as an IEEE float32 (x is first rounded to f32). */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** f32 -> f16 bits, round to nearest even; overflow -> inf; NaN stays (quiet) NaN. */
export function f32ToF16Bits(x: number): number {
  const u = f32Bits(x);
  const sign = (u >>> 16) & 0x8000;
  const e = (u >>> 23) & 0xff;
  let man = u & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const exp = e - 127 + 15;
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    // Result is a half subnormal (or zero): shift the full significand down.
    if (exp < -10) return sign;
    man |= 0x800000;
    const shift = 14 - exp;
    let half = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = sign | (exp << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // a carry may round up into inf: correct
  return half;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** f32 -> bf16 bits, round to nearest even; NaN stays (quiet) NaN. */
export function f32ToBf16Bits(x: number): number {
  const u = f32Bits(x);
  if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return Math.floor((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

// ---- writing --------------------------------------------------------------------

function invalid(msg: string): BayesLoraError {
  return new BayesLoraError('INVALID_ARGUMENT', msg);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function numelOf(name: string, shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw invalid(`tensor ${name}: shape entries must be non-negative integers`);
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw invalid(`tensor ${name}: shape element count overflows`);
  return n;
}

/** Encode tensors (and string metadata) as a safetensors file image. */
export function encodeSafetensors(tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const seen = new Set<string>();
  const sizes: number[] = [];
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name.length === 0) throw invalid('tensor name must be a non-empty string');
    if (t.name === '__metadata__') throw invalid('tensor name __metadata__ is reserved');
    if (LONE_SURROGATE.test(t.name)) throw invalid(`tensor name ${JSON.stringify(t.name)} is not valid Unicode`);
    if (seen.has(t.name)) throw invalid(`duplicate tensor name ${t.name}`);
    seen.add(t.name);
    if (!WRITE_DTYPES.has(t.dtype))
      throw invalid(`tensor ${t.name}: dtype must be F32, F16, BF16 or I32`);
    const n = numelOf(t.name, t.shape);
    if (t.data.length !== n)
      throw new BayesLoraError('SHAPE_MISMATCH', `tensor ${t.name}: ${t.data.length} values for shape [${t.shape}] (${n})`);
    sizes.push(n * DTYPE_SIZE[t.dtype]);
  }
  // Stable sort by element size, largest first (keeps every tensor aligned).
  const order = tensors.map((_, i) => i).sort((a, b) => DTYPE_SIZE[tensors[b].dtype] - DTYPE_SIZE[tensors[a].dtype] || a - b);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw invalid(`metadata value for ${k} must be a string`);
    header.__metadata__ = metadata;
  }
  let at = 0;
  for (const i of order) {
    const t = tensors[i];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [at, at + sizes[i]] };
    at += sizes[i];
  }
  let json = JSON.stringify(header);
  let hbytes = Buffer.from(json, 'utf8');
  const pad = (8 - (hbytes.length % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    hbytes = Buffer.from(json, 'utf8');
  }
  if (hbytes.length > MAX_HEADER) throw invalid('safetensors header would exceed 100 MB');
  const out = new Uint8Array(8 + hbytes.length + at);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  let p = 8 + hbytes.length;
  for (const i of order) {
    const t = tensors[i];
    const d = t.data;
    const n = d.length;
    switch (t.dtype) {
      case 'F32':
        for (let k = 0; k < n; k++, p += 4) dv.setFloat32(p, d[k], true);
        break;
      case 'F16':
        for (let k = 0; k < n; k++, p += 2) dv.setUint16(p, f32ToF16Bits(d[k]), true);
        break;
      case 'BF16':
        for (let k = 0; k < n; k++, p += 2) dv.setUint16(p, f32ToBf16Bits(d[k]), true);
        break;
      case 'I32':
        for (let k = 0; k < n; k++, p += 4) {
          const v = d[k];
          if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)
            throw invalid(`tensor ${t.name}: I32 value ${v} at ${k} is not a 32-bit integer`);
          dv.setInt32(p, v, true);
        }
        break;
    }
  }
  return out;
}

/** Write bytes atomically: temp file in the same directory, fsync, rename. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw new BayesLoraError('IO_ERROR', `${path}: write failed: ${(e as Error).message}`, { cause: e });
  }
}

export function writeSafetensorsFile(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

// ---- reading (small files, tests) -------------------------------------------------------

export interface DecodedSafetensors {
  tensors: ReadTensor[]; // in file (offset) order
  metadata: Record<string, string>;
}

/** Decode a safetensors image. Validates the structure; `origin` names it in errors. */
export function decodeSafetensors(bytes: Uint8Array, origin = 'safetensors'): DecodedSafetensors {
  const bad = (m: string) => new BayesLoraError('BAD_FILE', `${origin}: ${m}`);
  if (bytes.length < 8) throw bad('file too small for a safetensors header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER)) throw bad(`header length ${n64} exceeds the limit`);
  const n = Number(n64);
  if (n > bytes.length - 8) throw bad(`header length ${n} runs past the end of the file`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw bad(`header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad('header is not an object');
  const base = 8 + n;
  const dataLen = bytes.length - base;
  const metadata: Record<string, string> = {};
  const out: (ReadTensor & { begin: number; end: number })[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null) continue;
      if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('__metadata__ must be an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw bad(`__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw bad(`tensor ${name}: entry is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_SIZE)) throw bad(`tensor ${name}: unknown dtype ${String(e.dtype)}`);
    const dtype = e.dtype as ReadDType;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`tensor ${name}: bad shape`);
    const shape = e.shape as number[];
    const numel = shape.reduce((a, b) => a * b, 1);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`tensor ${name}: bad data_offsets`);
    const [begin, end] = off as number[];
    if (begin > end || end > dataLen) throw bad(`tensor ${name}: data offsets out of range`);
    if (end - begin !== numel * DTYPE_SIZE[dtype]) throw bad(`tensor ${name}: byte count does not match shape`);
    const p = base + begin;
    let data: Float32Array | Int32Array | Uint8Array;
    if (dtype === 'F32') {
      data = new Float32Array(numel);
      for (let k = 0; k < numel; k++) data[k] = dv.getFloat32(p + 4 * k, true);
    } else if (dtype === 'F16' || dtype === 'BF16') {
      data = new Float32Array(numel);
      const conv = dtype === 'F16' ? f16BitsToF32 : bf16BitsToF32;
      for (let k = 0; k < numel; k++) data[k] = conv(dv.getUint16(p + 2 * k, true));
    } else if (dtype === 'I32') {
      data = new Int32Array(numel);
      for (let k = 0; k < numel; k++) data[k] = dv.getInt32(p + 4 * k, true);
    } else {
      data = bytes.slice(p, p + (end - begin));
    }
    out.push({ name, dtype, shape, data, begin, end });
  }
  out.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let maxEnd = 0;
  let holder: string | undefined;
  for (const t of out) {
    if (t.end === t.begin) continue;
    if (holder !== undefined && t.begin < maxEnd) throw bad(`tensors ${holder} and ${t.name} overlap`);
    maxEnd = t.end;
    holder = t.name;
  }
  return { tensors: out.map(({ name, dtype, shape, data }) => ({ name, dtype, shape, data })), metadata };
}

export function readSafetensorsFile(path: string): DecodedSafetensors {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new BayesLoraError('IO_ERROR', `${path}: cannot read: ${(e as Error).message}`, { cause: e });
  }
  return decodeSafetensors(bytes, path);
}
