// embedding: gather rows of a [V, C] table by i32 ids of any shape; the
// backward scatter-adds (repeated ids accumulate), checked by finite differences.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ids, ISAS, onIsa, Rng, T } from '../helpers.js';

describe.each(ISAS)('embedding on %s', (isa) => {
  onIsa(isa);

  it('forward gathers the rows exactly, for ids of any shape', () => {
    // [V, C, ids shape]
    const cases: Array<[number, number, number[]]> = [
      [1, 1, [1]],
      [37, 13, [3, 7]],
      [5, 130, [2, 3, 4]],   // few rows, many repeats
      [1000, 67, [33]],
      [50, 7, []],           // a 0-d id gives one row
      [13, 600, [4099]],     // many ids: split across threads
    ];
    for (const [V, C, shape] of cases) {
      const rng = new Rng();
      const table = rng.arr([V, C]);
      const n = shape.reduce((p, d) => p * d, 1);
      const id = rng.ints(n, 0, V);
      tk.tidy(() => expectTensor(tk.ops.embedding(T(table), ids(id, shape)), ref.embedding(table, id, shape), 0, ctxOf('embedding', rng, isa, `V=${V} C=${C} ids=[${shape}]`)));
    }
  });

  it('gradient of the table scatter-adds repeated ids (finite differences)', () => {
    for (const [V, C, shape] of [[7, 5, [3, 4]], [3, 600, [9]], [11, 3, [2]]] as Array<[number, number, number[]]>) {
      const rng = new Rng();
      const n = shape.reduce((p, d) => p * d, 1);
      const id = rng.ints(n, 0, V);
      checkGrad({
        ctx: ctxOf('embedding', rng, isa, `V=${V} C=${C} ids=${id}`),
        rng,
        inputs: [rng.arr([V, C])],
        ours: ([t]) => tk.ops.embedding(t!, ids(id, shape)),
        ref: ([t]) => ref.embedding(t!, id, shape),
        tol: 1e-6,  // sums of a few products of the projection: ~1 rounding each
      });
    }
  });

  it('rows never looked up get exactly zero gradient', () => {
    tk.tidy(() => {
      const table = tk.randn([6, 3], { requiresGrad: true, seed: 1 });
      tk.ops.embedding(table, ids([4, 1, 4])).backward(tk.ones([3, 3]));
      expect(Array.from(table.grad!.toArray())).toEqual([0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0]);
    });
  });

  it('rejects ids out of range and non-i32 ids', () => {
    tk.tidy(() => {
      expect(() => tk.ops.embedding(tk.ones([4, 2]), ids([0, 4]))).toThrow(/out of range/);
      expect(() => tk.ops.embedding(tk.ones([4, 2]), ids([-1]))).toThrow(/out of range/);
      expect(() => tk.ops.embedding(tk.ones([4, 2]), tk.tensor([0, 1]))).toThrow(/i32/);
    });
  });
});
