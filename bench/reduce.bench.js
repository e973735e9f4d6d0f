// Reductions and row-wise ops against the copy bandwidth, on 8M floats.
//
//   sum / mean / max          all elements, over the last axis, over the first axis
//   softmax, logSoftmax       [8192, 1024] over the last axis
//   layerNorm, rmsNorm        [8192, 1024], weight (and bias) [1024]
//   crossEntropy              logits [256, 32768] (a vocabulary-sized row), targets i32 [256]
//   *_backward                through the native binding, as autograd calls them
// Each call takes the next of SETS input copies (cold inputs).
// bytes = every input read once + every output written once. Target: 60%.
import { cycler, measure, samplePositions, SETS, spotCheck } from './lib.js';

export const title = 'GB/s vs copy bandwidth';

const N = 8 * 1024 * 1024;
const TARGET = 0.6;

// largest relative error over the rows `rows` of a [R, C] output, against
// float64 rows from ref(r); errors are relative to the row's largest |value|
function checkRows(got, C, rows, ref, tol = 1e-4) {
  for (const r of rows) {
    const want = ref(r);
    let scale = 1e-30;
    for (const v of want) scale = Math.max(scale, Math.abs(v));
    for (let j = 0; j < C; j++) {
      const err = Math.abs(got[r * C + j] - want[j]) / scale;
      if (!(err <= tol)) return `row ${r} col ${j}: got ${got[r * C + j]}, want ${want[j]} (error ${err.toExponential(2)})`;
    }
  }
  return null;
}
const row = (A, C, r) => A.subarray(r * C, (r + 1) * C);

