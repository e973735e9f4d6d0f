// tk.backend(): what this process runs on.
import { native, type CudaDeviceInfo } from './native/binding.js';

export interface BackendInfo {
  cpu: { isa: 'avx512' | 'avx2' | 'scalar'; threads: number; supportedIsas: Array<'avx512' | 'avx2' | 'scalar'> };
  cuda: { built: boolean; available: boolean; reason?: string; devices: CudaDeviceInfo[] };
}

export function backend(): BackendInfo {
  return native.backendInfo();
}

/** Selects the CPU kernel set (like TUNEKIT_ISA at start-up); throws if the CPU lacks it. */
export function setIsa(isa: 'avx512' | 'avx2' | 'scalar'): void {
  native.setIsa(isa);
}

/** Sets the CPU worker-thread count (like TUNEKIT_THREADS at start-up). */
export function setThreads(n: number): void {
  native.setThreads(n);
}
