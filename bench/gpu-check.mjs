#!/usr/bin/env node
// One-command check of every CUDA op: correctness against the CPU path (and PyTorch), and
// speed against PyTorch on the same GPU.
//
//   node bench/gpu-check.mjs [--quick] [--no-torch] [--json out.json] [--only REGEX] [--keep]
//
//   --quick        smaller timing shapes and fewer repeats (a smoke run, not a measurement)
//   --no-torch     skip the PyTorch comparison (bench/gpu_check_torch.py)
//   --json FILE    also write every row, the backend and the memory statistics as JSON
//   --only REGEX   run only the cases whose "op shape dtype" label matches
//   --keep         keep the temporary directory with the raw check tensors and the manifest
//   --device cpu   dev switch: run every case on the CPU, f32 only, on the small check shapes
//                  (a dry run of this script's own logic; each case then compares CPU to CPU)
//
// Plain ESM with no dev dependencies: it imports ../dist/index.js (build with
// `npx tsc -p tsconfig.json`) and needs only the production node_modules
// (scripts/pack-gpu-check.mjs packs them for a GPU host without npm).
//
// For each case and dtype:
//  - inputs come from tk.randn / tk.rand with fresh seeds (never zeros);
//  - check: on a small "check shape", the device result against the CPU path on the same inputs
//    (bf16-rounded for bf16 cases; the CPU computes in f32), relative norm error
//    ||ours - ref|| / ||ref||; the inputs and our outputs go to PyTorch as raw f32/i32 files;
//  - timing: on the big shape, warmup + N iterations bracketed by tk.cuda.synchronize(),
//    wall clock, the median of several repeats; TFLOP/s for GEMM-like ops, GB/s (bytes read +
//    written once) for memory-bound ones. A backward row is (fwd+bwd) - fwd.
// Tolerances (relative norm error): f32 1e-4 GEMM-like, 1e-5 otherwise; bf16 2e-2.
// Exit status 1 when CUDA is not available or any check fails.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const o = { quick: false, torch: true, json: null, device: 'cuda', only: null, keep: false, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--no-torch') o.torch = false;
    else if (a === '--json') o.json = val();
    else if (a === '--device') o.device = val();
    else if (a === '--only') o.only = new RegExp(val(), 'i');
    else if (a === '--keep') o.keep = true;
    else if (a === '--seed') o.seed = Number(val());
    else if (a === '-h' || a === '--help') usage();
    else usage(`unknown argument '${a}'`);
  }
  if (o.device !== 'cuda' && o.device !== 'cpu') usage(`--device must be cuda or cpu, not '${o.device}'`);
  if (!Number.isInteger(o.seed) || o.seed < 1) usage('--seed must be a positive integer');
  return o;
}

function usage(err) {
  if (err) console.error(`gpu-check: ${err}`);
  console.error('usage: node bench/gpu-check.mjs [--quick] [--no-torch] [--json out.json] [--only REGEX] [--keep] [--device cpu]');
  process.exit(err ? 2 : 0);
}

const opt = parseArgs(process.argv.slice(2));
const DEV = opt.device;

let tk;
try {
  tk = await import('../dist/index.js');
} catch (e) {
  console.error(`gpu-check: cannot load ../dist/index.js: ${e.message}`);
  console.error('  build it with `npx tsc -p tsconfig.json`; on a GPU host, `ln -sfnT .gpu-check/node_modules node_modules` first');
  process.exit(1);
}

// ---------------------------------------------------------------- backend
const info = tk.backend();
console.log(`cpu: ${info.cpu.isa}, ${info.cpu.threads} threads`);
if (info.cuda.devices.length) {
  for (const d of info.cuda.devices)
    console.log(`cuda: ${d.name}, compute capability ${d.computeCapability}, ${(d.memoryBytes / 2 ** 30).toFixed(1)} GiB`);
}
if (DEV === 'cuda' && !info.cuda.available) {
  console.error(`CUDA is not available: ${info.cuda.reason ?? 'unknown reason'}`);
  console.error('(dry run of this script on the CPU: node bench/gpu-check.mjs --device cpu)');
  process.exit(1);
}
if (DEV === 'cpu') console.log('--device cpu: dry run on the CPU, f32 only, small shapes (CPU compared to CPU)');

const sync = DEV === 'cuda' ? () => tk.cuda.synchronize() : () => {};

// ---------------------------------------------------------------- inputs
// An input spec: { name, shape, dist: 'randn' | 'rand' | 'ids' | 'bernoulli', scale?, high?, p?,
//   ignoreEvery?, float (cast to the case dtype), grad (a leaf that requires grad in backward cases) }
const randn = (name, shape, o = {}) => ({ name, shape, dist: 'randn', float: true, ...o });
const ids = (name, shape, high, o = {}) => ({ name, shape, dist: 'ids', high, float: false, ...o });

let seedCounter = opt.seed * 7919;
const freshSeed = () => (seedCounter += 104729);

