// Every exports.ops op on 'cuda' against 'cpu' (the reference), with the
// tolerances of common.mjs. Backward ops start from non-zero gradients to
// check that they accumulate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPU, ops, Rng, TOL, close, closeSummed, same, skip } from './common.mjs';

const r = new Rng(20240601);

test('embedding and rows', { skip }, () => {
  const [V, d, N] = [300, 257, 1000];  // repeated ids: the backward uses atomics
  const table = r.f32(V * d), ids = r.i32(N, 0, V - 1), dout = r.f32(N * d), init = r.f32(V * d);
  same('embedding_fwd', { ids, table, N, V, d }, TOL.exact);
  same('embedding_bwd', { ids, dout, N, V, d, dtable: init }, TOL.reduction);
  same('gather_rows', { x: table, idx: ids, n: N, R: V, d }, TOL.exact);
  same('scatter_add_rows', { dout, idx: ids, n: N, R: V, d, dx: init }, TOL.reduction);
  same('gather_rows', { x: table, idx: new Int32Array(0), n: 0, R: V, d }, TOL.exact);
});

test('rmsnorm (incl. deterministic dw) and bias', { skip }, () => {
  for (const [N, d] of [[1, 1], [33, 96], [517, 896], [64, 4096]]) {
    const x = r.f32(N * d), w = r.f32(d, 0.2, 1), dout = r.f32(N * d);
    const { cpu } = same('rmsnorm_fwd', { x, w, N, d, eps: 1e-6 }, TOL.reduction);
    const dx = r.f32(N * d), dw = r.f32(d);
    same('rmsnorm_bwd', { dout, x, w, rstd: cpu.rstd, N, d, dx, dw }, TOL.reduction);
    same('rmsnorm_bwd', { dout, x, w, rstd: cpu.rstd, N, d, dw: null }, TOL.reduction);
    const a = ops.rmsnorm_bwd(GPU, { dout, x, w, rstd: cpu.rstd, N, d });
    const b = ops.rmsnorm_bwd(GPU, { dout, x, w, rstd: cpu.rstd, N, d });
    assert.deepEqual(a.dw, b.dw, 'dw must be bit-identical run to run');
    const bias = r.f32(d);
    same('add_bias', { x, bias, N, d }, TOL.exact);
    same('bias_bwd', { dout, N, d, dbias: bias }, TOL.reduction);
  }
});

test('rope forward and inverse', { skip }, () => {
  for (const [N, H, hd, maxPos] of [[10, 4, 16, 50], [300, 8, 128, 32767], [7, 3, 2, 5]]) {
    const x = r.f32(N * H * hd), pos = r.i32(N, 0, maxPos);
    const invFreq = Float32Array.from({ length: hd / 2 }, (_, j) => 10000 ** ((-2 * j) / hd));
    // Both backends form the angle in float64; what is left is float32 rounding.
    same('rope_fwd', { x, pos, invFreq, N, H, hd }, TOL.elementwise);
    same('rope_bwd', { dy: x, pos, invFreq, N, H, hd }, TOL.elementwise);
    const y = ops.rope_fwd(GPU, { x, pos, invFreq, N, H, hd });
    close(ops.rope_bwd(GPU, { dy: y, pos, invFreq, N, H, hd }), x, { atol: 1e-5, rtol: 1e-5 }, 'rope_bwd(rope_fwd(x))');
  }
});

function mask(B, T, pattern) {
  const m = new Uint8Array(B * T).fill(1);
  for (let b = 0; b < B; b++) {
    const kind = pattern[b % pattern.length];
    for (let t = 0; t < T; t++) {
      if (kind === 'right' && t >= T - Math.floor(T / 3)) m[b * T + t] = 0;
      if (kind === 'left' && t < Math.floor(T / 4)) m[b * T + t] = 0;
      if (kind === 'empty') m[b * T + t] = 0;
    }
  }
  return m;
}

