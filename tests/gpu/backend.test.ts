// The CUDA backend is optional: loading a missing, broken or foreign library
// must leave the process running on the CPU with a reason in words.
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

function childBackend(env: Record<string, string>): { cuda: { built: boolean; available: boolean; reason?: string }; sum: number[] } {
  const code = `import('tunekit').then((tk) => {
    const s = tk.ops.add(tk.tensor([1, 2], [2]), 1);
    console.log(JSON.stringify({ cuda: tk.backend().cuda, sum: Array.from(s.toArray()) }));
  });`;
  const out = execFileSync(process.execPath, ['-e', code], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return JSON.parse(out.trim());
}

describe('CUDA backend loading', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tunekit-cuda-'));

  it('a broken library file: built, not available, CPU keeps working', () => {
    const bad = join(dir, 'broken.so');
    writeFileSync(bad, 'this is not an ELF file');
    const r = childBackend({ TUNEKIT_CUDA_LIB: bad });
    expect(r.cuda.built).toBe(true);
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.reason).toMatch(/failed to load/);
    expect(r.sum).toEqual([2, 3]);
  });

  it('a shared library that is not a tunekit backend', () => {
    const r = childBackend({ TUNEKIT_CUDA_LIB: '/lib/x86_64-linux-gnu/libm.so.6' });
    expect(r.cuda.available).toBe(false);
    expect(r.cuda.reason).toMatch(/not a tunekit CUDA backend|failed to load/);
    expect(r.sum).toEqual([2, 3]);
  });

  it('a missing library', () => {
    const r = childBackend({ TUNEKIT_CUDA_LIB: join(dir, 'does-not-exist.so') });
    expect(r.cuda.built).toBe(false);
    expect(r.cuda.reason).toMatch(/no library/);
  });

  it('asking for cuda where it is unavailable throws a clear error', () => {
    if (tk.backend().cuda.available) return;
    expect(() => tk.tensor([1], [1], { device: 'cuda' })).toThrow(/CUDA is not available: \w+/);
    expect(() => tk.tensor([1], [1]).to('cuda')).toThrow(/CUDA is not available/);
  });
});

describe.skipIf(!tk.backend().cuda.available)('CUDA devices', () => {
  it('lists devices with a compute capability', () => {
    const d = tk.backend().cuda.devices;
    expect(d.length).toBeGreaterThan(0);
    expect(d[0]!.computeCapability).toMatch(/^\d+\.\d+$/);
    expect(d[0]!.memoryBytes).toBeGreaterThan(0);
  });
});
