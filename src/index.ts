// tunekit: fine-tuning of large language models on a native C++/CUDA engine.
export { Tensor, tensor, zeros, ones, full, rand, randn, tidy, keep, manualSeed } from './tensor.js';
export type { DType, Device, TensorOptions, RandomOptions } from './tensor.js';
export { noGrad, isGradEnabled } from './autograd.js';
export { backend, setIsa, setThreads } from './backend.js';
export type { BackendInfo } from './backend.js';
export * as ops from './ops/index.js';
