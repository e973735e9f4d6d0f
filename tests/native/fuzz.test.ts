// Bad input never crashes the process. Each run of tests/native/fuzz-child.mjs
// (in a child process, so that a segfault or abort is observed rather than
// suffered) drives every exported native function, the NativeTensor methods,
// or the public tk.ops functions with a few thousand randomized bad argument
// lists from a seeded PRNG: missing arguments, wrong types (strings, plain
// objects posing as tensors, null, undefined, functions, symbols, BigInt),
// wrong dtypes, mismatched shapes, negative / non-integer / NaN / Infinity /
// huge sizes, disposed tensors, out-of-range ids, targets and axes, and
// getters that dispose the tensors of the very call that reads them.
//
// Reproduce a failure with
//   FUZZ_TRACE=1 node --expose-gc tests/native/fuzz-child.mjs <native|ops> <seed> <calls>
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, 'fuzz-child.mjs');

interface Summary {
  mode: string;
  seed: number;
  calls: number;
  threw: number;
  returned: number;
  mustThrow: number;
  failureCount: number;
  failures: Array<{ fn: string; args: string; why: string }>;
  perFn: Record<string, { calls: number; threw: number }>;
  exported: string[];
  untyped?: string[];
}

function runChild(mode: 'native' | 'ops', seed: number, calls: number): Summary {
  const r = spawnSync(process.execPath, ['--expose-gc', child, mode, String(seed), String(calls)], {
    encoding: 'utf8',
    timeout: 90_000,
    maxBuffer: 64 << 20,
  });
  const how = `node --expose-gc tests/native/fuzz-child.mjs ${mode} ${seed} ${calls}`;
  const tail = `\n--- stderr (last 2000 chars) ---\n${(r.stderr ?? '').slice(-2000)}`;
  // (a) the child ran to the end and exited normally: no signal, no abort, no hang
  expect(r.error, `${how}: ${String(r.error)} (a hang?)${tail}`).toBeUndefined();
  expect(r.signal, `${how} was killed by ${r.signal}${tail}`).toBeNull();
  expect(r.status, `${how} exited with ${r.status}${tail}`).toBe(0);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(last) as Summary;
}

function expectClean(s: Summary, minCalls: number): void {
  // (b) every bad call threw a TypeError or RangeError that names the op
  const shown = s.failures.map((f) => `  ${f.fn}(${f.args}): ${f.why}`).join('\n');
  expect(s.failureCount, `seed ${s.seed}, ${s.failureCount} bad outcomes, first ones:\n${shown}`).toBe(0);
  expect(s.calls).toBeGreaterThanOrEqual(minCalls);
  // the generator does produce bad calls (not merely calls that happen to fail)
  expect(s.mustThrow).toBeGreaterThan(s.calls / 2);
  // every function was driven
  const missed = s.exported.filter((f) => !s.perFn[f]?.calls);
  expect(missed, `functions never called with seed ${s.seed}`).toEqual([]);
}

describe('native addon fuzz (child process)', () => {
  for (const seed of [1, 2, 3]) {
    it(`bad arguments to every native function and NativeTensor method never crash (seed ${seed})`, () => {
      const s = runChild('native', seed, 4000);
      expectClean(s, 4000);
      for (const m of ['NativeTensor', 'NativeTensor.dispose', 'NativeTensor.shape', 'NativeTensor.dtype', 'NativeTensor.disposed'])
        expect(s.perFn[m]?.calls, m).toBeGreaterThan(0);
    });
  }

  it('every native export is typed in src/native/binding.ts', () => {
    const s = runChild('native', 7, 200);
    expect(s.exported.length).toBeGreaterThan(40);
    expect(s.untyped, 'exports missing from the NativeAddon interface').toEqual([]);
  });
});

describe('tk.ops fuzz (child process)', () => {
  for (const seed of [1, 2]) {
    it(`bad arguments to every public op throw a JS error naming the op (seed ${seed})`, () => {
      const s = runChild('ops', seed, 3000);
      expectClean(s, 3000);
    });
  }
});
