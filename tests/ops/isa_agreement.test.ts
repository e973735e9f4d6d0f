// Every supported ISA (tk.backend().cpu.supportedIsas) computes the same
// results within float32 tolerance, forward and backward, on identical fresh
// inputs: matmul, softmax, logSoftmax, layerNorm, rmsNorm, gelu, silu, exp,
// log, sum and crossEntropy. Each result is also checked against the float64
// reference, so agreement cannot hide a shared error.
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { DEFAULT_ISA, expectClose, f64, ids, ISAS, relErr, Rng, T, TOL } from '../helpers.js';

interface Case {
  name: string;
  inputs: (rng: Rng) => Arr[];
  ours: (ts: tk.Tensor[]) => tk.Tensor;
  ref: (xs: Arr[]) => Arr;
  tol: number;
}

const N = 33, V = 1031;
let targets: number[] = [];

const CASES: Case[] = [
  {
    name: 'matmul',
    inputs: (r) => [r.arr([67, 1031]), r.arr([1031, 130])],
    ours: ([a, b]) => tk.ops.matmul(a!, b!),
    ref: ([a, b]) => ref.matmul(a!, b!),
    tol: TOL.matmul,
  },
  {
    name: 'matmul (transA, transB, batched)',
    inputs: (r) => [r.arr([3, 33, 13]), r.arr([3, 67, 33])],
    ours: ([a, b]) => tk.ops.matmul(a!, b!, { transA: true, transB: true }),
    ref: ([a, b]) => ref.matmul(a!, b!, true, true),
    tol: TOL.matmul,
  },
  { name: 'softmax', inputs: (r) => [r.arr([33, 1031], 3)], ours: ([x]) => tk.ops.softmax(x!), ref: ([x]) => ref.softmax(x!), tol: TOL.reduction },
  { name: 'softmax (middle axis)', inputs: (r) => [r.arr([7, 33, 13], 3)], ours: ([x]) => tk.ops.softmax(x!, 1), ref: ([x]) => ref.softmax(x!, 1), tol: TOL.reduction },
  { name: 'logSoftmax', inputs: (r) => [r.arr([33, 1031], 3)], ours: ([x]) => tk.ops.logSoftmax(x!), ref: ([x]) => ref.logSoftmax(x!), tol: TOL.reduction },
  {
    name: 'layerNorm',
    inputs: (r) => [r.arr([33, 130]), { shape: [130], data: r.signedAway(130) }, r.arr([130])],
    ours: ([x, w, b]) => tk.ops.layerNorm(x!, w!, b!),
    ref: ([x, w, b]) => ref.layerNorm(x!, w!, b!),
    tol: TOL.reduction,
  },
  {
    name: 'rmsNorm',
    inputs: (r) => [r.arr([33, 130]), { shape: [130], data: r.signedAway(130) }],
    ours: ([x, w]) => tk.ops.rmsNorm(x!, w!),
    ref: ([x, w]) => ref.rmsNorm(x!, w!),
    tol: TOL.reduction,
  },
  { name: 'gelu', inputs: (r) => [r.arr([4099], 2)], ours: ([x]) => tk.ops.gelu(x!), ref: ([x]) => ref.map(x!, ref.gelu), tol: TOL.elementwise },
  { name: 'silu', inputs: (r) => [r.arr([4099], 3)], ours: ([x]) => tk.ops.silu(x!), ref: ([x]) => ref.map(x!, ref.silu), tol: TOL.elementwise },
  { name: 'exp', inputs: (r) => [r.arr([4099], 3)], ours: ([x]) => tk.ops.exp(x!), ref: ([x]) => ref.map(x!, Math.exp), tol: TOL.elementwise },
  { name: 'log', inputs: (r) => [{ shape: [4099], data: r.rand(4099, 0.01, 100) }], ours: ([x]) => tk.ops.log(x!), ref: ([x]) => ref.map(x!, Math.log), tol: TOL.elementwise },
  {
    name: 'sum',
    inputs: (r) => [{ shape: [130, 4099], data: r.rand(130 * 4099, 0.5, 1.5) }],
    ours: ([x]) => tk.ops.sum(x!, 1),
    ref: ([x]) => ref.reduce('sum', x!, 1),
    tol: TOL.reduction,
  },
  {
    name: 'crossEntropy',
    inputs: (r) => {
      targets = r.ints(N, 0, V);
      targets[3] = -100;
      return [r.arr([N, V], 3)];
    },
    ours: ([x]) => tk.ops.crossEntropy(x!, ids(targets)),
    ref: ([x]) => ref.crossEntropy(x!, targets),
    tol: TOL.reduction,
  },
];

afterAll(() => tk.setIsa(DEFAULT_ISA));

describe(`all ISAs agree (${ISAS.join(', ')})`, () => {
  it.each(CASES)('$name: forward and input gradients', (c) => {
    const rng = new Rng();
    const inputs = c.inputs(rng);
    const yRef = c.ref(inputs);
    const results = ISAS.map((isa) => {
      tk.setIsa(isa);
      return tk.tidy(() => {
        const ts = inputs.map((a) => T(a, true));
        const y = c.ours(ts);
        // a fixed projection (the same for every ISA) as the output gradient
        const R = new Rng(rng.seed ^ 0x5bd1e995).randn(y.numel);
        y.backward(T({ shape: [...y.shape], data: R }));
        return { y: f64(y), grads: ts.map((t) => f64(t.grad!)) };
      });
    });
    const ctx = (isa: string) => `${c.name} [isa=${isa} seed=${rng.seed}]`;
    results.forEach((r, k) => expectClose(r.y, yRef, c.tol, `${ctx(ISAS[k]!)} vs float64`));
    for (let k = 1; k < results.length; k++) {
      const e = relErr(results[k]!.y, results[0]!.y);
      expect(e, `${ctx(ISAS[k]!)} forward vs ${ISAS[0]}`).toBeLessThanOrEqual(c.tol);
      results[k]!.grads.forEach((g, i) => {
        const eg = relErr(g, results[0]!.grads[i]!);
        expect(eg, `${ctx(ISAS[k]!)} gradient of input ${i} vs ${ISAS[0]}`).toBeLessThanOrEqual(Math.max(c.tol, TOL.reduction));
      });
    }
  });
});
