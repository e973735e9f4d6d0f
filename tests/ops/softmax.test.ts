// softmax and logSoftmax over the last axis and over middle / leading axes
// (the strided kernel path), large logits (max subtraction), long rows, and
// gradients by finite differences.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

// [shape, axis, scale of the logits]
const CASES: Array<[number[], number, number]> = [
  [[1], -1, 1],
  [[7, 130], -1, 1],
  [[7, 130], 1, 30],     // large logits: exp only stays finite with the max subtracted
  [[3, 33, 5], 1, 1],    // middle axis
  [[3, 33, 5], -2, 10],
  [[13, 7], 0, 1],       // leading axis
  [[2, 3, 4, 5], 2, 3],
  [[5, 4099], -1, 1],    // long rows
  [[2, 152064], -1, 1],  // a large LLM vocabulary (a float running sum was 7e-6 off here)
  [[1000, 67], -1, 2],   // many rows: split across threads
  [[67, 1], -1, 1],      // a one-element axis: softmax 1, logSoftmax 0
];

const GRAD_CASES: Array<[number[], number]> = [
  [[5, 13], -1],
  [[3, 7, 5], 1],
  [[7, 3], 0],
];

describe.each(ISAS)('softmax on %s', (isa) => {
  onIsa(isa);

  describe.each([
    ['softmax', tk.ops.softmax, false],
    ['logSoftmax', tk.ops.logSoftmax, true],
  ] as const)('%s', (name, op, log) => {
    it('forward matches the float64 reference', () => {
      for (const [shape, axis, scale] of CASES) {
        const rng = new Rng();
        const x = rng.arr(shape, scale);
        tk.tidy(() => expectTensor(op(T(x), axis), ref.softmax(x, axis, log), TOL.reduction, ctxOf(name, rng, isa, `shape=[${shape}] axis=${axis} scale=${scale}`)));
      }
    });

    it('the default axis is the last', () => {
      const rng = new Rng();
      const x = rng.arr([3, 7, 5]);
      tk.tidy(() => expectTensor(op(T(x)), ref.softmax(x, -1, log), TOL.reduction, ctxOf(name, rng, isa)));
    });

    it('gradient matches finite differences', () => {
      for (const [shape, axis] of GRAD_CASES) {
        const rng = new Rng();
        checkGrad({
          ctx: ctxOf(name, rng, isa, `shape=[${shape}] axis=${axis}`),
          rng,
          inputs: [rng.arr(shape, 2)],
          ours: ([x]) => op(x!, axis),
          ref: ([x]) => ref.softmax(x!, axis, log),
        });
      }
    });
  });

  it('softmax rows sum to 1 and -inf entries get probability 0', () => {
    tk.tidy(() => {
      const rng = new Rng();
      const x = rng.randn(7 * 33);
      for (let i = 0; i < 7 * 33; i += 5) x[i] = -Infinity;
      const y = tk.ops.softmax(tk.tensor(Float32Array.from(x), [7, 33])).toArray();
      for (let r = 0; r < 7; r++) {
        let s = 0;
        for (let j = 0; j < 33; j++) s += y[r * 33 + j]!;
        expect(Math.abs(s - 1), `seed=${rng.seed}`).toBeLessThan(1e-6);
      }
      for (let i = 0; i < 7 * 33; i += 5) expect(y[i]).toBe(0);
      const l = tk.ops.logSoftmax(tk.tensor(Float32Array.from(x), [7, 33])).toArray();
      for (let i = 0; i < 7 * 33; i += 5) expect(l[i]).toBe(-Infinity);
    });
  });
});
