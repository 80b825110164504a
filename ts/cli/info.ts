// `bayeslora info`: build and machine capabilities.
import { info } from '../info.ts';

export async function run(args: string[]): Promise<number> {
  const i = info();
  if (args.includes('--json')) {
    process.stdout.write(JSON.stringify(i, null, 2) + '\n');
    return 0;
  }
  const rows: [string, string][] = [
    ['version', i.version],
    ['addon', i.addon],
    ['backends', i.backends],
    ['blas', i.blas],
    ['openblas coretype', i.openblasCoretype || '(unset)'],
    ['simd', i.simd],
    ['gemm', `${i.gemm} (${i.gemmReason})`],
    ['threads', String(i.threads)],
    ['thread spin', `${i.threadSpinUs} us between jobs (BAYESLORA_SPIN_US)`],
    ['cuda compiled', String(i.cudaCompiled)],
    ['cuda', i.cuda],
  ];
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(18)} ${v}\n`);
  return 0;
}
