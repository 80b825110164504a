// Causal attention (key padding, grouped-query heads): forward vs the float64
// reference, backward vs finite differences of L = sum(out * R), accumulation,
// padding semantics and argument errors.
import { describe, expect, it } from 'vitest';
import { attentionBwd, attentionFwd, attentionSavedFloats } from '../../ts/kernels.ts';
import { info } from '../../ts/info.ts';
import {
  type AttnDims,
  Rng,
  add,
  attentionRef,
  dot,
  expectClose,
  expectError,
  expectGradClose,
  f64,
  fdGrad,
  fdGradAt,
} from '../helpers/reference.ts';

// Forward tolerance: outputs are convex combinations of O(1) values; float32
// dot products of length hd and the softmax carry ~1e-6 error at these sizes,
// so 2e-5 absolute (plus 2e-5 relative) is ~10x headroom while a wrong mask
// or softmax gives O(0.1) errors.
const FWD = { atol: 2e-5, rtol: 2e-5 };

function inputs(s: AttnDims, seed: number) {
  const r = new Rng(seed);
  return {
    q: r.f32(s.B * s.T * s.H * s.hd),
    k: r.f32(s.B * s.T * s.Hkv * s.hd),
    v: r.f32(s.B * s.T * s.Hkv * s.hd),
    R: r.f32(s.B * s.T * s.H * s.hd),
  };
}

/** Full check of one configuration: forward, saved probabilities, FD gradients. */
function checkAttention(s: AttnDims, mask: Uint8Array | undefined, seed: number) {
  const { q, k, v, R } = inputs(s, seed);
  const scale = 1 / Math.sqrt(s.hd);
  const { out, saved } = attentionFwd({ ...s, q, k, v, mask, scale });
  const ref = attentionRef(q, k, v, mask, s, scale);
  expectClose(out, ref.out, FWD, 'out');
  // The CPU backend saves the probabilities themselves.
  expectClose(saved, ref.probs, { atol: 1e-6, rtol: 1e-5 }, 'probs');

  const g = attentionBwd({ ...s, dout: R, saved, q, k, v, mask, scale });
  const qd = f64(q);
  const kd = f64(k);
  const vd = f64(v);
  const L = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => dot(attentionRef(qq, kk, vv, mask, s, scale).out, R);
  expectGradClose(g.dq, fdGrad((x) => L(x, kd, vd), qd), 'dq');
  expectGradClose(g.dk, fdGrad((x) => L(qd, x, vd), kd), 'dk');
  expectGradClose(g.dv, fdGrad((x) => L(qd, kd, x), vd), 'dv');
  return { out, saved, g };
}

function padMask(B: number, T: number, real: Array<[number, number]>): Uint8Array {
  // real[b] = [first, end): positions that hold tokens
  const m = new Uint8Array(B * T);
  real.forEach(([a, e], b) => {
    for (let t = a; t < e; t++) m[b * T + t] = 1;
  });
  return m;
}