/** A CPU tensor (f32, or i32 for ids) following the spec, drawn with a fresh seed. */
function makeInput(spec) {
  const seed = freshSeed();
  const n = spec.shape.reduce((a, b) => a * b, 1);
  switch (spec.dist) {
    case 'randn': {
      const t = tk.randn(spec.shape, { seed });
      if (spec.scale === undefined || spec.scale === 1) return t;
      const s = tk.ops.scale(t, spec.scale);
      t.dispose();
      return s;
    }
    case 'rand':
      return tk.rand(spec.shape, { seed });
    case 'ids': {
      const u = tk.rand([n], { seed });
      const a = u.toArray();
      u.dispose();
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = spec.ignoreEvery && i % spec.ignoreEvery === 3 ? -100 : Math.min(spec.high - 1, Math.floor(a[i] * spec.high));
      return tk.tensor(out, spec.shape, { dtype: 'i32' });
    }
    case 'bernoulli': {
      const u = tk.rand([n], { seed });
      const a = u.toArray();
      u.dispose();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = a[i] < spec.p ? 1 : 0;
      return tk.tensor(out, spec.shape);
    }
    default:
      throw new Error(`unknown input distribution '${spec.dist}'`);
  }
}

/** The CPU inputs of a case: f32 (bf16-rounded for bf16 cases) or i32. */
function makeInputs(specs, dtype) {
  const x = {};
  for (const s of specs) {
    let t = makeInput(s);
    if (s.float && dtype === 'bf16') {
      const r = tk.tidy(() => t.to('bf16').to('f32'));
      t.dispose();
      t = r;
    }
    x[s.name] = t;
  }
  return x;
}

/** Copies of the inputs on `device` in the case dtype; grad leaves get requiresGrad when asked. */
function toDevice(specs, cpu, dtype, withGrad, device = DEV) {
  const x = {};
  for (const s of specs) {
    let t = cpu[s.name].to(device);
    if (t === cpu[s.name]) t = t.clone();
    if (s.float && dtype !== 'f32') {
      const c = t.to(dtype);
      t.dispose();
      t = c;
    }
    if (withGrad && s.grad) t.requiresGrad = true;
    x[s.name] = t;
  }
  return x;
}

// The big timing inputs are drawn on the CPU (tk.randn/rand copy to the device anyway), which
// is the slow part of a run: the same spec (an f32 and a bf16 variant, causal or not) reuses the
// CPU tensor while it stays among the most recent few GiB.
const timingCache = new Map();
const CACHE_BYTES = 6 * 2 ** 30;
function timingInputs(specs) {
  const x = {};
  for (const s of specs) {
    const key = JSON.stringify([s.name, s.shape, s.dist, s.scale, s.high, s.p]);
    let t = timingCache.get(key);
    if (t) timingCache.delete(key);
    else t = makeInput(s);
    timingCache.set(key, t); // most recent last
    x[s.name] = t;
  }
  let total = 0;
  for (const t of timingCache.values()) total += t.numel * 4;
  for (const [k, t] of timingCache) {
    if (total <= CACHE_BYTES || Object.values(x).includes(t)) continue;
    total -= t.numel * 4;
    t.dispose();
    timingCache.delete(k);
  }
  return x;
}

// ---------------------------------------------------------------- cases
const ELT = { f32: 4, bf16: 2 };
const M_ = (v) => (v >= 1 << 20 && v % (1 << 20) === 0 ? `${v >> 20}M` : String(v));

/**
 * A case: op (the torch side's name too), dtypes, tol ('gemm' | 'ew'), dims {full, quick, check},
 * shape(d) (the label), inputs(d), params(d), fwd(x, p, ctx) -> Tensor | Tensor[],
 * backward (grads of the `grad` inputs; dy when there is one), flops(d, kind) or bytes(d, e, kind)
 * with kind 'fwd' | 'bwd', prep(x, p) (untimed, once per device), checkFn (overrides fwd for the
 * check), cleanup(ctx), extra (additional torch-only comparison rows).
 */
const cases = [];
const add = (c) => cases.push({ tol: 'ew', backward: false, params: () => ({}), ...c });

// ---- GEMM
for (const [label, full, quick, check, dtypes, transB] of [
  ['matmul', { M: 4096, K: 4096, N: 4096 }, { M: 2048, K: 2048, N: 2048 }, { M: 328, K: 264, N: 200 }, ['f32', 'bf16'], false],
  ['matmul', { M: 8192, K: 8192, N: 8192 }, { M: 4096, K: 4096, N: 4096 }, { M: 264, K: 520, N: 328 }, ['bf16'], false],
  ['matmul', { M: 4096, K: 4096, N: 4096 }, { M: 2048, K: 2048, N: 2048 }, { M: 328, K: 264, N: 200 }, ['bf16'], true],
  ['matmul', { b: 8, M: 1024, K: 1024, N: 1024 }, { b: 4, M: 512, K: 512, N: 512 }, { b: 3, M: 136, K: 72, N: 200 }, ['f32', 'bf16'], false],
]) {
  add({
    op: 'matmul',
    label: transB ? 'matmul bT' : label,
    dtypes,
    tol: 'gemm',
    dims: { full, quick, check },
    shape: (d) => `${d.b ? `${d.b}x` : ''}${d.M}x${d.K}x${d.N}`,
    inputs: (d) => {
      const lead = d.b ? [d.b] : [];
      return [randn('a', [...lead, d.M, d.K]), randn('b', transB ? [...lead, d.N, d.K] : [...lead, d.K, d.N])];
    },
    params: () => ({ transB }),
    fwd: (x, p) => tk.ops.matmul(x.a, x.b, { transB: p.transB }),
    flops: (d) => 2 * (d.b ?? 1) * d.M * d.N * d.K,
  });
}

