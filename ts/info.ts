// Build and machine information (backend, BLAS, threads, SIMD, CUDA).
import { loadNative, nativePath } from './native.ts';
import { native } from './errors.ts';

export interface BuildInfo {
  version: string;
  addon: string;
  blas: string;
  simd: string;
  openblasCoretype: string;
  threads: number;
  cudaCompiled: boolean;
  cudaUsable: boolean;
  cuda: string;
  backends: string;
}

export function info(): BuildInfo {
  const n = loadNative();
  return { ...native(() => n.info()), addon: nativePath() } as BuildInfo;
}

/** Number of CPU threads native kernels use (default: all cores, or BAYESLORA_THREADS). */
export function setThreads(n: number): void {
  const a = loadNative();
  native(() => a.setThreads(n));
}
