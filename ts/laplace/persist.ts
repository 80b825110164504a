// Saving and loading a fitted Laplace posterior as a safetensors sidecar
// (K-FAC factors, counts, prior precisions, options, Fisher type and the
// identity of the adapter it belongs to). Loading with an adapterId refuses a
// file fitted for another adapter (INVALID_ARGUMENT, "adapter mismatch").
import { loadNative } from '../native.ts';
import { native, nativeAsync } from '../errors.ts';
import { KfacAccumulator, Posterior } from './kfac.ts';

export interface SaveLaplaceOptions {
  /** 'exact' | 'sampled' | 'empirical' | any label (default: the posterior's, else 'unknown'). */
  fisher?: string;
  /** Identity of the adapter (see adapterIdentity); checked on load. */
  adapterId?: string;
}

/** Write the accumulator's factors and the posterior's priors (1 without a posterior). */
export function saveLaplace(
  path: string,
  acc: KfacAccumulator,
  post: Posterior | null,
  o: SaveLaplaceOptions = {},
): Promise<void> {
  const n = loadNative();
  return nativeAsync(() => n.saveLaplace(path, acc.raw, post ? post.raw : null, o));
}

export interface LoadedLaplace {
  accumulator: KfacAccumulator;
  posterior: Posterior;
  fisher: string;
  adapterId: string;
}

export async function loadLaplace(path: string, o: { adapterId?: string } = {}): Promise<LoadedLaplace> {
  const n = loadNative();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const r = await nativeAsync<any>(() => n.loadLaplace(path, o));
  return {
    accumulator: KfacAccumulator.fromRaw(r.accumulator),
    posterior: new Posterior(r.posterior),
    fisher: r.fisher,
    adapterId: r.adapterId,
  };
}

/** 64-bit FNV-1a identity (16 hex digits) of adapter tensors: names, shapes and float32 values, in order. */
export function adapterIdentity(tensors: { name: string; shape: number[]; data: Float32Array }[]): string {
  const n = loadNative();
  return native(() => n.adapterIdentity(tensors));
}