// ---- elementwise
const EW_FULL = { n: 16 * 2 ** 20 }, EW_QUICK = { n: 4 * 2 ** 20 }, EW_CHECK = { n: 100003 };
for (const op of ['add', 'mul']) {
  add({
    op,
    dtypes: ['f32', 'bf16'],
    dims: { full: EW_FULL, quick: EW_QUICK, check: EW_CHECK },
    shape: (d) => M_(d.n),
    inputs: (d) => [randn('a', [d.n]), randn('b', [d.n])],
    fwd: (x) => tk.ops[op](x.a, x.b),
    bytes: (d, e) => 3 * d.n * e,
  });
}
add({
  op: 'add',
  label: 'add bcast',
  dtypes: ['f32', 'bf16'],
  dims: { full: { R: 4096, C: 4096 }, quick: { R: 2048, C: 4096 }, check: { R: 129, C: 520 } },
  shape: (d) => `${d.R}x${d.C}+${d.C}`,
  inputs: (d) => [randn('a', [d.R, d.C]), randn('b', [d.C])],
  fwd: (x) => tk.ops.add(x.a, x.b),
  bytes: (d, e) => (2 * d.R * d.C + d.C) * e,
});
for (const op of ['gelu', 'silu']) {
  add({
    op,
    dtypes: ['f32', 'bf16'],
    dims: { full: EW_FULL, quick: EW_QUICK, check: EW_CHECK },
    shape: (d) => M_(d.n),
    inputs: (d) => [randn('x', [d.n], { scale: 2 })],
    fwd: (x) => tk.ops[op](x.x),
    bytes: (d, e) => 2 * d.n * e,
  });
}

// ---- reductions, softmax, norms
add({
  op: 'sum',
  label: 'sum -1',
  dtypes: ['f32', 'bf16'],
  dims: { full: { R: 4096, C: 4096 }, quick: { R: 2048, C: 4096 }, check: { R: 257, C: 1000 } },
  shape: (d) => `${d.R}x${d.C}`,
  inputs: (d) => [randn('x', [d.R, d.C])],
  fwd: (x) => tk.ops.sum(x.x, -1),
  bytes: (d, e) => (d.R * d.C + d.R) * e,
});
for (const op of ['softmax', 'logSoftmax']) {
  add({
    op,
    dtypes: ['f32', 'bf16'],
    dims: { full: { R: 8192, C: 4096 }, quick: { R: 2048, C: 4096 }, check: { R: 64, C: 4096 } },
    shape: (d) => `${d.R}x${d.C}`,
    inputs: (d) => [randn('x', [d.R, d.C], { scale: 3 })],
    fwd: (x) => tk.ops[op](x.x, -1),
    bytes: (d, e) => 2 * d.R * d.C * e,
  });
}
const NORM_DIMS = { full: { R: 16384, C: 4096 }, quick: { R: 4096, C: 4096 }, check: { R: 64, C: 4096 } };
add({
  op: 'layerNorm',
  dtypes: ['f32', 'bf16'],
  dims: NORM_DIMS,
  shape: (d) => `${d.R}x${d.C}`,
  inputs: (d) => [randn('x', [d.R, d.C], { scale: 2 }), randn('w', [d.C]), randn('b', [d.C])],
  params: () => ({ eps: 1e-5 }),
  fwd: (x, p) => tk.ops.layerNorm(x.x, x.w, x.b, { eps: p.eps }),
  bytes: (d, e) => (2 * d.R * d.C + 2 * d.C) * e,
});
add({
  op: 'rmsNorm',
  dtypes: ['f32', 'bf16'],
  dims: NORM_DIMS,
  shape: (d) => `${d.R}x${d.C}`,
  inputs: (d) => [randn('x', [d.R, d.C], { scale: 2 }), randn('w', [d.C])],
  params: () => ({ eps: 1e-6 }),
  fwd: (x, p) => tk.ops.rmsNorm(x.x, x.w, { eps: p.eps }),
  bytes: (d, e) => (2 * d.R * d.C + d.C) * e,
});

