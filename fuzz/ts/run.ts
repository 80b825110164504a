// Parent of the TypeScript fuzz loop (fuzz/ts/worker.ts): runs the worker in
// child processes, counts untyped errors (reported by the worker), native
// crashes (the child dies: the case it announced last is saved) and hangs
// (no output for --hang-seconds: the child is killed), and restarts after
// the failing case. Prints one JSON line at the end:
//   {"cases": n, "crashes": n, "hangs": n, "untyped": [...], "native": [...]}
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const flag = (n: string, d: string) => {
  const i = args.indexOf(`--${n}`);
  return i >= 0 ? args[i + 1] : d;
};
const total = Number(flag('cases', '10000'));
const hangSeconds = Number(flag('hang-seconds', '30'));
const artifacts = path.resolve(flag('artifacts', 'build-fuzz/ts-artifacts'));
mkdirSync(artifacts, { recursive: true });
const seed = flag('seed', '7'); // the mutation stream (the recorded runs use 7)
const only = flag('readers', ''); // optional: comma-separated reader names (worker.ts)
const worker = path.join(path.dirname(new URL(import.meta.url).pathname), 'worker.ts');

const untyped: unknown[] = [];
const native: unknown[] = [];
let hangs = 0;
const outcome: Record<string, { ok: number; typed: number }> = {};
let done = 0;
const t0 = performance.now();

function runChunk(start: number, cases: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', worker, '--cases', String(cases), '--start', String(start), '--seed', seed, '--artifacts', artifacts, ...(only ? ['--readers', only] : [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let last = { case: start - 1, reader: '' };
    let progressed = 0; // cases finished in this child
    let buf = '';
    let stderr = '';
    let timer: NodeJS.Timeout;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        hangs++;
        native.push({ kind: 'hang', ...last });
        child.kill('SIGKILL');
      }, hangSeconds * 1000);
    };
    arm();
    let panic = ''; // a Rust panic's location and message (the backtrace after it would push it out of `stderr`)
    child.stderr.on('data', (d) => {
      stderr = (stderr + d).slice(-4000);
      if (!panic) panic = /panicked at [^\n]*\n[^\n]*/.exec(stderr)?.[0] ?? '';
    });
    child.stdout.on('data', (d) => {
      arm();
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const m = JSON.parse(line);
          if (m.case !== undefined) last = m;
          if (m.untyped) untyped.push(m.untyped);
          if (typeof m.done === 'number') progressed = m.done;
          if (m.outcome)
            for (const [k, v] of Object.entries(m.outcome as Record<string, { ok: number; typed: number }>)) {
              const o = (outcome[k] ??= { ok: 0, typed: 0 });
              o.ok += v.ok;
              o.typed += v.typed;
            }
        } catch {
          /* not ours */
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve(cases);
      // Died: a native crash (or our hang kill). Keep the announced case's input.
      const cur = path.join(artifacts, `current-${child.pid}`);
      const keep = path.join(artifacts, `native-${last.reader}-${last.case}`);
      if (existsSync(cur)) copyFileSync(cur, keep);
      if (signal !== 'SIGKILL' || !native.some((n) => (n as { case: number }).case === last.case))
        native.push({ kind: 'crash', code, signal, ...last, file: keep, ...(panic ? { panic } : {}), stderr: stderr.slice(-800) });
      resolve(Math.max(progressed, last.case - start + 1));
    });
  });
}

while (done < total) {
  const n = await runChunk(done, Math.min(total - done, 20000));
  done += Math.max(1, n);
  process.stderr.write(`fuzz ts: ${done}/${total} cases, ${untyped.length} untyped, ${native.length} native crash/hang (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
}
const crashes = untyped.length + native.filter((n) => (n as { kind: string }).kind === 'crash').length;
process.stdout.write(JSON.stringify({ cases: done, crashes, hangs, seconds: (performance.now() - t0) / 1000, outcome, untyped, native }) + '\n');
