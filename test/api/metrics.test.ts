import { describe, expect, it } from 'vitest';
import { computeMetrics, fitTemperature, reliabilityBins, softmaxRows } from '../../ts/eval/metrics.ts';
import { BayesLoraError } from '../../ts/errors.ts';

describe('metrics', () => {
  it('computes ACC, NLL, Brier and ECE on a hand-worked example', () => {
    // Two examples, C = 2: p = [0.9, 0.1] (y = 0, correct), [0.4, 0.6] (y = 0, wrong).
    const probs = [0.9, 0.1, 0.4, 0.6];
    const m = computeMetrics(probs, [0, 0], 2);
    expect(m.acc).toBe(0.5);
    expect(m.nll).toBeCloseTo(-(Math.log(0.9) + Math.log(0.4)) / 2, 12);
    expect(m.brier).toBeCloseTo((0.01 + 0.01 + 0.36 + 0.36) / 2, 12);
    // Bins (15): conf 0.9 -> bin 13 (acc 1), conf 0.6 -> bin 8 (acc 0).
    expect(m.ece).toBeCloseTo(0.5 * Math.abs(1 - 0.9) + 0.5 * Math.abs(0 - 0.6), 12);
    const bins = reliabilityBins(probs, [0, 0], 2);
    expect(bins).toHaveLength(15);
    expect(bins[13].count).toBe(1);
    expect(bins[8].count).toBe(1);
  });

  it('a perfectly calibrated predictor has ECE near 0', () => {
    // Confidence 0.75 everywhere, correct on 3 of 4.
    const probs = [0.75, 0.25, 0.75, 0.25, 0.75, 0.25, 0.25, 0.75];
    const m = computeMetrics(probs, [0, 0, 0, 0], 2);
    expect(m.acc).toBe(0.75);
    expect(m.ece).toBeCloseTo(0, 12);
  });

  it('temperature scaling recovers the temperature that generated the labels', () => {
    // Labels drawn from softmax(z / 2): the NLL-optimal temperature is near 2.
    let s = 12345;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    const N = 4000;
    const C = 3;
    const logits: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < N; i++) {
      const z = [rand() * 8 - 4, rand() * 8 - 4, rand() * 8 - 4];
      logits.push(...z);
      const p = softmaxRows(z, C, 2);
      const u = rand();
      labels.push(u < p[0] ? 0 : u < p[0] + p[1] ? 1 : 2);
    }
    const T = fitTemperature(logits, labels, C);
    expect(T).toBeGreaterThan(1.7);
    expect(T).toBeLessThan(2.3);
  });

  it('rejects malformed inputs with typed errors', () => {
    expect(() => computeMetrics([0.5, 0.5], [2], 2)).toThrow(BayesLoraError);
    expect(() => computeMetrics([0.5], [0], 2)).toThrow(BayesLoraError);
  });
});