// ---- losses, embedding
add({
  op: 'crossEntropy',
  dtypes: ['f32', 'bf16'],
  backward: true,
  dims: { full: { N: 4096, V: 50257 }, quick: { N: 1024, V: 50257 }, check: { N: 64, V: 50257 } },
  shape: (d) => `${d.N}x${d.V}`,
  inputs: (d, forCheck) => [randn('logits', [d.N, d.V], { scale: 2, grad: true }), ids('targets', [d.N], d.V, forCheck ? { ignoreEvery: 16 } : {})],
  fwd: (x) => tk.ops.crossEntropy(x.logits, x.targets),
  // fwd reads the logits and the targets; bwd reads the logits and writes their gradient
  bytes: (d, e, kind) => (kind === 'fwd' ? d.N * d.V * e + 8 * d.N : 2 * d.N * d.V * e),
});
add({
  op: 'embedding',
  dtypes: ['f32', 'bf16'],
  dims: { full: { V: 50257, C: 1024, n: 16384 }, quick: { V: 50257, C: 1024, n: 4096 }, check: { V: 1000, C: 1024, n: 300 } },
  shape: (d) => `[${d.V},${d.C}][${d.n}]`,
  inputs: (d) => [randn('table', [d.V, d.C]), ids('ids', [d.n], d.V)],
  fwd: (x) => tk.ops.embedding(x.table, x.ids),
  bytes: (d, e) => 2 * d.n * d.C * e + 4 * d.n,
});

// ---- attention
for (const causal of [true, false]) {
  for (const [dtype, full, quick] of [
    ['bf16', { B: 4, H: 16, T: 4096, S: 4096, D: 128 }, { B: 2, H: 16, T: 1024, S: 1024, D: 128 }],
    ['f32', { B: 2, H: 16, T: 1024, S: 1024, D: 128 }, { B: 1, H: 8, T: 512, S: 512, D: 128 }],
  ]) {
    add({
      op: 'attention',
      label: causal ? 'attention causal' : 'attention',
      dtypes: [dtype],
      tol: 'gemm',
      backward: true,
      dims: { full, quick, check: { B: 1, H: 2, T: 136, S: 136, D: 128 } },
      shape: (d) => `B${d.B} H${d.H} T${d.T} D${d.D}`,
      inputs: (d) => [
        randn('q', [d.B, d.H, d.T, d.D], { grad: true }),
        randn('k', [d.B, d.H, d.S, d.D], { grad: true }),
        randn('v', [d.B, d.H, d.S, d.D], { grad: true }),
        randn('dy', [d.B, d.H, d.T, d.D]),
      ],
      params: () => ({ causal }),
      fwd: (x, p) => tk.ops.attention(x.q, x.k, x.v, { causal: p.causal }),
      // FlashAttention's convention: 4·B·H·T·S·D forward (halved when causal), 2.5x that backward
      flops: (d, kind) => 4 * d.B * d.H * d.T * d.S * d.D * (causal ? 0.5 : 1) * (kind === 'bwd' ? 2.5 : 1),
    });
  }
}

// ---- LoRA, int8
add({
  op: 'loraLinear',
  dtypes: ['f32', 'bf16'],
  tol: 'gemm',
  backward: true,
  dims: { full: { M: 8192, K: 4096, N: 4096, r: 16 }, quick: { M: 2048, K: 4096, N: 4096, r: 16 }, check: { M: 200, K: 264, N: 136, r: 16 } },
  shape: (d) => `${d.M}x${d.K}x${d.N} r${d.r}`,
  inputs: (d) => [
    randn('x', [d.M, d.K], { grad: true }),
    randn('w', [d.N, d.K], { scale: 0.05 }),
    randn('a', [d.r, d.K], { scale: 0.05, grad: true }),
    randn('b', [d.N, d.r], { scale: 0.05, grad: true }),
    randn('dy', [d.M, d.N]),
  ],
  params: () => ({ scale: 2 }),
  fwd: (x, p) => tk.ops.loraLinear(x.x, x.w, x.a, x.b, { scale: p.scale }),
  // bwd: gx = gy·w (+ the rank-r terms), ga, gb; the frozen w gets no gradient
  flops: (d, kind) => (kind === 'bwd' ? 2 * d.M * d.N * d.K + 4 * d.M * d.r * (d.N + d.K) : 2 * d.M * d.N * d.K + 2 * d.M * d.r * (d.N + d.K)),
});
add({
  op: 'int8Linear',
  dtypes: ['f32'],
  tol: 'gemm',
  dims: { full: { M: 8192, K: 8192, N: 8192 }, quick: { M: 2048, K: 4096, N: 4096 }, check: { M: 72, K: 264, N: 136 } },
  shape: (d) => `${d.M}x${d.K}x${d.N}`,
  inputs: (d) => [randn('x', [d.M, d.K]), randn('w', [d.N, d.K], { scale: 0.05 })],
  // W is quantized once, untimed
  prep: (x) => tk.ops.quantizeInt8(x.w),
  fwd: (x, p, ctx) => tk.ops.int8Linear(x.x, ctx.q, ctx.scale),
  flops: (d) => 2 * d.M * d.N * d.K,
});

