// Embedding lookup and generic row gather / scatter-add: forward vs reference,
// backward vs finite differences, accumulation with repeated indices, errors.
import { describe, expect, it } from 'vitest';
import { embeddingBwd, embeddingFwd, gatherRows, scatterAddRows } from '../../ts/kernels.ts';
import { Rng, add, dot, expectClose, expectError, expectGradClose, f64, fdGrad, gatherRowsRef } from '../helpers/reference.ts';

// Gathers are copies: exact. Scatter-adds sum a handful of float32 values.
const EXACT = { atol: 0 };
const SUM = { atol: 1e-6, rtol: 1e-6 };

describe('embedding', () => {
  const r = new Rng(21);
  const V = 11;
  const d = 7;
  const N = 9;
  const table = r.f32(V * d);
  const ids = Int32Array.from([3, 0, 10, 3, 3, 5, 0, 9, 1]); // repeats on purpose

  it('forward copies rows exactly', () => {
    expectClose(embeddingFwd({ ids, table, N, V, d }), gatherRowsRef(table, ids, d), EXACT, 'out');
  });

  it('backward matches finite differences and accumulates', () => {
    const R = r.f32(N * d);
    const fd = fdGrad((t) => dot(gatherRowsRef(t, ids, d), R), f64(table));
    const g = embeddingBwd({ ids, dout: R, N, V, d });
    expectGradClose(g, fd, 'dtable');
    const init = r.f32(V * d);
    expectClose(embeddingBwd({ ids, dout: R, N, V, d, dtable: init }), add(init, g), SUM, 'accumulated');
  });

  it('handles N = 0', () => {
    expect(embeddingFwd({ ids: new Int32Array(0), table, N: 0, V, d }).length).toBe(0);
    const init = r.f32(V * d);
    expect(embeddingBwd({ ids: new Int32Array(0), dout: new Float32Array(0), N: 0, V, d, dtable: init })).toEqual(init);
  });

  it('rejects out-of-range ids and bad sizes', () => {
    expectError(() => embeddingFwd({ ids: Int32Array.from([0, 11]), table, N: 2, V, d }), 'INVALID_ARGUMENT');
    expectError(() => embeddingFwd({ ids: Int32Array.from([-1]), table, N: 1, V, d }), 'INVALID_ARGUMENT');
    expectError(() => embeddingFwd({ ids, table, N: N + 1, V, d }), 'SHAPE_MISMATCH');
    expectError(() => embeddingFwd({ ids, table: table.subarray(1), N, V, d }), 'SHAPE_MISMATCH');
    expectError(() => embeddingBwd({ ids, dout: new Float32Array(N * d), N, V, d, dtable: new Float32Array(3) }), 'SHAPE_MISMATCH');
    expectError(() => embeddingFwd({ ids, table, N, V, d: 0 }), 'INVALID_ARGUMENT');
  });
});

describe('gather_rows / scatter_add_rows', () => {
  const r = new Rng(22);
  const R = 6;
  const d = 300; // wide enough that scatter splits columns between threads
  const n = 40;
  const x = r.f32(R * d);
  const idx = r.i32(n, 0, R - 1);

  it('gather forward is exact', () => {
    expectClose(gatherRows({ x, idx, n, R, d }), gatherRowsRef(x, idx, d), EXACT, 'out');
  });

  it('scatter-add is the adjoint of gather (finite differences) and accumulates', () => {
    const P = r.f32(n * d);
    const fd = fdGrad((xx) => dot(gatherRowsRef(xx, idx, d), P), f64(x));
    const g = scatterAddRows({ dout: P, idx, n, R, d });
    expectGradClose(g, fd, 'dx');
    const init = r.f32(R * d);
    expectClose(scatterAddRows({ dout: P, idx, n, R, d, dx: init }), add(init, g), { atol: 1e-5, rtol: 1e-6 }, 'accumulated');
  });

  it('rejects out-of-range indices', () => {
    expectError(() => gatherRows({ x, idx: Int32Array.from([R]), n: 1, R, d }), 'INVALID_ARGUMENT');
    expectError(() => scatterAddRows({ dout: new Float32Array(d), idx: Int32Array.from([-3]), n: 1, R, d }), 'INVALID_ARGUMENT');
    expectError(() => gatherRows({ x, idx: new Uint32Array(1) as unknown as Int32Array, n: 1, R, d }), 'INVALID_ARGUMENT');
  });
});