describe('attention', () => {
  it('multi-head, no padding: forward and gradients', () => {
    checkAttention({ B: 2, T: 5, H: 2, Hkv: 2, hd: 4 }, undefined, 1);
  });

  it('grouped-query heads (H=4, Hkv=2) and multi-query (Hkv=1)', () => {
    checkAttention({ B: 2, T: 4, H: 4, Hkv: 2, hd: 4 }, undefined, 2);
    checkAttention({ B: 1, T: 5, H: 3, Hkv: 1, hd: 6 }, undefined, 3);
  });

  it('left padding: padded queries output zero and get no gradient', () => {
    const s = { B: 2, T: 6, H: 2, Hkv: 1, hd: 4 };
    const mask = padMask(2, 6, [
      [2, 6],
      [0, 6],
    ]);
    const { out, g } = checkAttention(s, mask, 4);
    for (const t of [0, 1])
      for (let j = 0; j < s.H * s.hd; j++) {
        expect(out[t * s.H * s.hd + j]).toBe(0);
        expect(g.dq[t * s.H * s.hd + j]).toBe(0);
      }
    // Padded keys receive no gradient either.
    for (const t of [0, 1]) for (let j = 0; j < s.Hkv * s.hd; j++) expect(g.dk[t * s.Hkv * s.hd + j]).toBe(0);
  });

  it('right padding', () => {
    const s = { B: 2, T: 6, H: 2, Hkv: 2, hd: 4 };
    const mask = padMask(2, 6, [
      [0, 4],
      [0, 2],
    ]);
    const { out } = checkAttention(s, mask, 5);
    for (let t = 4; t < 6; t++) for (let j = 0; j < s.H * s.hd; j++) expect(out[t * s.H * s.hd + j]).toBe(0);
  });

  it('padding inside and across 8-key blocks (the vector softmax path and its tail)', () => {
    // T = 21: rows see 1..21 keys, so the 8-lane loop, its masked lanes and
    // the scalar tail all run; a wrong lane mask shows up as O(0.1) errors.
    const s = { B: 3, T: 21, H: 2, Hkv: 1, hd: 4 };
    const mask = padMask(3, 21, [
      [5, 21], // left padding: the first block holds padded and real keys
      [0, 13], // right padding
      [0, 21],
    ]);
    // Holes in the third example: padded keys between real ones (a real query
    // must skip them in the max, the exponentials and the sum).
    for (const t of [1, 6, 9, 10, 17]) mask[2 * 21 + t] = 0;
    const { out, saved } = checkAttention(s, mask, 11);
    for (let t = 0; t < 5; t++) for (let j = 0; j < s.H * s.hd; j++) expect(out[t * s.H * s.hd + j]).toBe(0);
    // Padded keys get probability exactly 0 in every row of every head.
    for (let b = 0; b < 3; b++)
      for (let h = 0; h < s.H; h++)
        for (let t = 0; t < s.T; t++)
          for (let u = 0; u < s.T; u++)
            if (!mask[b * s.T + u] || u > t) expect(saved[((b * s.H + h) * s.T + t) * s.T + u]).toBe(0);
  });

  it('a left-padded sequence gives the same outputs as the unpadded one', () => {
    const s = { B: 1, T: 7, H: 2, Hkv: 1, hd: 8 };
    const pad = 3;
    const short = { ...s, T: s.T - pad };
    const { q, k, v } = inputs(short, 6);
    const shift = (a: Float32Array, w: number) => {
      const r = new Float32Array(s.T * w);
      r.set(a, pad * w);
      return r;
    };
    const mask = padMask(1, s.T, [[pad, s.T]]);
    const scale = 0.3;
    const a = attentionFwd({ ...short, q, k, v, scale }).out;
    const b = attentionFwd({ ...s, q: shift(q, s.H * s.hd), k: shift(k, s.hd), v: shift(v, s.hd), mask, scale }).out;
    expectClose(b.subarray(pad * s.H * s.hd), a, { atol: 1e-6, rtol: 1e-6 }, 'padded vs unpadded');
  });

  it('queries with no visible key (and fully padded examples) output zero', () => {
    const s = { B: 2, T: 4, H: 2, Hkv: 2, hd: 4 };
    const mask = padMask(2, 4, [
      [0, 0], // every token padded
      [3, 4], // queries 0..2 see no key
    ]);
    const { out, g } = checkAttention(s, mask, 7);
    for (let i = 0; i < (4 + 3) * s.H * s.hd; i++) expect(out[i]).toBe(0);
    for (let i = 0; i < 4 * s.H * s.hd; i++) expect(g.dq[i]).toBe(0);
  });

  it('sequences longer than the 64-row causal tile: gradients across tiles', () => {
    // A full finite-difference sweep at T = 70 costs seconds in JS, so the
    // check samples coordinates: every entry of rows 62..66 (both sides of the
    // tile boundary), the last row, and random others.
    const s = { B: 1, T: 70, H: 2, Hkv: 1, hd: 2 };
    const mask = padMask(1, s.T, [[3, 68]]);
    const { q, k, v, R } = inputs(s, 12);
    const scale = 0.7;
    const { out, saved } = attentionFwd({ ...s, q, k, v, mask, scale });
    expectClose(out, attentionRef(q, k, v, mask, s, scale).out, FWD, 'out');
    const g = attentionBwd({ ...s, dout: R, saved, q, k, v, mask, scale });
    const qd = f64(q);
    const kd = f64(k);
    const vd = f64(v);
    const L = (qq: Float64Array, kk: Float64Array, vv: Float64Array) => dot(attentionRef(qq, kk, vv, mask, s, scale).out, R);
    const rng = new Rng(13);
    const pick = (width: number) => {
      const idx = new Set<number>();
      for (const t of [62, 63, 64, 65, 66, 69]) for (let j = 0; j < width; j++) idx.add(t * width + j);
      while (idx.size < 60) idx.add(rng.int(0, s.T * width - 1));
      return [...idx];
    };
    const at = (a: Float32Array, idx: number[]) => idx.map((i) => a[i]);
    const iq = pick(s.H * s.hd);
    const ik = pick(s.Hkv * s.hd);
    expectGradClose(at(g.dq, iq), fdGradAt((x) => L(x, kd, vd), qd, iq), 'dq');
    expectGradClose(at(g.dk, ik), fdGradAt((x) => L(qd, x, vd), kd, ik), 'dk');
    expectGradClose(at(g.dv, ik), fdGradAt((x) => L(qd, kd, x), vd, ik), 'dv');
  });

  it('larger shape: forward against the reference (several causal tiles)', () => {
    const s = { B: 2, T: 137, H: 4, Hkv: 2, hd: 24 };
    const { q, k, v } = inputs(s, 8);
    const mask = padMask(2, 137, [
      [5, 137],
      [0, 100],
    ]);
    const { out, saved } = attentionFwd({ ...s, q, k, v, mask, scale: 1 / Math.sqrt(s.hd) });
    const ref = attentionRef(q, k, v, mask, s, 1 / Math.sqrt(s.hd));
    expectClose(out, ref.out, FWD, 'out');
    expect(saved.length).toBe(attentionSavedFloats(s));
    // every real query row of P is a probability distribution
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < 4; h++)
        for (let t = 0; t < 137; t++) {
          let z = 0;
          for (let u = 0; u < 137; u++) z += saved[((b * 4 + h) * 137 + t) * 137 + u];
          expect(z).toBeCloseTo(mask[b * 137 + t] ? 1 : 0, 5);
        }
  });

  it('backward accumulates into dq, dk, dv', () => {
    const s = { B: 2, T: 5, H: 4, Hkv: 2, hd: 4 };
    const { q, k, v, R } = inputs(s, 9);
    const mask = padMask(2, 5, [
      [1, 5],
      [0, 4],
    ]);
    const scale = 0.5;
    const { saved } = attentionFwd({ ...s, q, k, v, mask, scale });
    const fresh = attentionBwd({ ...s, dout: R, saved, q, k, v, mask, scale });
    const r = new Rng(10);
    const dq = r.f32(q.length);
    const dk = r.f32(k.length);
    const dv = r.f32(v.length);
    const dqBefore = dq.slice();
    const acc = attentionBwd({ ...s, dout: R, saved, q, k, v, mask, scale, dq, dk, dv });
    const tol = { atol: 1e-6, rtol: 1e-6 };
    expectClose(acc.dq, add(dq, fresh.dq), tol, 'dq');
    expectClose(acc.dk, add(dk, fresh.dk), tol, 'dk');
    expectClose(acc.dv, add(dv, fresh.dv), tol, 'dv');
    // the caller's arrays are not modified (the binding copies in and out)
    expect(dq).toEqual(dqBefore);
  });

  it('rejects bad arguments with typed errors', () => {
    const s = { B: 1, T: 3, H: 4, Hkv: 2, hd: 4 };
    const { q, k, v } = inputs(s, 11);
    const ok = { ...s, q, k, v, scale: 0.5 };
    expect(() => attentionFwd(ok)).not.toThrow();
    expectError(() => attentionFwd({ ...ok, Hkv: 3 }), 'INVALID_ARGUMENT');
    expectError(() => attentionFwd({ ...ok, q: q.subarray(1) }), 'SHAPE_MISMATCH');
    expectError(() => attentionFwd({ ...ok, k: new Float32Array(k.length + 4) }), 'SHAPE_MISMATCH');
    expectError(() => attentionFwd({ ...ok, mask: new Uint8Array(2) }), 'SHAPE_MISMATCH');
    expectError(() => attentionFwd({ ...ok, mask: Uint8Array.from([1, 2, 1]) }), 'INVALID_ARGUMENT');
    expectError(() => attentionFwd({ ...ok, T: 0 }), 'INVALID_ARGUMENT');
    expectError(() => attentionFwd({ ...ok, T: 2.5 }), 'INVALID_ARGUMENT');
    expectError(() => attentionFwd({ ...ok, scale: NaN }), 'INVALID_ARGUMENT');
    expectError(() => attentionFwd({ ...ok, q: new Float64Array(q.length) as unknown as Float32Array }), 'INVALID_ARGUMENT');
    // an output sized from small inputs cannot request an unbounded allocation
    expectError(() => attentionFwd({ ...ok, B: 1, T: 1 << 20, H: 1 << 10, Hkv: 1 }), 'INVALID_ARGUMENT');
    const { saved } = attentionFwd(ok);
    expectError(() => attentionBwd({ ...ok, dout: q, saved: saved.subarray(1) }), 'SHAPE_MISMATCH');
    expectError(() => attentionBwd({ ...ok, dout: q, saved, dk: new Float32Array(3) }), 'SHAPE_MISMATCH');
    expectError(() => attentionFwd({ ...ok, backend: 'tpu' as 'cpu' }), 'INVALID_ARGUMENT');
    if (!info().backends.split(',').includes('cuda')) expectError(() => attentionFwd({ ...ok, backend: 'cuda' }), 'UNSUPPORTED');
  });
});
