// Shared test utilities: seeded random data (a fresh seed per check, printed
// in every assertion message), float64 views of tensors, relative-norm
// comparison, and the finite-difference gradient check.
import { appendFileSync } from 'node:fs';
import { afterAll, beforeEach, expect } from 'vitest';
import * as tk from 'tunekit';
import type { Arr } from './reference.js';

export type Isa = 'avx512' | 'avx2' | 'scalar';

// ---------------------------------------------------------------- tolerances
// Relative norm error ||ours - ref|| / ||ref|| against a float64 reference on
// the same (float32-representable) inputs. float32 rounds at u = 2^-24 ~ 6e-8;
// a chain of a few roundings lands near 1e-7, and dot products / reductions of
// length K grow like sqrt(K) u at worst in the norm. "measured" is the largest
// error seen over repeated full runs (fresh seeds, all ISAs): each bound leaves
// at least ~5x headroom, and stays far below what any real bug produces (an
// unwritten element, a wrong tile or a wrong formula gives 1e-3 to 1).
export const TOL = {
  /** one rounding per element (neg, scale, add, mul, div, sqrt, copies, dropout): measured 6e-8 */
  exact: 2e-7,
  /** vectorized transcendentals (exp, log, silu, pow, rope; ~1-3 ulp): measured 1.3e-7 */
  elementwise: 1e-6,
  /** row / column reductions (sum, mean, softmax, norms, cross entropy): measured 3.2e-7 */
  reduction: 2e-6,
  /** matmul, K up to 1031 (and 5-element outputs of K = 67 dots): measured 4.6e-7 */
  matmul: 1e-5,
  /** f32 backward vs central differences of the float64 reference: measured 5.7e-7 */
  grad: 2e-5,
} as const;

// ---------------------------------------------------------------- random data
/** A fresh seed for each check (printed in the assertion message to reproduce a failure). */
export function freshSeed(): number {
  return Math.floor(Math.random() * 0x7fffffff);
}

/** Small, fast, seeded generator (mulberry32 pairs for 53-bit uniforms). */
export class Rng {
  private s: number;
  constructor(readonly seed: number = freshSeed()) {
    this.s = seed >>> 0;
  }
  private u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** uniform in [0, 1) */
  next(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** integer in [lo, hi) */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** n standard normals times `scale`, rounded to float32 (so that both sides see the same inputs) */
  randn(n: number, scale = 1): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.fround(scale * this.normal());
    return a;
  }
  /** n uniforms in [lo, hi), rounded to float32 */
  rand(n: number, lo = 0, hi = 1): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.fround(this.uniform(lo, hi));
    return a;
  }
  /** n values with |v| in [lo, hi) and a random sign (denominators kept away from zero) */
  signedAway(n: number, lo = 0.5, hi = 2): Float64Array {
    const a = new Float64Array(n);
    for (let i = 0; i < n; i++) a[i] = Math.fround((this.next() < 0.5 ? -1 : 1) * this.uniform(lo, hi));
    return a;
  }
  ints(n: number, lo: number, hi: number): number[] {
    return Array.from({ length: n }, () => this.int(lo, hi));
  }
  /** a random normal array of the given shape */
  arr(shape: readonly number[], scale = 1): Arr {
    return { shape: [...shape], data: this.randn(numelOf(shape), scale) };
  }
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((p, d) => p * d, 1);
}

// ---------------------------------------------------------------- tensors <-> float64
/** A float32 tensor holding exactly the (float32-representable) values of `a`. */
export function T(a: Arr, requiresGrad = false): tk.Tensor {
  return tk.tensor(Float32Array.from(a.data), a.shape, { requiresGrad });
}

export function ids(values: readonly number[], shape: readonly number[] = [values.length]): tk.Tensor {
  return tk.tensor(Int32Array.from(values), shape, { dtype: 'i32' });
}

export function f64(t: tk.Tensor): Float64Array {
  return Float64Array.from(t.toArray());
}

export function asArr(t: tk.Tensor): Arr {
  return { shape: [...t.shape], data: f64(t) };
}

// ---------------------------------------------------------------- comparison
export function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

