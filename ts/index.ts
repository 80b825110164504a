// Public API of bayeslora.
export { BayesLoraError, type ErrorCode } from './errors.ts';
export { info, setThreads, type BuildInfo } from './info.ts';
export * from './data/index.ts';
export { Tokenizer } from './tokenizer.ts';
