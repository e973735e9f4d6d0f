// Results do not depend on the worker-thread count: tk.setThreads(1) and
// tk.setThreads(2) give the same matmul (threaded inside one GEMM, and across
// a batch of small GEMMs) and the same sums (rows, columns, and one long sum
// split across threads), within float32 tolerance of each other and of the
// float64 reference. Sums are also bitwise identical: the kernel sums fixed
// blocks whatever the thread count. The thread count is restored afterwards.
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { DEFAULT_THREADS, expectClose, ISAS, onIsa, relErr, Rng, T, TOL } from '../helpers.js';

afterAll(() => tk.setThreads(DEFAULT_THREADS));

function onThreads<R>(n: number, f: () => R): R {
  tk.setThreads(n);
  try {
    return f();
  } finally {
    tk.setThreads(DEFAULT_THREADS);
  }
}

describe.each(ISAS)('thread count independence on %s', (isa) => {
  onIsa(isa);

  it('matmul: 1 and 2 threads agree (one large GEMM, column split, batch of small GEMMs)', () => {
    // [a shape, b shape]: rows split; few rows, so columns split; many small products
    const cases: Array<[number[], number[]]> = [[[200, 300], [300, 67]], [[7, 1031], [1031, 130]], [[67, 13, 33], [67, 33, 7]]];
    for (const [sa, sb] of cases) {
      const rng = new Rng();
      const a = rng.arr(sa), b = rng.arr(sb);
      const run = (n: number) => onThreads(n, () => tk.tidy(() => tk.ops.matmul(T(a), T(b)).toArray()));
      const one = run(1), two = run(2);
      const ctx = `matmul [isa=${isa} seed=${rng.seed} a=[${sa}] b=[${sb}]]`;
      expect(relErr(two, one), `${ctx}: 2 threads vs 1`).toBeLessThanOrEqual(TOL.exact);
      expectClose(two, ref.matmul(a, b), TOL.matmul, ctx);
    }
  });

  it('sum: 1 and 2 threads give bitwise identical results (rows, columns, everything)', () => {
    const rng = new Rng();
    const x: Arr = { shape: [130, 4099], data: rng.rand(130 * 4099, 0.5, 1.5) };
    const flat: Arr = { shape: [x.data.length], data: x.data };
    const run = (n: number) =>
      onThreads(n, () => tk.tidy(() => [tk.ops.sum(T(x), 1), tk.ops.sum(T(x), 0), tk.ops.sum(T(flat)), tk.ops.mean(T(x), [0, 1])].map((t) => Array.from(t.toArray()))));
    const one = run(1), two = run(2);
    const refs = [ref.reduce('sum', x, 1), ref.reduce('sum', x, 0), ref.reduce('sum', flat), ref.reduce('mean', x, [0, 1])];
    ['rows', 'columns', 'everything', 'mean of everything'].forEach((what, k) => {
      const ctx = `sum ${what} [isa=${isa} seed=${rng.seed}]`;
      expect(relErr(two[k]!, one[k]!), `${ctx}: 2 threads vs 1`).toBeLessThanOrEqual(TOL.exact);
      expect(two[k], `${ctx}: bitwise`).toEqual(one[k]);
      expectClose(two[k]!, refs[k]!, TOL.reduction, ctx);
    });
  });

  it('setThreads restores: backend() reports the count that was set', () => {
    onThreads(1, () => expect(tk.backend().cpu.threads).toBe(1));
    expect(tk.backend().cpu.threads).toBe(DEFAULT_THREADS);
  });
});
