// The data layer's public surface: task files, answer formats, batching,
// dataset converters (the tokenizer lives in ../tokenizer.ts).
export type { LmBatch, McBatch } from './batch.ts';
export {
  readMcJsonl,
  parseMcJsonl,
  writeMcJsonl,
  checkMcExample,
  MAX_CHOICES,
  type McExample,
  type ReadMcOptions,
} from './jsonl.ts';
export {
  encodeMc,
  letterTokenIds,
  renderLetterPrompt,
  LETTERS,
  type AnswerFormat,
  type LetterLayout,
  type FormatOptions,
  type EncodedMc,
} from './format.ts';
export { collateMc, collateLm, chunkTokens, type CollateMcOptions, type CollateLmOptions } from './collate.ts';
export {
  batches,
  batchCount,
  epochOrder,
  splitTrainVal,
  type BatchesOptions,
  type GroupedBatchesOptions,
  type SplitOptions,
} from './sampling.ts';
export { Rng, deriveSeed } from './rng.ts';
export { parseCsv, type CsvRecord } from './csv.ts';
export {
  convertFile,
  convertData,
  convertToJsonl,
  SOURCE_KINDS,
  PAPER_MC_INSTRUCTION,
  PAPER_BOOLQ_INSTRUCTION,
  type SourceKind,
  type ConvertOptions,
  type ConvertResult,
} from './convert.ts';
