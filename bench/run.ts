// `npm run bench -- [name ...]`: runs the named benchmarks (default: all) and
// writes bench/results/<name>.json, then bench/results/SUMMARY.md from every
// JSON there. Each benchmark module exports `run(args): Promise<object>`; this
// file adds the machine record and the load average at start and end.
import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { machineRecord } from './machine.ts';
import { writeSummary } from './summary.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const benches: Record<string, () => Promise<{ run: (args: string[]) => Promise<object> }>> = {
  engine: () => import('./engine.ts'),
  laplace: () => import('./laplace.ts'),
  peers: () => import('./peers.ts'),
  memory: () => import('./memory.ts'),
  scaling: () => import('./scaling.ts'),
  pool: () => import('./pool.ts'),
};

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const names = argv.filter((a) => !a.startsWith('-'));
  const flags = argv.filter((a) => a.startsWith('-'));
  const todo = names.length ? names : Object.keys(benches);
  const outDir = path.join(here, 'results');
  mkdirSync(outDir, { recursive: true });
  for (const name of todo) {
    const load = benches[name];
    if (!load) {
      console.error(`bench: unknown benchmark '${name}' (known: ${Object.keys(benches).join(', ')})`);
      return 2;
    }
    console.error(`bench: ${name} ...`);
    const t0 = performance.now();
    const loadStart = os.loadavg();
    const result = await (await load()).run(flags);
    const record = { name, machine: machineRecord(), seconds: (performance.now() - t0) / 1000, load_average: { start: loadStart, end: os.loadavg() }, ...result };
    const file = path.join(outDir, `${name}.json`);
    writeFileSync(file + '.tmp', JSON.stringify(record, null, 2) + '\n');
    renameSync(file + '.tmp', file);
    console.error(`bench: wrote ${path.relative(process.cwd(), file)}`);
  }
  console.error(`bench: wrote ${path.relative(process.cwd(), writeSummary(outDir))}`);
  return 0;
}

main().then((c) => (process.exitCode = c));
