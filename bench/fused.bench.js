// The four fused ops against what they replace, side by side in one run:
//
//   attention   forward + backward (dq, dk, dv) at B=4, H=8, T=S=512, D=64, causal and not,
//               vs the unfused composition of core ops: matmul(q, kᵀ) -> scale -> (maskedFill)
//               -> softmax -> matmul(p, v), backward through autograd. Target: >= 2x.
//               Memory: peak RSS growth of one forward + backward in a fresh child process
//               at T=S=512 and 1024. Fused grows with T·D (target: 1024/512 <= 2.5x), the
//               unfused composition with T·S (its [T, S] tensors: ~4x).
//   loraLinear  forward + backward at x [4096, 1024] (requires grad), w [1024, 1024] frozen,
//               a [16, 1024] and b [1024, 16] trainable, vs matmul + matmul·matmul + scale +
//               add through autograd. Target: >= 1.2x.
//   int8Linear  forward at x [4096, 1024], q [1024, 1024] i8 vs the f32 matmul of the same
//               shape. Target: >= 1.5x where the CPU has AVX-512 VNNI (graded only there);
//               weight bytes (q + scales) vs f32: 4x smaller.
//   gae         B=1024, T=1024 vs a plain copy of the same bytes (clone of rewards, values,
//               dones: 12 MiB read, 12 MiB written), inputs cycled through SETS copies so
//               that neither side finds them in L3. Target: within 2x. The GAE time is
//               also shown against the machine's copy bandwidth (its own bytes: 3 inputs
//               read, 2 outputs written).
//
// Every comparison checks that both sides agree before timing them (check column).
// Time = median per call (tinybench); ratio rows divide the medians of the two sides.
//
//   node bench/run.js fused              as part of the suite (after `npm run build:ts`)
//   node bench/fused.bench.js [--quick]  on its own: the same rows plus a ratio table
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { cycler, formatTable, measure, measureLimits, MiB, PRESETS, regrade, SETS } from './lib.js';

export const title = 'fused ops vs unfused compositions';

const SUITE = 'fused';
const here = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------- helpers

function relErr(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return Math.sqrt(num / Math.max(den, 1e-300));
}

/** null when every pair agrees within tol, else the first disagreement */
function agree(pairs, tol) {
  for (const [name, a, b] of pairs) {
    const e = relErr(a, b);
    if (!(e <= tol)) return `${name}: relative error ${e.toExponential(2)} > ${tol}`;
  }
  return null;
}

/** Timing rows are information (the graded numbers are the ratios): no target, no pass. */
function asInfo(rows) {
  for (const r of rows) {
    if (r.error) continue;
    r.kind = `${r.kind}-info`;
    r.target = null;
    r.pass = null;
  }
  return rows;
}

function ratioRow(op, shape, achieved, target, { higherIsBetter = true, check = null, note = null, graded = true } = {}) {
  const ok = Number.isFinite(achieved) && (higherIsBetter ? achieved >= target : achieved <= target);
  return {
    suite: SUITE, op, shape, kind: 'ratio', unit: '×', achieved, limit: null, fraction: null,
    target, higherIsBetter, pass: graded ? ok && (check === null || check === 'ok') : null,
    timeMs: null, faultsPerCall: null, sysMsPerCall: null, userMsPerCall: null, check, note,
  };
}

function infoRow(op, shape, unit, achieved, note = null) {
  return {
    suite: SUITE, op, shape, kind: 'info', unit, achieved, limit: null, fraction: null, target: null, pass: null,
    timeMs: null, faultsPerCall: null, sysMsPerCall: null, userMsPerCall: null, check: null, note,
  };
}

const median = (rows, op) => rows.find((r) => r.op === op && !r.error)?.timeMs ?? NaN;
const checkOf = (rows, ...ops) => {
  for (const op of ops) {
    const r = rows.find((x) => x.op === op);
    if (!r) return 'missing';
    if (r.error) return `error: ${r.error}`;
    if (r.check && r.check !== 'ok') return r.check;
  }
  return 'ok';
};

// ---------------------------------------------------------------- attention

const AB = 4, AH = 8, AT = 512, AD = 64;

function causalMask(tk, T) {
  const m = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = 1;
  return tk.tensor(m, [T, T]);
}

