// Produce prebuilds/<platform>-<arch>/bayeslora.node with prebuildify-style
// layout: builds with cmake-js (CPU + CUDA when nvcc is present, unless
// BAYESLORA_CUDA=OFF) and copies the binary. `npm run prebuilds`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, copyFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const cmakeJs = path.join(path.dirname(createRequire(path.join(root, 'package.json')).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--CDCMAKE_BUILD_TYPE=Release', '-O', 'build-prebuild'], {
  cwd: root,
  stdio: 'inherit',
});
if (r.status !== 0) process.exit(r.status ?? 1);
const bin = path.join(root, 'build-prebuild', 'Release', 'bayeslora.node');
if (!existsSync(bin)) {
  console.error(`prebuild: ${bin} not produced`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });
copyFileSync(bin, path.join(out, 'bayeslora.node'));
console.log(`prebuild: wrote ${path.relative(root, path.join(out, 'bayeslora.node'))}`);
