// The one typed view of the native addon: every native function and its
// argument types. Nothing else in src/ touches the addon directly.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque handle to native tensor storage (native/napi/tensor_wrap.h). */
export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: 'cpu' | 'cuda';
  readonly disposed: boolean;
  dispose(): void;
}

export type DType = 'f32' | 'bf16' | 'f16' | 'i8' | 'i32';
export type UnaryName = 'neg' | 'exp' | 'log' | 'sqrt' | 'scale' | 'pow' | 'gelu' | 'silu' | 'relu' | 'tanh' | 'geluErf';
export type BinaryName = 'add' | 'sub' | 'mul' | 'div';
export type ReduceName = 'sum' | 'mean' | 'max';

export interface CudaDeviceInfo {
  name: string;
  computeCapability: string;
  memoryBytes: number;
}

export interface CudaMemoryStats {
  /** bytes in blocks held by live tensors (and scratch) */
  allocatedBytes: number;
  /** bytes held from the driver: allocated plus cached for reuse */
  reservedBytes: number;
  /** highest allocatedBytes since start or resetPeakMemoryStats() */
  peakBytes: number;
  allocCount: number;
  /** allocations that needed a cudaMalloc (the rest came from the cache) */
  deviceAllocCount: number;
  freeBytes: number;
  totalBytes: number;
  liveTensors: number;
}

export interface NativeBackendInfo {
  cpu: { isa: 'avx512' | 'avx2' | 'scalar'; threads: number; supportedIsas: Array<'avx512' | 'avx2' | 'scalar'> };
  cuda: { built: boolean; available: boolean; reason?: string; devices: CudaDeviceInfo[] };
}

type T = NativeTensor;

