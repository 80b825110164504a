// Public API of bayeslora.
export { BayesLoraError, type ErrorCode } from './errors.ts';
export { cudaMemory, info, setGemmImpl, setThreads, type BuildInfo, type CudaMemory } from './info.ts';
export * from './data/index.ts';
export { Tokenizer } from './tokenizer.ts';
export { Model, type LoadOptions, type ForwardResult, type OptimizerOptions, type TrainStepOptions, type TrainStepResult, type StepInfo, type LmResult, type LmStepResult, type LoraModuleWeights, type LoraMatrixInfo, type ObservedMatrix, type ModelInfo, type ModelConfigInfo } from './model.ts';
export { DEFAULT_LORA, LORA_MODULES, resolveLoraConfig, loraScale, type LoraConfig, type LoraModuleName } from './lora.ts';
export { train, learningRate, type TrainOptions, type TrainResult, type TrainProgress, type EvalRecord, type LrSchedule } from './train.ts';
export { findTrainCheckpoint, verifyTrainCheckpoint, type TrainerState } from './train-checkpoint.ts';
export { adapterFiles, isAdapterDir, readAdapterLoraConfig, checkpointDirName, saveAdapter, loadAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './adapter.ts';
export { KfacAccumulator, Posterior, predictiveProbs, predictiveProbsReport } from './laplace/kfac.ts';
export { saveLaplace, loadLaplace, adapterIdentity } from './laplace/persist.ts';
export { Laplace, type LaplaceFitOptions, type LaplacePrediction } from './laplace/laplace.ts';
export { tunePrior, DEFAULT_PRIOR_SCALES, type TunePriorOptions, type PriorTuning, type PriorGridPoint, type PriorObjective } from './laplace/tune-prior.ts';
export { computeMetrics, reliabilityBins, fitTemperature, softmaxRows, type Metrics } from './eval/metrics.ts';
export { runMainJob, type RunOptions } from './run/main-job.ts';
export { pretrain, type PretrainOptions } from './pretrain.ts';
export { Tensor, type StorageDType, type Device } from './tensor.ts';