test('attention forward and backward (tiled online softmax vs cpu)', { skip }, () => {
  const cases = [
    { B: 2, T: 5, H: 2, Hkv: 2, hd: 8, pattern: ['full'] },
    { B: 4, T: 37, H: 4, Hkv: 2, hd: 32, pattern: ['full', 'right', 'left', 'empty'] },
    { B: 2, T: 100, H: 6, Hkv: 2, hd: 80, pattern: ['left', 'right'] },
    { B: 3, T: 300, H: 8, Hkv: 2, hd: 128, pattern: ['full', 'right', 'left'] },
    { B: 1, T: 70, H: 2, Hkv: 1, hd: 256, pattern: ['full'] },
  ];
  for (const c of cases) {
    const { B, T, H, Hkv, hd } = c;
    const scale = 1 / Math.sqrt(hd);
    const q = r.f32(B * T * H * hd, -2, 2), k = r.f32(B * T * Hkv * hd, -2, 2), v = r.f32(B * T * Hkv * hd);
    const m = mask(B, T, c.pattern);
    const shape = { B, T, H, Hkv, hd, scale };
    const fc = ops.attention_fwd('cpu', { ...shape, q, k, v, mask: m });
    const fg = ops.attention_fwd(GPU, { ...shape, q, k, v, mask: m });
    const tag = `B${B} T${T} H${H}/${Hkv} hd${hd}`;
    close(fg.out, fc.out, TOL.attention, `attention_fwd.out ${tag}`);
    // Padded queries output exact zeros.
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        if (!m[b * T + t])
          for (let i = 0; i < H * hd; i++) assert.equal(fg.out[(b * T + t) * H * hd + i], 0, `${tag}: padded row`);
    // Each backend's backward consumes its own saved state (layouts differ).
    const dout = r.f32(B * T * H * hd);
    const dq = r.f32(B * T * H * hd), dk = r.f32(B * T * Hkv * hd), dv = r.f32(B * T * Hkv * hd);
    const bc = ops.attention_bwd('cpu', { ...shape, dout, saved: fc.saved, q, k, v, mask: m, dq, dk, dv });
    const bg = ops.attention_bwd(GPU, { ...shape, dout, saved: fg.saved, q, k, v, mask: m, dq, dk, dv });
    for (const key of ['dq', 'dk', 'dv']) close(bg[key], bc[key], TOL.attention, `attention_bwd.${key} ${tag}`);
    const again = ops.attention_bwd(GPU, { ...shape, dout, saved: fg.saved, q, k, v, mask: m, dq, dk, dv });
    for (const key of ['dq', 'dk', 'dv']) assert.deepEqual(again[key], bg[key], `${tag}: ${key} not deterministic`);
  }
});

test('attention saved size is the logsumexp plus an output copy', { skip: GPU !== 'cuda' ? 'cuda layout' : skip }, () => {
  const s = { B: 2, T: 9, H: 4, Hkv: 2, hd: 16 };
  assert.equal(ops.attention_saved_floats(GPU, s), s.B * s.H * s.T + s.B * s.T * s.H * s.hd);
});

test('swiglu and dropout (same mask as the cpu)', { skip }, () => {
  const n = 100_003;
  const gate = r.f32(n, -6, 6), up = r.f32(n), dout = r.f32(n);
  same('swiglu_fwd', { gate, up, n }, TOL.elementwise);
  same('swiglu_bwd', { dout, gate, up, n, dgate: r.f32(n), dup: r.f32(n) }, TOL.elementwise);
  const x = r.f32(n);
  for (const [p, seed] of [[0, 1], [0.1, 7], [0.5, 123456789], [0.9, 2n ** 63n + 5n]]) {
    same('dropout_fwd', { x, n, p, seed }, TOL.exact);
    same('dropout_fwd', { x, n, p, seed, inPlace: true }, TOL.exact);
    same('dropout_bwd', { dout, n, p, seed, dx: x }, TOL.elementwise);
  }
});

test('rows_dot and softmax cross-entropy', { skip }, () => {
  const [Bn, C, V, d] = [16, 5, 50, 257];
  const h = r.f32(Bn * d), W = r.f32(V * d), rows = r.i32(Bn * C, 0, V - 1), dlogits = r.f32(Bn * C);
  same('rows_dot_fwd', { h, W, rows, Bn, C, V, d }, TOL.reduction);
  same('rows_dot_bwd', { dlogits, h, W, rows, Bn, C, V, d, dh: r.f32(Bn * d), dW: r.f32(V * d) }, TOL.reduction);
  same('rows_dot_bwd', { dlogits, h, W, rows, Bn, C, V, d, dW: null }, TOL.reduction);
  for (const [N, Cs] of [[40, 4], [8, 32000]]) {
    const logits = r.f32(N * Cs, -8, 8);
    const labels = r.i32(N, -1, Cs - 1);
    labels[0] = -100;
    same('softmax_xent', { logits, labels, N, C: Cs, dscale: 0.25 }, TOL.reduction);
    same('softmax_xent', { logits, labels, N, C: Cs, dscale: 1, wantProbs: false }, TOL.reduction);
  }
  // Confident rows on top of large logits: the loss (~1e-3) and the
  // probabilities must be formed relative to the row max like the cpu does; a
  // float lse = max + log(sum) rounds by up to 3e-5 at |max| ~ 1000.
  for (const [N, Cs] of [[64, 4], [4, 32000]]) {
    const logits = r.f32(N * Cs, 999, 1001);
    const labels = r.i32(N, 0, Cs - 1);
    for (let i = 0; i < N; i++) logits[i * Cs + labels[i]] += 8;
    same('softmax_xent', { logits, labels, N, C: Cs, dscale: 0.5 }, TOL.reduction);
  }
});

