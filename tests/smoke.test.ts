import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

describe('package', () => {
  it('loads through the package self-reference and reports its backend', () => {
    const b = tk.backend();
    expect(['avx512', 'avx2', 'scalar']).toContain(b.cpu.isa);
    expect(b.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(typeof b.cuda.built).toBe('boolean');
    if (!b.cuda.available) expect(b.cuda.reason).toMatch(/\w/);
  });
});