export interface NativeAddon {
  NativeTensor: new () => NativeTensor;
  // creation and movement
  empty(dtype: DType, shape: number[], device?: 'cpu' | 'cuda'): T;
  /** a copy on the device (synchronous for copies to the CPU) */
  toDevice(t: T, device: 'cpu' | 'cuda'): T;
  fromArray(data: ArrayLike<number>, shape: number[], dtype: DType): T;
  toArray(t: T): Float32Array | Int32Array | Int8Array;
  fill(t: T, value: number): void;
  rand(shape: number[], seed: number, low: number, high: number): T;
  randn(shape: number[], seed: number, mean: number, std: number): T;
  cast(t: T, dtype: DType): T;
  reshape(t: T, shape: number[]): T;
  clone(t: T): T;
  permute_forward(x: T, dims: number[]): T;
  slice_forward(x: T, axis: number, start: number, end: number): T;
  slice_backward(gy: T, shape: number[], axis: number, start: number): T;
  concat_forward(xs: T[], axis: number): T;
  expand(x: T, shape: number[]): T;
  sum_to(x: T, shape: number[]): T;
  // math
  unary_forward(op: UnaryName, x: T, p: number): T;
  unary_backward(op: UnaryName, x: T, y: T, gy: T, p: number): T;
  binary_forward(op: BinaryName, a: T, b: T): T;
  where_forward(cond: T, a: T, b: T): T;
  masked_fill_forward(x: T, mask: T, value: number): T;
  reduce_forward(op: 'sum' | 'mean', x: T, axis: number): T;
  reduce_forward(op: 'max', x: T, axis: number): [T, T];
  max_backward(gy: T, idx: T, shape: number[], axis: number): T;
  softmax_forward(x: T, axis: number, log: boolean): T;
  softmax_backward(y: T, gy: T, axis: number, log: boolean): T;
  cross_entropy_forward(logits: T, targets: T, ignoreIndex: number): [T, T];
  cross_entropy_backward(logits: T, lse: T, targets: T, gRow: T, ignoreIndex: number): T;
  layer_norm_forward(x: T, w: T, b: T | null, eps: number): [T, T, T];
  layer_norm_backward(x: T, w: T, mean: T, rstd: T, gy: T, needW: boolean, needB: boolean): [T, T | null, T | null];
  rms_norm_forward(x: T, w: T, eps: number): [T, T];
  rms_norm_backward(x: T, w: T, rstd: T, gy: T, needW: boolean): [T, T | null];
  embedding_forward(table: T, ids: T): T;
  embedding_backward(gy: T, ids: T, V: number): T;
  dropout_forward(x: T, p: number, seed: number): T;
  rope_forward(x: T, positions: T, theta: number, inverse: boolean): T;
  matmul_forward(a: T, b: T, transA: boolean, transB: boolean, outF32?: boolean): T;
  /**
   * CPU: y = x'·op(w) + bias + residual (w [out, in] with transW, else [in, out]), x' = layerNorm(x)
   * with lnW, gelu(x) with geluInput; with gelu y = gelu(h). -> [y, h | null, mean | null, rstd | null]
   */
  linear_forward(x: T, w: T, bias: T | null, residual: T | null, transW: boolean, gelu: boolean, geluInput: boolean, lnW: T | null, lnB: T | null, eps: number): [T, T | null, T | null, T | null];
  /** -> [gx, gw, gbias, glnW, glnB] (null where not needed) */
  linear_backward(x: T, w: T, gy: T, h: T | null, transW: boolean, needX: boolean, needW: boolean, needBias: boolean, geluInput: boolean, lnW: T | null, lnB: T | null, mean: T | null, rstd: T | null, needLnW: boolean, needLnB: boolean): [T | null, T | null, T | null, T | null, T | null];
  /** CPU: attention straight from a fused projection qkv [B, T, 3·C] -> [o [B, T, C], lse [B, heads, T]] */
  attention_packed_forward(qkv: T, heads: number, scale: number, causal: boolean): [T, T];
  /** CPU: -> the gradient of qkv, [B, T, 3·C] */
  attention_packed_backward(qkv: T, o: T, lse: T, dout: T, heads: number, scale: number, causal: boolean): T;
  /** CPU, in place: a += b (same shape, f32) */
  add_inplace(a: T, b: T): void;
  // runtime
  backendInfo(): NativeBackendInfo;
  cudaMemoryStats(): CudaMemoryStats;
  cudaEmptyCache(): void;
  cudaResetPeak(): void;
  cudaSynchronize(): void;
  cudaSetSync(on: boolean): void;
  setIsa(isa: string): void;
  setThreads(n: number): void;
  fmaPeak(seconds: number): number;
  copyBandwidth(bytes: number, reps: number): number;
  noop(t: T): void;
  setAddonDir(dir: string): void;
  // fused
  attention_forward(q: T, k: T, v: T, kvLengths: T | null, scale: number, causal: boolean): [T, T];
  attention_backward(q: T, k: T, v: T, o: T, lse: T, dout: T, kvLengths: T | null, scale: number, causal: boolean): [T, T, T];
  gae_forward(rewards: T, values: T, dones: T, lastValues: T | null, gamma: number, lambda: number): [T, T];
  lora_forward(x: T, w: T, a: T, b: T, scale: number, bias: T | null, fanInFanOut: boolean): [T, T];
  lora_backward(x: T, w: T, a: T, b: T, scale: number, xa: T, gy: T, needX: boolean, needW: boolean, needA: boolean, needB: boolean, needBias: boolean, fanInFanOut: boolean): [T | null, T | null, T | null, T | null, T | null];
  quantize_int8(w: T, axis: number): [T, T];
  dequantize_int8(q: T, scale: T): T;
  int8_linear_forward(x: T, q: T, scale: T, bias: T | null, threshold: number): T;
  // optimizers (in place)
  adamw_step(p: T, g: T, m: T, v: T, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  sgd_step(p: T, g: T, buf: T, lr: number, momentum: number, dampening: number, weightDecay: number, nesterov: boolean, first: boolean): void;
  sum_squares(t: T): number;
  scale_(t: T, s: number): void;
  // io
  /** A Uint8Array over the tensor's native bytes (keeps the storage alive). */
  bytesView(t: T): Uint8Array;
}

const require = createRequire(import.meta.url);
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function load(): NativeAddon {
  const nodeGypBuild = require('node-gyp-build') as { (dir: string): unknown; resolve(dir: string): string };
  const addon = nodeGypBuild(packageRoot) as NativeAddon;
  try {
    addon.setAddonDir(dirname(nodeGypBuild.resolve(packageRoot)));
  } catch {
    addon.setAddonDir(join(packageRoot, 'build', 'Release'));
  }
  return addon;
}

export const native: NativeAddon = load();
