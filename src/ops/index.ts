// tk.ops: every op of the engine, one name each.
export { add, sub, mul, div, scale, neg, exp, log, sqrt, pow, gelu, geluErf, silu, relu, tanh } from './elementwise.js';
export { sum, mean, max } from './reduce.js';
export type { Axis, ReduceOptions } from './reduce.js';
export { matmul } from './matmul.js';
export type { MatmulOptions } from './matmul.js';
export { linear } from './linear.js';
export type { LinearOptions } from './linear.js';
export { softmax, logSoftmax, crossEntropy, layerNorm, rmsNorm, embedding, dropout, rope } from './nn.js';
export type { CrossEntropyOptions, NormOptions, DropoutOptions, RopeOptions } from './nn.js';
export { reshape, transpose, permute, concat, slice, where, maskedFill } from './shape.js';
export { attention } from './attention.js';
export type { AttentionOptions } from './attention.js';
export { gae } from './gae.js';
export type { GaeOptions } from './gae.js';
export { loraLinear } from './lora.js';
export type { LoraLinearOptions } from './lora.js';
export { quantizeInt8, dequantizeInt8, int8Linear } from './int8.js';
export type { QuantizeInt8Options, Int8LinearOptions } from './int8.js';
