// Calibration and accuracy metrics of predictive probabilities (spec section 10):
// ACC (argmax), ECE (15 equal-width bins of top-label confidence, L1),
// NLL (mean -log p_y), Brier (mean sum_c (p_c - 1[y=c])^2), plus the
// reliability-diagram bins. Probabilities are row-major [N x C].
import { invalid } from '../errors.ts';

export interface Metrics {
  acc: number;
  ece: number;
  nll: number;
  brier: number;
  n: number;
}

export interface ReliabilityBin {
  lo: number;
  hi: number;
  count: number;
  accuracy: number; // NaN when empty
  confidence: number; // NaN when empty
}

const P_FLOOR = 1e-12; // NLL of a probability that underflowed to 0 is large but finite

function check(probs: ArrayLike<number>, labels: ArrayLike<number>, C: number): number {
  const N = labels.length;
  if (!Number.isInteger(C) || C < 2) throw invalid(`metrics: C must be an integer >= 2, got ${C}`);
  if (probs.length !== N * C) throw invalid(`metrics: probs has ${probs.length} entries, expected N*C = ${N * C}`);
  for (let i = 0; i < N; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= C) throw invalid(`metrics: label ${i} is ${y}, expected an integer in [0, ${C})`);
  }
  return N;
}

function top(probs: ArrayLike<number>, i: number, C: number): { arg: number; conf: number } {
  let arg = 0;
  for (let c = 1; c < C; c++) if (probs[i * C + c] > probs[i * C + arg]) arg = c;
  return { arg, conf: probs[i * C + arg] };
}

export function reliabilityBins(probs: ArrayLike<number>, labels: ArrayLike<number>, C: number, nBins = 15): ReliabilityBin[] {
  const N = check(probs, labels, C);
  const count = new Array<number>(nBins).fill(0);
  const correct = new Array<number>(nBins).fill(0);
  const confSum = new Array<number>(nBins).fill(0);
  for (let i = 0; i < N; i++) {
    const { arg, conf } = top(probs, i, C);
    // Bins are (lo, hi]; confidence 0 goes to the first bin.
    const b = Math.min(nBins - 1, Math.max(0, Math.ceil(conf * nBins) - 1));
    count[b]++;
    confSum[b] += conf;
    if (arg === labels[i]) correct[b]++;
  }
  return count.map((n, b) => ({
    lo: b / nBins,
    hi: (b + 1) / nBins,
    count: n,
    accuracy: n ? correct[b] / n : NaN,
    confidence: n ? confSum[b] / n : NaN,
  }));
}

export function computeMetrics(probs: ArrayLike<number>, labels: ArrayLike<number>, C: number, nBins = 15): Metrics {
  const N = check(probs, labels, C);
  if (N === 0) return { acc: NaN, ece: NaN, nll: NaN, brier: NaN, n: 0 };
  let correct = 0;
  let nll = 0;
  let brier = 0;
  for (let i = 0; i < N; i++) {
    const y = labels[i];
    if (top(probs, i, C).arg === y) correct++;
    nll -= Math.log(Math.max(probs[i * C + y], P_FLOOR));
    for (let c = 0; c < C; c++) {
      const d = probs[i * C + c] - (c === y ? 1 : 0);
      brier += d * d;
    }
  }
  let ece = 0;
  for (const b of reliabilityBins(probs, labels, C, nBins)) {
    if (b.count) ece += (b.count / N) * Math.abs(b.accuracy - b.confidence);
  }
  return { acc: correct / N, ece, nll: nll / N, brier: brier / N, n: N };
}

/** Row-wise softmax of logits [N x C] divided by a temperature. */
export function softmaxRows(logits: ArrayLike<number>, C: number, temperature = 1): Float64Array {
  const N = logits.length / C;
  const out = new Float64Array(logits.length);
  for (let i = 0; i < N; i++) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, logits[i * C + c] / temperature);
    let s = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(logits[i * C + c] / temperature - m);
      out[i * C + c] = e;
      s += e;
    }
    for (let c = 0; c < C; c++) out[i * C + c] /= s;
  }
  return out;
}

/**
 * Temperature scaling: the T > 0 minimising validation NLL of softmax(logits / T),
 * by golden-section search on log T over [1e-2, 1e2] (NLL is unimodal in log T).
 */
export function fitTemperature(logits: ArrayLike<number>, labels: ArrayLike<number>, C: number): number {
  check(logits, labels, C);
  const nllAt = (logT: number) => computeMetrics(softmaxRows(logits, C, Math.exp(logT)), labels, C).nll;
  let a = Math.log(1e-2);
  let b = Math.log(1e2);
  const g = (Math.sqrt(5) - 1) / 2;
  let x1 = b - g * (b - a);
  let x2 = a + g * (b - a);
  let f1 = nllAt(x1);
  let f2 = nllAt(x2);
  for (let it = 0; it < 80 && b - a > 1e-6; it++) {
    if (f1 < f2) {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - g * (b - a);
      f1 = nllAt(x1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + g * (b - a);
      f2 = nllAt(x2);
    }
  }
  return Math.exp((a + b) / 2);
}