// ---- GAE, AdamW
add({
  op: 'gae',
  dtypes: ['f32'],
  dims: { full: { B: 4096, T: 1024 }, quick: { B: 1024, T: 512 }, check: { B: 64, T: 300 } },
  shape: (d) => `B${d.B} T${d.T}`,
  inputs: (d) => [randn('rewards', [d.B, d.T]), randn('values', [d.B, d.T]), { name: 'dones', shape: [d.B, d.T], dist: 'bernoulli', p: 0.02, float: true }],
  params: () => ({ gamma: 0.99, lambda: 0.95 }),
  fwd: (x, p) => {
    const r = tk.ops.gae(x.rewards, x.values, x.dones, { gamma: p.gamma, lambda: p.lambda });
    return [r.advantages, r.returns];
  },
  bytes: (d) => 5 * 4 * d.B * d.T,
  // torch: the reversed python loop (the default row), and a clone of the same bytes
  extra: [{ key: 'copy', label: 'gae vs copy', note: 'torch ms = tensor.clone() moving the same bytes; goal ratio >= 0.70' }],
  note: 'torch ms = reversed python loop over T on the GPU; goal ratio >= 20',
});
add({
  op: 'adamw',
  label: 'AdamW step',
  dtypes: ['f32'],
  dims: { full: { n: 64 * 2 ** 20 }, quick: { n: 16 * 2 ** 20 }, check: { n: 100003 } },
  shape: (d) => M_(d.n),
  inputs: (d) => [randn('p', [d.n], { scale: 0.02 }), randn('g', [d.n], { scale: 0.01 })],
  params: () => ({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, steps: 3 }),
  prep: (x, p) => {
    const param = x.p.clone();
    param.requiresGrad = true;
    param.grad = x.g.clone();
    const o = new tk.AdamW([param], { lr: p.lr, betas: [p.beta1, p.beta2], eps: p.eps, weightDecay: p.weightDecay, noDecay: () => false });
    return { p: param, g: param.grad, opt: o };
  },
  fwd: (x, p, ctx) => {
    ctx.opt.step();
    return [];
  },
  // the check: `steps` steps with the same gradient, then the update p - p0
  checkFn: (x, p, ctx) => {
    for (let i = 0; i < p.steps; i++) ctx.opt.step();
    return [tk.ops.sub(ctx.p, x.p)];
  },
  cleanup: (ctx) => {
    for (const t of Object.values(ctx.opt.state().tensors)) t.dispose();
  },
  // reads p, g, m, v; writes p, m, v
  bytes: (d) => 7 * 4 * d.n,
});

// ---------------------------------------------------------------- measurement
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Median milliseconds per call of fn: warmup, then repeats of n calls between synchronizations. */
function timeIt(fn) {
  const target = opt.quick ? 15 : 60; // ms per repeat
  const repeats = opt.quick ? 3 : 7;
  let t0 = nowMs();
  fn();
  sync();
  let est = nowMs() - t0;
  if (est < 1000) {
    t0 = nowMs();
    fn();
    sync();
    est = nowMs() - t0;
  }
  if (est > 2000) return { ms: est, n: 1, repeats: 1 };
  const n = Math.max(1, Math.min(1000, Math.round(target / Math.max(est, 1e-3))));
  const samples = [];
  for (let r = 0; r < (est > 500 ? 1 : repeats); r++) {
    sync();
    t0 = nowMs();
    for (let i = 0; i < n; i++) fn();
    sync();
    samples.push((nowMs() - t0) / n);
  }
  return { ms: median(samples), n, repeats: samples.length };
}

