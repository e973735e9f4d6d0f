// tunekit: fine-tuning of large language models on a native C++/CUDA engine.
export { Tensor, tensor, zeros, ones, full, rand, randn, tidy, keep, manualSeed } from './tensor.js';
export type { DType, Device, TensorOptions, RandomOptions } from './tensor.js';
export { noGrad, isGradEnabled } from './autograd.js';
export { backend, setIsa, setThreads } from './backend.js';
export { cuda, autocast } from './cuda.js';
export type { CudaMemoryStats } from './cuda.js';
export type { BackendInfo } from './backend.js';
export * as ops from './ops/index.js';
export * from './io/index.js';
export * from './tokenizer/index.js';
export * from './data/index.js';
export { Module } from './nn/module.js';
export { Linear, Embedding, LayerNorm, RMSNorm } from './nn/layers.js';
export type { LinearOptions } from './nn/layers.js';
export {
  createModel,
  loadModel,
  saveModel,
  SUPPORTED_MODEL_TYPES,
  PreTrainedModel,
  GPT2LMHeadModel,
  LlamaForCausalLM,
  BertModel,
  KVCache,
} from './models/index.js';
export type {
  AnyModel,
  LoadModelOptions,
  ForwardOptions,
  GenerateOptions,
  GenerationOutput,
  StreamEvent,
  HFConfig,
  GPT2Config,
  LlamaConfig,
  BertConfig,
  BertOutput,
} from './models/index.js';
export { Optimizer, AdamW, SGD, lrMultiplier, gradNorm, clipGradNorm, defaultNoDecay } from './optim/index.js';
export type { AdamWOptions, SGDOptions, ScheduleOptions, ScheduleKind, OptimizerState, NamedParams } from './optim/index.js';
export * from './peft/index.js';
export { train, evaluateLm, lmLossSum, NonFiniteLossError, lastMetrics } from './train/trainer.js';
export type { TrainOptions, TrainResult, EvalResult } from './train/trainer.js';
export { resolveConfig, readConfigFile, ConfigError, flagName, FIELDS as TRAIN_CONFIG_FIELDS } from './train/config.js';
export type { TrainConfig, LoraSettings } from './train/config.js';
export { Progress, MetricsLog } from './train/progress.js';
export type { StepMetrics } from './train/progress.js';
export { listCheckpoints, latestCheckpoint, writeCheckpoint, cleanTemporary } from './train/checkpoint.js';
export { evaluateModelOnFile, mergeAdapterToDir } from './train/tools.js';
