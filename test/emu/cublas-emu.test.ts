// Runs the CPU cuBLAS emulator's self-check (cuda/emu/cublas_emu_check.cc)
// against the emulator library. Builds nothing: the emulation test run builds
// both with --CDBAYESLORA_CUBLAS_EMU=ON and points
//   BAYESLORA_CUBLAS_EMU_CHECK at <build>/Release/cublas_emu_check
//   BAYESLORA_CUBLAS_EMU_LIB   at <build>/Release/libcublas_emu.so
// Without them the test is skipped (the default build has no emulator).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const checkBin = process.env.BAYESLORA_CUBLAS_EMU_CHECK ?? '';
const lib = process.env.BAYESLORA_CUBLAS_EMU_LIB ?? '';
const missing = !checkBin || !lib;
const why = missing
  ? 'set BAYESLORA_CUBLAS_EMU_CHECK and BAYESLORA_CUBLAS_EMU_LIB (build with --CDBAYESLORA_CUBLAS_EMU=ON)'
  : '';

describe('CPU cuBLAS emulator', () => {
  if (missing) {
    it.skip(`self-check (skipped: ${why})`, () => {});
    return;
  }
  it('passes its float64-reference self-check', () => {
    // A set but wrong path is an error, not a skip: the run asked for this test.
    expect(existsSync(checkBin), `BAYESLORA_CUBLAS_EMU_CHECK=${checkBin} does not exist`).toBe(true);
    expect(existsSync(lib), `BAYESLORA_CUBLAS_EMU_LIB=${lib} does not exist`).toBe(true);
    const r = spawnSync(checkBin, [lib], { encoding: 'utf8', timeout: 60_000 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    expect(r.error, out).toBeUndefined();
    expect(r.status, out).toBe(0);
    const m = /(\d+) checks passed/.exec(r.stdout ?? '');
    expect(m, out).not.toBeNull();
    expect(Number(m![1]), out).toBeGreaterThan(500);
  });
});
