// Typed errors. Native code throws JS errors with name "BayesLoraError" and a
// stable `code`; the facade rethrows them as BayesLoraError instances.
export type ErrorCode =
  | 'INVALID_ARGUMENT'
  | 'SHAPE_MISMATCH'
  | 'BAD_FILE'
  | 'IO_ERROR'
  | 'UNSUPPORTED'
  | 'OUT_OF_MEMORY'
  | 'DISPOSED'
  | 'BUSY'
  | 'NUMERICAL_ERROR'
  | 'NOT_IMPLEMENTED'
  | 'CUDA_ERROR'
  | 'CUDA_OOM'
  | 'ABORTED'
  | 'NATIVE_UNAVAILABLE'
  | 'INTERNAL';

export class BayesLoraError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BayesLoraError';
    this.code = code;
  }
}

/** Convert a native error (plain Error with name/code) into a BayesLoraError. */
export function toBayesLoraError(e: unknown): unknown {
  if (e instanceof BayesLoraError) return e;
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  if (e instanceof Error && e.name === 'BayesLoraError' && typeof code === 'string') {
    return new BayesLoraError(code as ErrorCode, e.message, { cause: e });
  }
  return e;
}

/** Run a native call, rethrowing native errors as BayesLoraError. */
export function native<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toBayesLoraError(e);
  }
}

/** Await a native promise, rethrowing native errors as BayesLoraError. */
export async function nativeAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw toBayesLoraError(e);
  }
}

export function invalid(message: string): BayesLoraError {
  return new BayesLoraError('INVALID_ARGUMENT', message);
}
