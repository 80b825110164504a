// npm's "prepare" hook (install in a checkout, pack, publish) and
// `npm run build:ts`: compiles ts/ to dist/ with the TypeScript compiler
// (tsconfig.build.json). TypeScript is a dev
// dependency; where it is absent (a production-only install of a checkout)
// this says so and leaves dist/ as it is, instead of failing the install:
// the CLI (tsx) does not need dist/, only `import 'bayeslora'` from plain Node.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
let tsc;
try {
  tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
} catch {
  const have = existsSync(path.join(root, 'dist', 'index.js'));
  console.warn(`bayeslora: typescript is not installed; dist/ ${have ? 'left as it is' : 'not built (import from plain Node needs it)'}`);
  process.exit(0);
}
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
