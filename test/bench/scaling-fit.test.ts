// The scaling bench's growth exponent: log-log least squares recovers a known
// power law exactly and reports R^2 < 1 for noisy data.
import { describe, expect, it } from 'vitest';
import { logLogFit } from '../../bench/scaling.ts';

describe('logLogFit', () => {
  it('recovers the exponent of y = a x^k', () => {
    const xs = [2, 4, 8, 16, 32];
    for (const k of [0, 0.5, 1, 2, 3]) {
      const r = logLogFit(xs, xs.map((x) => 0.3 * x ** k));
      expect(r.exponent).toBeCloseTo(k, 10);
      expect(r.r2).toBeCloseTo(1, 10);
    }
  });
  it('is below R^2 = 1 when the points do not lie on a power law', () => {
    const r = logLogFit([1, 2, 4, 8], [1, 3, 2, 9]);
    expect(r.r2).toBeLessThan(0.95);
    expect(r.exponent).toBeGreaterThan(0);
  });
});
