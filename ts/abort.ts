// AbortSignal -> native cancellation. Each cancellable native call gets a
// fresh CancelToken (cpp/napi/cancel.cc) in its options; when the signal
// aborts, the token's flag is set and the worker rejects with ABORTED at its
// next safe point (between layers of a forward, between backward passes,
// between eigendecompositions, between predictive rows). The rejection is
// rethrown as BayesLoraError('ABORTED') carrying signal.reason as its cause.
import { BayesLoraError } from './errors.ts';
import { loadNative } from './native.ts';

/** Throw ABORTED when `signal` has already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new BayesLoraError('ABORTED', `${what} aborted`, { cause: signal.reason });
}

/**
 * Run `call(cancel)` (a native call that takes `cancel` in its options) so that
 * `signal` cancels it. Without a signal, `cancel` is undefined.
 */
export async function cancellable<T>(signal: AbortSignal | undefined, what: string, call: (cancel: unknown) => Promise<T>): Promise<T> {
  if (!signal) return call(undefined);
  throwIfAborted(signal, what);
  const n = loadNative();
  const token = new n.CancelToken();
  const onAbort = () => token.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return await call(token);
  } catch (e) {
    if (e instanceof BayesLoraError && e.code === 'ABORTED') throw new BayesLoraError('ABORTED', `${what} aborted: ${e.message}`, { cause: signal.reason });
    throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