export function run(ctx) {
  const { tk, native } = ctx;
  const o = tk.ops;
  const sets = [...Array(SETS).keys()];
  const R = 8192, C = 1024, NV = 256, V = 32768;

  // ---- inputs: SETS copies (cold inputs); set 0 is the one the checks read back
  const xs = sets.map((k) => tk.randn([N], { seed: 500 + k }));
  const x2s = xs.map((x) => o.reshape(x, [4096, 2048]));
  const xrs = xs.map((x) => o.reshape(x, [R, C]));
  const logitss = xs.map((x) => o.reshape(x, [NV, V]));
  const X = xs[0].toArray();
  const w = tk.randn([C], { seed: 12 }), b = tk.randn([C], { seed: 13 });
  const W = w.toArray(), B = b.toArray();
  const tg = new Int32Array(NV);
  for (let i = 0; i < NV; i++) tg[i] = (i * 7919) % V;
  const targets = tk.tensor(tg, [NV]);
  // native handles for the backward kernels: x (the same values as xs), gy, and
  // the saved tensors of each forward
  const hw = native.randn([C], 12, 0, 1);
  const htargets = native.fromArray(tg, [NV], 'i32');
  const hgrow = native.randn([NV], 15, 0, 1);
  const hs = sets.map((k) => {
    const x = native.randn([R, C], 500 + k, 0, 1);
    const gy = native.randn([R, C], 600 + k, 0, 1);
    const y = native.softmax_forward(x, 1, false);
    const [ln, mean, rstd] = native.layer_norm_forward(x, hw, null, 1e-5);
    ln.dispose();
    const [rms, rrstd] = native.rms_norm_forward(x, hw, 1e-6);
    rms.dispose();
    const logits = native.randn([NV, V], 500 + k, 0, 1);
    const [loss, lse] = native.cross_entropy_forward(logits, htargets, -100);
    loss.dispose();
    return { x, gy, y, mean, rstd, rrstd, logits, lse };
  });
  const GY = native.toArray(hs[0].gy);
  const owned = [...x2s, ...xrs, ...logitss, ...xs, w, b, targets];
  const handles = [hw, htargets, hgrow, ...hs.flatMap((h) => Object.values(h))];

  const sampleRows = [0, 1, 4097, R - 1];
  // make(k) runs the op on input set k and returns what it allocated (a tensor, a handle or a list)
  const free = (r) => {
    if (Array.isArray(r)) for (const t of r) t?.dispose();
    else r.dispose();
  };
  const c = (op, shape, bytes, make, check) => {
    const next = cycler();
    return { op, shape, kind: 'bytes', work: bytes, target: TARGET, fn: () => free(make(next())), check };
  };

  // ---- references
  let sum64 = 0, abs64 = 0, max64 = -Infinity;
  for (let i = 0; i < N; i++) {
    sum64 += X[i];
    abs64 += Math.abs(X[i]);
    if (X[i] > max64) max64 = X[i];
  }
  const scalarCheck = (got, want, scale) =>
    Math.abs(got - want) <= 1e-5 * scale ? null : `got ${got}, want ${want}`;
  const softmaxRow = (r, log) => {
    const v = row(X, C, r);
    let m = -Infinity;
    for (const e of v) m = Math.max(m, e);
    let s = 0;
    for (const e of v) s += Math.exp(e - m);
    return Array.from(v, (e) => (log ? e - m - Math.log(s) : Math.exp(e - m) / s));
  };
  const lnRow = (r, bias) => {
    const v = row(X, C, r);
    let mu = 0;
    for (const e of v) mu += e;
    mu /= C;
    let var_ = 0;
    for (const e of v) var_ += (e - mu) ** 2;
    const rs = 1 / Math.sqrt(var_ / C + 1e-5);
    return Array.from(v, (e, j) => (e - mu) * rs * W[j] + (bias ? B[j] : 0));
  };
  const rmsRow = (r) => {
    const v = row(X, C, r);
    let ss = 0;
    for (const e of v) ss += e * e;
    const rs = 1 / Math.sqrt(ss / C + 1e-6);
    return Array.from(v, (e, j) => e * rs * W[j]);
  };
  const YS = native.toArray(hs[0].y);
  const softmaxBwdRow = (r) => {
    const yv = row(YS, C, r), gv = row(GY, C, r);
    let s = 0;
    for (let j = 0; j < C; j++) s += yv[j] * gv[j];
    return Array.from(yv, (e, j) => e * (gv[j] - s));
  };
  const lnBwdRow = (r) => {
    const v = row(X, C, r), gv = row(GY, C, r);
    let mu = 0;
    for (const e of v) mu += e;
    mu /= C;
    let var_ = 0;
    for (const e of v) var_ += (e - mu) ** 2;
    const rs = 1 / Math.sqrt(var_ / C + 1e-5);
    let m1 = 0, m2 = 0;
    for (let j = 0; j < C; j++) {
      const d = gv[j] * W[j];
      m1 += d;
      m2 += d * (v[j] - mu) * rs;
    }
    m1 /= C;
    m2 /= C;
    return Array.from(v, (e, j) => rs * (gv[j] * W[j] - m1 - (e - mu) * rs * m2));
  };
  const rmsBwdRow = (r) => {
    const v = row(X, C, r), gv = row(GY, C, r);
    let ss = 0;
    for (const e of v) ss += e * e;
    const rs = 1 / Math.sqrt(ss / C + 1e-6);
    let m = 0;
    for (let j = 0; j < C; j++) m += gv[j] * W[j] * v[j] * rs;
    m /= C;
    return Array.from(v, (e, j) => rs * (gv[j] * W[j] - e * rs * m));
  };
  const lse64 = (r) => {
    const v = row(X, V, r);
    let m = -Infinity;
    for (const e of v) m = Math.max(m, e);
    let s = 0;
    for (const e of v) s += Math.exp(e - m);
    return m + Math.log(s);
  };
  let ceRef = 0;
  for (let r = 0; r < NV; r++) ceRef += lse64(r) - X[r * V + tg[r]];
  ceRef /= NV;
  const LSE = native.toArray(hs[0].lse), GROW = native.toArray(hgrow);
  const ceBwdRow = (r) => {
    const v = row(X, V, r);
    const out = Array.from(v, (e) => GROW[r] * Math.exp(e - LSE[r]));
    out[tg[r]] -= GROW[r];
    return out;
  };

  // the checks run make(0) once and compare with the float64 references
  const withT = (make, test) => () => {
    const r = make(0);
    try {
      return test(r.toArray ? r.toArray() : native.toArray(r));
    } finally {
      r.dispose();
    }
  };
  const nR = `[${R},${C}]`;
  const sumAll = (k) => tk.tidy(() => o.sum(xs[k]));  // whole-tensor reductions go through a reshape view: tidy frees it
  const meanAll = (k) => tk.tidy(() => o.mean(xs[k]));
  const maxAll = (k) => tk.tidy(() => o.max(xs[k]));
  const ce = (k) => tk.tidy(() => o.crossEntropy(logitss[k], targets));
  const lnBwd = (k) => native.layer_norm_backward(hs[k].x, hw, hs[k].mean, hs[k].rstd, hs[k].gy, true, true);
  const rmsBwd = (k) => native.rms_norm_backward(hs[k].x, hw, hs[k].rrstd, hs[k].gy, true);
  const first = (make) => (k) => {
    const [gx, ...rest] = make(k);
    for (const t of rest) t?.dispose();
    return gx;
  };
  const cases = [
    c('sum all', `[${N}]`, 4 * N, sumAll, withT(sumAll, (g) => scalarCheck(g[0], sum64, abs64))),
    c('mean all', `[${N}]`, 4 * N, meanAll, withT(meanAll, (g) => scalarCheck(g[0], sum64 / N, abs64 / N))),
    c('max all', `[${N}]`, 4 * N, maxAll, withT(maxAll, (g) => (g[0] === max64 ? null : `got ${g[0]}, want ${max64}`))),
    c('sum axis -1', '[4096,2048]', 4 * N + 4 * 4096, (k) => o.sum(x2s[k], -1),
      withT((k) => o.sum(x2s[k], -1), (g) => spotCheck(g, (r) => row(X, 2048, r).reduce((p, q) => p + q, 0), samplePositions(4096, 16), 1e-4, 1))),
    c('sum axis 0', '[4096,2048]', 4 * N + 4 * 2048, (k) => o.sum(x2s[k], 0),
      withT((k) => o.sum(x2s[k], 0), (g) => spotCheck(g, (j) => {
        let s = 0;
        for (let r = 0; r < 4096; r++) s += X[r * 2048 + j];
        return s;
      }, samplePositions(2048, 16), 1e-4, 1))),
    c('max axis -1', '[4096,2048]', 4 * N + 8 * 4096, (k) => o.max(x2s[k], -1),
      withT((k) => o.max(x2s[k], -1), (g) => spotCheck(g, (r) => row(X, 2048, r).reduce((p, q) => Math.max(p, q), -Infinity), samplePositions(4096, 16), 0))),
    c('softmax', nR, 8 * N, (k) => o.softmax(xrs[k], -1),
      withT((k) => o.softmax(xrs[k], -1), (g) => checkRows(g, C, sampleRows, (r) => softmaxRow(r, false)))),
    c('logSoftmax', nR, 8 * N, (k) => o.logSoftmax(xrs[k], -1),
      withT((k) => o.logSoftmax(xrs[k], -1), (g) => checkRows(g, C, sampleRows, (r) => softmaxRow(r, true)))),
    c('softmax backward', nR, 12 * N, (k) => native.softmax_backward(hs[k].y, hs[k].gy, 1, false),
      withT((k) => native.softmax_backward(hs[k].y, hs[k].gy, 1, false), (g) => checkRows(g, C, sampleRows, softmaxBwdRow))),
    c('layerNorm', `${nR} w,b [${C}]`, 8 * N + 8 * R + 8 * C, (k) => o.layerNorm(xrs[k], w, b),
      withT((k) => o.layerNorm(xrs[k], w, b), (g) => checkRows(g, C, sampleRows, (r) => lnRow(r, true)))),
    c('layerNorm backward', `${nR} -> gx, gw, gb`, 12 * N + 8 * R + 12 * C, lnBwd,
      withT(first(lnBwd), (g) => checkRows(g, C, sampleRows, lnBwdRow))),
    c('rmsNorm', `${nR} w [${C}]`, 8 * N + 4 * R + 4 * C, (k) => o.rmsNorm(xrs[k], w),
      withT((k) => o.rmsNorm(xrs[k], w), (g) => checkRows(g, C, sampleRows, rmsRow))),
    c('rmsNorm backward', `${nR} -> gx, gw`, 12 * N + 4 * R + 8 * C, rmsBwd,
      withT(first(rmsBwd), (g) => checkRows(g, C, sampleRows, rmsBwdRow))),
    c('crossEntropy', `[${NV},${V}] mean`, 4 * N + 4 * NV, ce,
      withT(ce, (g) => scalarCheck(g[0], ceRef, 10 * Math.abs(ceRef)))),
    c('crossEntropy backward', `[${NV},${V}]`, 8 * N + 12 * NV, (k) => native.cross_entropy_backward(hs[k].logits, hs[k].lse, htargets, hgrow, -100),
      withT((k) => native.cross_entropy_backward(hs[k].logits, hs[k].lse, htargets, hgrow, -100), (g) => checkRows(g, V, [0, 129, NV - 1], ceBwdRow))),
  ];
  try {
    return measure('reduce', cases, ctx);
  } finally {
    for (const t of owned) t.dispose();
    for (const h of handles) h.dispose();
  }
}