function relErr(ours, ref) {
  if (ours.length !== ref.length) throw new Error(`output has ${ours.length} elements, the reference ${ref.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ours[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (!Number.isFinite(num)) return Infinity;
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

const asList = (y) => (Array.isArray(y) ? y : y === undefined || y === null ? [] : [y]);

function dropGrads(x) {
  for (const t of Object.values(x)) {
    if (t.grad) {
      t.grad.dispose();
      t.grad = null;
    }
  }
}

/** Forward (and, for backward cases, backward) on x: { fwd: Float32Array[], grads: Float32Array[], shapes }. */
function evaluate(c, x, p, ctx, specs) {
  return tk.tidy(() => {
    const y = asList(c.checkFn ? c.checkFn(x, p, ctx) : c.fwd(x, p, ctx));
    const fwd = y.map((t) => ({ data: t.toArray(), shape: [...t.shape] }));
    const grads = [];
    if (c.backward) {
      if (x.dy) y[0].backward(x.dy);
      else y[0].backward();
      for (const s of specs) {
        if (!s.grad) continue;
        const g = x[s.name].grad;
        if (!g) throw new Error(`backward left no gradient in '${s.name}'`);
        grads.push({ name: s.name, data: g.toArray(), shape: [...g.shape] });
      }
      dropGrads(x);
    }
    return { fwd, grads };
  });
}

// ---------------------------------------------------------------- run
const useTorch = opt.torch && torchAvailable();
const work = mkdtempSync(join(tmpdir(), 'tk-gpu-check-'));
const manifest = { device: DEV, quick: opt.quick, cases: [] };
const rows = [];
let fileNo = 0;

function torchAvailable() {
  const r = spawnSync('python3', ['-c', 'import torch, sys; print(torch.__version__, torch.cuda.is_available())'], { encoding: 'utf8', timeout: 120000 });
  if (r.status !== 0) {
    console.log(`torch: not available (${(r.stderr || r.error?.message || '').trim().split('\n').pop() || 'python3 failed'}); torch columns skipped`);
    return false;
  }
  const [ver, cudaOk] = r.stdout.trim().split(/\s+/);
  if (DEV === 'cuda' && cudaOk !== 'True') {
    console.log(`torch ${ver}: no CUDA device visible to torch; torch columns skipped`);
    return false;
  }
  console.log(`torch ${ver}${DEV === 'cuda' ? ' (CUDA)' : ' (on the CPU, for the dry run)'}`);
  return true;
}

function writeRaw(arr) {
  const f = join(work, `t${fileNo++}.bin`);
  writeFileSync(f, Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength));
  return f;
}

function tolerance(c, dtype) {
  if (dtype === 'bf16') return 2e-2;
  return c.tol === 'gemm' ? 1e-4 : 1e-5;
}

function errMsg(e) {
  return String(e?.message ?? e).split('\n')[0].slice(0, 200);
}

const todo = [];
for (const c of cases) {
  // the CPU dry run has f32 only: a bf16-only case runs in f32 there
  for (const dtype of DEV === 'cpu' ? ['f32'] : c.dtypes) {
    const dTime = DEV === 'cpu' ? c.dims.check : opt.quick ? c.dims.quick : c.dims.full;
    const label = `${c.label ?? c.op} ${c.shape(dTime)} ${dtype}`;
    if (opt.only && !opt.only.test(label)) continue;
    // the same op, dtype and shape twice (e.g. the quick 8192³ shrinking to 4096³) is run once
    if (todo.some((t) => t.label === label)) continue;
    todo.push({ c, dtype, dTime, label });
  }
}
if (todo.length === 0) {
  console.error('gpu-check: no case matches');
  process.exit(2);
}

const t00 = nowMs();
todo.forEach(({ c, dtype, dTime, label }, i) => {
  const id = `c${i}`;
  const p = c.params(dTime);
  const tol = tolerance(c, dtype);
  const dCheck = c.dims.check;
  const base = { id, op: c.label ?? c.op, shape: c.shape(dTime), dtype, tol };
  const fwdRow = { ...base, kind: c.backward ? 'fwd' : '', oursMs: null, torchMs: null, errCpu: null, errTorch: null, errors: [] };
  const bwdRow = c.backward ? { ...base, op: `${base.op} bwd`, kind: 'bwd', oursMs: null, torchMs: null, errCpu: null, errTorch: null, errors: [] } : null;
  const extraRows = (c.extra ?? []).map((e) => ({ ...base, op: e.label, kind: e.key, extraKey: e.key, note: e.note, oursMs: null, torchMs: null, errCpu: null, errTorch: null, errors: [] }));
  if (c.note) fwdRow.note = c.note;
  const caseRows = [fwdRow, ...(bwdRow ? [bwdRow] : []), ...extraRows];
  rows.push(...caseRows);
  const entry = { id, op: c.op, dtype, params: p, backward: c.backward, label };
  const t0 = nowMs();
  // the label first: a run that hangs or dies in a kernel shows which case it was in
  process.stdout.write(`[${i + 1}/${todo.length}] ${label}: `);

  // ---- check on the small shape
  const specsCheck = c.inputs(dCheck, true);
  try {
    const cpuIn = makeInputs(specsCheck, dtype);
    try {
      const cpuGradIn = c.backward ? toDevice(specsCheck, cpuIn, 'f32', true, 'cpu') : cpuIn;
      let ref, ours;
      const ctxCpu = c.prep ? tk.tidy(() => c.prep(cpuGradIn, p)) : undefined;
      try {
        ref = evaluate(c, cpuGradIn, p, ctxCpu, specsCheck);
      } finally {
        if (ctxCpu) disposeCtx(c, ctxCpu);
        if (cpuGradIn !== cpuIn) for (const t of Object.values(cpuGradIn)) t.dispose();
      }
      const devIn = toDevice(specsCheck, cpuIn, dtype, c.backward);
      try {
        const ctxDev = c.prep ? tk.tidy(() => c.prep(devIn, p)) : undefined;
        try {
          ours = evaluate(c, devIn, p, ctxDev, specsCheck);
        } finally {
          if (ctxDev) disposeCtx(c, ctxDev);
        }
      } finally {
        for (const t of Object.values(devIn)) t.dispose();
      }
      const errOf = (a, b) => Math.max(0, ...a.map((o, k) => relErr(o.data, b[k].data)));
      if (ours.fwd.length !== ref.fwd.length) throw new Error(`${ours.fwd.length} outputs, the CPU gives ${ref.fwd.length}`);
      fwdRow.errCpu = errOf(ours.fwd, ref.fwd);
      for (const e of extraRows) e.errCpu = fwdRow.errCpu;
      if (bwdRow) bwdRow.errCpu = errOf(ours.grads, ref.grads);
      if (useTorch) {
        entry.check = {
          inputs: specsCheck.map((s) => ({ name: s.name, shape: s.shape, kind: s.float ? 'f32' : 'i32', float: s.float, grad: !!s.grad, file: writeRaw(cpuIn[s.name].toArray()) })),
          outputs: ours.fwd.map((o) => ({ shape: o.shape, file: writeRaw(o.data) })),
          grads: ours.grads.map((o) => ({ name: o.name, shape: o.shape, file: writeRaw(o.data) })),
        };
      }
    } finally {
      for (const t of Object.values(cpuIn)) t.dispose();
    }
  } catch (e) {
    for (const r of caseRows) r.errors.push(`check: ${errMsg(e)}`);
  }

  // ---- timing on the big shape
  const specsTime = c.inputs(dTime, false);
  entry.time = {
    inputs: specsTime.map((s) => ({ name: s.name, shape: s.shape, dist: s.dist, scale: s.scale ?? 1, high: s.high, p: s.p, float: s.float, grad: !!s.grad })),
  };
  let xs = null, ctx;
  try {
    xs = toDevice(specsTime, timingInputs(specsTime), dtype, c.backward);
    ctx = c.prep ? tk.tidy(() => c.prep(xs, p)) : undefined;
    const fwdT = timeIt(() => tk.noGrad(() => tk.tidy(() => void c.fwd(xs, p, ctx))));
    fwdRow.oursMs = fwdT.ms;
    for (const e of extraRows) e.oursMs = fwdT.ms;
    if (bwdRow) {
      const fb = timeIt(() => {
        tk.tidy(() => {
          const y = asList(c.fwd(xs, p, ctx));
          if (xs.dy) y[0].backward(xs.dy);
          else y[0].backward();
        });
        dropGrads(xs);
      });
      bwdRow.fwdBwdMs = fb.ms;
      bwdRow.oursMs = fb.ms - fwdT.ms;
    }
  } catch (e) {
    for (const r of caseRows) r.errors.push(`time: ${errMsg(e)}`);
  } finally {
    try {
      if (ctx) disposeCtx(c, ctx);
      if (xs) {
        dropGrads(xs);
        for (const t of Object.values(xs)) t.dispose();
      }
    } catch {
      /* a faulted device: the error is already recorded */
    }
  }
  // achieved rate
  for (const r of caseRows) {
    const kind = r.kind === 'bwd' ? 'bwd' : 'fwd';
    if (r.oursMs === null || !(r.oursMs > 0)) continue;
    if (c.flops) r.rate = { v: c.flops(dTime, kind) / (r.oursMs * 1e-3) / 1e12, unit: 'TFLOP/s' };
    else if (c.bytes) r.rate = { v: c.bytes(dTime, ELT[dtype], kind) / (r.oursMs * 1e-3) / 1e9, unit: 'GB/s' };
  }
  if (c.extra) entry.extra = c.extra.map((e) => e.key);
  entry.bytes = c.bytes ? c.bytes(dTime, ELT[dtype], 'fwd') : undefined;
  manifest.cases.push(entry);
  const ms = fwdRow.oursMs === null ? 'FAIL' : `${fwdRow.oursMs.toFixed(3)} ms`;
  console.log(`${ms}${fwdRow.errCpu !== null ? `, err ${fwdRow.errCpu.toExponential(1)}` : ''}${fwdRow.errors.length ? ` (${fwdRow.errors[0]})` : ''} [${((nowMs() - t0) / 1e3).toFixed(1)} s]`);
});

function disposeCtx(c, ctx) {
  if (c.cleanup) c.cleanup(ctx);
  if (ctx && typeof ctx === 'object') {
    for (const v of Object.values(ctx)) {
      if (v instanceof tk.Tensor) {
        if (v.grad) {
          v.grad.dispose();
          v.grad = null;
        }
        v.dispose();
      }
    }
  }
}

for (const t of timingCache.values()) t.dispose();
timingCache.clear();

// ---------------------------------------------------------------- torch
let torchInfo = null;
if (useTorch) {
  if (DEV === 'cuda') tk.cuda.emptyCache(); // hand our cached blocks back before torch allocates
  const mf = join(work, 'manifest.json');
  const out = join(work, 'torch.json');
  writeFileSync(mf, JSON.stringify(manifest));
  console.log('torch: running bench/gpu_check_torch.py ...');
  const r = spawnSync('python3', [join(here, 'gpu_check_torch.py'), mf, out], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, PYTHONUNBUFFERED: '1' }, timeout: 20 * 60 * 1000 });
  if (r.status !== 0 || !existsSync(out)) {
    console.log(`torch: gpu_check_torch.py failed (status ${r.status}${r.error ? `, ${r.error.message}` : ''}); torch columns empty`);
  } else {
    const res = JSON.parse(readFileSync(out, 'utf8'));
    torchInfo = res.info;
    for (const row of rows) {
      const t = res.cases[row.id];
      if (!t) continue;
      if (row.kind === 'bwd') {
        if (t.fwdbwd_ms != null && t.fwd_ms != null) row.torchMs = t.fwdbwd_ms - t.fwd_ms;
        if (t.err_bwd != null) row.errTorch = t.err_bwd;
      } else if (row.extraKey) {
        if (t[`${row.extraKey}_ms`] != null) row.torchMs = t[`${row.extraKey}_ms`];
        if (t.err_fwd != null) row.errTorch = t.err_fwd;
      } else {
        if (t.fwd_ms != null) row.torchMs = t.fwd_ms;
        if (t.err_fwd != null) row.errTorch = t.err_fwd;
      }
      if (t.error && row.kind !== 'bwd' && !row.extraKey) row.torchError = String(t.error).split('\n')[0].slice(0, 300);
    }
  }
}
if (!opt.keep) rmSync(work, { recursive: true, force: true });
else console.log(`kept ${work}`);

// ---------------------------------------------------------------- report
for (const r of rows) {
  const bad = (e) => e !== null && !(e <= r.tol);
  r.pass = r.errors.length === 0 && r.errCpu !== null && !bad(r.errCpu) && !bad(r.errTorch);
}
const fmtMs = (v) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(3) : v.toFixed(4));
const fmtE = (v) => (v === null || v === undefined ? '-' : Number.isFinite(v) ? v.toExponential(1) : String(v));
const fmtRate = (r) => (!r ? '-' : `${r.v >= 100 ? r.v.toFixed(0) : r.v >= 10 ? r.v.toFixed(1) : r.v.toFixed(2)} ${r.unit === 'GB/s' ? 'GB/s' : 'TF/s'}`);
const table = [['op', 'shape', 'dtype', 'ours ms', 'torch ms', 'ratio', 'achieved', 'err vs CPU', 'err vs torch', 'result']];
for (const r of rows) {
  const ratio = r.torchMs != null && r.oursMs > 0 && Number.isFinite(r.torchMs) ? (r.torchMs / r.oursMs).toFixed(2) : '-';
  table.push([r.op, r.shape, r.dtype, fmtMs(r.oursMs), fmtMs(r.torchMs), ratio, fmtRate(r.rate), fmtE(r.errCpu), fmtE(r.errTorch), r.pass ? 'PASS' : 'FAIL']);
}
const widths = table[0].map((_, k) => Math.max(...table.map((row) => row[k].length)));
const line = (row) => row.map((v, k) => (k >= 3 && k <= 8 ? v.padStart(widths[k]) : v.padEnd(widths[k]))).join(' | ');
console.log('');
console.log(`device: ${DEV === 'cuda' ? info.cuda.devices.map((d) => `${d.name} (sm ${d.computeCapability})`).join(', ') : `cpu (${info.cpu.isa})`}` +
  `${torchInfo ? `; torch ${torchInfo.torch} on ${torchInfo.device} (f32 matmul ${torchInfo.tf32 ? 'TF32' : 'full f32'}, rmsNorm ${torchInfo.rms_norm})` : '; no torch'}${opt.quick ? '; --quick' : ''}`);
console.log(line(table[0]));
console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
for (const row of table.slice(1)) console.log(line(row));
console.log('ratio = torch ms / ours ms (> 1: tunekit is faster); bwd rows = (fwd+bwd) - fwd; achieved: TF/s for GEMM-like ops, GB/s (bytes read + written) otherwise');
console.log('tolerance (relative norm error): f32 1e-4 GEMM-like (matmul, attention, loraLinear, int8Linear), 1e-5 otherwise; bf16 2e-2');
for (const r of rows) if (r.note) console.log(`${r.op}: ${r.note}`);
const failed = rows.filter((r) => !r.pass);
for (const r of failed) {
  const why = r.errors.length ? r.errors.join('; ') : r.errCpu === null ? 'no check result'
    : `error vs CPU ${fmtE(r.errCpu)}, vs torch ${fmtE(r.errTorch)}: tolerance ${r.tol.toExponential(0)}`;
  console.log(`FAIL ${r.op} ${r.shape} ${r.dtype}: ${why}`);
}
for (const r of rows) if (r.torchError) console.log(`torch ${r.op} ${r.dtype}: ${r.torchError}`);

let mem = null;
if (DEV === 'cuda') {
  try {
    mem = tk.cuda.memoryStats();
    const g = (b) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    console.log(`cuda memory: allocated ${g(mem.allocatedBytes)}, reserved ${g(mem.reservedBytes)}, peak ${g(mem.peakBytes)}, ` +
      `${mem.allocCount} allocations (${mem.deviceAllocCount} cudaMalloc), ${mem.liveTensors} live tensors, free ${g(mem.freeBytes)} of ${g(mem.totalBytes)}`);
  } catch (e) {
    console.log(`cuda memory: ${errMsg(e)}`);
  }
}
console.log(`${rows.length - failed.length}/${rows.length} passed in ${((nowMs() - t00) / 1e3).toFixed(1)} s`);

if (opt.json) {
  writeFileSync(opt.json, JSON.stringify({ device: DEV, backend: info, torch: torchInfo, quick: opt.quick, memoryStats: mem, rows }, null, 1));
  console.log(`wrote ${opt.json}`);
}
process.exit(failed.length ? 1 : 0);