/** One forward + backward; returns [y, dq, dk, dv] (caller disposes) */
function attnStep(tk, impl, q, k, v, g, causal, mask) {
  const o = tk.ops;
  const out = tk.tidy(() => {
    let y;
    if (impl === 'fused') y = o.attention(q, k, v, { causal });
    else {
      let s = o.scale(o.matmul(q, k, { transB: true }), 1 / Math.sqrt(q.shape[3]));
      if (causal) s = o.maskedFill(s, mask, -Infinity);
      y = o.matmul(o.softmax(s, -1), v);
    }
    y.backward(g);
    return [y.detach(), q.grad, k.grad, v.grad];
  });
  q.grad = k.grad = v.grad = null;
  return out;
}

function attentionCases(ctx) {
  const { tk } = ctx;
  const shape = [AB, AH, AT, AD];
  const q = tk.randn(shape, { seed: 11 }), k = tk.randn(shape, { seed: 12 }), v = tk.randn(shape, { seed: 13 }), g = tk.randn(shape, { seed: 14 });
  for (const t of [q, k, v]) t.requiresGrad = true;
  const mask = causalMask(tk, AT);
  const owned = [q, k, v, g, mask];
  const flops = (causal) => (causal ? 0.5 : 1) * 2 * AB * AH * AT * AT * AD * (2 + 5);  // fwd: 2 products, bwd: 5
  const cases = [];
  for (const causal of [false, true]) {
    const label = `B=${AB} H=${AH} T=S=${AT} D=${AD}${causal ? ' causal' : ''}`;
    // both sides agree (forward and the three gradients), checked once on the fused case
    const check = () => {
      const a = attnStep(tk, 'fused', q, k, v, g, causal, mask);
      const b = attnStep(tk, 'unfused', q, k, v, g, causal, mask);
      try {
        return agree(['y', 'dq', 'dk', 'dv'].map((n, i) => [n, a[i].toArray(), b[i].toArray()]), 1e-4);
      } finally {
        for (const t of [...a, ...b]) t.dispose();
      }
    };
    for (const impl of ['fused', 'unfused'])
      cases.push({
        op: `attention fwd+bwd ${impl}${causal ? ' causal' : ''}`,
        shape: label,
        kind: 'flop',
        work: flops(causal),
        fn: () => {
          for (const t of attnStep(tk, impl, q, k, v, g, causal, mask)) t.dispose();
        },
        check: impl === 'fused' ? check : undefined,
        note: 'GFLOP/s counts the useful products only (causal: half)',
      });
  }
  return { cases, owned };
}

/** Peak RSS growth (bytes) of one forward + backward in a fresh process. */
function attentionMemory(impl, T, causal) {
  const r = spawnSync(process.execPath, [here, '--attn-mem', impl, String(T), causal ? '1' : '0'], { encoding: 'utf8', timeout: 300_000 });
  const m = /^rss-growth (\d+)$/m.exec(r.stdout ?? '');
  if (!m) throw new Error(`memory child (${impl} T=${T}) failed: ${(r.stderr || r.stdout || String(r.error)).slice(-400)}`);
  return Number(m[1]);
}

