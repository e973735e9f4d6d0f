// "Poison outputs", from TypeScript: every element of every output is written.
// New tensors come from napi_create_arraybuffer, which zero-fills, so outputs
// cannot be NaN-poisoned before a kernel runs; an element a kernel forgets to
// write reads back as exactly 0. Here every op runs on inputs chosen so that
// every reference output element (and gradient element) is bounded away from
// zero, at sizes that leave vector and tile remainders, and each element is
// checked on its own: finite (no NaN from finite inputs) and within 1e-4 of
// the reference relative to itself. A skipped element (0), a stale one, or
// one left by another tile fails. Precision itself is covered by the per-op tests.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import type { Arr } from '../reference.js';
import { f64, ids, ISAS, onIsa, Rng, T } from '../helpers.js';

const ELEM_TOL = 1e-4;

function expectEveryElement(ours: ArrayLike<number>, r: Arr, ctx: string): void {
  expect(ours.length, ctx).toBe(r.data.length);
  for (let i = 0; i < r.data.length; i++) {
    const want = r.data[i]!;
    if (!(Math.abs(want) > 1e-30)) throw new Error(`${ctx}: test bug, reference element ${i} = ${want} is not away from 0`);
    const got = ours[i]!;
    if (!Number.isFinite(got)) expect.fail(`${ctx}: element ${i} is ${got} (reference ${want})`);
    if (!(Math.abs(got - want) <= ELEM_TOL * Math.abs(want))) expect.fail(`${ctx}: element ${i} is ${got}, reference ${want} (unwritten or wrong)`);
  }
}

interface Case {
  name: string;
  /** positive (or otherwise zero-free) inputs */
  inputs: (r: Rng) => Arr[];
  ours: (ts: tk.Tensor[]) => tk.Tensor;
  ref: (xs: Arr[]) => Arr;
  /** gradients of loss = sum(y * R), R positive, checked for these inputs (their gradients are zero-free) */
  grads?: Array<{ input: number; ref: (xs: Arr[], R: Arr) => Arr }>;
}

const pos = (r: Rng, shape: number[], lo = 0.5, hi = 1.5): Arr => ({ shape, data: r.rand(shape.reduce((p, d) => p * d, 1), lo, hi) });
const ones = (a: Arr): Arr => ({ shape: a.shape, data: new Float64Array(a.data.length).fill(1) });

let targets: number[] = [];
let idv: number[] = [];

