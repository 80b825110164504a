// GEMM: the built-in kernels (every one this CPU runs), OpenBLAS (when loaded)
// and the dispatcher against a float64 reference computed here in TypeScript,
// over edge shapes, all transpose combinations, alpha/beta, padded leading
// dimensions (padding holds NaN, so any stray read shows), beta = 0 over NaN,
// K = 0; gradients of a GEMM-built loss against finite differences; typed
// errors for bad arguments; and an addon that works with BLAS disabled.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { loadNative, nativePath } from '../../ts/native.ts';
import { BayesLoraError, native, nativeAsync } from '../../ts/errors.ts';

const addon = loadNative();
const ginfo = addon.gemmInfo() as {
  blasLoaded: boolean;
  simd: string;
  kernels: { name: string; mr: number; nr: number; mc: number; kc: number; nc: number }[];
};

interface Case {
  ta: boolean;
  tb: boolean;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  lda: number;
  ldb: number;
  ldc: number;
  A: Float32Array;
  B: Float32Array;
  C: Float32Array;
}

// Deterministic uniform(-1, 1) stream.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

// A rows x cols matrix with leading dimension ld; padding columns are NaN.
function matrix(rows: number, cols: number, ld: number, r: () => number): Float32Array {
  const a = new Float32Array(rows === 0 ? 0 : (rows - 1) * ld + cols);
  a.fill(NaN);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) a[i * ld + j] = r();
  return a;
}

function makeCase(
  ta: boolean, tb: boolean, M: number, N: number, K: number,
  o: { alpha?: number; beta?: number; pad?: number; seed?: number; cNaN?: boolean } = {},
): Case {
  const r = rng(o.seed ?? M * 7919 + N * 104729 + K * 31 + (ta ? 1 : 0) + (tb ? 2 : 0));
  const pad = o.pad ?? 0;
  const lda = Math.max(1, (ta ? M : K) + pad), ldb = Math.max(1, (tb ? K : N) + pad), ldc = Math.max(1, N + pad);
  const A = ta ? matrix(K, M, lda, r) : matrix(M, K, lda, r);
  const B = tb ? matrix(N, K, ldb, r) : matrix(K, N, ldb, r);
  // C's padding holds a sentinel that must survive untouched.
  const C = new Float32Array(M === 0 ? 0 : (M - 1) * ldc + N).fill(7.25);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) C[i * ldc + j] = o.cNaN ? NaN : r();
  return { ta, tb, M, N, K, alpha: o.alpha ?? 1, beta: o.beta ?? 0, lda, ldb, ldc, A, B, C };
}

// float64 reference and a per-element rounding bound for float32 kernels.
function reference(c: Case): { want: Float64Array; bound: Float64Array } {
  const { ta, tb, M, N, K, lda, ldb, ldc, A, B, C } = c;
  const alpha = Math.fround(c.alpha), beta = Math.fround(c.beta);
  const want = new Float64Array(C.length), bound = new Float64Array(C.length);
  for (let i = 0; i < C.length; i++) want[i] = C[i];
  const eps = 2 ** -24;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0, mag = 0;
      for (let k = 0; k < K; k++) {
        const a = ta ? A[k * lda + i] : A[i * lda + k];
        const b = tb ? B[j * ldb + k] : B[k * ldb + j];
        acc += a * b;
        mag += Math.abs(a * b);
      }
      const c0 = beta === 0 ? 0 : C[i * ldc + j];
      want[i * ldc + j] = alpha * acc + beta * c0;
      // Worst-case float32 summation error (K + 3 roundings), plus a denormal floor.
      bound[i * ldc + j] = (K + 3) * eps * (Math.abs(alpha) * mag + Math.abs(beta * c0)) + 1e-30;
    }
  }
  return { want, bound };
}

function run(c: Case, impl: string, kernel?: string): Float32Array {
  const { ta, tb, M, N, K, alpha, beta, lda, ldb, ldc, A, B, C } = c;
  return native(() =>
    addon.gemm({ ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, impl, kernel }),
  ) as Float32Array;
}

