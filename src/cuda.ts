// tk.cuda: the CUDA backend's runtime (memory statistics, cache, synchronization)
// and tk.autocast, mixed precision for CUDA matmuls.
import { native, type CudaMemoryStats } from './native/binding.js';

export type { CudaMemoryStats };

export const cuda = {
  /** True when the backend library loaded and found a device (tk.backend().cuda.available). */
  isAvailable(): boolean {
    return native.backendInfo().cuda.available;
  },
  /** The caching allocator's counters: { allocatedBytes, reservedBytes, peakBytes, ... }. */
  memoryStats(): CudaMemoryStats {
    return native.cudaMemoryStats();
  },
  /** Returns every cached (unused) block to the driver; live tensors keep theirs. */
  emptyCache(): void {
    native.cudaEmptyCache();
  },
  /** Makes peakBytes start again from the current allocatedBytes. */
  resetPeakMemoryStats(): void {
    native.cudaResetPeak();
  },
  /** Waits for every queued kernel; a kernel fault is thrown here, naming the op when known. */
  synchronize(): void {
    native.cudaSynchronize();
  },
  /** Synchronize after every op (as TUNEKIT_CUDA_SYNC=1): a fault is reported by the op that caused it. */
  setSyncMode(on: boolean): void {
    native.cudaSetSync(on);
  },
};

// ---------------------------------------------------------------- autocast
let autocastDtype: 'bf16' | null = null;

/**
 * Runs fn with mixed precision: inside it, matmuls (tk.ops.matmul and every
 * Linear) of f32 CUDA tensors run on bf16 copies of their inputs with f32
 * accumulation and an f32 result, forward and backward, while everything else
 * (softmax, norms, losses, optimizer steps) stays f32, and the weights stay f32
 * masters. CPU tensors are unaffected (the CPU computes in f32). Nests; fn may
 * be async (the setting then holds until its promise settles).
 */
export function autocast<R>(dtype: 'bf16', fn: () => R): R {
  if (dtype !== 'bf16') throw new TypeError(`autocast: unsupported dtype '${String(dtype)}' (bf16)`);
  if (typeof fn !== 'function') throw new TypeError('autocast: fn must be a function');
  const prev = autocastDtype;
  autocastDtype = dtype;
  let r: R;
  try {
    r = fn();
  } catch (e) {
    autocastDtype = prev;
    throw e;
  }
  if (r instanceof Promise) {
    return r.finally(() => {
      autocastDtype = prev;
    }) as R;
  }
  autocastDtype = prev;
  return r;
}

/** The dtype of the enclosing autocast(), or null. */
export function autocastState(): 'bf16' | null {
  return autocastDtype;
}
