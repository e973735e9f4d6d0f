// crossEntropy: reductions mean / sum / none, ignored rows (default -100 and a
// custom ignoreIndex), large vocabularies, gradients by finite differences.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ids, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

const REDUCTIONS = ['mean', 'sum', 'none'] as const;

/** targets in [0, V) with about a quarter of the rows set to ignoreIndex (at least one row kept) */
function targets(rng: Rng, N: number, V: number, ignore: number | null): number[] {
  const t = rng.ints(N, 0, V);
  if (ignore !== null) for (let i = 1; i < N; i++) if (rng.next() < 0.25) t[i] = ignore;
  return t;
}

describe.each(ISAS)('crossEntropy on %s', (isa) => {
  onIsa(isa);

  describe.each(REDUCTIONS)('reduction %s', (reduction) => {
    it('forward matches the float64 reference', () => {
      // [N, V, logit scale, ignoreIndex option (undefined: the default -100), ignore rows]
      const cases: Array<[number, number, number, number | undefined, boolean]> = [
        [1, 1, 1, undefined, false],
        [1, 7, 0.5, undefined, false],  // one row: small logits keep lse - x[t] away from 0 (cancellation)
        [13, 67, 2, undefined, true],
        [13, 67, 2, 3, true],     // a valid class id used as ignoreIndex
        [33, 5003, 4, undefined, true],  // long rows
        [3, 152064, 1, undefined, false],  // a large LLM vocabulary
        [130, 33, 30, -1, true],  // large logits
      ];
      for (const [N, V, scale, ignoreIndex, withIgnored] of cases) {
        const rng = new Rng();
        const ign = ignoreIndex ?? -100;
        const x = rng.arr([N, V], scale);
        const t = targets(rng, N, V, withIgnored ? ign : null);
        const ctx = ctxOf('crossEntropy', rng, isa, `N=${N} V=${V} ignoreIndex=${ignoreIndex} reduction=${reduction}`);
        tk.tidy(() => {
          const opts = ignoreIndex === undefined ? { reduction } : { reduction, ignoreIndex };
          const y = tk.ops.crossEntropy(T(x), ids(t), opts);
          expectTensor(y, ref.crossEntropy(x, t, ign, reduction), TOL.reduction, ctx);
        });
      }
    });

    it('gradient matches finite differences (ignored rows get zero gradient)', () => {
      for (const [N, V, ignoreIndex] of [[7, 13, -100], [5, 33, 2]] as const) {
        const rng = new Rng();
        const t = targets(rng, N, V, ignoreIndex);
        checkGrad({
          ctx: ctxOf('crossEntropy', rng, isa, `N=${N} V=${V} ignoreIndex=${ignoreIndex} reduction=${reduction} targets=${t}`),
          rng,
          inputs: [rng.arr([N, V], 2)],
          ours: ([x]) => tk.ops.crossEntropy(x!, ids(t), { reduction, ignoreIndex }),
          ref: ([x]) => ref.crossEntropy(x!, t, ignoreIndex, reduction),
        });
      }
    });
  });

  it('the default reduction is mean and the default ignoreIndex is -100', () => {
    const rng = new Rng();
    const x = rng.arr([13, 7]);
    const t = targets(rng, 13, 7, -100);
    tk.tidy(() => expectTensor(tk.ops.crossEntropy(T(x), ids(t)), ref.crossEntropy(x, t), TOL.reduction, ctxOf('crossEntropy', rng, isa)));
  });

  it('all rows ignored: mean is NaN (as PyTorch), sum is 0, the gradient is 0', () => {
    tk.tidy(() => {
      const x = tk.tensor([1, 2, 3, 4, 5, 6], [2, 3], { requiresGrad: true });
      const t = ids([-100, -100]);
      expect(tk.ops.crossEntropy(x, t).item()).toBeNaN();
      const s = tk.ops.crossEntropy(x, t, { reduction: 'sum' });
      expect(s.item()).toBe(0);
      s.backward();
      expect(Array.from(x.grad!.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
    });
  });

  it('rejects targets out of range and badly shaped inputs', () => {
    tk.tidy(() => {
      expect(() => tk.ops.crossEntropy(tk.ones([2, 3]), ids([0, 3]))).toThrow(/out of range/);
      expect(() => tk.ops.crossEntropy(tk.ones([2, 3]), ids([0]))).toThrow(/targets/);
      expect(() => tk.ops.crossEntropy(tk.ones([2, 3]), ids([0, 1]), { reduction: 'avg' as 'mean' })).toThrow(/reduction/);
    });
  });
});