/** ||ours - ref|| / ||ref|| (absolute error when ref is all zero) */
export function relErr(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ours[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/**
 * Asserts that `ours` matches the float64 reference: same length, no NaN or
 * infinity where the reference is finite, relative norm error <= tol, and
 * every single element within 100 tol of the typical reference magnitude (so
 * that an element the kernel never wrote fails even when the norm would hide it).
 */
export function expectClose(ours: ArrayLike<number>, ref: ArrayLike<number> | Arr, tol: number, ctx: string): number {
  const r = 'data' in ref ? (ref as Arr).data : (ref as ArrayLike<number>);
  expect(ours.length, `${ctx}: length`).toBe(r.length);
  for (let i = 0; i < r.length; i++)
    if (Number.isFinite(r[i]!) && !Number.isFinite(ours[i]!))
      expect.fail(`${ctx}: element ${i} is ${ours[i]} where the reference is ${r[i]}`);
  const err = relErr(ours, r);
  // TK_ERR_REPORT=file: one JSON line per comparison (used to size the tolerances above)
  if (process.env.TK_ERR_REPORT) appendFileSync(process.env.TK_ERR_REPORT, JSON.stringify({ ctx: ctx.replace(/ seed=\d+/, ''), err, tol }) + '\n');
  expect(err, `${ctx}: relative norm error ${err.toExponential(2)} > ${tol}`).toBeLessThanOrEqual(tol);
  const rms = r.length ? norm(r) / Math.sqrt(r.length) : 0;
  const elemTol = Math.max(100 * tol, 1e-5);
  for (let i = 0; i < r.length; i++) {
    const d = Math.abs(ours[i]! - r[i]!);
    if (!(d <= elemTol * (Math.abs(r[i]!) + rms)))
      expect.fail(`${ctx}: element ${i} is ${ours[i]}, reference ${r[i]} (an unwritten or wrong element)`);
  }
  return err;
}

export function expectShape(t: tk.Tensor, shape: readonly number[], ctx: string): void {
  expect([...t.shape], `${ctx}: shape`).toEqual([...shape]);
}

/** Checks a tensor against a reference array: shape, then values. */
export function expectTensor(t: tk.Tensor, ref: Arr, tol: number, ctx: string): number {
  expectShape(t, ref.shape, ctx);
  return expectClose(t.toArray(), ref.data, tol, ctx);
}

// ---------------------------------------------------------------- gradients
/**
 * Gradient of L(xs) = sum(f(xs) * R) with respect to xs[k] for each k in
 * `which`, by central differences in float64 (eps relative to the magnitude
 * of each element, floor 1e-6).
 */
export function fdGrad(f: (xs: Arr[]) => Arr, xs: Arr[], R: Float64Array, which: readonly number[], eps = 1e-6): Float64Array[] {
  const loss = (): number => {
    const y = f(xs).data;
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i]! * R[i]!;
    return s;
  };
  return which.map((k) => {
    const x = xs[k]!.data;
    const g = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const v = x[i]!;
      const h = eps * Math.max(1, Math.abs(v));
      x[i] = v + h;
      const lp = loss();
      x[i] = v - h;
      const lm = loss();
      x[i] = v;
      g[i] = (lp - lm) / (2 * h);
    }
    return g;
  });
}

export interface GradCheck {
  ctx: string;
  rng: Rng;
  /** the float64 inputs (float32-representable values) */
  inputs: Arr[];
  /** indices of `inputs` that get requiresGrad and a gradient check (default: all) */
  wrt?: number[];
  /** the op under test on tensors made from `inputs` (same order) */
  ours: (ts: tk.Tensor[]) => tk.Tensor;
  /** the float64 reference of the same function */
  ref: (xs: Arr[]) => Arr;
  tol?: number;
  /** forward tolerance (default TOL.reduction) */
  fwdTol?: number;
  /**
   * Draw R from [0.5, 1.5) instead of N(0, 1). For gradients that are one sum
   * of many terms (a 0-d operand, a reduction to one value), random signs make
   * the sum cancel and its relative error meaningless; with the other data
   * positive too, the sum keeps its magnitude.
   */
  positiveR?: boolean;
}

/**
 * Runs ours forward, checks it against ref, backpropagates a random projection
 * R (loss = sum(y * R), so one backward gives the whole gradient) and compares
 * each input gradient with central differences of the float64 reference.
 */
export function checkGrad(c: GradCheck): void {
  const wrt = c.wrt ?? c.inputs.map((_, i) => i);
  const grads = tk.tidy(() => {
    const ts = c.inputs.map((a, i) => T(a, wrt.includes(i)));
    const y = c.ours(ts);
    const yRef = c.ref(c.inputs);
    expectTensor(y, yRef, c.fwdTol ?? TOL.reduction, `${c.ctx} forward`);
    const R = c.positiveR ? c.rng.rand(y.numel, 0.5, 1.5) : c.rng.randn(y.numel);
    y.backward(T({ shape: [...y.shape], data: R }));
    const gs = wrt.map((i) => {
      const g = ts[i]!.grad;
      expect(g, `${c.ctx}: input ${i} got no gradient`).not.toBeNull();
      expectShape(g!, c.inputs[i]!.shape, `${c.ctx} grad ${i}`);
      const a = f64(g!);
      g!.dispose();
      return a;
    });
    return { gs, R };
  });
  const fd = fdGrad(c.ref, c.inputs.map((a) => ({ shape: a.shape, data: Float64Array.from(a.data) })), grads.R, wrt);
  wrt.forEach((i, k) => expectClose(grads.gs[k]!, fd[k]!, c.tol ?? TOL.grad, `${c.ctx} grad of input ${i}`));
}

// ---------------------------------------------------------------- ISAs and threads
export const ISAS: Isa[] = [...tk.backend().cpu.supportedIsas];
export const DEFAULT_ISA: Isa = tk.backend().cpu.isa;
export const DEFAULT_THREADS: number = tk.backend().cpu.threads;

/** Inside a describe block: every test runs on `isa`; the default comes back afterwards. */
export function onIsa(isa: Isa): void {
  beforeEach(() => tk.setIsa(isa));
  afterAll(() => tk.setIsa(DEFAULT_ISA));
}

/** A context string for assertion messages. */
export function ctxOf(op: string, rng: Rng, isa: string, extra = ''): string {
  return `${op} [isa=${isa} seed=${rng.seed}${extra ? ' ' + extra : ''}]`;
}
