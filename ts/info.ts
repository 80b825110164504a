// Build and machine information (backend, BLAS, threads, SIMD, CUDA).
import { loadNative, nativePath } from './native.ts';
import { native } from './errors.ts';

export interface BuildInfo {
  version: string;
  addon: string;
  blas: string;
  simd: string;
  openblasCoretype: string;
  /** Where large float32 products go: OpenBLAS, or the built-in kernel (no BLAS, AVX-512 CPU with OpenBLAS on AVX2 kernels, or setGemmImpl). */
  gemm: 'blas' | 'builtin';
  /** Why `gemm` is what it is. */
  gemmReason: string;
  threads: number;
  /** Microseconds kernel threads spin between jobs before sleeping (BAYESLORA_SPIN_US, read at start and at setThreads). */
  threadSpinUs: number;
  cudaCompiled: boolean;
  cudaUsable: boolean;
  cuda: string;
  backends: string;
}

export function info(): BuildInfo {
  const n = loadNative();
  return { ...native(() => n.info()), addon: nativePath() } as BuildInfo;
}

/** Device memory of the CUDA backend (bytes). */
export interface CudaMemory {
  /** In the backend's buffers now: model weights, LoRA, activations, Laplace factors, ... */
  liveBytes: number;
  /** The most `liveBytes` has been since the backend started or the last `resetPeak`. */
  peakBytes: number;
  /** The backend's own cuBLAS workspace and scratch (kept for the process). */
  internalBytes: number;
  deviceFreeBytes: number;
  deviceTotalBytes: number;
}

/**
 * The CUDA backend's device memory, or null when CUDA is not compiled in or
 * nothing has used the CUDA backend yet (this never creates it). With
 * `resetPeak`, peakBytes restarts from liveBytes after this reading: bracket a
 * phase (e.g. a Laplace fit) to measure its own peak.
 */
export function cudaMemory(resetPeak = false): CudaMemory | null {
  const n = loadNative();
  return native(() => n.cudaMemory(resetPeak)) as CudaMemory | null;
}

/** Number of CPU threads native kernels use (default: all cores, or BAYESLORA_THREADS). */
export function setThreads(n: number): void {
  const a = loadNative();
  native(() => a.setThreads(n));
}

/**
 * Where large float32 products go: 'auto' (the default: OpenBLAS when loaded,
 * except on an AVX-512 CPU whose OpenBLAS core type has no AVX-512 kernels,
 * where the built-in AVX-512 kernel is faster), 'builtin' or 'blas'
 * (UNSUPPORTED when no BLAS is loaded). Small and LoRA-shaped products always
 * use the built-in kernels under 'auto'.
 */
export function setGemmImpl(impl: 'auto' | 'builtin' | 'blas'): void {
  const a = loadNative();
  native(() => a.setGemmImpl(impl));
}