async function attnMemChild(impl, T, causal) {
  const tk = await import('tunekit');
  const shape = [AB, AH, T, AD];
  // load and warm every code path on a tiny shape first (thread pool, kernels, JIT)
  {
    const s = [1, 2, 16, AD];
    const q = tk.randn(s), k = tk.randn(s), v = tk.randn(s), g = tk.randn(s);
    for (const t of [q, k, v]) t.requiresGrad = true;
    const m = causalMask(tk, 16);
    for (const t of attnStep(tk, impl, q, k, v, g, causal, m)) t.dispose();
  }
  const q = tk.randn(shape, { seed: 1 }), k = tk.randn(shape, { seed: 2 }), v = tk.randn(shape, { seed: 3 }), g = tk.randn(shape, { seed: 4 });
  for (const t of [q, k, v]) t.requiresGrad = true;
  // only when used: building the [T, T] mask leaves a T·T·4-byte Float32Array behind, and
  // whether the GC frees it inside the measured window moved the reading by that much
  const mask = causal ? causalMask(tk, T) : null;
  // Tensor memory is V8 ArrayBuffer memory (process.memoryUsage().arrayBuffers counts
  // every byte): what the forward keeps for the backward (its graph), and the peak
  // over forward + backward sampled after each step. RSS is no use here: freed
  // tensor memory stays in the malloc heap and is reused.
  const ab = () => process.memoryUsage().arrayBuffers;
  const base = ab();
  let peak = base;
  const y = tk.tidy(() => {
    let out;
    if (impl === 'fused') out = tk.ops.attention(q, k, v, { causal });
    else {
      let s = tk.ops.scale(tk.ops.matmul(q, k, { transB: true }), 1 / Math.sqrt(q.shape[3]));
      peak = Math.max(peak, ab());
      if (causal) s = tk.ops.maskedFill(s, mask, -Infinity);
      peak = Math.max(peak, ab());
      out = tk.ops.matmul(tk.ops.softmax(s, -1), v);
    }
    peak = Math.max(peak, ab());
    out.backward(g);
    peak = Math.max(peak, ab());
    return out.detach();
  });
  peak = Math.max(peak, ab());
  y.dispose();
  console.log(`rss-growth ${peak - base}`);
}

// ---------------------------------------------------------------- loraLinear

function loraCases(ctx) {
  const { tk } = ctx;
  const N = 4096, IN = 1024, OUT = 1024, R = 16, SCALE = 2;
  const x = tk.randn([N, IN], { seed: 21 }), w = tk.randn([OUT, IN], { seed: 22 }), g = tk.randn([N, OUT], { seed: 25 });
  const a = tk.tidy(() => tk.keep(tk.ops.scale(tk.randn([R, IN], { seed: 23 }), 0.05)));
  const b = tk.tidy(() => tk.keep(tk.ops.scale(tk.randn([OUT, R], { seed: 24 }), 0.05)));
  for (const t of [x, a, b]) t.requiresGrad = true;  // w frozen
  const o = tk.ops;
  const step = (impl) => {
    const out = tk.tidy(() => {
      const y = impl === 'fused'
        ? o.loraLinear(x, w, a, b, { scale: SCALE })
        : o.add(o.matmul(x, w, { transB: true }), o.scale(o.matmul(o.matmul(x, a, { transB: true }), b, { transB: true }), SCALE));
      y.backward(g);
      return [y.detach(), x.grad, a.grad, b.grad];
    });
    x.grad = a.grad = b.grad = null;
    return out;
  };
  const check = () => {
    const p = step('fused'), u = step('unfused');
    try {
      if (w.grad) return 'the frozen w got a gradient';
      return agree(['y', 'dx', 'da', 'db'].map((n, i) => [n, p[i].toArray(), u[i].toArray()]), 1e-4);
    } finally {
      for (const t of [...p, ...u]) t.dispose();
    }
  };
  const flops = 2 * N * OUT * IN * 2 + 2 * N * R * (IN + OUT) * 3;  // y and dx over w, the rank-r products
  const label = `x [${N}, ${IN}], w [${OUT}, ${IN}] frozen, r=${R}`;
  const cases = ['fused', 'unfused'].map((impl) => ({
    op: `loraLinear fwd+bwd ${impl}`,
    shape: label,
    kind: 'flop',
    work: flops,
    fn: () => {
      for (const t of step(impl)) t.dispose();
    },
    check: impl === 'fused' ? check : undefined,
  }));
  return { cases, owned: [x, w, a, b, g] };
}

// ---------------------------------------------------------------- int8Linear

