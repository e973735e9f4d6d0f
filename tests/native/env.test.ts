// TUNEKIT_ISA and TUNEKIT_THREADS are read when the addon loads.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

function backendWith(env: Record<string, string>): { isa: string; threads: number; y: number[] } {
  const code = `import('tunekit').then((tk) => {
    const a = tk.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const y = tk.ops.matmul(a, a, { transB: true });
    console.log(JSON.stringify({ ...tk.backend().cpu, y: Array.from(y.toArray()) }));
  });`;
  return JSON.parse(execFileSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8' }).trim());
}

describe('environment variables', () => {
  for (const isa of tk.backend().cpu.supportedIsas)
    it(`TUNEKIT_ISA=${isa} selects that kernel set`, () => {
      const r = backendWith({ TUNEKIT_ISA: isa });
      expect(r.isa).toBe(isa);
      expect(r.y).toEqual([14, 32, 32, 77]);
    });

  it('an ISA the CPU lacks (or an unknown name) falls back to the best supported one', () => {
    const best = tk.backend().cpu.supportedIsas.includes('avx512') ? 'avx512' : tk.backend().cpu.supportedIsas.includes('avx2') ? 'avx2' : 'scalar';
    expect(backendWith({ TUNEKIT_ISA: 'sse9' }).isa).toBe(best);
  });

  it('TUNEKIT_THREADS sets the worker count', () => {
    expect(backendWith({ TUNEKIT_THREADS: '1' }).threads).toBe(1);
    expect(backendWith({ TUNEKIT_THREADS: '3' }).threads).toBe(3);
  });
});
