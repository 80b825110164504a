// Loads the native addon. Order: BAYESLORA_ADDON (explicit path), the local
// cmake-js/node-gyp build, then a prebuild for this platform. The CUDA backend
// is compiled into the same binary when nvcc was present at build time; it is
// optional at run time (the addon loads without a GPU, driver or cuBLAS).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BayesLoraError } from './errors.ts';

const require = createRequire(import.meta.url);
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function addonCandidates(): string[] {
  const list: string[] = [];
  if (process.env.BAYESLORA_ADDON) list.push(path.resolve(process.env.BAYESLORA_ADDON));
  list.push(path.join(packageRoot, 'build', 'Release', 'bayeslora.node'));
  list.push(path.join(packageRoot, 'build', 'Debug', 'bayeslora.node'));
  list.push(path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'bayeslora.node'));
  return list;
}

// The addon's raw surface is typed loosely here; each facade module narrows it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = Record<string, any>;

let cached: { addon: NativeAddon; path: string } | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached.addon;
  const tried: string[] = [];
  for (const p of addonCandidates()) {
    if (!existsSync(p)) {
      tried.push(`${p} (missing)`);
      if (process.env.BAYESLORA_ADDON && p === path.resolve(process.env.BAYESLORA_ADDON)) break;
      continue;
    }
    try {
      const addon = require(p) as NativeAddon;
      cached = { addon, path: p };
      return addon;
    } catch (e) {
      tried.push(`${p} (${(e as Error).message})`);
      if (process.env.BAYESLORA_ADDON) break;
    }
  }
  throw new BayesLoraError(
    'NATIVE_UNAVAILABLE',
    `bayeslora native addon not found or not loadable. In a project that depends on bayeslora: ` +
      `\`npm rebuild bayeslora\` (npm versions that skip dependencies' install scripts need ` +
      `\`npm install-scripts approve bayeslora\` first); in a checkout: \`npm run build\`. Tried:\n  ${tried.join('\n  ')}`,
  );
}

export function nativePath(): string {
  loadNative();
  return cached!.path;
}