function int8Cases(ctx) {
  const { tk } = ctx;
  const N = 4096, IN = 1024, OUT = 1024;
  const x = tk.randn([N, IN], { seed: 31 }), w = tk.randn([OUT, IN], { seed: 32 });
  const { q, scale } = tk.ops.quantizeInt8(w);
  const check = () => {
    const y = tk.ops.int8Linear(x, q, scale), ref = tk.ops.matmul(x, w, { transB: true });
    try {
      const e = relErr(y.toArray(), ref.toArray());
      return e <= 1.5e-2 ? null : `relative error vs the f32 product ${e.toExponential(2)} > 1.5e-2`;
    } finally {
      y.dispose();
      ref.dispose();
    }
  };
  const label = `[${N}, ${IN}] x [${OUT}, ${IN}]ᵀ`;
  const cases = [
    { op: 'int8Linear', shape: label, kind: 'flop', work: 2 * N * IN * OUT, fn: () => tk.ops.int8Linear(x, q, scale).dispose(), check,
      note: 'activations quantized per row on every call, int32 accumulation, dequantizing epilogue' },
    { op: 'matmul f32', shape: label, kind: 'flop', work: 2 * N * IN * OUT, fn: () => tk.ops.matmul(x, w, { transB: true }).dispose() },
  ];
  const bytes = { f32: w.numel * 4, int8: q.numel * 1 + scale.numel * 4, payload: q.numel * 1 };
  return { cases, owned: [x, w, q, scale], bytes };
}

// ---------------------------------------------------------------- gae

function gaeCases(ctx) {
  const { tk } = ctx;
  const B = 1024, T = 1024;
  const sets = [...Array(SETS).keys()];
  const rs = sets.map((i) => tk.randn([B, T], { seed: 41 + i }));
  const vs = sets.map((i) => tk.randn([B, T], { seed: 51 + i }));
  // dones: 1 with probability 0.05 (episodes end anywhere in a row)
  const dones = sets.map((i) => {
    const u = tk.rand([B, T], { seed: 61 + i });
    const a = u.toArray().map((x) => (x < 0.05 ? 1 : 0));
    u.dispose();
    return tk.tensor(a, [B, T]);
  });
  const opts = { gamma: 0.99, lambda: 0.95 };
  const bytes = 5 * 4 * B * T;  // 3 inputs read, 2 outputs written
  const nextG = cycler(), nextC = cycler();
  const check = () => {
    // spot rows against the textbook float32 loop
    const { advantages } = tk.ops.gae(rs[0], vs[0], dones[0], opts);
    const A = advantages.toArray(), Rw = rs[0].toArray(), V = vs[0].toArray(), Dn = dones[0].toArray();
    advantages.dispose();
    const f = Math.fround, g = f(opts.gamma), gl = f(g * f(opts.lambda));
    for (const b of [0, 517, B - 1]) {
      let a = 0, vn = 0;
      for (let t = T - 1; t >= 0; t--) {
        const i = b * T + t, nd = f(1 - Dn[i]);
        a = f(f(f(Rw[i] + f(f(g * vn) * nd)) - V[i]) + f(f(gl * nd) * a));
        vn = V[i];
        if (A[i] !== a) return `row ${b} step ${t}: ${A[i]}, the float32 loop gives ${a}`;
      }
    }
    return null;
  };
  const label = `B=${B} T=${T}`;
  const cases = [
    { op: 'gae', shape: label, kind: 'bytes', work: bytes, check,
      fn: () => {
        const k = nextG();
        const { advantages, returns } = tk.ops.gae(rs[k], vs[k], dones[k], opts);
        advantages.dispose();
        returns.dispose();
      }, note: 'bytes: rewards, values, dones read; advantages, returns written' },
    { op: 'clone rewards+values+dones', shape: label, kind: 'bytes', work: 6 * 4 * B * T,
      fn: () => {
        const k = nextC();
        rs[k].clone().dispose();
        vs[k].clone().dispose();
        dones[k].clone().dispose();
      }, note: 'a plain copy of the same input bytes (into fresh tensors, as gae writes fresh outputs)' },
  ];
  return { cases, owned: [...rs, ...vs, ...dones], bytes };
}

// ---------------------------------------------------------------- the suite