test('adamw', { skip }, () => {
  const n = 65_537;
  const base = { p: r.f32(n), g: r.f32(n), m: r.f32(n, -0.1, 0.1), v: r.f32(n, 0, 0.01), n };
  for (const step of [1, 10, 1000])
    same('adamw', { ...base, lr: 1e-3, b1: 0.9, b2: 0.999, eps: 1e-8, wd: 0.01, step, gradScale: 0.5 }, TOL.elementwise);
});

// lora_bwd on both backends; every output judged against the magnitudes it
// sums (closeSummed): gu = s g B (dOut terms), dB += s g^T u and dA += gu^T x
// (N terms), dx += drop(gu A) (r terms, kept entries scaled by 1 / (1 - p)).
function loraBwd(o) {
  const { g, x, u, A, B, N, dIn, dOut, r, s } = o;
  const inv = o.dropout ? 1 / (1 - o.p) : 1;
  const cpu = ops.lora_bwd('cpu', o), dev = ops.lora_bwd(GPU, o);
  const magGu = new Float64Array(N * r);
  for (let i = 0; i < N; i++)
    for (let c = 0; c < r; c++) {
      let m = 0;
      for (let j = 0; j < dOut; j++) m += Math.abs(s * g[i * dOut + j] * B[j * r + c]);
      magGu[i * r + c] = m;
    }
  closeSummed(dev.gu, cpu.gu, magGu, TOL.reduction, 'lora_bwd.gu');
  if (o.dB !== null) {
    const m = Float64Array.from({ length: dOut * r }, (_, e) => (o.dB ? Math.abs(o.dB[e]) : 0));
    for (let i = 0; i < N; i++)
      for (let j = 0; j < dOut; j++)
        for (let c = 0; c < r; c++) m[j * r + c] += Math.abs(s * g[i * dOut + j] * u[i * r + c]);
    closeSummed(dev.dB, cpu.dB, m, TOL.reduction, 'lora_bwd.dB');
  } else assert.equal(dev.dB, null);
  if (o.dA !== null) {
    const m = Float64Array.from({ length: r * dIn }, (_, e) => (o.dA ? Math.abs(o.dA[e]) : 0));
    for (let i = 0; i < N; i++)
      for (let c = 0; c < r; c++)
        for (let k = 0; k < dIn; k++) m[c * dIn + k] += magGu[i * r + c] * Math.abs(x[i * dIn + k]);
    closeSummed(dev.dA, cpu.dA, m, TOL.reduction, 'lora_bwd.dA');
  } else assert.equal(dev.dA, null);
  if (o.dx !== null) {
    const m = Float64Array.from({ length: N * dIn }, (_, e) => (o.dx ? Math.abs(o.dx[e]) : 0));
    for (let i = 0; i < N; i++)
      for (let c = 0; c < r; c++)
        for (let k = 0; k < dIn; k++) m[i * dIn + k] += inv * magGu[i * r + c] * Math.abs(A[c * dIn + k]);
    closeSummed(dev.dx, cpu.dx, m, TOL.reduction, 'lora_bwd.dx');
  } else assert.equal(dev.dx, null);
}

