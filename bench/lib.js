// Shared machinery of the CPU benchmark suite (bench/run.js runs it).
//
// Every case is timed with tinybench (synchronous tasks, median latency) and
// reported against the physical limit it is bound by, measured in the same
// process: the FMA peak for matmul (native fmaPeak, all pool threads) and the
// copy bandwidth for memory-bound ops (native copyBandwidth, read + write bytes
// per second, on buffers far larger than L2 and L3). Each case gets its own
// probes of its limit, taken right before and right after it (the larger of
// the two is its limit): on a shared VM the memory bandwidth and the CPU share
// drift by 2x within minutes, so a limit from another moment says little.
// Bytes of an op are its logical traffic: every input read once plus every
// output written once. An implementation that needs more passes than that
// shows up as a lower fraction of the limit, as it should.
//
// Each case also records the minor page faults and the kernel (sys) CPU time
// per call, so that the cost of fresh output allocations is visible per op.
import { readFileSync } from 'node:fs';

import { Bench } from 'tinybench';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** Timing presets; `--quick` is a smoke run, not a measurement. */
export const PRESETS = {
  full: { time: 400, iterations: 10, warmupTime: 60, warmupIterations: 2, latencyTime: 600 },
  quick: { time: 40, iterations: 2, warmupTime: 10, warmupIterations: 1, latencyTime: 60 },
};

// ---------------------------------------------------------------- machine limits

/**
 * Measures the FMA peak (FLOP/s) and the copy bandwidth (bytes/s, read + write)
 * several times and keeps the best sample of each: a limit is what the machine
 * can do, and a shared or throttled machine only ever makes a sample lower.
 */
export function measureLimits(native, { quick = false } = {}) {
  const fmaSeconds = quick ? 0.05 : 0.25;
  const copyBytes = 256 * MiB;
  const copyReps = quick ? 1 : 8;
  const samples = quick ? 1 : 3;
  native.fmaPeak(0.05);  // wake the pool threads and let the clocks settle
  const fma = [];
  for (let i = 0; i < samples; i++) fma.push(native.fmaPeak(fmaSeconds));
  const copy = [];
  for (let i = 0; i < samples; i++) copy.push(native.copyBandwidth(copyBytes, copyReps));
  return {
    fmaFlops: Math.max(...fma),
    copyBytesPerSec: Math.max(...copy),
    fmaSamples: fma,
    copySamples: copy,
    copyBufferBytes: copyBytes,
  };
}

// ---------------------------------------------------------------- measurement

/** Bytes of the per-case copy-bandwidth probe: 64 + 64 MiB, four times the L3. */
export const PROBE_BYTES = 64 * MiB;

// the limit a case is graded against: 'flop' (FMA peak), 'bytes' (copy
// bandwidth), or null (latency and derived rows)
function probeKind(c) {
  if (c.kind === 'flop') return 'flop';
  if (c.kind === 'bytes' || (c.kind === 'info' && c.work)) return 'bytes';
  return null;
}

// one probe, in FLOP/s or bytes/s
function probe(kind, ctx) {
  if (kind === 'flop') return ctx.native.fmaPeak(ctx.quick ? 0.02 : 0.1);
  return ctx.native.copyBandwidth(PROBE_BYTES, ctx.quick ? 1 : 4);
}

/**
 * Microseconds during which some runnable task waited for a CPU (Linux PSI,
 * /proc/pressure/cpu), or null where unavailable. Its growth during a case,
 * over the case's wall time, says how busy the machine was: another process
 * (or this one's own GC threads) competing with the kernel's threads.
 */
