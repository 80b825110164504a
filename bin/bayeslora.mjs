#!/usr/bin/env node
// CLI entry: runs the TypeScript CLI through tsx's loader (no separate build step).
import { register } from 'tsx/esm/api';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
register();
process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); throw e; });
const here = path.dirname(fileURLToPath(import.meta.url));
const { main } = await import(pathToFileURL(path.join(here, '..', 'ts', 'cli', 'main.ts')).href);
process.exitCode = await main(process.argv.slice(2));
