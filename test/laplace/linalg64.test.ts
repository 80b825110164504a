// Float64 linear algebra of the Laplace code (cpp/laplace/linalg64): symmetric
// eigendecomposition and Cholesky with jitter, against known matrices, an
// independent Jacobi reference and reconstruction error.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../ts/native.ts';
import { BayesLoraError, native } from '../../ts/errors.ts';
import { jacobiEigenvalues, matmul, maxAbs, maxAbsDiff, rng, randn, transpose } from './dense.ts';

const internal = loadNative().laplaceInternal;

function symEig(A: Float64Array, n: number): { w: Float64Array; V: Float64Array } {
  return native(() => internal.symEig(A, n));
}

function reconstruct(w: Float64Array, V: Float64Array, n: number): Float64Array {
  const VD = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) VD[i * n + j] = V[i * n + j] * w[j];
  return matmul(VD, transpose(V, n, n), n, n, n);
}

function checkDecomposition(A: Float64Array, n: number, tol: number): Float64Array {
  const { w, V } = symEig(A, n);
  const scale = Math.max(1, maxAbs(A));
  // A = V diag(w) V^T, V^T V = I, w descending
  expect(maxAbsDiff(reconstruct(w, V, n), A) / scale).toBeLessThan(tol);
  const VtV = matmul(transpose(V, n, n), V, n, n, n);
  for (let i = 0; i < n; i++) VtV[i * n + i] -= 1;
  expect(maxAbs(VtV)).toBeLessThan(tol);
  for (let i = 1; i < n; i++) expect(w[i]).toBeLessThanOrEqual(w[i - 1]);
  return w;
}

function randomSym(n: number, seed: number): Float64Array {
  const r = rng(seed);
  const A = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j <= i; j++) {
      const v = randn(r);
      A[i * n + j] = v;
      A[j * n + i] = v;
    }
  return A;
}

