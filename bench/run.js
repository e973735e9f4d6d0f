#!/usr/bin/env node
// The CPU benchmark suite: `npm run bench [-- [suite...] [--quick] [--wait-idle] [--out FILE]]`.
//
// Measures the machine limits (FMA peak, copy bandwidth) first, then runs every
// bench/*.bench.js (or the ones whose name contains a given word), prints one
// table and writes every number to bench/out/results.json.
//
//   npm run bench                      everything (about a minute on 2 cores)
//   npm run bench -- matmul overhead   only those suites
//   npm run bench -- --quick           smoke run: tiny time budgets, numbers are not measurements
//   npm run bench -- --wait-idle       on a shared machine: before each case wait (up to 30 s) for the
//                                      other processes to leave the cores, and retry a case (twice at
//                                      most) that still ran busy; the run takes longer
//
// Limits: the run measures the FMA peak and the copy bandwidth (256 MiB) before
// and after the suites, and each case is graded against probes of the same
// limit taken right before and right after it (bench/lib.js, measure()): on a
// shared host the memory bandwidth and the CPU share drift by 2x within
// minutes, and a case is only comparable with the machine as it was then.
//
// Suites are plain ES modules: `export const title` and
// `export function run(ctx)` returning result rows (see bench/lib.js, measure()).
// A suite that takes long (a model or a training step) can `export const
// optional = true`: it then runs only when named on the command line, so that
// the default run stays within a few minutes.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import * as tk from 'tunekit';
import { native } from '../dist/native/binding.js';

import { BUSY_PCT, cpuPressureUs, formatTable, measureLimits, PRESETS, regrade, waitForIdle } from './lib.js';

const here = dirname(fileURLToPath(import.meta.url));
const ORDER = ['matmul', 'elementwise', 'reduce', 'alloc', 'overhead'];

