// layerNorm (with and without bias) and rmsNorm over the last axis: forward
// against float64, data with a large offset (variance from centered values),
// custom eps, and gradients of x, weight and bias by finite differences.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

/** weights around 1 (as after init and some training), never 0 */
function weight(rng: Rng, C: number): Arr {
  return { shape: [C], data: rng.signedAway(C, 0.5, 1.5) };
}

// [x shape, offset added to x, eps (undefined: the default)]
const CASES: Array<[number[], number, number | undefined]> = [
  [[1, 1], 0, undefined],
  [[7, 33], 0, undefined],
  [[2, 3, 130], 0, undefined],
  [[13, 67], 100, undefined],  // large mean: a one-pass E[x^2] - E[x]^2 would lose the variance
  [[5, 4099], 0, 1e-3],
  [[1000, 67], 0, undefined],  // many rows: split across threads
  [[3, 7], 0, 0.5],            // eps large enough to matter
];

const GRAD_CASES: Array<[number[], number | undefined]> = [
  [[5, 13], undefined],
  [[2, 3, 7], 0.1],
];

describe.each(ISAS)('norms on %s', (isa) => {
  onIsa(isa);

  describe.each([true, false])('layerNorm (bias: %s)', (withBias) => {
    it('forward matches the float64 reference', () => {
      for (const [shape, offset, eps] of CASES) {
        const rng = new Rng();
        const C = shape[shape.length - 1]!;
        const x = rng.arr(shape);
        for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i]! + offset);
        const w = weight(rng, C), b = withBias ? rng.arr([C]) : null;
        const ctx = ctxOf('layerNorm', rng, isa, `shape=[${shape}] offset=${offset} eps=${eps} bias=${withBias}`);
        tk.tidy(() => {
          const y = tk.ops.layerNorm(T(x), T(w), b ? T(b) : null, eps === undefined ? {} : { eps });
          // with a large offset the float32 mean itself is only good to ~offset * 2^-24 (6e-6
          // at 100: half its spacing plus the rounding of the row sum), and that error shifts
          // every centered value; measured up to 1.1e-5 over 300 seeds, so 4 offset 2^-24
          expectTensor(y, ref.layerNorm(x, w, b, eps ?? 1e-5), offset ? 4 * offset * 2 ** -24 : TOL.reduction, ctx);
        });
      }
    });

    it('gradients of x, weight and bias match finite differences', () => {
      for (const [shape, eps] of GRAD_CASES) {
        const rng = new Rng();
        const C = shape[shape.length - 1]!;
        const inputs = [rng.arr(shape), weight(rng, C), ...(withBias ? [rng.arr([C])] : [])];
        checkGrad({
          ctx: ctxOf('layerNorm', rng, isa, `shape=[${shape}] eps=${eps} bias=${withBias}`),
          rng,
          inputs,
          ours: ([x, w, b]) => tk.ops.layerNorm(x!, w!, b ?? null, eps === undefined ? {} : { eps }),
          ref: ([x, w, b]) => ref.layerNorm(x!, w!, b ?? null, eps ?? 1e-5),
        });
      }
    });

    it('gradient of x alone (weight and bias without requiresGrad)', () => {
      const rng = new Rng();
      const inputs = [rng.arr([4, 9]), weight(rng, 9), ...(withBias ? [rng.arr([9])] : [])];
      checkGrad({
        ctx: ctxOf('layerNorm', rng, isa, `wrt x bias=${withBias}`),
        rng,
        inputs,
        wrt: [0],
        ours: ([x, w, b]) => tk.ops.layerNorm(x!, w!, b ?? null),
        ref: ([x, w, b]) => ref.layerNorm(x!, w!, b ?? null),
      });
    });
  });

  describe('rmsNorm', () => {
    it('forward matches the float64 reference', () => {
      for (const [shape, offset, eps] of CASES) {
        const rng = new Rng();
        const C = shape[shape.length - 1]!;
        const x = rng.arr(shape);
        for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(x.data[i]! + offset);
        const w = weight(rng, C);
        const ctx = ctxOf('rmsNorm', rng, isa, `shape=[${shape}] offset=${offset} eps=${eps}`);
        tk.tidy(() => expectTensor(tk.ops.rmsNorm(T(x), T(w), eps === undefined ? {} : { eps }), ref.rmsNorm(x, w, eps ?? 1e-6), TOL.reduction, ctx));
      }
    });

    it('gradients of x and weight match finite differences', () => {
      for (const [shape, eps] of GRAD_CASES) {
        const rng = new Rng();
        const C = shape[shape.length - 1]!;
        checkGrad({
          ctx: ctxOf('rmsNorm', rng, isa, `shape=[${shape}] eps=${eps}`),
          rng,
          inputs: [rng.arr(shape), weight(rng, C)],
          ours: ([x, w]) => tk.ops.rmsNorm(x!, w!, eps === undefined ? {} : { eps }),
          ref: ([x, w]) => ref.rmsNorm(x!, w!, eps ?? 1e-6),
        });
      }
    });

    it('weight gradient over many rows and wide rows (columns split across threads)', () => {
      const rng = new Rng();
      checkGrad({
        ctx: ctxOf('rmsNorm', rng, isa, 'shape=[3,600]'),
        rng,
        inputs: [rng.arr([3, 600]), weight(rng, 600)],
        wrt: [1],
        ours: ([x, w]) => tk.ops.rmsNorm(x!, w!),
        ref: ([x, w]) => ref.rmsNorm(x!, w!),
      });
    });
  });

  it('reject a weight or bias of the wrong size', () => {
    tk.tidy(() => {
      expect(() => tk.ops.layerNorm(tk.ones([2, 3]), tk.ones([4]), null)).toThrow(/weight/);
      expect(() => tk.ops.layerNorm(tk.ones([2, 3]), tk.ones([3]), tk.ones([2]))).toThrow(/bias/);
      expect(() => tk.ops.rmsNorm(tk.ones([2, 3]), tk.ones([2]))).toThrow(/weight/);
    });
  });
});