export function cpuPressureUs() {
  try {
    const m = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Cases whose CPU pressure exceeds this percentage of their wall time are flagged. */
export const BUSY_PCT = 10;

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
const sleepMs = (ms) => Atomics.wait(sleepCell, 0, 0, ms);

/**
 * Blocks until the CPU pressure over a 500 ms window is under 3% (the other
 * processes have let go of the cores), or until maxMs have passed. Returns the
 * milliseconds waited. Only with --wait-idle.
 */
export function waitForIdle(maxMs = 30000) {
  const t0 = performance.now();
  if (cpuPressureUs() === null) return 0;
  for (;;) {
    const p0 = cpuPressureUs(), w0 = performance.now();
    sleepMs(500);
    const pct = (100 * (cpuPressureUs() - p0)) / 1000 / (performance.now() - w0);
    if (pct < 3 || performance.now() - t0 > maxMs) return performance.now() - t0;
  }
}

function osCounters() {
  const r = process.resourceUsage();
  return {
    faults: r.minorPageFault + r.majorPageFault,
    user: r.userCPUTime,
    sys: r.systemCPUTime,
    psi: cpuPressureUs(),
    wall: performance.now(),
  };
}

function casePressure(k) {
  const { before, after } = k;
  if (!after || after.psi === null || before.psi === null) return 0;
  return (100 * (after.psi - before.psi)) / 1000 / Math.max(1e-9, after.wall - before.wall);
}

// one tinybench run of one case; the OS counters cover the timed phase only
function timeCase(c, p) {
  const latency = c.kind === 'latency';
  const bench = new Bench({
    name: c.op,
    time: latency ? p.latencyTime : p.time,
    iterations: p.iterations,
    warmupTime: p.warmupTime,
    warmupIterations: p.warmupIterations,
    throws: false,
  });
  const k = { calls: 0, before: null, after: null };
  const fn = c.fn;
  bench.add(`${c.op} ${c.shape}`, () => {
    fn();
    k.calls++;
  }, {
    beforeAll(mode) {
      if (mode === 'run') {
        k.calls = 0;
        k.before = osCounters();
      }
    },
    afterAll(mode) {
      if (mode === 'run') k.after = osCounters();
    },
  });
  const [task] = bench.runSync();
  return { task, counters: k };
}

/**
 * Runs a list of cases and returns one result row per case.
 *
 * case: {
 *   op, shape        labels
 *   kind             'flop' (vs FMA peak) | 'bytes' (vs copy bandwidth) | 'latency' (µs per call) | 'info'
 *   work             FLOPs or bytes of one call (flop / bytes / info kinds)
 *   fn               one call of the op; it must do the full work and dispose what it creates
 *   batch            calls of the op per fn call (default 1); times are reported per op call
 *   target           fraction of the limit (flop / bytes), or µs per call (latency)
 *   check            optional () => string | null, run once before timing (null = correct)
 *   note             optional free text
 * }
 */
export function measure(suite, cases, ctx) {
  const p = ctx.preset;
  const rows = [];
  const probes = {};  // the latest probe of each kind: the next case's "before"
  for (const c of cases) {
    // a result that is wrong is not worth timing precisely, but still time it
    let check = null;
    if (c.check) {
      try {
        check = c.check() ?? 'ok';
      } catch (e) {
        check = `check threw: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    const pk = ctx.native ? probeKind(c) : null;
    const probeBefore = pk ? (probes[pk] ?? probe(pk, ctx)) : null;
    const attempts = ctx.waitIdle ? 3 : 1;
    let task, counters, waitedMs = 0;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (ctx.waitIdle) waitedMs += waitForIdle();
      const got = timeCase(c, p);
      const pressure = casePressure(got.counters);
      if (!task || pressure < casePressure(counters)) {
        task = got.task;
        counters = got.counters;
      }
      if (!(pressure > BUSY_PCT)) break;
    }
    const { calls, before, after } = counters;
    const probeAfter = pk ? (probes[pk] = probe(pk, ctx)) : null;
    const r = task.result;
    if (r.state !== 'completed') {
      const msg = r.state === 'errored' ? r.error.message : r.state;
      rows.push({ suite, op: c.op, shape: c.shape, kind: c.kind, error: msg });
      ctx.onRow?.(rows[rows.length - 1]);
      continue;
    }
    const batch = c.batch ?? 1;
    const perCallMs = r.latency.p50 / batch;
    const opCalls = Math.max(1, calls * batch);
    const row = {
      suite,
      op: c.op,
      shape: c.shape,
      kind: c.kind,
      timeMs: perCallMs,
      meanMs: r.latency.mean / batch,
      minMs: r.latency.min / batch,
      rmePct: r.latency.rme,
      samples: r.latency.samplesCount,
      batch,
      work: c.work ?? null,
      faultsPerCall: after ? (after.faults - before.faults) / opCalls : null,
      sysMsPerCall: after ? (after.sys - before.sys) / 1000 / opCalls : null,
      userMsPerCall: after ? (after.user - before.user) / 1000 / opCalls : null,
      cpuPressurePct: after && after.psi !== null && before.psi !== null ? casePressure(counters) : null,
      waitedMs: ctx.waitIdle ? waitedMs : null,
      check,
      note: c.note ?? null,
    };
    if (c.kind === 'flop') {
      row.unit = 'GFLOP/s';
      row.achieved = c.work / (perCallMs / 1e3) / 1e9;
      row.runLimit = ctx.limits.fmaFlops / 1e9;
    } else if (c.kind === 'bytes' || c.kind === 'info') {
      row.unit = 'GB/s';
      row.achieved = c.work ? c.work / (perCallMs / 1e3) / 1e9 : null;
      row.runLimit = c.work ? ctx.limits.copyBytesPerSec / 1e9 : null;
    } else {
      row.unit = 'µs/call';
      row.achieved = perCallMs * 1e3;
      row.runLimit = null;
    }
    // graded against its own probes where it has them, else the run's limits
    row.probes = pk ? [probeBefore / 1e9, probeAfter / 1e9] : null;
    row.limit = pk ? Math.max(probeBefore, probeAfter) / 1e9 : row.runLimit;
    if (c.kind === 'flop' || c.kind === 'bytes') {
      row.fraction = row.achieved / row.limit;
      row.target = c.target;
      row.pass = row.fraction >= c.target && (check === null || check === 'ok');
    } else if (c.kind === 'latency') {
      row.fraction = null;
      row.target = c.target;
      row.pass = row.achieved <= c.target && (check === null || check === 'ok');
    } else {
      row.fraction = row.achieved === null || !row.limit ? null : row.achieved / row.limit;
      row.target = null;
      row.pass = null;
    }
    rows.push(row);
    ctx.onRow?.(row);
  }
  return rows;
}

/**
 * Grades the rows that have no probes of their own again, against new limits
 * (the best of the limits measured before and after the suites).
 */
export function regrade(rows, limits) {
  for (const r of rows) {
    if (r.error || r.achieved === null || r.achieved === undefined || r.probes) continue;
    if (r.kind !== 'flop' && r.kind !== 'bytes') continue;
    if (r.unit === 'GFLOP/s') r.limit = limits.fmaFlops / 1e9;
    else if (r.unit === 'GB/s') r.limit = limits.copyBytesPerSec / 1e9;
    else continue;
    r.fraction = r.achieved / r.limit;
    if (r.kind === 'flop' || r.kind === 'bytes') r.pass = r.fraction >= r.target && (r.check === null || r.check === 'ok');
  }
}

// ---------------------------------------------------------------- correctness spot checks

/** Worst relative error of sampled entries: |got - want| / max(|want|, floor). */
export function spotCheck(got, want, indices, tol, floor = 1e-3) {
  let worst = 0;
  let at = -1;
  for (const i of indices) {
    const w = want(i);
    const g = got[i];
    const err = Number.isNaN(w) ? (Number.isNaN(g) ? 0 : Infinity) : Math.abs(g - w) / Math.max(Math.abs(w), floor);
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  return worst <= tol ? null : `entry ${at}: got ${got[at]}, want ${want(at)} (rel err ${worst.toExponential(2)} > ${tol})`;
}

/** n sample positions spread over [0, len), including both ends. */
export function samplePositions(len, n = 64, seed = 12345) {
  const out = new Set([0, len - 1]);
  let s = seed >>> 0;
  while (out.size < Math.min(n, len)) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.add(s % len);
  }
  return [...out];
}

// ---------------------------------------------------------------- report

function fmtNum(x, digits = 2) {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  if (Math.abs(x) >= 100) return x.toFixed(1);
  return x.toFixed(digits);
}

function fmtTime(ms) {
  if (ms === null || ms === undefined) return '-';
  if (ms < 0.01) return `${(ms * 1e3).toFixed(3)} µs`;
  return `${fmtNum(ms, 3)} ms`;
}

export function tableRow(r) {
  if (r.error) return { suite: r.suite, op: r.op, shape: r.shape, time: 'ERROR', min: '', achieved: r.error, limit: '', pct: '', target: '', result: 'error', faults: '', sys: '' };
  let achieved = r.achieved === null || r.achieved === undefined ? '-' : `${fmtNum(r.achieved)} ${r.unit}`;
  let pct = r.fraction === null ? '-' : `${(100 * r.fraction).toFixed(1)}%`;
  let target = '-';
  if (r.kind === 'flop' || r.kind === 'bytes') target = `${Math.round(100 * r.target)}%`;
  else if (r.kind === 'latency') target = `≤ ${r.target} µs`;
  let result = r.pass === null ? 'info' : r.pass ? 'pass' : 'MISS';
  if (r.check && r.check !== 'ok') result = 'WRONG';
  if (r.cpuPressurePct > BUSY_PCT) result += ' *';
  return {
    suite: r.suite,
    op: r.op,
    shape: r.shape,
    time: fmtTime(r.timeMs),
    min: fmtTime(r.minMs ?? null),
    achieved,
    limit: r.limit === null || r.limit === undefined ? '-' : `${fmtNum(r.limit, 1)}`,
    pct,
    target,
    result,
    faults: r.faultsPerCall === null ? '-' : r.faultsPerCall < 10 ? r.faultsPerCall.toFixed(1) : r.faultsPerCall.toFixed(0),
    sys: r.sysMsPerCall === null ? '-' : r.sysMsPerCall < 0.01 ? '0' : r.sysMsPerCall.toFixed(2),
  };
}

const COLUMNS = [
  ['op', 'op', 'l'],
  ['shape', 'shape', 'l'],
  ['time', 'time (p50)', 'r'],
  ['min', 'min', 'r'],
  ['achieved', 'achieved', 'r'],
  ['limit', 'limit', 'r'],
  ['pct', '% of limit', 'r'],
  ['target', 'target', 'r'],
  ['result', 'result', 'l'],
  ['faults', 'faults/call', 'r'],
  ['sys', 'sys ms/call', 'r'],
];

/** A plain-text table, one block per suite. */
export function formatTable(rows) {
  const cells = rows.map(tableRow);
  const width = {};
  for (const [key, title] of COLUMNS) width[key] = Math.max(title.length, ...cells.map((c) => String(c[key]).length));
  const line = (c) => COLUMNS.map(([key, , align]) => (align === 'l' ? String(c[key]).padEnd(width[key]) : String(c[key]).padStart(width[key]))).join('  ');
  const header = line(Object.fromEntries(COLUMNS.map(([key, title]) => [key, title])));
  const rule = '-'.repeat(header.length);
  const out = [];
  let suite = null;
  for (const c of cells) {
    if (c.suite !== suite) {
      suite = c.suite;
      out.push('', `[${suite}]`, header, rule);
    }
    out.push(line(c));
  }
  return out.join('\n');
}

// ---------------------------------------------------------------- cold inputs

/**
 * Input sets for memory-bound cases. A case cycles through `SETS` copies of
 * its inputs so that no call finds its input in the L3 cache left warm by the
 * previous call (8M floats are 32 MiB, the size of this machine's L3).
 */
export const SETS = 3;

/** () => 0, 1, ..., SETS - 1, 0, 1, ... */
export function cycler(n = SETS) {
  let i = 0;
  return () => {
    const k = i;
    i = i + 1 === n ? 0 : i + 1;
    return k;
  };
}
