// Elementwise ops: neg, exp, log, sqrt, scale, pow, gelu, silu, relu and the
// broadcasting binary ops add, sub, mul, div (tensors and plain numbers).
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { checkGrad, ctxOf, expectTensor, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

// Sizes: 1, not multiples of any vector width, and one past the threading grain (2^15).
const SHAPES = [[1], [7], [33], [3, 7, 13], [70001]];
// (2 elements, not 1: a lone element can sit on a zero of f' — gelu' at -0.75, silu' at -1.28 —
// where no relative measure of the gradient is meaningful)
const GRAD_SHAPES = [[2], [7, 13]];

interface UnaryCase {
  name: string;
  op: (x: tk.Tensor) => tk.Tensor;
  f: (v: number) => number;
  /** input data of n elements */
  data: (rng: Rng, n: number) => Float64Array;
  tol: number;
}

const UNARY: UnaryCase[] = [
  { name: 'neg', op: tk.ops.neg, f: (v) => -v, data: (r, n) => r.randn(n), tol: TOL.exact },
  { name: 'exp', op: tk.ops.exp, f: Math.exp, data: (r, n) => r.randn(n, 3), tol: TOL.elementwise },
  { name: 'log', op: tk.ops.log, f: Math.log, data: (r, n) => r.rand(n, 0.01, 20), tol: TOL.elementwise },
  { name: 'sqrt', op: tk.ops.sqrt, f: Math.sqrt, data: (r, n) => r.rand(n, 0.01, 20), tol: TOL.exact },
  // gelu is ill-conditioned for x < 0: its relative condition number grows like 2|u| (~25 at
  // x = -6), so rounding the f32 argument u alone costs up to ~1e-5 on a one-element tensor.
  // The per-element range test below bounds it tightly, in proportion to the conditioning.
  { name: 'gelu', op: tk.ops.gelu, f: ref.gelu, data: (r, n) => r.randn(n, 2), tol: 2e-5 },
  { name: 'silu', op: tk.ops.silu, f: ref.silu, data: (r, n) => r.randn(n, 3), tol: TOL.elementwise },
  { name: 'relu', op: tk.ops.relu, f: ref.relu, data: (r, n) => r.randn(n), tol: TOL.exact },
  { name: 'scale(-2.5)', op: (x) => tk.ops.scale(x, -2.5), f: (v) => -2.5 * v, data: (r, n) => r.randn(n), tol: TOL.exact },
  { name: 'scale(0.1)', op: (x) => tk.ops.scale(x, 0.1), f: (v) => Math.fround(0.1) * v, data: (r, n) => r.randn(n), tol: TOL.exact },
  // pow has special paths for 2, 1, 0.5, -1 and 0 besides powf
  ...[2, 1, 0.5, -1, 0, 3, 1.7, -0.5].map<UnaryCase>((p) => ({
    name: `pow(${p})`,
    op: (x) => tk.ops.pow(x, p),
    f: (v) => Math.pow(v, p),
    data: (r, n) => r.rand(n, 0.2, 3),
    tol: TOL.elementwise,
  })),
  // integer powers of negative bases are defined
  ...[2, 3].map<UnaryCase>((p) => ({ name: `pow(${p}) of negatives`, op: (x) => tk.ops.pow(x, p), f: (v) => Math.pow(v, p), data: (r, n) => r.randn(n), tol: TOL.elementwise })),
];

type Operand = number[] | number;  // a shape, or a plain number
const BROADCAST: Array<[Operand, Operand]> = [
  [[7, 13], [7, 13]],
  [[7, 13], [13]],
  [[13], [7, 13]],
  [[7, 1], [1, 13]],
  [[2, 1, 5], [3, 1]],
  [[4, 1, 6, 1], [3, 1, 5]],
  [[], [7]],
  [[33], []],
  [[7, 13], 2.5],
  [-1.75, [7, 13]],
  [[70001], [70001]],
  [[300, 257], [257]],
  [[300, 1], [300, 257]],
];

function operandData(rng: Rng, shape: number[], denominator: boolean, positive = false): Arr {
  const n = shape.reduce((p, d) => p * d, 1);
  return { shape, data: positive ? rng.rand(n, 0.5, 2) : denominator ? rng.signedAway(n) : rng.randn(n) };
}

describe.each(ISAS)('elementwise on %s', (isa) => {
  onIsa(isa);

  describe.each(UNARY)('$name', (c) => {
    it('forward matches the float64 reference', () => {
      for (const shape of SHAPES) {
        const rng = new Rng();
        const x: Arr = { shape, data: c.data(rng, shape.reduce((p, d) => p * d, 1)) };
        tk.tidy(() => expectTensor(c.op(T(x)), ref.map(x, c.f), c.tol, ctxOf(c.name, rng, isa, `shape=[${shape}]`)));
      }
    });

    it('gradient matches finite differences', () => {
      for (const shape of GRAD_SHAPES) {
        const rng = new Rng();
        const x: Arr = { shape, data: c.data(rng, shape.reduce((p, d) => p * d, 1)) };
        checkGrad({ ctx: ctxOf(c.name, rng, isa, `shape=[${shape}]`), rng, inputs: [x], ours: ([t]) => c.op(t!), ref: ([a]) => ref.map(a!, c.f), fwdTol: c.tol });
      }
    });
  });

  // Per-element relative error over each function's whole finite range, on a dense grid.
  // The norm checks above are dominated by the large outputs; this one catches a kernel
  // that loses the small ones (gelu once returned 0 for x = -6 and was 30% off at x = -5).
  // Bounds: a few ulp (2^-24 ~ 6e-8) times the relative condition number of the function.
  const GELU_C = Math.sqrt(2 / Math.PI);
  const RANGE: Array<[string, (x: tk.Tensor) => tk.Tensor, (v: number) => number, number, number, boolean, (v: number) => number]> = [
    ['exp', tk.ops.exp, Math.exp, -87, 88, false, () => 2.5e-7],
    ['log', tk.ops.log, Math.log, 1e-37, 3e38, true, () => 2e-7],
    ['sqrt', tk.ops.sqrt, Math.sqrt, 1e-37, 3e38, true, () => 1.2e-7],
    ['silu', tk.ops.silu, ref.silu, -80, 80, false, () => 4e-7],
    ['gelu', tk.ops.gelu, ref.gelu, -9.5, 12, false, (v) => 5e-7 * (1 + 2 * GELU_C * Math.abs(v + 0.044715 * v * v * v))],
  ];
  it.each(RANGE)('%s keeps per-element relative accuracy over its whole range', (name, op, f, lo, hi, logGrid, bound) => {
    const n = 100003;
    const xs = new Float32Array(n);
    const jitter = Math.random();
    for (let i = 0; i < n; i++) {
      const t = (i + jitter) / n;
      xs[i] = logGrid ? Math.exp(Math.log(lo) + (Math.log(hi) - Math.log(lo)) * t) : lo + (hi - lo) * t;
    }
    const y = tk.tidy(() => op(tk.tensor(xs)).toArray());
    for (let i = 0; i < n; i++) {
      const r = f(xs[i]!);
      const e = Math.abs(y[i]! - r) / Math.abs(r);
      if (!(e <= bound(xs[i]!))) expect.fail(`${name} [isa=${isa}] x=${xs[i]}: ${y[i]} vs ${r}, relative error ${e.toExponential(2)} > ${bound(xs[i]!).toExponential(2)}`);
    }
  });

  it('exp and log handle the ends of the float range', () => {
    tk.tidy(() => {
      const e = tk.ops.exp(tk.tensor([-200, -90, 0, 88, 89, 200])).toArray();
      expect(e[0]).toBe(0);
      expect(e[1]! / Math.exp(-90)).toBeCloseTo(1, 4);  // subnormal result
      expect(e[2]).toBe(1);
      expect(e[3]! / Math.exp(88)).toBeCloseTo(1, 5);
      expect(e[4]).toBe(Infinity);
      expect(e[5]).toBe(Infinity);
      const l = tk.ops.log(tk.tensor([0, -1, 1, 1e-40, Infinity, 3e38])).toArray();
      expect(l[0]).toBe(-Infinity);
      expect(l[1]).toBeNaN();
      expect(l[2]).toBe(0);
      expect(l[3]! / Math.log(1e-40)).toBeCloseTo(1, 3);  // subnormal input
      expect(l[4]).toBe(Infinity);
      expect(l[5]! / Math.log(3e38)).toBeCloseTo(1, 6);
    });
  });

  it('NaN propagates through exp, log, gelu, silu and relu; no NaN from finite inputs', () => {
    tk.tidy(() => {
      for (const op of [tk.ops.exp, tk.ops.log, tk.ops.gelu, tk.ops.silu, tk.ops.relu]) {
        const y = op(tk.tensor([NaN, 1, -1])).toArray();
        expect(y[0]).toBeNaN();
      }
      const rng = new Rng();
      const x = rng.randn(4099, 30);  // large magnitudes: gelu / silu saturate without NaN
      for (const op of [tk.ops.gelu, tk.ops.silu, tk.ops.relu, tk.ops.neg]) {
        const y = op(tk.tensor(Float32Array.from(x))).toArray();
        expect(y.every(Number.isFinite), `seed=${rng.seed}`).toBe(true);
      }
    });
  });

  describe.each(['add', 'sub', 'mul', 'div'] as const)('%s', (op) => {
    const f = tk.ops[op];
    it('forward broadcasts like NumPy and matches the float64 reference', () => {
      for (const [sa, sb] of BROADCAST) {
        const rng = new Rng();
        const a = typeof sa === 'number' ? { shape: [], data: Float64Array.of(Math.fround(sa)) } : operandData(rng, sa, false);
        const b = typeof sb === 'number' ? { shape: [], data: Float64Array.of(Math.fround(sb)) } : operandData(rng, sb, op === 'div');
        tk.tidy(() => {
          const y = f(typeof sa === 'number' ? sa : T(a), typeof sb === 'number' ? sb : T(b));
          expectTensor(y, ref.binary(op, a, b), TOL.exact, ctxOf(op, rng, isa, `a=${JSON.stringify(sa)} b=${JSON.stringify(sb)}`));
        });
      }
    });

    it('gradients reduce over the broadcast dimensions (finite differences)', () => {
      for (const [sa, sb] of BROADCAST.filter(([x, y]) => typeof x === 'number' || typeof y === 'number' || (x.length < 4 && y.length < 4 && x[0] !== 70001 && x[0] !== 300))) {
        const rng = new Rng();
        if (typeof sa === 'number' || typeof sb === 'number') {
          // a plain number takes no gradient; the tensor operand does
          const shape = (typeof sa === 'number' ? sb : sa) as number[];
          const x = operandData(rng, shape, op === 'div' && typeof sb !== 'number');
          const num = (typeof sa === 'number' ? sa : sb) as number;
          const other: Arr = { shape: [], data: Float64Array.of(num) };
          checkGrad({
            ctx: ctxOf(op, rng, isa, `a=${JSON.stringify(sa)} b=${JSON.stringify(sb)}`),
            rng,
            inputs: [x],
            ours: ([t]) => (typeof sa === 'number' ? f(sa, t!) : f(t!, num)),
            ref: ([t]) => (typeof sa === 'number' ? ref.binary(op, other, t!) : ref.binary(op, t!, other)),
          });
          continue;
        }
        // a 0-d operand's gradient is one sum over all elements: keep it from cancelling
        const positive = sa.length === 0 || sb.length === 0;
        checkGrad({
          ctx: ctxOf(op, rng, isa, `a=[${sa}] b=[${sb}]`),
          rng,
          positiveR: positive,
          inputs: [operandData(rng, sa, false, positive), operandData(rng, sb, op === 'div', positive)],
          ours: ([a, b]) => f(a!, b!),
          ref: ([a, b]) => ref.binary(op, a!, b!),
        });
      }
    });
  });

  it('the same tensor on both sides accumulates both gradients', () => {
    const rng = new Rng();
    for (const op of ['add', 'sub', 'mul', 'div'] as const) {
      checkGrad({
        ctx: ctxOf(`${op}(x, x)`, rng, isa),
        rng,
        inputs: [{ shape: [7, 5], data: rng.signedAway(35) }],
        ours: ([x]) => tk.ops[op](x!, x!),
        ref: ([x]) => ref.binary(op, x!, x!),
      });
    }
  });

  it('binary ops reject shapes that do not broadcast', () => {
    tk.tidy(() => {
      expect(() => tk.ops.add(tk.ones([3, 4]), tk.ones([5]))).toThrow(/broadcast/);
      expect(() => tk.ops.mul(tk.ones([2, 3]), tk.ones([3, 2]))).toThrow(/broadcast/);
    });
  });
});