function expectClose(got: Float32Array, c: Case, ref: { want: Float64Array; bound: Float64Array }, label: string) {
  expect(got.length).toBe(c.C.length);
  let worst = 0, where = -1;
  for (let i = 0; i < got.length; i++) {
    const inside = c.M > 0 && i % c.ldc < c.N;
    if (!inside) {
      // Padding of C: bit-for-bit untouched.
      if (!Object.is(got[i], c.C[i])) throw new Error(`${label}: C padding at ${i} changed to ${got[i]}`);
      continue;
    }
    const err = Math.abs(got[i] - ref.want[i]) / ref.bound[i];
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      where = i;
    }
  }
  if (worst > 1) {
    throw new Error(
      `${label}: element ${where} = ${got[where]}, want ${ref.want[where]} (bound ${ref.bound[where]})`,
    );
  }
}

// Every implementation under test: each built-in kernel, BLAS, the dispatcher.
interface ImplUnderTest {
  label: string;
  impl: string;
  kernel?: string;
}
const impls: ImplUnderTest[] = [
  ...ginfo.kernels.map((k) => ({ label: `builtin/${k.name}`, impl: 'builtin', kernel: k.name })),
  { label: 'builtin (default kernel)', impl: 'builtin' },
  { label: 'auto', impl: 'auto' },
  { label: 'reference', impl: 'reference' },
];
const blasImpls: ImplUnderTest[] = ginfo.blasLoaded ? [{ label: 'blas', impl: 'blas' }] : [];

// Shapes around every tile and block edge (6x16 / 12x32 / 4x8 tiles, mc 128-240,
// kc 192-256, nc 2048-4080) plus skinny LoRA-like shapes.
const shapes: [number, number, number][] = [
  [1, 1, 1], [1, 17, 3], [5, 1, 9], [6, 16, 8], [12, 32, 5], [7, 17, 1], [13, 33, 20],
  [3, 8, 257], [37, 9, 193], [65, 97, 129], [150, 70, 260], [250, 40, 70], [2, 4100, 3],
  [40, 8, 300], [30, 160, 8],
  // LoRA-shaped (one side <= 16: the skinny kernels under 'auto'), with 8-lane
  // and 8-column remainders on every side.
  [512, 8, 384], [200, 12, 40], [13, 150, 33], [150, 13, 33], [300, 16, 17],
];