test('fused LoRA branch (lora_fwd / lora_bwd, incl. fused dropout and r > 32 fallback)', { skip }, () => {
  for (const [N, dIn, dOut, r] of [[1, 1, 1, 1], [37, 96, 80, 8], [512, 4096, 1024, 8], [64, 257, 129, 17], [40, 64, 48, 40]]) {
    const rng = new Rng(N * 7919 + r);
    const X = rng.f32(N * dIn), A = rng.f32(r * dIn), B = rng.f32(dOut * r), y = rng.f32(N * dOut), g = rng.f32(N * dOut);
    const s = 2 / r;
    // y = y0 + s u B^T with u = x A^T (K = dIn terms): judged against the
    // magnitudes summed, since an output that cancels to near zero keeps the
    // absolute rounding of its large terms (seen at dIn = 4096).
    const fwd = { x: X, A, B, y, N, dIn, dOut, r, s };
    const cpu = ops.lora_fwd('cpu', fwd), dev = ops.lora_fwd(GPU, fwd);
    const magU = new Float64Array(N * r), magY = new Float64Array(N * dOut);
    for (let i = 0; i < N; i++) {
      for (let c = 0; c < r; c++) {
        let m = 0;
        for (let k = 0; k < dIn; k++) m += Math.abs(X[i * dIn + k] * A[c * dIn + k]);
        magU[i * r + c] = m;
      }
      for (let j = 0; j < dOut; j++) {
        let m = Math.abs(y[i * dOut + j]);
        for (let c = 0; c < r; c++) m += Math.abs(s * cpu.u[i * r + c] * B[j * r + c]);
        magY[i * dOut + j] = m;
      }
    }
    closeSummed(dev.u, cpu.u, magU, TOL.reduction, 'lora_fwd.u');
    closeSummed(dev.y, cpu.y, magY, TOL.reduction, 'lora_fwd.y');
    const base = { g, x: X, u: cpu.u, A, B, N, dIn, dOut, r, s };
    loraBwd({ ...base, dA: rng.f32(r * dIn), dB: rng.f32(dOut * r), dx: rng.f32(N * dIn) });
    loraBwd({ ...base, dropout: true, p: 0.25, seed: 99 });
    loraBwd({ ...base, dA: null, dB: null, dx: null });
  }
});

// Float64 results (K-FAC sums): |cuda - cpu| <= rtol * max|cpu|.
function close64(name, opts, rtol) {
  const a = ops[name]('cpu', opts), b = ops[name](GPU, opts);
  assert.ok(b instanceof Float64Array && b.length === a.length, `${name}: Float64Array of ${a.length}`);
  let scale = 0, err = 0;
  for (let i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(a[i])); err = Math.max(err, Math.abs(a[i] - b[i])); }
  assert.ok(err <= rtol * (scale || 1), `${name}: max |cuda - cpu| ${err} > ${rtol} x ${scale}`);
}

test('K-FAC building blocks (token_reduce, kfac_accumulate, gram64)', { skip }, () => {
  for (const [B, T, d] of [[1, 1, 1], [16, 96, 192], [8, 512, 4096]]) {
    const rng = new Rng(B * 131 + d);
    const X = rng.f32(B * T * d);
    const mask = Uint8Array.from({ length: B * T }, (_, i) => (i % T) < 1 + (((i / T) | 0) * 37) % T ? 1 : 0);
    const ex = rng.i32(B + 3, 0, B - 1);
    for (const mean of [true, false]) same('token_reduce', { X, mask, ex, B, T, d, n: ex.length, mean }, TOL.reduction);
  }
  for (const [n, d, ldx] of [[1, 1, 1], [64, 192, 192], [333, 512, 520]]) {
    const rng = new Rng(n + d);
    const X = rng.f32((n - 1) * ldx + d);
    const S = Float64Array.from(rng.f32(d * d));
    close64('kfac_accumulate', { X, n, d, ldx, scale: 0.7, S }, 1e-5); // float32 Gram on both sides
  }
  for (const [d, n, ldm] of [[1, 1, 1], [4096, 26, 26], [777, 40, 48]]) {
    const rng = new Rng(d * 3 + n);
    const M = Float64Array.from(rng.f32((d - 1) * ldm + n));
    close64('gram64', { M, d, n, ldm }, 1e-12); // float64 on both sides
  }
});

test('gemm_bf16w (tensor cores: A rounded to bf16 on cuda)', { skip }, () => {
  for (const [M, N, K] of [[1, 1, 1], [64, 96, 80], [512, 1024, 4096]]) {
    const rng = new Rng(M + N + K);
    const A = rng.f32(M * K);
    const W = Uint16Array.from(rng.f32(K * N), (v) => (new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16));
    for (const [ta, tb] of [[false, false], [false, true], [true, false]]) {
      // A's bf16 rounding: relative 2^-9 per product, sqrt(K)-ish growth over the sum.
      same('gemm_bf16w', { ta, tb, M, N, K, alpha: 1, beta: 0.5, A, W, C: rng.f32(M * N) }, { atol: 4e-3 * Math.sqrt(K), rtol: 1e-2 });
    }
  }
});
