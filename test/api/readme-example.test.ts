// The README's TypeScript API example stays true: it type-checks against the
// sources as written, and it runs end to end (built-in model and task) with
// one epoch instead of eight and its output folder moved to a temp dir.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot as root, runTsChild } from '../helpers/ts-child.ts';

const out = mkdtempSync(path.join(tmpdir(), 'bl-readme-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** The ```ts block of the README's "TypeScript API" section. */
function readmeExample(): string {
  const md = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = md.slice(md.indexOf('## TypeScript API'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README.md: no ```ts block under "## TypeScript API"');
  return m[1];
}

describe('README TypeScript example', () => {
  const src = readmeExample().replace("from 'bayeslora'", `from ${JSON.stringify(path.join(root, 'ts', 'index.ts'))}`);

  it('type-checks against the sources', () => {
    const dir = path.join(root, '.tmp', 'readme-types');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'example.ts'), src);
    const tsconfig = {
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true,
        allowImportingTsExtensions: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(root, 'node_modules/@types')],
      },
      files: ['example.ts'],
    };
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 120_000);

  it('runs: trains, fits, predicts, saves the posterior and the adapter', () => {
    // A README edit that drops the epochs option fails here, loudly.
    if (!/epochs: \d+/.test(src)) throw new Error('README example no longer contains epochs: N');
    const run = src.replace(/epochs: \d+/, 'epochs: 1').replaceAll("'run/", `'${out}/run/`);
    expect(run).not.toMatch(/'run\//);
    const file = path.join(root, '.tmp', 'readme-example-run.ts');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, run);
    runTsChild(file, [], 300_000);
    expect(existsSync(path.join(out, 'run', 'posterior.safetensors'))).toBe(true);
    expect(existsSync(path.join(out, 'run', 'adapter', 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(path.join(out, 'run', 'adapter', 'adapter_config.json'))).toBe(true);
  }, 300_000);
});