describe('gemm vs float64 reference', () => {
  for (const [M, N, K] of shapes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        it(`M=${M} N=${N} K=${K} ta=${ta} tb=${tb}`, () => {
          // Alternate alpha/beta/padding across shapes so every kind is covered.
          const variant = (M + N + K + (ta ? 1 : 0) + (tb ? 2 : 0)) % 3;
          const c = makeCase(ta, tb, M, N, K, {
            alpha: variant === 0 ? 1 : -0.75,
            beta: variant === 1 ? 0 : variant === 2 ? 0.5 : 1,
            pad: variant === 0 ? 0 : 3,
          });
          const ref = reference(c);
          for (const im of [...impls, ...blasImpls]) expectClose(run(c, im.impl, im.kernel), c, ref, im.label);
        });
      }
    }
  }

  it('beta = 0 overwrites NaN garbage in C', () => {
    for (const [M, N, K] of [[3, 5, 7], [13, 33, 20], [70, 100, 300]] as const) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          const c = makeCase(ta, tb, M, N, K, { beta: 0, alpha: 1.5, pad: 2, cNaN: true });
          const ref = reference(c);
          for (const im of [...impls, ...blasImpls]) {
            const got = run(c, im.impl, im.kernel);
            for (let i = 0; i < M; i++)
              for (let j = 0; j < N; j++)
                if (!Number.isFinite(got[i * c.ldc + j])) throw new Error(`${im.label}: NaN survived at ${i},${j}`);
            expectClose(got, c, ref, im.label);
          }
        }
      }
    }
  });

  it('beta = 0 on a C large enough that the dispatcher zeroes it before BLAS (>= 65536 floats)', () => {
    // Contiguous C (pad 0) and padded rows (pad 3: the padding must survive);
    // NaN garbage in C must not leak through the zero-then-beta=1 call.
    for (const pad of [0, 3]) {
      const c = makeCase(false, true, 260, 270, 24, { beta: 0, alpha: 0.5, pad, cNaN: true });
      const ref = reference(c);
      for (const im of [{ label: 'auto', impl: 'auto' }, ...blasImpls]) expectClose(run(c, im.impl), c, ref, `${im.label} pad ${pad}`);
    }
  });

  it('K = 0 scales C by beta (and zeroes it, NaN included, when beta = 0)', () => {
    for (const im of [...impls, ...blasImpls]) {
      const c = makeCase(false, true, 9, 21, 0, { beta: 0.5, pad: 1 });
      expectClose(run(c, im.impl, im.kernel), c, reference(c), `${im.label} beta=0.5`);
      const z = makeCase(true, false, 9, 21, 0, { beta: 0, cNaN: true });
      const got = run(z, im.impl, im.kernel);
      expect(Array.from(got).every((x) => x === 0)).toBe(true);
    }
  });

  it('alpha = 0 leaves beta * C', () => {
    for (const im of [...impls, ...blasImpls]) {
      const c = makeCase(false, false, 20, 30, 40, { alpha: 0, beta: -2 });
      expectClose(run(c, im.impl, im.kernel), c, reference(c), im.label);
    }
  });

  it('M = 0 or N = 0 is a no-op', () => {
    for (const im of [...impls, ...blasImpls]) {
      const c = makeCase(false, false, 0, 5, 4);
      expect(run(c, im.impl, im.kernel).length).toBe(0);
      const d = makeCase(true, true, 4, 0, 3, { beta: 2 });
      expect(run(d, im.impl, im.kernel).length).toBe(d.C.length);
    }
  });

  it('a larger model-like shape (tokens x d_in -> d_out, weight transposed)', () => {
    const c = makeCase(false, true, 160, 300, 520, { beta: 0 });
    const ref = reference(c);
    for (const im of [...impls, ...blasImpls]) if (im.impl !== 'reference') expectClose(run(c, im.impl, im.kernel), c, ref, im.label);
  });

  it('setGemmImpl forces the dispatcher and rejects unknown names', () => {
    const c = makeCase(false, true, 40, 50, 60);
    const ref = reference(c);
    try {
      for (const name of ['builtin', ...(ginfo.blasLoaded ? ['blas'] : []), 'auto']) {
        native(() => addon.setGemmImpl(name));
        expectClose(run(c, 'auto'), c, ref, `setGemmImpl(${name})`);
      }
      expectCode(() => addon.setGemmImpl('fastest'), 'INVALID_ARGUMENT');
    } finally {
      addon.setGemmImpl('auto');
    }
  });
});

describe('gemm gradients (finite differences)', () => {
  // L(A, B) = sum(W .* (A B^T)) with A: M x K, B: N x K (the model's Y = X W^T).
  // dL/dA = W B (gemm tb=false), dL/dB = W^T A (gemm ta=true); L is bilinear, so
  // central differences are exact up to float32 rounding of L.
  it('dL/dA and dL/dB from transposed gemms match central differences', () => {
    const M = 9, N = 11, K = 13, r = rng(42);
    const A = Float32Array.from({ length: M * K }, r), B = Float32Array.from({ length: N * K }, r);
    const W = Float32Array.from({ length: M * N }, r);
    for (const im of [...impls.filter((x) => x.impl !== 'reference'), ...blasImpls]) {
      const gemm = (o: Record<string, unknown>) => native(() => addon.gemm({ ...o, impl: im.impl, kernel: im.kernel })) as Float32Array;
      const loss = (a: Float32Array, b: Float32Array) => {
        const y = gemm({ tb: true, M, N, K, A: a, B: b });
        let s = 0;
        for (let i = 0; i < y.length; i++) s += W[i] * y[i];
        return s;
      };
      const dA = gemm({ M, N: K, K: N, A: W, B }); // W[MxN] B[NxK]
      const dB = gemm({ ta: true, M: N, N: K, K: M, A: W, B: A }); // W^T[NxM] A[MxK]
      const h = 0.25;
      for (const [X, dX, other, isA] of [[A, dA, B, true], [B, dB, A, false]] as const) {
        for (let idx = 0; idx < X.length; idx += 5) {
          const xp = X.slice(), xm = X.slice();
          xp[idx] += h;
          xm[idx] -= h;
          const fd = isA ? (loss(xp, other) - loss(xm, other)) / (2 * h) : (loss(other, xp) - loss(other, xm)) / (2 * h);
          expect(Math.abs(fd - dX[idx])).toBeLessThan(1e-5 * (1 + Math.abs(fd)));
        }
      }
    }
  });
});