const CASES: Case[] = [
  ...([[false, false], [true, false], [false, true], [true, true]] as Array<[boolean, boolean]>).map<Case>(([ta, tb]) => ({
    name: `matmul ta=${ta} tb=${tb} (edge tiles everywhere, K past one block)`,
    inputs: (r) => [pos(r, [2, ...(ta ? [257, 67] : [67, 257])]), pos(r, tb ? [130, 257] : [257, 130])],
    ours: ([a, b]) => tk.ops.matmul(a!, b!, { transA: ta, transB: tb }),
    ref: ([a, b]) => ref.matmul(a!, b!, ta, tb),
    // dL/da = R op(b)^T etc.: sums of positive terms
    grads: [
      { input: 0, ref: ([, b], R) => (ta ? ref.matmul(b!, R, tb, true) : ref.matmul(R, b!, false, !tb)) },
      // b is shared by a's batch of 2: its gradient sums over the batch
      { input: 1, ref: ([a], R) => ref.reduce('sum', tb ? ref.matmul(R, a!, true, ta) : ref.matmul(a!, R, !ta, false), 0) },
    ],
  })),
  { name: 'matmul batched [5,1,7,13] x [3,13,33]', inputs: (r) => [pos(r, [5, 1, 7, 13]), pos(r, [3, 13, 33])], ours: ([a, b]) => tk.ops.matmul(a!, b!), ref: ([a, b]) => ref.matmul(a!, b!) },
  { name: 'add (broadcast)', inputs: (r) => [pos(r, [33, 67]), pos(r, [67])], ours: ([a, b]) => tk.ops.add(a!, b!), ref: ([a, b]) => ref.binary('add', a!, b!), grads: [{ input: 1, ref: (_, R) => ref.reduce('sum', R, 0) }] },
  { name: 'sub', inputs: (r) => [pos(r, [7, 130], 2, 3), pos(r, [7, 130])], ours: ([a, b]) => tk.ops.sub(a!, b!), ref: ([a, b]) => ref.binary('sub', a!, b!) },
  { name: 'mul (large)', inputs: (r) => [pos(r, [70001]), pos(r, [70001])], ours: ([a, b]) => tk.ops.mul(a!, b!), ref: ([a, b]) => ref.binary('mul', a!, b!), grads: [{ input: 0, ref: ([, b], R) => ref.binary('mul', R, b!) }] },
  { name: 'div (broadcast)', inputs: (r) => [pos(r, [13, 1, 7]), pos(r, [5, 1])], ours: ([a, b]) => tk.ops.div(a!, b!), ref: ([a, b]) => ref.binary('div', a!, b!) },
  { name: 'exp', inputs: (r) => [{ shape: [70001], data: r.randn(70001, 3) }], ours: ([x]) => tk.ops.exp(x!), ref: ([x]) => ref.map(x!, Math.exp), grads: [{ input: 0, ref: ([x], R) => ref.binary('mul', R, ref.map(x!, Math.exp)) }] },
  { name: 'log', inputs: (r) => [pos(r, [4099], 2, 50)], ours: ([x]) => tk.ops.log(x!), ref: ([x]) => ref.map(x!, Math.log), grads: [{ input: 0, ref: ([x], R) => ref.binary('div', R, x!) }] },
  { name: 'sqrt', inputs: (r) => [pos(r, [33], 0.1, 9)], ours: ([x]) => tk.ops.sqrt(x!), ref: ([x]) => ref.map(x!, Math.sqrt) },
  { name: 'neg', inputs: (r) => [pos(r, [13])], ours: ([x]) => tk.ops.neg(x!), ref: ([x]) => ref.map(x!, (v) => -v) },
  { name: 'scale', inputs: (r) => [pos(r, [67])], ours: ([x]) => tk.ops.scale(x!, 3), ref: ([x]) => ref.map(x!, (v) => 3 * v) },
  { name: 'pow', inputs: (r) => [pos(r, [130])], ours: ([x]) => tk.ops.pow(x!, 1.7), ref: ([x]) => ref.map(x!, (v) => v ** 1.7) },
  { name: 'gelu', inputs: (r) => [pos(r, [4099], 0.5, 3)], ours: ([x]) => tk.ops.gelu(x!), ref: ([x]) => ref.map(x!, ref.gelu) },
  { name: 'silu', inputs: (r) => [pos(r, [4099], 0.5, 3)], ours: ([x]) => tk.ops.silu(x!), ref: ([x]) => ref.map(x!, ref.silu) },
  { name: 'relu', inputs: (r) => [pos(r, [4099])], ours: ([x]) => tk.ops.relu(x!), ref: ([x]) => ref.map(x!, ref.relu) },
  { name: 'sum (rows, columns, all)', inputs: (r) => [pos(r, [33, 4099])], ours: ([x]) => tk.ops.concat([tk.ops.sum(x!, 1), tk.ops.sum(x!, 0), tk.ops.reshape(tk.ops.sum(x!), [1])]), ref: ([x]) => ref.concat([ref.reduce('sum', x!, 1), ref.reduce('sum', x!, 0), ref.reshape(ref.reduce('sum', x!), [1])]) },
  { name: 'mean (middle axis)', inputs: (r) => [pos(r, [7, 13, 33])], ours: ([x]) => tk.ops.mean(x!, 1), ref: ([x]) => ref.reduce('mean', x!, 1), grads: [{ input: 0, ref: ([x], R) => ref.binary('mul', ones(x!), ref.map(ref.reshape(R, [7, 1, 33]), (v) => v / 13)) }] },
  { name: 'max', inputs: (r) => [pos(r, [13, 67])], ours: ([x]) => tk.ops.max(x!, -1), ref: ([x]) => ref.reduce('max', x!, -1) },
  { name: 'softmax', inputs: (r) => [r.arr([33, 130])], ours: ([x]) => tk.ops.softmax(x!), ref: ([x]) => ref.softmax(x!) },
  { name: 'softmax (middle axis)', inputs: (r) => [r.arr([3, 13, 7])], ours: ([x]) => tk.ops.softmax(x!, 1), ref: ([x]) => ref.softmax(x!, 1) },
  { name: 'logSoftmax', inputs: (r) => [r.arr([33, 130])], ours: ([x]) => tk.ops.logSoftmax(x!), ref: ([x]) => ref.logSoftmax(x!) },
  {
    name: 'crossEntropy (per row)',
    inputs: (r) => {
      targets = r.ints(67, 0, 33);
      return [r.arr([67, 33])];
    },
    ours: ([x]) => tk.ops.crossEntropy(x!, ids(targets), { reduction: 'none' }),
    ref: ([x]) => ref.crossEntropy(x!, targets, -100, 'none'),
  },
  // bias 5 keeps y = xhat * w + b in [~2, ~8]; the bias gradient is a column sum of R
  {
    name: 'layerNorm',
    inputs: (r) => [r.arr([67, 33]), pos(r, [33], 0.2, 0.8), pos(r, [33], 4.5, 5.5)],
    ours: ([x, w, b]) => tk.ops.layerNorm(x!, w!, b!),
    ref: ([x, w, b]) => ref.layerNorm(x!, w!, b!),
    grads: [{ input: 2, ref: (_, R) => ref.reduce('sum', R, 0) }],
  },
  { name: 'rmsNorm', inputs: (r) => [pos(r, [67, 33]), pos(r, [33])], ours: ([x, w]) => tk.ops.rmsNorm(x!, w!), ref: ([x, w]) => ref.rmsNorm(x!, w!) },
  {
    name: 'embedding',
    inputs: (r) => {
      idv = Array.from({ length: 67 }, (_, i) => i % 13);  // every row used
      return [pos(r, [13, 130])];
    },
    ours: ([t]) => tk.ops.embedding(t!, ids(idv)),
    ref: ([t]) => ref.embedding(t!, idv, [67]),
    grads: [{ input: 0, ref: ([t], R) => { const g = new Float64Array(t!.data.length); idv.forEach((id, i) => { for (let c = 0; c < 130; c++) g[id * 130 + c] += R.data[i * 130 + c]!; }); return { shape: t!.shape, data: g }; } }],
  },
  { name: 'dropout p=0', inputs: (r) => [pos(r, [4099])], ours: ([x]) => tk.ops.dropout(x!, 0, { seed: 1 }), ref: ([x]) => x! },
  { name: 'transpose', inputs: (r) => [pos(r, [3, 33, 67])], ours: ([x]) => tk.ops.transpose(x!), ref: ([x]) => ref.transpose(x!) },
  { name: 'permute', inputs: (r) => [pos(r, [3, 5, 7, 2])], ours: ([x]) => tk.ops.permute(x!, [2, 0, 3, 1]), ref: ([x]) => ref.permute(x!, [2, 0, 3, 1]) },
  { name: 'concat', inputs: (r) => [pos(r, [3, 5, 7]), pos(r, [3, 2, 7])], ours: ([a, b]) => tk.ops.concat([a!, b!], 1), ref: ([a, b]) => ref.concat([a!, b!], 1), grads: [{ input: 1, ref: (_, R) => ref.slice(R, 1, 5, 7) }] },
  { name: 'slice', inputs: (r) => [pos(r, [3, 33, 7])], ours: ([x]) => tk.ops.slice(x!, 1, 5, 30), ref: ([x]) => ref.slice(x!, 1, 5, 30) },
  {
    name: 'where',
    inputs: (r) => [pos(r, [7, 13]), pos(r, [13], 2, 3)],
    ours: ([a, b]) => tk.ops.where(tk.tensor(Array.from({ length: 13 }, (_, i) => i % 2), [13]), a!, b!),
    ref: ([a, b]) => ref.where({ shape: [13], data: Float64Array.from({ length: 13 }, (_, i) => i % 2) }, a!, b!),
  },
  {
    name: 'maskedFill',
    inputs: (r) => [pos(r, [7, 13])],
    ours: ([x]) => tk.ops.maskedFill(x!, tk.tensor(Array.from({ length: 13 }, (_, i) => i % 3), [13]), 7),
    ref: ([x]) => ref.maskedFill(x!, { shape: [13], data: Float64Array.from({ length: 13 }, (_, i) => i % 3) }, 7),
  },
];

