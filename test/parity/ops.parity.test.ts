// Every backend op on every present non-CPU backend against the CPU backend,
// through the same kernels.ts surface. Reported as skipped when the build or
// machine has only the CPU backend.
import { describe, expect, it } from 'vitest';
import * as K from '../../ts/kernels.ts';
import type { BackendName } from '../../ts/kernels.ts';
import { info } from '../../ts/info.ts';
import { Rng, expectClose, type Tol } from '../helpers/reference.ts';

const others = info()
  .backends.split(',')
  .filter((b) => b !== 'cpu') as BackendName[];

// Two float32 implementations may sum in different orders (GEMM tiling,
// warp reductions, fast exp): a few ulp per accumulation step, ~1e-6 at these
// sizes. 1e-5 absolute + relative leaves headroom and still flags any
// semantic difference (masking, accumulation, index handling).
const TOL: Tol = { atol: 1e-5, rtol: 1e-5 };

// Inputs (including initial gradients) are drawn once, outside `run`, so both
// backends see the same values.
type Result = Float32Array | null | Record<string, Float32Array | null> | number;

/** Run the same op on cpu and on `be`, compare every returned array. */
function same(be: BackendName, run: (backend: BackendName) => Result, tol: Tol = TOL, skip: string[] = []): void {
  const a = run('cpu');
  const b = run(be);
  if (a instanceof Float32Array || a === null || typeof a === 'number') {
    if (a instanceof Float32Array) expectClose(b as Float32Array, a, tol, be);
    else expect(b).toEqual(a);
    return;
  }
  const br = b as Record<string, Float32Array | null>;
  for (const [key, va] of Object.entries(a)) {
    if (skip.includes(key)) continue;
    if (va === null) expect(br[key], key).toBeNull();
    else expectClose(br[key], va, tol, `${be}.${key}`);
  }
}

