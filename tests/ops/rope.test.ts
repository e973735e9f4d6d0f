// rope: rotary embedding, rotate-half convention (Hugging Face Llama): pairs
// (d, d + D/2) rotate by positions[t] * theta^(-2d/D). Forward against float64
// for several head sizes, positions and thetas; gradient by finite differences;
// and the properties that pin the convention down.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import { checkGrad, ctxOf, expectClose, expectTensor, ids, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

describe.each(ISAS)('rope on %s', (isa) => {
  onIsa(isa);

  it('forward matches the float64 reference', () => {
    // [B, H, T, D, theta (undefined: the default 10000), max position]
    const cases: Array<[number, number, number, number, number | undefined, number]> = [
      [1, 1, 1, 2, undefined, 1],
      [2, 3, 7, 10, undefined, 50],
      [1, 2, 13, 130, 500000, 4096],  // Llama 3 theta, long-context positions
      [3, 1, 33, 64, 10000, 2048],
      [1, 1, 5, 6, 100, 7],
    ];
    for (const [B, H, Tn, D, theta, maxPos] of cases) {
      const rng = new Rng();
      const x = rng.arr([B, H, Tn, D]);
      const pos = rng.ints(Tn, 0, maxPos);  // any positions, not only 0..T-1 (a KV cache offset)
      const ctx = ctxOf('rope', rng, isa, `x=[${B},${H},${Tn},${D}] theta=${theta} positions=${pos.slice(0, 5)}...`);
      // the angles reach ~4000 rad, where float32 cos / sin of the exact angle are only
      // good to ~1 ulp of their value (the kernel computes the angles in double)
      tk.tidy(() => expectTensor(tk.ops.rope(T(x), ids(pos), theta === undefined ? {} : { theta }), ref.rope(x, pos, theta ?? 10000), TOL.elementwise, ctx));
    }
  });

  it('gradient (the inverse rotation) matches finite differences', () => {
    for (const [shape, theta] of [[[1, 2, 5, 6], 10000], [[2, 1, 3, 10], 500]] as Array<[number[], number]>) {
      const rng = new Rng();
      const pos = rng.ints(shape[2]!, 0, 100);
      checkGrad({
        ctx: ctxOf('rope', rng, isa, `x=[${shape}] positions=${pos}`),
        rng,
        inputs: [rng.arr(shape)],
        ours: ([x]) => tk.ops.rope(x!, ids(pos), { theta }),
        ref: ([x]) => ref.rope(x!, pos, theta),
        fwdTol: TOL.elementwise,
      });
    }
  });

  it('pins down the convention: position 0 is the identity, pair (0, D/2) turns by exactly positions[t] rad', () => {
    const rng = new Rng();
    const D = 8;
    const x = rng.arr([1, 1, 2, D]);
    const y = tk.tidy(() => tk.ops.rope(T(x), ids([0, 3])).toArray());
    const ctx = ctxOf('rope', rng, isa);
    // t = 0: unchanged
    expectClose(y.subarray(0, D), x.data.subarray(0, D), TOL.exact, `${ctx} position 0`);
    // t = 1, d = 0: frequency theta^0 = 1, so (x0, x4) turns by 3 rad
    const [x0, x4] = [x.data[D]!, x.data[D + 4]!];
    expectClose([y[D]!, y[D + 4]!], [x0 * Math.cos(3) - x4 * Math.sin(3), x4 * Math.cos(3) + x0 * Math.sin(3)], TOL.elementwise, `${ctx} pair (0, 4)`);
    // every pair keeps its length
    for (let d = 0; d < D / 2; d++) {
      const before = Math.hypot(x.data[D + d]!, x.data[D + d + D / 2]!), after = Math.hypot(y[D + d]!, y[D + d + D / 2]!);
      expect(Math.abs(after - before) / before, ctx).toBeLessThan(1e-6);
    }
  });

  it('rejects odd head sizes, wrong position counts and non-4-D inputs', () => {
    tk.tidy(() => {
      expect(() => tk.ops.rope(tk.ones([1, 1, 2, 5]), ids([0, 1]))).toThrow(/even/);
      expect(() => tk.ops.rope(tk.ones([1, 1, 2, 4]), ids([0]))).toThrow(/positions/);
      expect(() => tk.ops.rope(tk.ones([2, 4]), ids([0, 1]))).toThrow(/\[B, H, T, D\]/);
    });
  });
});
