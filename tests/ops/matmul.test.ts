// matmul: all four transpose combinations, awkward sizes (1, 7, 13, 33, 67,
// 130, K ~ 1000, M and N past the cache blocks), leading batch dimensions with
// broadcasting, and gradients of both operands by finite differences.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

const TRANS: Array<[boolean, boolean]> = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

/** stored shapes of a and b for op(a): [...ba, M, K] and op(b): [...bb, K, N] */
function storedShapes(ba: number[], bb: number[], M: number, K: number, N: number, ta: boolean, tb: boolean): [number[], number[]] {
  return [[...ba, ...(ta ? [K, M] : [M, K])], [...bb, ...(tb ? [N, K] : [K, N])]];
}

describe.each(ISAS)('matmul on %s', (isa) => {
  onIsa(isa);

  // (M, K, N): tiny, edge tiles in every direction, K past one KC block (256), M past MC, N past NC (3072)
  const SIZES: Array<[number, number, number]> = [
    [1, 1, 1],
    [1, 7, 13],
    [7, 13, 1],
    [13, 33, 7],
    [33, 67, 130],
    [67, 130, 33],
    [13, 1031, 67],
    [200, 300, 67],
    [3, 300, 3100],
  ];

  describe.each(TRANS)('transA=%s transB=%s', (ta, tb) => {
    it('2-D forward matches the float64 reference', () => {
      for (const [M, K, N] of SIZES) {
        const rng = new Rng();
        const [sa, sb] = storedShapes([], [], M, K, N, ta, tb);
        const a = rng.arr(sa), b = rng.arr(sb);
        const y = tk.tidy(() => tk.ops.matmul(T(a), T(b), { transA: ta, transB: tb }).toArray());
        const ctx = ctxOf('matmul', rng, isa, `M=${M} K=${K} N=${N} ta=${ta} tb=${tb}`);
        const r = ref.matmul(a, b, ta, tb);
        expect(r.shape).toEqual([M, N]);
        expectTensor(tk.tensor(y, [M, N]), r, TOL.matmul, ctx);
      }
    });

    it('batched forward broadcasts the leading dimensions', () => {
      // [2,1,5,7] x [3,7,6] -> [2,3,5,6]; [13,33] x [4,33,7]; [3,1,13,33] x [1,4,33,130] (threads inside gemm)
      const cases: Array<[number[], number[], number, number, number]> = [
        [[2, 1], [3], 5, 7, 6],
        [[], [4], 13, 33, 7],
        [[3, 1], [1, 4], 13, 33, 130],
        [[5], [5], 1, 67, 1],
        [[2, 3], [], 7, 13, 33],
      ];
      for (const [ba, bb, M, K, N] of cases) {
        const rng = new Rng();
        const [sa, sb] = storedShapes(ba, bb, M, K, N, ta, tb);
        const a = rng.arr(sa), b = rng.arr(sb);
        const ctx = ctxOf('matmul', rng, isa, `a=[${sa}] b=[${sb}] ta=${ta} tb=${tb}`);
        tk.tidy(() => {
          const y = tk.ops.matmul(T(a), T(b), { transA: ta, transB: tb });
          expectTensor(y, ref.matmul(a, b, ta, tb), TOL.matmul, ctx);
        });
      }
    });

    it('gradients of both operands match finite differences (2-D and broadcast batch)', () => {
      const cases: Array<[number[], number[], number, number, number]> = [
        [[], [], 7, 13, 5],
        [[2, 1], [3], 5, 7, 6],
        [[], [3], 5, 7, 6],
        [[4], [], 3, 5, 1],
      ];
      for (const [ba, bb, M, K, N] of cases) {
        const rng = new Rng();
        const [sa, sb] = storedShapes(ba, bb, M, K, N, ta, tb);
        checkGrad({
          ctx: ctxOf('matmul', rng, isa, `a=[${sa}] b=[${sb}] ta=${ta} tb=${tb}`),
          rng,
          inputs: [rng.arr(sa), rng.arr(sb)],
          ours: ([a, b]) => tk.ops.matmul(a!, b!, { transA: ta, transB: tb }),
          ref: ([a, b]) => ref.matmul(a!, b!, ta, tb),
          fwdTol: TOL.matmul,
        });
      }
    });
  });

  it('gradient of only one operand (the other without requiresGrad)', () => {
    const rng = new Rng();
    const a = rng.arr([3, 7, 13]), b = rng.arr([13, 5]);
    for (const wrt of [[0], [1]]) {
      checkGrad({
        ctx: ctxOf('matmul', rng, isa, `wrt=${wrt}`),
        rng,
        inputs: [a, b],
        wrt,
        ours: ([x, y]) => tk.ops.matmul(x!, y!),
        ref: ([x, y]) => ref.matmul(x!, y!),
      });
    }
  });

  it('empty dimensions give empty (M or N = 0) or zero (K = 0) results', () => {
    tk.tidy(() => {
      const rng = new Rng();
      expect(tk.ops.matmul(T(rng.arr([0, 7])), T(rng.arr([7, 5]))).shape).toEqual([0, 5]);
      const z = tk.ops.matmul(tk.zeros([3, 0]), tk.zeros([0, 4]));
      expect(Array.from(z.toArray())).toEqual(new Array(12).fill(0));
    });
  });

  it('rejects mismatched inner dimensions and batch shapes', () => {
    tk.tidy(() => {
      expect(() => tk.ops.matmul(tk.ones([3, 4]), tk.ones([5, 6]))).toThrow(/inner dimensions/);
      expect(() => tk.ops.matmul(tk.ones([2, 3, 4]), tk.ones([3, 4, 6]))).toThrow(/broadcast/);
      expect(() => tk.ops.matmul(tk.ones([4]), tk.ones([4, 6]))).toThrow(/2 dimensions/);
    });
  });
});