function parseArgs(argv) {
  const args = { filters: [], quick: false, out: join(here, 'out', 'results.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--wait-idle') args.waitIdle = true;
    else if (a === '--help' || a === '-h') args.help = true;
    else args.filters.push(a);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.help) {
    console.log('usage: npm run bench [-- [suite...] [--quick] [--wait-idle] [--out FILE]]');
    return;
  }
  const t0 = performance.now();
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.bench.js'))
    .map((f) => ({ file: f, name: f.slice(0, -'.bench.js'.length) }))
    .filter((s) => args.filters.length === 0 || args.filters.some((w) => s.name.includes(w)))
    .sort((a, b) => {
      const ia = ORDER.indexOf(a.name), ib = ORDER.indexOf(b.name);
      return (ia < 0 ? ORDER.length : ia) - (ib < 0 ? ORDER.length : ib) || a.name.localeCompare(b.name);
    });
  if (files.length === 0) {
    console.error(`no suite matches ${args.filters.join(', ')}`);
    process.exitCode = 1;
    return;
  }

  const be = tk.backend();
  const preset = args.quick ? PRESETS.quick : PRESETS.full;
  console.log(`tunekit CPU benchmarks: ${cpus()[0]?.model ?? 'unknown CPU'}, ${be.cpu.threads} threads, isa ${be.cpu.isa}, node ${process.version}${args.quick ? ' (--quick: smoke run, not a measurement)' : ''}`);
  const load0 = loadavg();
  if (load0[0] > 0.5 * be.cpu.threads)
    console.log(`warning: load average ${load0[0].toFixed(2)} before the run: other processes compete for the cores, numbers will be low`);
  if (args.waitIdle) waitForIdle();
  const psi0 = cpuPressureUs(), wall0 = performance.now();
  const limits = measureLimits(native, { quick: args.quick });
  const limitsPressure = psi0 === null ? null : (100 * (cpuPressureUs() - psi0)) / 1000 / (performance.now() - wall0);
  if (limitsPressure !== null && limitsPressure > BUSY_PCT)
    console.log(`warning: CPU pressure ${limitsPressure.toFixed(0)}% while measuring the limits: they may be low`);
  const g = (x) => (x / 1e9).toFixed(1);
  console.log(`limits: FMA peak ${g(limits.fmaFlops)} GFLOP/s (samples ${limits.fmaSamples.map(g).join(', ')}), ` +
    `copy bandwidth ${g(limits.copyBytesPerSec)} GB/s on ${limits.copyBufferBytes / 2 ** 20} MiB (samples ${limits.copySamples.map(g).join(', ')})`);
  console.log('time = median per call (min: fastest call; achieved and % use the median); memory-bound bytes = inputs read once + outputs written once; faults and sys time are per call, all threads');

  const ctx = { tk, native, limits, preset, quick: args.quick, waitIdle: !!args.waitIdle, threads: be.cpu.threads };
  const rows = [];
  const suites = [];
  for (const s of files) {
    const ts = performance.now();
    const mod = await import(pathToFileURL(join(here, s.file)).href);
    if (mod.optional && args.filters.length === 0) {
      console.log(`skipping ${s.name} (optional: npm run bench -- ${s.name})`);
      continue;
    }
    process.stdout.write(`running ${s.name}${mod.title ? ` (${mod.title})` : ''} ... `);
    const got = await mod.run(ctx);
    rows.push(...got);
    const secs = (performance.now() - ts) / 1e3;
    suites.push({ name: s.name, seconds: secs, cases: got.length });
    console.log(`${got.length} cases, ${secs.toFixed(1)} s`);
  }

  // the limits once more: keep the best of both measurements and grade against it
  if (args.waitIdle) waitForIdle();
  const end = measureLimits(native, { quick: args.quick });
  const best = {
    ...limits,
    fmaFlops: Math.max(limits.fmaFlops, end.fmaFlops),
    copyBytesPerSec: Math.max(limits.copyBytesPerSec, end.copyBytesPerSec),
    fmaSamples: [...limits.fmaSamples, ...end.fmaSamples],
    copySamples: [...limits.copySamples, ...end.copySamples],
  };
  regrade(rows, best);
  console.log(`limits after the suites: FMA peak ${g(end.fmaFlops)} GFLOP/s, copy bandwidth ${g(end.copyBytesPerSec)} GB/s ` +
    `(each case is graded against its own probes; rows without probes against the best of the run: ${g(best.fmaFlops)} GFLOP/s, ${g(best.copyBytesPerSec)} GB/s)`);

  console.log(formatTable(rows));
  const graded = rows.filter((r) => r.pass === true || r.pass === false);
  const missed = graded.filter((r) => !r.pass);
  const wrong = rows.filter((r) => r.check && r.check !== 'ok');
  const errors = rows.filter((r) => r.error);
  const seconds = (performance.now() - t0) / 1e3;
  console.log('');
  const busy = rows.filter((r) => r.cpuPressurePct > BUSY_PCT);
  if (busy.length)
    console.log(`* ${busy.length} cases ran while tasks waited for a CPU more than ${BUSY_PCT}% of the time (Linux PSI): another process shared the cores; rerun on an idle machine`);
  for (const r of wrong) console.log(`WRONG ${r.suite} ${r.op} ${r.shape}: ${r.check}`);
  for (const r of errors) console.log(`ERROR ${r.suite} ${r.op} ${r.shape}: ${r.error}`);
  console.log(`${graded.length - missed.length} of ${graded.length} graded cases meet their target, ${missed.length} miss` +
    `${wrong.length ? `, ${wrong.length} wrong` : ''}${errors.length ? `, ${errors.length} errored` : ''}; total ${seconds.toFixed(1)} s`);

  const report = {
    date: new Date().toISOString(),
    quick: args.quick,
    waitIdle: !!args.waitIdle,
    machine: {
      cpu: cpus()[0]?.model ?? null,
      logicalCpus: cpus().length,
      memoryBytes: totalmem(),
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      backend: be.cpu,
    },
    limits: {
      fmaPeakGflops: best.fmaFlops / 1e9,
      fmaSamplesGflops: best.fmaSamples.map((x) => x / 1e9),
      copyBandwidthGBs: best.copyBytesPerSec / 1e9,
      copySamplesGBs: best.copySamples.map((x) => x / 1e9),
      copyBufferBytes: limits.copyBufferBytes,
      cpuPressurePct: limitsPressure,
    },
    loadAverage: { before: load0, after: loadavg() },
    preset,
    suites,
    results: rows,
    summary: { busy: busy.length, graded: graded.length, pass: graded.length - missed.length, miss: missed.length, wrong: wrong.length, errors: errors.length, seconds },
  };
  mkdirSync(dirname(args.out), { recursive: true });
  writeFileSync(args.out, JSON.stringify(report, null, 2) + '\n');
  console.log(`results: ${relative(process.cwd(), args.out) || args.out}`);
  if (errors.length || wrong.length) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