function expectCode(fn: () => unknown, code: string) {
  try {
    native(fn);
  } catch (e) {
    expect(e).toBeInstanceOf(BayesLoraError);
    expect((e as BayesLoraError).code).toBe(code);
    return;
  }
  throw new Error(`expected a ${code} error`);
}

describe('gemm argument validation', () => {
  const base = () => ({
    M: 4, N: 5, K: 6, A: new Float32Array(24), B: new Float32Array(30), C: new Float32Array(20),
  });
  it('rejects arrays too short for the dims and leading dimensions', () => {
    expectCode(() => addon.gemm({ ...base(), A: new Float32Array(23) }), 'SHAPE_MISMATCH');
    expectCode(() => addon.gemm({ ...base(), B: new Float32Array(29) }), 'SHAPE_MISMATCH');
    expectCode(() => addon.gemm({ ...base(), C: new Float32Array(19) }), 'SHAPE_MISMATCH');
    expectCode(() => addon.gemm({ ...base(), lda: 7 }), 'SHAPE_MISMATCH'); // needs 3*7+6 = 27
    expectCode(() => addon.gemm({ ...base(), tb: true, ldb: 7 }), 'SHAPE_MISMATCH');
    expectCode(() => addon.gemm({ ...base(), ldc: 6 }), 'SHAPE_MISMATCH');
    expectCode(() => addon.gemm({ ...base(), M: 2 ** 31 - 1 }), 'SHAPE_MISMATCH');
    // Exactly long enough with padding: (rows-1)*ld + cols.
    const ok = native(() => addon.gemm({ ...base(), A: new Float32Array(27), lda: 7 })) as Float32Array;
    expect(ok.length).toBe(20);
  });
  it('rejects leading dimensions below the row width', () => {
    expectCode(() => addon.gemm({ ...base(), lda: 5 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), ta: true, lda: 3 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), ldb: 4 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), ldc: 4 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), ldc: 0 }), 'INVALID_ARGUMENT');
  });
  it('rejects bad dims, types and options', () => {
    expectCode(() => addon.gemm({ ...base(), M: -1 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), K: 2.5 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), N: 2 ** 31 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), N: undefined }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), A: new Float64Array(24) }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), B: [1, 2, 3] }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), ta: 1 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), alpha: '1' }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), impl: 'fast' }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), impl: 'builtin', kernel: 'sse9' }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm({ ...base(), impl: 'auto', kernel: 'scalar' }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemm(42), 'INVALID_ARGUMENT');
    if (!ginfo.kernels.some((k) => k.name === 'avx512'))
      expectCode(() => addon.gemm({ ...base(), impl: 'builtin', kernel: 'avx512' }), 'UNSUPPORTED');
    if (!ginfo.blasLoaded) expectCode(() => addon.gemm({ ...base(), impl: 'blas' }), 'UNSUPPORTED');
  });
  it('C is optional and defaults to zeros', () => {
    const c = makeCase(false, false, 3, 4, 5);
    const got = native(() => addon.gemm({ M: 3, N: 4, K: 5, A: c.A, B: c.B })) as Float32Array;
    expectClose(got, { ...c, C: new Float32Array(12), beta: 0 }, reference({ ...c, C: new Float32Array(12), beta: 0 }), 'no C');
  });
});

