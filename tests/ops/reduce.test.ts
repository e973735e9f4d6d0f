// Reductions sum, mean, max: one axis (positive and negative), a list of
// axes, everything, keepDims (argument and options object), gradients by
// finite differences, long sums (accuracy), and max's NaN / tie behaviour.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

type Axis = number | number[] | undefined;
const OPS = ['sum', 'mean', 'max'] as const;

// [shape, axis, keepDims]
const CASES: Array<[number[], Axis, boolean]> = [
  [[13, 33, 7], 0, false],
  [[13, 33, 7], 1, false],
  [[13, 33, 7], 2, true],
  [[13, 33, 7], -1, false],
  [[13, 33, 7], -3, true],
  [[13, 33, 7], [0, 2], false],
  [[13, 33, 7], [2, 0], true],
  [[13, 33, 7], [1, -1], false],
  [[13, 33, 7], [0, 1, 2], false],
  [[13, 33, 7], undefined, false],
  [[13, 33, 7], undefined, true],
  [[1, 7, 1], 1, false],
  [[1, 7, 1], 0, true],
  [[67], 0, false],
  [[5, 4099], -1, false],  // long rows: several blocks per row
  [[4099, 5], 0, false],   // long columns: several row blocks
  [[3, 70001], undefined, false],  // everything, split across threads
  [[300, 257, 3], 1, false],  // outer x inner past the threading grain
];

const GRAD_CASES: Array<[number[], Axis, boolean]> = [
  [[3, 7, 5], 1, false],
  [[3, 7, 5], -1, true],
  [[3, 7, 5], [0, 2], false],
  [[3, 7, 5], undefined, false],
  [[7], 0, true],
];

/**
 * Random input. Sums and means down to a few values get an offset: a zero-mean sum
 * of many terms can cancel to a value so small that no relative measure of it means
 * anything.
 */
function data(rng: Rng, op: (typeof OPS)[number], shape: number[], axis: Axis): Arr {
  const x = rng.arr(shape);
  if (op !== 'max' && ref.reduce(op, x, axis).data.length < 16)
    for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i]! + 1);
  return x;
}

function call(op: (typeof OPS)[number], x: tk.Tensor, axis: Axis, keepDims: boolean, style: number): tk.Tensor {
  const f = tk.ops[op];
  // both call styles: (x, axis, keepDims) and (x, { axis, keepDims })
  return style === 0 ? f(x, axis, keepDims) : f(x, { axis, keepDims });
}

describe.each(ISAS)('reductions on %s', (isa) => {
  onIsa(isa);

  describe.each(OPS)('%s', (op) => {
    it('forward over an axis, a list of axes or everything matches the float64 reference', () => {
      CASES.forEach(([shape, axis, keepDims], k) => {
        const rng = new Rng();
        const x = data(rng, op, shape, axis);
        const ctx = ctxOf(op, rng, isa, `shape=[${shape}] axis=${JSON.stringify(axis)} keepDims=${keepDims}`);
        tk.tidy(() => expectTensor(call(op, T(x), axis, keepDims, k % 2), ref.reduce(op, x, axis, keepDims), op === 'max' ? 0 : TOL.reduction, ctx));
      });
    });

    it('gradient matches finite differences', () => {
      GRAD_CASES.forEach(([shape, axis, keepDims], k) => {
        const rng = new Rng();
        checkGrad({
          ctx: ctxOf(op, rng, isa, `shape=[${shape}] axis=${JSON.stringify(axis)} keepDims=${keepDims}`),
          rng,
          inputs: [data(rng, op, shape, axis)],
          ours: ([x]) => call(op, x!, axis, keepDims, k % 2),
          ref: ([x]) => ref.reduce(op, x!, axis, keepDims),
        });
      });
    });
  });

  it('long sums stay accurate (1e6 elements, 5e5-row columns, same-sign data)', () => {
    const rng = new Rng();
    const n = 1_000_003;
    // uniform in [0.5, 1.5): no cancellation, so the error is all accumulation error
    const x: Arr = { shape: [n], data: rng.rand(n, 0.5, 1.5) };
    const cols: Arr = { shape: [n / 7 | 0, 7], data: x.data.subarray(0, (n / 7 | 0) * 7) };
    tk.tidy(() => {
      const ctx = ctxOf('sum', rng, isa, `n=${n}`);
      expectTensor(tk.ops.sum(T(x)), ref.reduce('sum', x), TOL.reduction, ctx);
      expectTensor(tk.ops.mean(T(x)), ref.reduce('mean', x), TOL.reduction, ctx);
      expectTensor(tk.ops.sum(T(cols), 0), ref.reduce('sum', cols, 0), TOL.reduction, `${ctx} columns`);
      expectTensor(tk.ops.mean(T(cols), 0), ref.reduce('mean', cols, 0), TOL.reduction, `${ctx} columns`);
    });
  });

  it('max: NaN propagates, ties send the gradient to the first maximum, -inf rows stay -inf', () => {
    tk.tidy(() => {
      const y = tk.ops.max(tk.tensor([1, NaN, 3, 0, 2, -1], [2, 3]), 1).toArray();
      expect(y[0]).toBeNaN();
      expect(y[1]).toBe(2);
      const yc = tk.ops.max(tk.tensor([1, 0, NaN, 2, 3, -1], [3, 2]), 0).toArray();
      expect(yc[0]).toBeNaN();
      expect(yc[1]).toBe(2);
      expect(Array.from(tk.ops.max(tk.tensor([-Infinity, -Infinity], [1, 2]), 1).toArray())).toEqual([-Infinity]);
      const x = tk.tensor([5, 1, 5, 2, 7, 7], [2, 3], { requiresGrad: true });
      tk.ops.max(x, 1).backward(tk.tensor([10, 20]));
      expect(Array.from(x.grad!.toArray())).toEqual([10, 0, 0, 0, 20, 0]);
      const c = tk.tensor([3, 3, 1, 3], [2, 2], { requiresGrad: true });
      tk.ops.max(c, 0).backward(tk.tensor([1, 2]));
      expect(Array.from(c.grad!.toArray())).toEqual([1, 2, 0, 0]);
    });
  });

  it('sum over an empty axis is 0; mean and max of an empty axis throw', () => {
    tk.tidy(() => {
      expect(Array.from(tk.ops.sum(tk.zeros([3, 0]), 1).toArray())).toEqual([0, 0, 0]);
      expect(() => tk.ops.mean(tk.zeros([3, 0]), 1)).toThrow();
      expect(() => tk.ops.max(tk.zeros([3, 0]), 1)).toThrow();
      expect(() => tk.ops.sum(tk.ones([3, 4]), 2)).toThrow(/out of range/);
    });
  });
});
