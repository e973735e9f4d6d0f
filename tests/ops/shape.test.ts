// Shape and data-movement ops: reshape, transpose, permute, concat, slice,
// where, maskedFill. Forward results are exact copies (compared with
// tolerance 0); gradients by finite differences. Also other dtypes where the
// op supports them.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T } from '../helpers.js';

function randomPerm(rng: Rng, n: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** a 0/1 mask of the given shape with about half ones */
function mask(rng: Rng, shape: number[]): Arr {
  const n = shape.reduce((p, d) => p * d, 1);
  return { shape, data: Float64Array.from({ length: n }, () => (rng.next() < 0.5 ? 1 : 0)) };
}

describe.each(ISAS)('shape ops on %s', (isa) => {
  onIsa(isa);

  it('reshape: a view with the new shape (-1 inferred); gradient reshapes back', () => {
    const rng = new Rng();
    const x = rng.arr([3, 5, 7]);
    for (const s of [[105], [15, 7], [7, -1], [-1, 5, 1, 7], [1, 105]]) {
      tk.tidy(() => expectTensor(tk.ops.reshape(T(x), s), ref.reshape(x, s), 0, ctxOf('reshape', rng, isa, `to [${s}]`)));
    }
    checkGrad({ ctx: ctxOf('reshape', rng, isa), rng, inputs: [rng.arr([3, 4])], ours: ([t]) => tk.ops.reshape(t!, [2, -1]), ref: ([a]) => ref.reshape(a!, [2, -1]) });
    tk.tidy(() => {
      expect(() => tk.ops.reshape(T(x), [4, -1])).toThrow(/reshape/);
      expect(() => tk.ops.reshape(T(x), [-1, -1])).toThrow(/one dimension/);
      expect(() => tk.ops.reshape(T(x), [100])).toThrow();
    });
  });

  it('transpose: the last two axes by default, any two on request', () => {
    for (const [shape, d0, d1] of [[[7, 13], undefined, undefined], [[2, 3, 5, 7], undefined, undefined], [[2, 3, 5, 7], 0, 2], [[2, 3, 5, 7], -1, 1], [[33, 67], 0, 1]] as Array<[number[], number | undefined, number | undefined]>) {
      const rng = new Rng();
      const x = rng.arr(shape);
      const ctx = ctxOf('transpose', rng, isa, `shape=[${shape}] dims=${d0},${d1}`);
      tk.tidy(() => expectTensor(d0 === undefined ? tk.ops.transpose(T(x)) : tk.ops.transpose(T(x), d0, d1), ref.transpose(x, d0 ?? -2, d1 ?? -1), 0, ctx));
      if (x.data.length < 300)
        checkGrad({ ctx, rng, inputs: [x], ours: ([t]) => (d0 === undefined ? tk.ops.transpose(t!) : tk.ops.transpose(t!, d0, d1)), ref: ([a]) => ref.transpose(a!, d0 ?? -2, d1 ?? -1) });
    }
  });

  it('permute: random permutations of rank 1 to 5 (negative axes too), gradient by the inverse', () => {
    for (const shape of [[13], [7, 3], [2, 3, 5], [3, 1, 4, 5], [2, 3, 1, 2, 3], [33, 5, 67]]) {
      const rng = new Rng();
      const x = rng.arr(shape);
      const perm = randomPerm(rng, shape.length).map((a, i) => (i % 2 ? a - shape.length : a));
      const ctx = ctxOf('permute', rng, isa, `shape=[${shape}] dims=[${perm}]`);
      tk.tidy(() => expectTensor(tk.ops.permute(T(x), perm), ref.permute(x, perm), 0, ctx));
      if (x.data.length < 300) checkGrad({ ctx, rng, inputs: [x], ours: ([t]) => tk.ops.permute(t!, perm), ref: ([a]) => ref.permute(a!, perm) });
    }
    tk.tidy(() => {
      expect(() => tk.ops.permute(tk.ones([2, 3]), [0, 0])).toThrow(/repeats/);
      expect(() => tk.ops.permute(tk.ones([2, 3]), [0])).toThrow(/rank/);
    });
  });

  it('concat: along first, middle and last axes with different lengths; gradient slices back', () => {
    for (const [shapes, axis] of [
      [[[3, 5], [1, 5], [7, 5]], 0],
      [[[2, 3, 4], [2, 1, 4], [2, 7, 4]], 1],
      [[[2, 3, 4], [2, 3, 1]], -1],
      [[[13]], 0],
      [[[2, 0, 3], [2, 5, 3]], 1],  // an empty part
    ] as Array<[number[][], number]>) {
      const rng = new Rng();
      const xs = shapes.map((s) => rng.arr(s));
      const ctx = ctxOf('concat', rng, isa, `shapes=${JSON.stringify(shapes)} axis=${axis}`);
      tk.tidy(() => expectTensor(tk.ops.concat(xs.map((x) => T(x)), axis), ref.concat(xs, axis), 0, ctx));
      checkGrad({ ctx, rng, inputs: xs, ours: (ts) => tk.ops.concat(ts, axis), ref: (as) => ref.concat(as, axis) });
    }
    tk.tidy(() => expect(() => tk.ops.concat([tk.ones([2, 3]), tk.ones([3, 2])], 0)).toThrow(/incompatible/));
  });

  it('slice: start / end normalized (negative, clamped, omitted, empty); gradient pads with zeros', () => {
    // [shape, axis, start, end, the normalized [start, end)]
    const cases: Array<[number[], number, number, number | undefined, number, number]> = [
      [[13, 7], 0, 2, 9, 2, 9],
      [[13, 7], 1, -3, undefined, 4, 7],
      [[3, 33, 5], 1, 5, -5, 5, 28],
      [[3, 33, 5], -1, -100, 100, 0, 5],
      [[3, 33, 5], 2, 4, 2, 4, 4],  // end before start: empty
      [[67], 0, 66, undefined, 66, 67],
    ];
    for (const [shape, axis, start, end, s, e] of cases) {
      const rng = new Rng();
      const x = rng.arr(shape);
      const ctx = ctxOf('slice', rng, isa, `shape=[${shape}] axis=${axis} ${start}:${end}`);
      tk.tidy(() => expectTensor(tk.ops.slice(T(x), axis, start, end), ref.slice(x, axis, s, e), 0, ctx));
      checkGrad({ ctx, rng, inputs: [x], ours: ([t]) => tk.ops.slice(t!, axis, start, end), ref: ([a]) => ref.slice(a!, axis, s, e) });
    }
  });

  it('where: broadcasting cond (f32, i32, i8), a and b (tensors or numbers); gradients to a and b', () => {
    // [cond shape, a shape or number, b shape or number]
    const cases: Array<[number[], number[] | number, number[] | number]> = [
      [[7, 13], [7, 13], [7, 13]],
      [[7, 1], [1, 13], [13]],
      [[13], [7, 13], -2.5],
      [[2, 1, 5], 3, [3, 1]],
      [[], [7], [7]],
    ];
    for (const [cs, as, bs] of cases) {
      for (const dtype of ['f32', 'i32', 'i8'] as const) {
        const rng = new Rng();
        const c = mask(rng, cs);
        const a: Arr = typeof as === 'number' ? { shape: [], data: Float64Array.of(as) } : rng.arr(as);
        const b: Arr = typeof bs === 'number' ? { shape: [], data: Float64Array.of(bs) } : rng.arr(bs);
        const ctx = ctxOf('where', rng, isa, `cond=[${cs}] ${dtype} a=${JSON.stringify(as)} b=${JSON.stringify(bs)}`);
        const cond = () => tk.tensor(Array.from(c.data, (v) => (dtype === 'f32' ? v * rng.uniform(0.5, 2) : v)), cs, { dtype });
        tk.tidy(() => expectTensor(tk.ops.where(cond(), typeof as === 'number' ? as : T(a), typeof bs === 'number' ? bs : T(b)), ref.where(c, a, b), 0, ctx));
        if (dtype !== 'f32') continue;
        const inputs = [a, b].filter((_, i) => typeof [as, bs][i] !== 'number');
        const condT = tk.keep(cond());
        checkGrad({
          ctx,
          rng,
          inputs,
          ours: (ts) => {
            let k = 0;
            const ta = typeof as === 'number' ? as : ts[k++]!;
            const tb = typeof bs === 'number' ? bs : ts[k++]!;
            return tk.ops.where(condT, ta, tb);
          },
          ref: (xs) => {
            let k = 0;
            return ref.where(c, typeof as === 'number' ? a : xs[k++]!, typeof bs === 'number' ? b : xs[k++]!);
          },
        });
        condT.dispose();
      }
    }
  });

  it('maskedFill: the mask broadcasts to x, any value (-inf too); gradient is zero where filled', () => {
    for (const [xs, ms, value] of [[[7, 13], [7, 13], 0.5], [[3, 7, 13], [7, 1], -Infinity], [[2, 33], [33], -1e9], [[5], [], 3]] as Array<[number[], number[], number]>) {
      for (const dtype of ['f32', 'i32', 'i8'] as const) {
        const rng = new Rng();
        const x = rng.arr(xs), m = mask(rng, ms);
        const ctx = ctxOf('maskedFill', rng, isa, `x=[${xs}] mask=[${ms}] ${dtype} value=${value}`);
        const mt = () => tk.tensor(Array.from(m.data), ms, { dtype });
        tk.tidy(() => {
          const y = tk.ops.maskedFill(T(x), mt(), value);
          const r = ref.maskedFill(x, m, value);
          expect([...y.shape]).toEqual(r.shape);
          expect(Array.from(y.toArray()), ctx).toEqual(Array.from(r.data, (v) => Math.fround(v)));
        });
        // (a huge fill value would swamp the float64 finite differences of the loss)
        if (dtype === 'f32' && Math.abs(value) < 100) {
          const mk = tk.keep(mt());
          checkGrad({ ctx, rng, inputs: [x], ours: ([t]) => tk.ops.maskedFill(t!, mk, value), ref: ([a]) => ref.maskedFill(a!, m, value) });
          mk.dispose();
        }
      }
    }
    tk.tidy(() => expect(() => tk.ops.maskedFill(tk.ones([3]), tk.ones([2, 3]), 0)).toThrow(/broadcast/));
  });

  it('reshape, transpose, permute, concat and slice move i32, i8, bf16 and f16 data unchanged', () => {
    const rng = new Rng();
    tk.tidy(() => {
      for (const dtype of ['i32', 'i8', 'bf16', 'f16'] as const) {
        const vals = rng.ints(2 * 3 * 5, -100, 100);
        const x: Arr = { shape: [2, 3, 5], data: Float64Array.from(vals) };
        const t = tk.tensor(vals, [2, 3, 5], { dtype });
        const ctx = ctxOf('move', rng, isa, dtype);
        const same = (y: tk.Tensor, r: Arr) => {
          expect(y.dtype, ctx).toBe(dtype);
          expect([...y.shape], ctx).toEqual(r.shape);
          expect(Array.from(y.toArray()), ctx).toEqual(Array.from(r.data));
        };
        same(tk.ops.reshape(t, [6, 5]), ref.reshape(x, [6, 5]));
        same(tk.ops.transpose(t), ref.transpose(x));
        same(tk.ops.permute(t, [2, 0, 1]), ref.permute(x, [2, 0, 1]));
        same(tk.ops.concat([t, t], 1), ref.concat([x, x], 1));
        same(tk.ops.slice(t, 2, 1, 4), ref.slice(x, 2, 1, 4));
      }
    });
  });
});