describe('symmetric eigendecomposition', () => {
  it('solves known small matrices exactly', () => {
    // [[2,1],[1,2]] -> 3, 1
    let w = checkDecomposition(Float64Array.from([2, 1, 1, 2]), 2, 1e-14);
    expect(w[0]).toBeCloseTo(3, 14);
    expect(w[1]).toBeCloseTo(1, 14);
    // diagonal, unsorted input
    w = checkDecomposition(Float64Array.from([1, 0, 0, 0, -5, 0, 0, 0, 7]), 3, 1e-15);
    expect(Array.from(w)).toEqual([7, 1, -5]);
    // 1x1 and the zero matrix
    expect(Array.from(checkDecomposition(Float64Array.from([4.5]), 1, 1e-15))).toEqual([4.5]);
    w = checkDecomposition(new Float64Array(16), 4, 1e-15);
    expect(maxAbs(w)).toBe(0);
    // second-difference matrix: eigenvalues 2 - 2 cos(k pi / (n+1))
    const n = 12;
    const T = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      T[i * n + i] = 2;
      if (i + 1 < n) T[i * n + i + 1] = T[(i + 1) * n + i] = -1;
    }
    w = checkDecomposition(T, n, 1e-13);
    const expected = Array.from({ length: n }, (_, k) => 2 - 2 * Math.cos(((k + 1) * Math.PI) / (n + 1))).sort(
      (a, b) => b - a,
    );
    expect(maxAbsDiff(w, expected)).toBeLessThan(1e-13);
  });

  it('handles repeated eigenvalues and rank-deficient PSD matrices', () => {
    // Q diag(3,3,3,1,0,0) Q^T with a random orthogonal Q (from a QR of Gram-Schmidt)
    const n = 6;
    const r = rng(7);
    const M = Array.from({ length: n * n }, () => randn(r));
    const Q = new Float64Array(n * n);
    for (let c = 0; c < n; c++) {
      const v = Array.from({ length: n }, (_, i) => M[i * n + c]);
      for (let p = 0; p < c; p++) {
        let d = 0;
        for (let i = 0; i < n; i++) d += v[i] * Q[i * n + p];
        for (let i = 0; i < n; i++) v[i] -= d * Q[i * n + p];
      }
      const nv = Math.hypot(...v);
      for (let i = 0; i < n; i++) Q[i * n + c] = v[i] / nv;
    }
    const lam = Float64Array.from([3, 3, 3, 1, 0, 0]);
    const A = reconstruct(lam, Q, n);
    const w = checkDecomposition(A, n, 1e-13);
    expect(maxAbsDiff(w, lam)).toBeLessThan(1e-13);
  });

  it('matches a Jacobi reference on random symmetric matrices', () => {
    for (const [n, seed] of [
      [5, 1],
      [17, 2],
      [40, 3],
      // >= 48: LAPACK's dsyevd when OpenBLAS is loaded (the loops otherwise)
      [64, 4],
      [150, 5],
    ]) {
      const A = randomSym(n, seed);
      const w = checkDecomposition(A, n, 1e-12);
      expect(maxAbsDiff(w, jacobiEigenvalues(A, n))).toBeLessThan(1e-11);
    }
  });

  it('reconstructs a badly scaled SPD matrix (a K-FAC sum) to relative precision', () => {
    const n = 30;
    const r = rng(11);
    const X = new Float64Array(8 * n); // rank 8
    for (let i = 0; i < X.length; i++) X[i] = randn(r) * 1e3;
    const A = matmul(transpose(X, 8, n), X, n, 8, n);
    const w = checkDecomposition(A, n, 1e-12);
    for (let i = 8; i < n; i++) expect(Math.abs(w[i])).toBeLessThan(1e-9 * w[0]);
  });

  it('reconstructs a large rank-deficient K-FAC-like sum (the LAPACK path when present)', () => {
    const n = 120;
    const r = rng(12);
    const X = new Float64Array(20 * n); // rank 20
    for (let i = 0; i < X.length; i++) X[i] = randn(r) * 1e2;
    const A = matmul(transpose(X, 20, n), X, n, 20, n);
    const w = checkDecomposition(A, n, 1e-11);
    for (let i = 20; i < n; i++) expect(Math.abs(w[i])).toBeLessThan(1e-9 * w[0]);
  });

  it('rejects non-finite input with NUMERICAL_ERROR', () => {
    try {
      symEig(Float64Array.from([1, NaN, NaN, 1]), 2);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(BayesLoraError);
      expect((e as BayesLoraError).code).toBe('NUMERICAL_ERROR');
    }
  });
});

describe('Cholesky with jitter retry', () => {
  const chol = (A: Float64Array, n: number): { L: Float64Array; jitter: number } =>
    native(() => internal.choleskyJitter(A, n));

  it('factors an SPD matrix with no jitter', () => {
    const A = Float64Array.from([4, 2, 0.4, 2, 5, 1, 0.4, 1, 3]);
    const { L, jitter } = chol(A, 3);
    expect(jitter).toBe(0);
    expect(maxAbsDiff(matmul(L, transpose(L, 3, 3), 3, 3, 3), A)).toBeLessThan(1e-14);
    expect(L[1]).toBe(0); // strict upper triangle zero
  });

  it('adds the smallest sufficient jitter to a singular PSD matrix', () => {
    const A = Float64Array.from([1, 1, 1, 1]); // rank 1
    const { L, jitter } = chol(A, 2);
    expect(jitter).toBeGreaterThan(0);
    expect(jitter).toBeLessThan(1e-6);
    const R = matmul(L, transpose(L, 2, 2), 2, 2, 2);
    expect(maxAbsDiff(R, [1 + jitter, 1, 1, 1 + jitter])).toBeLessThan(1e-12);
  });

  it('fails with NUMERICAL_ERROR on an indefinite matrix', () => {
    try {
      chol(Float64Array.from([1, 0, 0, -1]), 2);
      expect.unreachable();
    } catch (e) {
      expect((e as BayesLoraError).code).toBe('NUMERICAL_ERROR');
    }
  });
});
