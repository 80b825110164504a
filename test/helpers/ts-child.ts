// Runs a TypeScript file in a child Node process (tsx loader, repository root
// as working directory), so that a crash there (abort, SIGBUS) fails the test
// instead of killing the test runner. Asserts a clean exit.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import path from 'node:path';
import { expect } from 'vitest';

export const repoRoot = path.resolve(import.meta.dirname, '..', '..');

export function runTsChild(file: string, args: string[] = [], timeoutMs = 120_000, env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> {
  return checked(spawnSync(process.execPath, ['--import', 'tsx', file, ...args], { cwd: repoRoot, encoding: 'utf8', env, timeout: timeoutMs }));
}

/** The same for a snippet of module code (imports relative to the repository root). */
export function runTsSnippet(code: string, env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): SpawnSyncReturns<string> {
  return checked(spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: repoRoot, encoding: 'utf8', env, timeout: timeoutMs }));
}

function checked(r: SpawnSyncReturns<string>): SpawnSyncReturns<string> {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.status, r.stdout + r.stderr).toBe(0);
  return r;
}

/** The JSON object a child printed as its last stdout line. */
export function lastJsonLine(stdout: string): any {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}
