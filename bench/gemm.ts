// GEMM throughput, OpenBLAS and the built-in kernel measured side by side.
// `measureGemm(shapes?)` is what the engine benchmark imports; run directly,
// `npx tsx bench/gemm.ts [MxNxK[:ab] ...] [--repeats=N]` (a, b = n|t: op(A),
// op(B) as stored or transposed) prints the same record as JSON. Per shape
// and implementation the figure is the median over `repeats` rounds of the
// native median-of-`iters` time; the implementations alternate within a round
// so machine noise hits all alike.
// Headline numbers are geometric means over the shapes.
import { pathToFileURL } from 'node:url';
import { loadNative } from '../ts/native.ts';
import { native, nativeAsync } from '../ts/errors.ts';

export interface GemmShape {
  M: number;
  N: number;
  K: number;
  ta?: boolean;
  tb?: boolean;
  label?: string;
}

export interface GemmShapeResult {
  M: number;
  N: number;
  K: number;
  ta: boolean;
  tb: boolean;
  label: string;
  /** The dispatcher the engine uses (BLAS when loaded, built-in for tiny problems). */
  gflops: number;
  builtin_gflops: number;
  blas_gflops: number | null;
  /** builtin / blas (null without BLAS). */
  builtin_vs_blas: number | null;
  iters: number;
}

export interface GemmMeasurement {
  blas: string;
  simd: string;
  coretype: string;
  threads: number;
  repeats: number;
  /** Geometric mean over shapes of the dispatcher's GFLOP/s. */
  gemm_gflops: number;
  /** Geometric mean over shapes of the built-in kernel's GFLOP/s. */
  builtin_gemm_gflops: number;
  /** Geometric mean over shapes of OpenBLAS's GFLOP/s (null without BLAS). */
  blas_gflops: number | null;
  per_shape: GemmShapeResult[];
}

// The model's GEMMs at 1024 tokens: Y = X W^T (weight stored out x in, so
// op(B) transposed), input gradients dX = dY W (no transposes), and the
// skinny LoRA products (rank 8): forward X A^T and H B^T, backward dH = dY B,
// dB = dY^T H and dA = dH^T X.
export const defaultShapes: GemmShape[] = [
  { M: 1024, N: 512, K: 512, tb: true, label: 'proj d=512' },
  { M: 1024, N: 768, K: 768, tb: true, label: 'proj d=768' },
  { M: 1024, N: 1536, K: 512, tb: true, label: 'mlp up 512->1536' },
  { M: 1024, N: 512, K: 1536, tb: true, label: 'mlp down 1536->512' },
  { M: 1024, N: 2048, K: 2048, tb: true, label: 'proj d=2048' },
  { M: 1024, N: 2048, K: 2048, label: 'dX d=2048' },
  { M: 1024, N: 768, K: 768, label: 'dX d=768' },
  { M: 1024, N: 8, K: 2048, tb: true, label: 'lora X A^T (r=8)' },
  { M: 1024, N: 2048, K: 8, tb: true, label: 'lora H B^T (r=8)' },
  { M: 1024, N: 8, K: 2048, label: 'lora dH = dY B' },
  { M: 2048, N: 8, K: 1024, ta: true, label: 'lora dB = dY^T H' },
  { M: 8, N: 2048, K: 1024, ta: true, label: 'lora dA = dH^T X' },
];

interface BenchResult {
  gflops: number;
  seconds: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const geomean = (xs: number[]) => Math.exp(xs.reduce((a, x) => a + Math.log(x), 0) / xs.length);

export async function measureGemm(
  shapes: GemmShape[] = defaultShapes,
  opts: { repeats?: number; secondsPerRun?: number } = {},
): Promise<GemmMeasurement> {
  const addon = loadNative();
  const info = native(() => addon.gemmInfo()) as {
    blas: string;
    simd: string;
    coretype: string;
    threads: number;
    blasLoaded: boolean;
  };
  const repeats = opts.repeats ?? 5;
  const secondsPerRun = opts.secondsPerRun ?? 0.05;
  const impls = ['auto', 'builtin', ...(info.blasLoaded ? ['blas'] : [])];
  const bench = (s: GemmShape, impl: string, iters: number) =>
    nativeAsync(() =>
      addon.gemmBench({ M: s.M, N: s.N, K: s.K, ta: !!s.ta, tb: !!s.tb, impl, iters }),
    ) as Promise<BenchResult>;

  const per_shape: GemmShapeResult[] = [];
  for (const s of shapes) {
    // Size the inner loop so one run takes about secondsPerRun.
    const probe = await bench(s, 'auto', 1);
    const iters = Math.max(1, Math.min(200, Math.ceil(secondsPerRun / probe.seconds)));
    const samples: Record<string, number[]> = Object.fromEntries(impls.map((i) => [i, []]));
    for (let r = 0; r < repeats; r++) {
      const order = r % 2 ? [...impls].reverse() : impls;
      for (const impl of order) samples[impl].push((await bench(s, impl, iters)).gflops);
    }
    const blas = info.blasLoaded ? median(samples.blas) : null;
    const builtin = median(samples.builtin);
    per_shape.push({
      M: s.M,
      N: s.N,
      K: s.K,
      ta: !!s.ta,
      tb: !!s.tb,
      label: s.label ?? `${s.M}x${s.N}x${s.K}`,
      gflops: median(samples.auto),
      builtin_gflops: builtin,
      blas_gflops: blas,
      builtin_vs_blas: blas === null ? null : builtin / blas,
      iters,
    });
  }
  return {
    blas: info.blas,
    simd: info.simd,
    coretype: info.coretype,
    threads: info.threads,
    repeats,
    gemm_gflops: geomean(per_shape.map((p) => p.gflops)),
    builtin_gemm_gflops: geomean(per_shape.map((p) => p.builtin_gflops)),
    blas_gflops: info.blasLoaded ? geomean(per_shape.map((p) => p.blas_gflops!)) : null,
    per_shape,
  };
}

/** "1024x2048x2048" or "1024x2048x2048:nt" (op(A), op(B): n = as stored, t = transposed). */
export function parseShape(arg: string): GemmShape {
  const m = /^(\d+)x(\d+)x(\d+)(?::([nt])([nt]))?$/.exec(arg);
  if (!m) throw new Error(`bad shape '${arg}': expected MxNxK or MxNxK:ab with a, b in {n, t}`);
  return { M: +m[1], N: +m[2], K: +m[3], ta: m[4] === 't', tb: m[5] === 't', label: arg };
}

/** Entry point for bench/run.ts-style runners: shape arguments and --repeats=N. */
export async function run(args: string[] = []): Promise<object> {
  const shapes = args.filter((a) => !a.startsWith('-')).map(parseShape);
  const rep = args.map((a) => /^--repeats=(\d+)$/.exec(a)).find((m) => m);
  return measureGemm(shapes.length ? shapes : defaultShapes, { repeats: rep ? Math.max(1, +rep[1]) : undefined });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(process.argv.slice(2)).then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
