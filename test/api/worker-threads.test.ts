// The addon in worker_threads (servers run it in worker pools): the same
// training in the main thread and in two workers at once gives the same
// losses, and terminating workers while their native train step, Laplace fit
// or predictive runs neither crashes nor hangs the process (it aborted
// before: a promise settled during the worker's teardown threw out of the
// completion callback). The scenario runs in a child process
// (worker-threads.driver.mts) so that a crash shows as its exit status.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lastJsonLine, runTsChild } from '../helpers/ts-child.ts';

const driver = path.join(import.meta.dirname, 'worker-threads.driver.mts');

describe('worker_threads', () => {
  it('trains concurrently in three environments and survives workers terminated mid-call', () => {
    const out = lastJsonLine(runTsChild(driver, [], 180_000).stdout);

    const { main, workers } = out.concurrent as { main: number[]; workers: { losses: number[]; exit: number; error?: string }[] };
    expect(main).toHaveLength(4);
    expect(main.every(Number.isFinite)).toBe(true);
    expect(main[3]).toBeLessThan(main[0]); // it trains
    for (const w of workers) {
      expect(w.error).toBeUndefined();
      expect(w.exit).toBe(0);
      expect(w.losses).toEqual(main);
    }

    const terminated = out.terminated as { mode: string; delayMs: number; exit: number; error?: string }[];
    expect(terminated.map((t) => t.mode)).toEqual([...Array(4).fill('train'), ...Array(4).fill('fit'), ...Array(4).fill('predict')]);
    for (const t of terminated) {
      expect(t.error, `${t.mode} +${t.delayMs} ms`).toBeUndefined();
      expect(t.exit, `${t.mode} +${t.delayMs} ms`).toBe(1); // the exit code of worker.terminate()
    }
    expect(Number.isFinite(out.after)).toBe(true);
  }, 200_000);
});