export function run(ctx) {
  const { tk } = ctx;
  const rows = [];
  const ratios = [];
  const timed = (make) => {
    const { cases, owned, ...rest } = make(ctx);
    try {
      const got = asInfo(measure(SUITE, cases, ctx));
      rows.push(...got);
      return { got, ...rest };
    } finally {
      for (const t of owned) t.dispose();
    }
  };

  // attention: time
  const att = timed(attentionCases).got;
  for (const causal of [false, true]) {
    const c = causal ? ' causal' : '';
    const f = median(att, `attention fwd+bwd fused${c}`), u = median(att, `attention fwd+bwd unfused${c}`);
    ratios.push(ratioRow(`attention fwd+bwd speedup${c} (≥ 2×)`, `B=${AB} H=${AH} T=S=${AT} D=${AD}`, u / f, 2,
      { check: checkOf(att, `attention fwd+bwd fused${c}`), note: `unfused ${u.toFixed(1)} ms / fused ${f.toFixed(1)} ms` }));
  }
  // attention: memory in child processes
  try {
    const mem = {};
    for (const impl of ['fused', 'unfused'])
      for (const T of [512, 1024]) {
        mem[`${impl}${T}`] = attentionMemory(impl, T, false);
        rows.push(infoRow(`attention fwd+bwd ${impl}: peak tensor memory`, `B=${AB} H=${AH} T=S=${T} D=${AD}`, 'MiB', mem[`${impl}${T}`] / MiB,
          'peak tensor bytes (process.memoryUsage().arrayBuffers) over forward + backward, minus before, in a fresh process'));
      }
    const gf = mem.fused1024 / mem.fused512, gu = mem.unfused1024 / mem.unfused512;
    ratios.push(ratioRow('attention memory growth T 512 -> 1024, fused (≤ 2.5×: T·D)', `B=${AB} H=${AH} D=${AD}`, gf, 2.5,
      { higherIsBetter: false, note: `fused ${(mem.fused512 / MiB).toFixed(0)} -> ${(mem.fused1024 / MiB).toFixed(0)} MiB; unfused ${(mem.unfused512 / MiB).toFixed(0)} -> ${(mem.unfused1024 / MiB).toFixed(0)} MiB (${gu.toFixed(2)}×, T·S)` }));
    ratios.push(ratioRow('attention memory growth T 512 -> 1024, unfused (info: T·S ~ 4×)', `B=${AB} H=${AH} D=${AD}`, gu, 4, { graded: false }));
  } catch (e) {
    rows.push({ suite: SUITE, op: 'attention memory', shape: '', kind: 'info', error: e instanceof Error ? e.message : String(e) });
  }

  // loraLinear
  const lora = timed(loraCases).got;
  {
    const f = median(lora, 'loraLinear fwd+bwd fused'), u = median(lora, 'loraLinear fwd+bwd unfused');
    ratios.push(ratioRow('loraLinear fwd+bwd speedup (≥ 1.2×)', 'x [4096, 1024], r=16', u / f, 1.2,
      { check: checkOf(lora, 'loraLinear fwd+bwd fused'), note: `unfused ${u.toFixed(1)} ms / fused ${f.toFixed(1)} ms` }));
  }

  // int8Linear
  const i8 = timed(int8Cases);
  {
    const f = median(i8.got, 'int8Linear'), m = median(i8.got, 'matmul f32');
    const vnni = ctx.vnni ?? cpuHasVnni();
    const graded = vnni && tk.backend().cpu.isa === 'avx512';
    ratios.push(ratioRow(`int8Linear speedup vs f32 matmul (≥ 1.5× with VNNI)${graded ? '' : ' [not graded: no AVX-512 VNNI in use]'}`, '[4096, 1024] x [1024, 1024]ᵀ', m / f, 1.5,
      { check: checkOf(i8.got, 'int8Linear'), graded, note: `f32 ${m.toFixed(1)} ms / int8 ${f.toFixed(1)} ms` }));
    ratios.push(ratioRow('int8 weight bytes, f32 / (q + scales) (≥ 3.9×; q alone 4×)', '[1024, 1024]', i8.bytes.f32 / i8.bytes.int8, 3.9,
      { note: `f32 ${i8.bytes.f32} B, q ${i8.bytes.payload} B + scales ${i8.bytes.int8 - i8.bytes.payload} B` }));
  }

  // gae
  const gae = timed(gaeCases);
  {
    const f = median(gae.got, 'gae'), c = median(gae.got, 'clone rewards+values+dones');
    ratios.push(ratioRow('gae time / plain copy of the same bytes (≤ 2×)', 'B=1024 T=1024', f / c, 2,
      { higherIsBetter: false, check: checkOf(gae.got, 'gae'), note: `gae ${f.toFixed(2)} ms, clone of the 3 inputs ${c.toFixed(2)} ms` }));
    const atBw = (gae.bytes / ctx.limits.copyBytesPerSec) * 1e3;
    ratios.push(ratioRow('gae time / its bytes at the copy bandwidth (info)', 'B=1024 T=1024', f / atBw, 2,
      { higherIsBetter: false, graded: false, note: `${(gae.bytes / MiB).toFixed(0)} MiB at ${(ctx.limits.copyBytesPerSec / 1e9).toFixed(1)} GB/s = ${atBw.toFixed(2)} ms` }));
  }

  rows.push(...ratios);
  if (ctx.printRatios !== false) console.log(`\n${formatRatios(ratios)}`);
  return rows;
}