describe('gemmBench', () => {
  it('times a GEMM off the JS thread', async () => {
    for (const impl of ['builtin', ...(ginfo.blasLoaded ? ['blas'] : [])]) {
      const r = (await nativeAsync(() => addon.gemmBench({ M: 64, N: 64, K: 64, impl, iters: 3 }))) as {
        gflops: number;
        seconds: number;
      };
      expect(r.seconds).toBeGreaterThan(0);
      expect(r.gflops).toBeGreaterThan(0);
      expect(r.gflops).toBeCloseTo((2 * 64 ** 3) / r.seconds / 1e9, 6);
    }
  });
  it('rejects bad arguments with typed errors', async () => {
    expectCode(() => addon.gemmBench({ M: 0, N: 4, K: 4 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemmBench({ M: 4, N: 4, K: 4, iters: 0 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemmBench({ M: 65536, N: 65536, K: 4 }), 'INVALID_ARGUMENT');
    expectCode(() => addon.gemmBench({ M: 4, N: 4, K: 4, impl: 'gpu' }), 'INVALID_ARGUMENT');
  });
});

describe('BLAS loading and kernel selection', () => {
  // A fresh process, since loading happens once per process.
  function child(env: Record<string, string>): Record<string, unknown> {
    const script = `
      const a = require(${JSON.stringify(nativePath())});
      const out = { info: a.gemmInfo() };
      const g = a.gemm({ M: 2, N: 2, K: 2, A: new Float32Array([1, 2, 3, 4]), B: new Float32Array([5, 6, 7, 8]), impl: 'auto' });
      out.c = Array.from(g);
      const r = (s) => { let x = s; return () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5; };
      const rnd = r(7), A = Float32Array.from({ length: 37 * 29 }, rnd), B = Float32Array.from({ length: 29 * 41 }, rnd);
      const b = a.gemm({ M: 37, N: 41, K: 29, A, B, impl: 'builtin' }), ref = a.gemm({ M: 37, N: 41, K: 29, A, B, impl: 'reference' });
      out.builtinErr = Math.max(...Array.from(b, (x, i) => Math.abs(x - ref[i])));
      try { a.setGemmImpl('blas'); out.blasCode = 'none'; } catch (e) { out.blasCode = e.code; }
      console.log(JSON.stringify(out));`;
    const res = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    });
    expect(res.status, res.stderr).toBe(0);
    return JSON.parse(res.stdout.trim().split('\n').pop()!);
  }
  it('sets OPENBLAS_THREAD_TIMEOUT=16 before loading OpenBLAS unless the user set it', () => {
    const base = { ...process.env };
    delete base.OPENBLAS_THREAD_TIMEOUT;
    const run = (env: Record<string, string>) => {
      const script = `const a = require(${JSON.stringify(nativePath())}); const i = a.gemmInfo();
        console.log(JSON.stringify({ loaded: i.blasLoaded, env: i.threadTimeoutEnv, byUs: i.threadTimeoutSetByBayeslora, seen: process.env.OPENBLAS_THREAD_TIMEOUT ?? null }));`;
      const res = spawnSync(process.execPath, ['-e', script], { env: { ...base, ...env }, encoding: 'utf8' });
      expect(res.status, res.stderr).toBe(0);
      return JSON.parse(res.stdout.trim().split('\n').pop()!);
    };
    const d = run({});
    if (!d.loaded) return; // no OpenBLAS on this machine: nothing is set
    expect(d).toEqual({ loaded: true, env: '16', byUs: true, seen: '16' });
    expect(run({ OPENBLAS_THREAD_TIMEOUT: '24' })).toEqual({ loaded: true, env: '24', byUs: false, seen: '24' });
  });
  it('works with BLAS disabled (BAYESLORA_BLAS=none)', () => {
    const r = child({ BAYESLORA_BLAS: 'none' }) as { info: { blas: string; blasLoaded: boolean }; c: number[]; blasCode: string };
    expect(r.info.blasLoaded).toBe(false);
    expect(r.info.blas).toBe('builtin');
    expect(r.c).toEqual([19, 22, 43, 50]);
    expect(r.blasCode).toBe('UNSUPPORTED');
  });
  it('BAYESLORA_SIMD caps the built-in kernel level', () => {
    for (const simd of ['scalar', 'avx2']) {
      if (simd === 'avx2' && !ginfo.kernels.some((k) => k.name === 'avx2')) continue;
      const r = child({ BAYESLORA_SIMD: simd }) as { info: { simd: string }; builtinErr: number };
      expect(r.info.simd).toBe(simd);
      // 29-term float32 dot products of values in [-0.5, 0.5]: a wrong kernel is off by O(0.1).
      expect(r.builtinErr).toBeLessThan(1e-5);
    }
  });
  it('records a failed BAYESLORA_BLAS path and falls back to the default names', () => {
    const r = child({ BAYESLORA_BLAS: '/nonexistent/libfoo.so' }) as {
      info: { blasAttempts: string[]; blasLoaded: boolean };
      c: number[];
    };
    expect(r.info.blasAttempts[0]).toContain('/nonexistent/libfoo.so');
    expect(r.c).toEqual([19, 22, 43, 50]);
  });
});