describe.skipIf(others.length === 0)('ops parity with the CPU backend', () => {
  for (const be of others.length ? others : (['cuda'] as BackendName[])) {
    describe(be, () => {
      const r = new Rng(1001);

      it('embedding and rows', () => {
        const [V, d, N] = [13, 40, 25];
        const table = r.f32(V * d);
        const ids = r.i32(N, 0, V - 1);
        const dout = r.f32(N * d);
        const init = r.f32(V * d);
        same(be, (backend) => K.embeddingFwd({ backend, ids, table, N, V, d }), { atol: 0 });
        same(be, (backend) => K.embeddingBwd({ backend, ids, dout, N, V, d, dtable: init }));
        same(be, (backend) => K.gatherRows({ backend, x: table, idx: ids, n: N, R: V, d }), { atol: 0 });
        same(be, (backend) => K.scatterAddRows({ backend, dout, idx: ids, n: N, R: V, d, dx: init }));
      });

      it('rmsnorm and bias', () => {
        const [N, d] = [33, 96];
        const x = r.f32(N * d);
        const w = r.f32(d, 0.2, 1);
        const dout = r.f32(N * d);
        const { rstd } = K.rmsnormFwd({ x, w, N, d, eps: 1e-6 });
        same(be, (backend) => K.rmsnormFwd({ backend, x, w, N, d, eps: 1e-6 }));
        const dx0 = r.f32(N * d);
        const dw0 = r.f32(d);
        same(be, (backend) => K.rmsnormBwd({ backend, dout, x, w, rstd, N, d, dx: dx0, dw: dw0 }));
        same(be, (backend) => K.rmsnormBwd({ backend, dout, x, w, rstd, N, d, dw: null }));
        const bias = r.f32(d);
        same(be, (backend) => K.addBias({ backend, x, bias, N, d }), { atol: 0 });
        same(be, (backend) => K.biasBwd({ backend, dout, N, d, dbias: bias }));
      });

      it('rope', () => {
        const [N, H, hd] = [10, 4, 16];
        const x = r.f32(N * H * hd);
        const pos = r.i32(N, 0, 2047);
        const invFreq = Float32Array.from({ length: hd / 2 }, (_, j) => 10000 ** ((-2 * j) / hd));
        // large positions: angle rounding differs between float64 and float32
        // paths by up to ~1e-4 rad at pos 2047; that is the honest tolerance
        const tol = { atol: 3e-4, rtol: 0 };
        same(be, (backend) => K.ropeFwd({ backend, x, pos, invFreq, N, H, hd }), tol);
        same(be, (backend) => K.ropeBwd({ backend, dy: x, pos, invFreq, N, H, hd }), tol);
      });

      it('attention with padding and grouped-query heads', () => {
        const s = { B: 3, T: 19, H: 4, Hkv: 2, hd: 16 };
        const q = r.f32(s.B * s.T * s.H * s.hd);
        const k = r.f32(s.B * s.T * s.Hkv * s.hd);
        const v = r.f32(s.B * s.T * s.Hkv * s.hd);
        const dout = r.f32(q.length);
        const mask = new Uint8Array(s.B * s.T).fill(1);
        for (let t = 0; t < 5; t++) mask[t] = 0; // left padding in example 0
        for (let t = 12; t < s.T; t++) mask[s.T + t] = 0; // right padding in example 1
        const scale = 1 / Math.sqrt(s.hd);
        // `saved` is backend-private state: compare outputs, run each backward on its own saved
        same(be, (backend) => K.attentionFwd({ backend, ...s, q, k, v, mask, scale }), TOL, ['saved']);
        const init = { dq: r.f32(q.length), dk: r.f32(k.length), dv: r.f32(v.length) };
        same(be, (backend) => {
          const { saved } = K.attentionFwd({ backend, ...s, q, k, v, mask, scale });
          return K.attentionBwd({ backend, ...s, dout, saved, q, k, v, mask, scale, ...init });
        });
      });

      it('swiglu and dropout', () => {
        const n = 5000;
        const gate = r.f32(n, 3);
        const up = r.f32(n);
        same(be, (backend) => K.swigluFwd({ backend, gate, up, n }));
        const dgate = r.f32(n);
        const dup = r.f32(n);
        same(be, (backend) => K.swigluBwd({ backend, dout: up, gate, up, n, dgate, dup }));
        // the mask is a shared hash of (seed, index): identical on every backend
        same(be, (backend) => K.dropoutFwd({ backend, x: gate, n, p: 0.25, seed: 77n }), { atol: 0, rtol: 1e-7 });
        same(be, (backend) => K.dropoutBwd({ backend, dout: up, n, p: 0.25, seed: 77n, dx: gate }));
      });

      it('rows_dot and softmax_xent', () => {
        const [Bn, C, V, d] = [6, 4, 50, 64];
        const h = r.f32(Bn * d);
        const W = r.f32(V * d);
        const rows = r.i32(Bn * C, 0, V - 1);
        const dl = r.f32(Bn * C);
        same(be, (backend) => K.rowsDotFwd({ backend, h, W, rows, Bn, C, V, d }));
        const dh = r.f32(Bn * d);
        const dW = r.f32(V * d);
        same(be, (backend) => K.rowsDotBwd({ backend, dlogits: dl, h, W, rows, Bn, C, V, d, dh, dW }));
        same(be, (backend) => K.rowsDotBwd({ backend, dlogits: dl, h, W, rows, Bn, C, V, d, dW: null }));
        const [N, Cx] = [9, 300];
        const logits = r.f32(N * Cx, 4);
        const labels = r.i32(N, -1, Cx - 1);
        same(be, (backend) => K.softmaxXent({ backend, logits, labels, N, C: Cx, dscale: 0.5 }));
        same(be, (backend) => K.softmaxXent({ backend, logits, labels, N, C: Cx, dscale: 1, wantProbs: false }));
      });

      it('adamw', () => {
        const n = 3000;
        const args = { p: r.f32(n), g: r.f32(n), m: r.f32(n, 0.1), v: r.f32(n, 0.01).map(Math.abs), n };
        const hp = { lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01, gradScale: 0.25 };
        same(be, (backend) => K.adamw({ backend, ...args, ...hp, step: 7 }));
      });
    });
  }
});
