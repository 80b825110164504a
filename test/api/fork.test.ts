// Child processes spawned while the model trains (any thread: the main thread
// or a worker). OpenBLAS shuts its thread server down in a pthread_atfork
// handler; a fork during a threaded GEMM hung that GEMM for good, and two
// threads forking at once deadlocked in the handler. The addon now holds forks
// back until the BLAS call in flight returns (cpp/backend/cpu/blas_loader.cc).
// Runs in a child process (fork.driver.mts) so that a hang is a timeout here.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lastJsonLine, runTsChild } from '../helpers/ts-child.ts';

describe('fork while training', () => {
  it('training goes on while two worker threads spawn processes in a loop', () => {
    const out = lastJsonLine(runTsChild(path.join(import.meta.dirname, 'fork.driver.mts'), [], 60_000).stdout);
    expect(out.steps).toBeGreaterThan(0);
    for (const n of out.spawns) expect(n).toBeGreaterThan(10);
  }, 90_000);
});
