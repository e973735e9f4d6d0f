// Elementwise ops against the copy bandwidth, on 8M floats (32 MiB per tensor,
// far past L2; input and output together are past the 32 MiB L3 too).
//
//   unary    y = f(x)           bytes = 4n read + 4n written
//   binary   y = a op b         bytes = 8n read + 4n written (a broadcast operand: its own size)
//   backward gx = gy * f'(x)    bytes = 8n read (x, gy) + 4n written; called through the native
//                               binding, as autograd does
// Each call takes the next of SETS input copies (cold inputs). Target: 60%.
import { cycler, measure, samplePositions, SETS, spotCheck } from './lib.js';

export const title = 'GB/s vs copy bandwidth';

const N = 8 * 1024 * 1024;
const TARGET = 0.6;

const geluRef = (x) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
const geluGradRef = (x) => {
  const c = 0.7978845608028654;
  const t = Math.tanh(c * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x);
};
const sig = (x) => 1 / (1 + Math.exp(-x));

export function run(ctx) {
  const { tk, native } = ctx;
  const o = tk.ops;
  const sets = [...Array(SETS).keys()];
  // SETS copies of every input; set 0 is the one the checks read back
  const xs = sets.map((k) => tk.randn([N], { seed: 100 + k }));
  const ys = sets.map((k) => tk.randn([N], { seed: 200 + k }));
  const ps = sets.map((k) => tk.tidy(() => o.add(tk.rand([N], { seed: 300 + k }), 0.25)));  // positive, for log / sqrt
  const x2s = xs.map((x) => o.reshape(x, [4096, 2048]));
  const row = tk.randn([2048], { seed: 5 });
  // the backward kernels take native handles: the same values as xs, and a gradient
  const hxs = sets.map((k) => native.randn([N], 100 + k, 0, 1));
  const hgys = sets.map((k) => native.randn([N], 400 + k, 0, 1));
  const X = xs[0].toArray(), Y = ys[0].toArray(), P = ps[0].toArray(), GY = native.toArray(hgys[0]), ROW = row.toArray();
  const idx = samplePositions(N, 64);

  // out(set 0) against ref(i) at sampled positions
  const check = (make, ref, tol = 1e-5, floor = 1e-3) => () => {
    const t = make(0);
    try {
      return spotCheck(t.toArray ? t.toArray() : native.toArray(t), ref, idx, tol, floor);
    } finally {
      t.dispose();
    }
  };
  const cse = (op, shape, bytes, make, ref, tol, floor) => {
    const next = cycler();
    return { op, shape, kind: 'bytes', work: bytes, target: TARGET, fn: () => make(next()).dispose(), check: check(make, ref, tol, floor) };
  };
  const unary = (op, f, ref, positive = false) =>
    cse(op, `[${N}]`, 8 * N, (k) => f(positive ? ps[k] : xs[k]), (i) => ref(positive ? P[i] : X[i]));
  // x doubles as y: gelu, silu and relu backward read only x and gy
  const backward = (op, ref) =>
    cse(`${op} backward`, `[${N}]`, 12 * N, (k) => native.unary_backward(op, hxs[k], hxs[k], hgys[k], 0), (i) => GY[i] * ref(X[i]), 1e-4, 1e-2);
  const full = `[${N}]`;

  const cases = [
    unary('neg', o.neg, (v) => -v),
    unary('exp', o.exp, Math.exp),
    unary('log', o.log, Math.log, true),
    unary('sqrt', o.sqrt, Math.sqrt, true),
    unary('scale 0.5', (t) => o.scale(t, 0.5), (v) => 0.5 * v),
    unary('pow 2', (t) => o.pow(t, 2), (v) => v * v),
    unary('pow 3', (t) => o.pow(t, 3), (v) => v * v * v),
    unary('gelu', o.gelu, geluRef),
    unary('silu', o.silu, (v) => v * sig(v)),
    unary('relu', o.relu, (v) => (v > 0 ? v : 0)),
    backward('gelu', geluGradRef),
    backward('silu', (v) => sig(v) * (1 + v * (1 - sig(v)))),
    backward('relu', (v) => (v > 0 ? 1 : 0)),
    cse('add', `${full} + ${full}`, 12 * N, (k) => o.add(xs[k], ys[k]), (i) => X[i] + Y[i]),
    cse('sub', `${full} - ${full}`, 12 * N, (k) => o.sub(xs[k], ys[k]), (i) => X[i] - Y[i]),
    cse('mul', `${full} * ${full}`, 12 * N, (k) => o.mul(xs[k], ys[k]), (i) => X[i] * Y[i]),
    cse('div', `${full} / ${full}`, 12 * N, (k) => o.div(xs[k], ps[k]), (i) => X[i] / P[i]),
    cse('add row', '[4096,2048] + [2048]', 8 * N + 4 * 2048, (k) => o.add(x2s[k], row), (i) => X[i] + ROW[i % 2048]),
    // a number operand becomes a 0-d tensor per call; tidy frees it
    cse('mul scalar', `${full} * 1.5`, 8 * N, (k) => tk.tidy(() => o.mul(xs[k], 1.5)), (i) => 1.5 * X[i]),
  ];
  try {
    return measure('elementwise', cases, ctx);
  } finally {
    for (const t of [...x2s, ...xs, ...ys, ...ps, row, ...hxs, ...hgys]) t.dispose();
  }
}
