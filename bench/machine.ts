// What every benchmark JSON records about the run: machine, build, commit, command.
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { info } from '../ts/info.ts';

export interface MachineRecord {
  cpu: string;
  cores: number;
  memoryBytes: number;
  threads: number;
  blas: string;
  simd: string;
  openblasCoretype: string;
  /** Where our large GEMMs went: 'blas' or 'builtin' (info().gemm), and why. */
  gemm: string;
  gemmReason: string;
  addon: string;
  node: string;
  commit: string;
  dirty: boolean;
  command: string;
  date: string;
}

function cpuFlags(): string {
  try {
    const t = readFileSync('/proc/cpuinfo', 'utf8');
    return /model name\s*:\s*(.*)/.exec(t)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

export function machineRecord(): MachineRecord {
  const i = info();
  let commit = 'unknown';
  let dirty = false;
  try {
    commit = execSync('git rev-parse HEAD', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    dirty = execSync('git status --porcelain --untracked-files=no', { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
  } catch {
    /* not a git checkout */
  }
  return {
    cpu: cpuFlags(),
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    threads: i.threads,
    blas: i.blas,
    simd: i.simd,
    openblasCoretype: i.openblasCoretype,
    gemm: i.gemm,
    gemmReason: i.gemmReason,
    addon: i.addon,
    node: process.version,
    commit,
    dirty,
    command: process.argv.join(' '),
    date: new Date().toISOString(),
  };
}

/** Median and spread of repeated measurements. */
export function summarize(xs: number[]): { median: number; min: number; max: number; n: number } {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { median, min: s[0], max: s[n - 1], n };
}