describe.each(ISAS)('every output element is written on %s', (isa) => {
  onIsa(isa);

  it.each(CASES)('$name', (c) => {
    const rng = new Rng();
    const inputs = c.inputs(rng);
    const wrt = (c.grads ?? []).map((g) => g.input);
    const R: Arr = { shape: [], data: new Float64Array() };
    const out = tk.tidy(() => {
      const ts = inputs.map((a, i) => T(a, wrt.includes(i)));
      const y = c.ours(ts);
      R.shape = [...y.shape];
      R.data = rng.rand(y.numel, 0.5, 1.5);
      const yv = f64(y);
      if (wrt.length) y.backward(T(R));
      return { y: yv, grads: wrt.map((i) => f64(ts[i]!.grad!)) };
    });
    const ctx = `${c.name} [isa=${isa} seed=${rng.seed}]`;
    expectEveryElement(out.y, c.ref(inputs), `${ctx} forward`);
    (c.grads ?? []).forEach((g, k) => expectEveryElement(out.grads[k]!, g.ref(inputs, R), `${ctx} gradient of input ${g.input}`));
  });

  it('rope: every pair of every row is written (pair lengths are kept)', () => {
    const rng = new Rng();
    const x = pos(rng, [2, 3, 7, 130]);
    const y = tk.tidy(() => tk.ops.rope(T(x), ids(rng.ints(7, 0, 1000))).toArray());
    const half = 65;
    const lengths = (a: ArrayLike<number>) => {
      const out = new Float64Array(a.length / 2);
      for (let row = 0; row < a.length / 130; row++)
        for (let d = 0; d < half; d++) out[row * half + d] = Math.hypot(a[row * 130 + d]!, a[row * 130 + d + half]!);
      return out;
    };
    expectEveryElement(lengths(y), { shape: [x.data.length / 2], data: lengths(x.data) }, `rope [isa=${isa} seed=${rng.seed}]`);
  });
});