function cpuHasVnni() {
  try {
    return /\bavx512_vnni\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));  // Linux: the kernel's view of the CPU flags
  } catch {
    return false;
  }
}

/** The comparison table: ratio, target, result. */
export function formatRatios(ratios) {
  const fmt = (x) => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(2)) : '-');
  const lines = ratios.map((r) => ({
    what: r.op.replace(/ \((?:≥|≤)[^)]*\)/, ''),
    shape: r.shape,
    ratio: `${fmt(r.achieved)}×`,
    target: `${r.higherIsBetter ? '≥' : '≤'} ${r.target}×`,
    result: r.pass === null ? 'info' : r.pass ? 'pass' : r.check && r.check !== 'ok' ? 'WRONG' : 'MISS',
    note: r.note ?? '',
  }));
  const cols = [['what', 'comparison'], ['shape', 'shape'], ['ratio', 'ratio'], ['target', 'target'], ['result', 'result'], ['note', 'detail']];
  const width = Object.fromEntries(cols.map(([k, t]) => [k, Math.max(t.length, ...lines.map((l) => l[k].length))]));
  const line = (l) => cols.map(([k]) => (k === 'ratio' ? l[k].padStart(width[k]) : l[k].padEnd(width[k]))).join('  ').trimEnd();
  const head = line(Object.fromEntries(cols.map(([k, t]) => [k, t])));
  return [`[${SUITE}] ratios`, head, '-'.repeat(head.length), ...lines.map(line)].join('\n');
}

// ---------------------------------------------------------------- standalone

async function main(argv) {
  if (argv[0] === '--attn-mem') return attnMemChild(argv[1], Number(argv[2]), argv[3] === '1');
  const quick = argv.includes('--quick');
  const tk = await import('tunekit');
  const { native } = await import('../dist/native/binding.js');
  const { cpus, loadavg } = await import('node:os');
  const be = tk.backend();
  console.log(`tunekit fused-op benchmarks: ${cpus()[0]?.model ?? 'unknown CPU'}, ${be.cpu.threads} threads, isa ${be.cpu.isa}, load average ${loadavg()[0].toFixed(2)}${quick ? ' (--quick: smoke run, not a measurement)' : ''}`);
  const limits = measureLimits(native, { quick });
  console.log(`limits: FMA peak ${(limits.fmaFlops / 1e9).toFixed(1)} GFLOP/s, copy bandwidth ${(limits.copyBytesPerSec / 1e9).toFixed(1)} GB/s`);
  const ctx = { tk, native, limits, preset: quick ? PRESETS.quick : PRESETS.full, quick, threads: be.cpu.threads, printRatios: false };
  const rows = run(ctx);
  // as run.js does: the limits once more, every fraction against the best of both (a busy
  // machine only ever lowers a limit sample)
  const end = measureLimits(native, { quick });
  regrade(rows, { ...limits, fmaFlops: Math.max(limits.fmaFlops, end.fmaFlops), copyBytesPerSec: Math.max(limits.copyBytesPerSec, end.copyBytesPerSec) });
  console.log(formatTable(rows.filter((r) => r.kind !== 'ratio')));
  console.log(`\n${formatRatios(rows.filter((r) => r.kind === 'ratio'))}`);
  const wrong = rows.filter((r) => (r.check && r.check !== 'ok') || r.error);
  for (const r of wrong) console.log(`${r.error ? 'ERROR' : 'WRONG'} ${r.op}: ${r.error ?? r.check}`);
  if (wrong.length) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((e) => {
    console.error(e);
    process.exitCode = 1;
  });
}
