// Float64 dense references for the Laplace tests (independent of the native
// code): seeded randoms, small matrix algebra, Cholesky, log-det, solves, and
// the explicit Kronecker-factored precision P = SG (x) SA / Z + delta I with
// J laid out row-major d_out x d_in (index j * d_in + i).

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randn(r: () => number): number {
  const u = 1 - r();
  const v = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export function randnArray(r: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * randn(r);
  return a;
}

/** A^T A for A (n x d) row-major -> d x d. */
export function gram(A: ArrayLike<number>, n: number, d: number): Float64Array {
  const G = new Float64Array(d * d);
  for (let r = 0; r < n; r++)
    for (let i = 0; i < d; i++) {
      const a = A[r * d + i];
      for (let j = 0; j < d; j++) G[i * d + j] += a * A[r * d + j];
    }
  return G;
}

/** L L^T for L (d x k) row-major. */
export function outerLowRank(L: ArrayLike<number>, d: number, k: number): Float64Array {
  const S = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += L[i * k + c] * L[j * k + c];
      S[i * d + j] = s;
    }
  return S;
}

export function matmul(A: ArrayLike<number>, B: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const a = A[i * k + p];
      for (let j = 0; j < n; j++) C[i * n + j] += a * B[p * n + j];
    }
  return C;
}

export function transpose(A: ArrayLike<number>, m: number, n: number): Float64Array {
  const T = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[j * m + i] = A[i * n + j];
  return T;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Lower Cholesky of an SPD n x n matrix (throws if not PD). */
export function cholesky(A: ArrayLike<number>, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let s = A[j * n + j];
    for (let k = 0; k < j; k++) s -= L[j * n + k] * L[j * n + k];
    if (!(s > 0)) throw new Error('not positive definite');
    const d = Math.sqrt(s);
    L[j * n + j] = d;
    for (let i = j + 1; i < n; i++) {
      let t = A[i * n + j];
      for (let k = 0; k < j; k++) t -= L[i * n + k] * L[j * n + k];
      L[i * n + j] = t / d;
    }
  }
  return L;
}

export function logdetSpd(A: ArrayLike<number>, n: number): number {
  const L = cholesky(A, n);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.log(L[i * n + i]);
  return 2 * s;
}

/** Solve A x = b for SPD A. */
export function solveSpd(A: ArrayLike<number>, n: number, b: ArrayLike<number>): Float64Array {
  const L = cholesky(A, n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= L[i * n + k] * y[k];
    y[i] = s / L[i * n + i];
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let k = i + 1; k < n; k++) s -= L[k * n + i] * x[k];
    x[i] = s / L[i * n + i];
  }
  return x;
}

/** P = SG (x) SA / Z + delta I (D = dOut*dIn, index j*dIn + i). */
export function kronPrecision(
  SA: ArrayLike<number>,
  SG: ArrayLike<number>,
  dIn: number,
  dOut: number,
  Z: number,
  delta: number,
): Float64Array {
  const D = dIn * dOut;
  const P = new Float64Array(D * D);
  for (let j = 0; j < dOut; j++)
    for (let i = 0; i < dIn; i++)
      for (let j2 = 0; j2 < dOut; j2++)
        for (let i2 = 0; i2 < dIn; i2++) {
          const r = j * dIn + i;
          const c = j2 * dIn + i2;
          P[r * D + c] = (SG[j * dOut + j2] * SA[i * dIn + i2]) / Z + (r === c ? delta : 0);
        }
  return P;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Dense factor S from an accumulator's FactorView. */
export function factorDense(f: { kind: string; d: number; k: number; data: Float64Array }): Float64Array {
  return f.kind === 'dense' ? f.data : outerLowRank(f.data, f.d, f.k);
}

/** Symmetric eigenvalues by cyclic Jacobi (reference, small n), descending. */
export function jacobiEigenvalues(Ain: ArrayLike<number>, n: number): number[] {
  const A = Float64Array.from(Ain);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++)
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p];
          const akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k];
          const aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
      }
  }
  const w: number[] = [];
  for (let i = 0; i < n; i++) w.push(A[i * n + i]);
  return w.sort((a, b) => b - a);
}
