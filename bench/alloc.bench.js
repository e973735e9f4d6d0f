// What a fresh output allocation costs. Every op allocates its output. glibc
// serves a request of 32 MiB or more with a new mmap (its mmap threshold never
// exceeds 32 MiB), so such a call takes one page fault per 4 KiB page (8192 for
// 8M floats), with the kernel zeroing every page, and munmaps it on dispose.
// Smaller buffers come from the heap once a first free has raised the
// threshold, and their pages are reused (a zero-initializing allocation then
// costs a memset instead).
//
// Single-threaded pairs that differ only in the freshness of the destination
// (clone and fill are single-threaded native calls, so the pool is set to one
// thread for the copyBandwidth reference too):
//   copy into reused buffers (copyBandwidth, 32 MiB) vs clone into a fresh tensor
//   fill an existing tensor vs empty() + fill() + dispose()
// and the derived cost of one fresh page. (The GB/s rows here are graded
// against single-threaded copy probes, as the ops are single-threaded.) First, with all threads, the same
// ops on 32 MiB tensors (mmap per call) and on 31 MiB tensors (heap pages).
// Informational rows: no target.
import { cycler, measure, MiB, SETS } from './lib.js';

export const title = 'fresh-allocation cost';

const N = 8 * 1024 * 1024;
const BYTES = 4 * N;

function infoRow(op, shape, unit, achieved, note) {
  return {
    suite: 'alloc', op, shape, kind: 'info', unit, achieved, limit: null, fraction: null, target: null, pass: null,
    timeMs: null, faultsPerCall: null, sysMsPerCall: null, userMsPerCall: null, check: null, note,
  };
}

// the same op on fresh (>= 32 MiB) and heap-reused (< 32 MiB) outputs, all threads
function reuseCases(ctx) {
  const { tk } = ctx;
  const owned = [];
  const cases = [];
  for (const [label, n] of [['32 MiB: mmap per call', N], ['31 MiB: heap pages', N - N / 32]]) {
    const xs = [...Array(SETS).keys()].map((k) => tk.randn([n], { seed: 700 + k }));
    const ys = [...Array(SETS).keys()].map((k) => tk.randn([n], { seed: 800 + k }));
    owned.push(...xs, ...ys);
    const a = cycler(), b = cycler(), c = cycler();
    cases.push(
      { op: `neg, ${label}`, shape: `[${n}]`, kind: 'info', work: 8 * n, fn: () => { const k = a(); tk.ops.neg(xs[k]).dispose(); } },
      { op: `add, ${label}`, shape: `[${n}] + [${n}]`, kind: 'info', work: 12 * n, fn: () => { const k = b(); tk.ops.add(xs[k], ys[k]).dispose(); } },
      { op: `gelu, ${label}`, shape: `[${n}]`, kind: 'info', work: 8 * n, fn: () => { const k = c(); tk.ops.gelu(xs[k]).dispose(); } },
    );
  }
  return { cases, owned };
}

export function run(ctx) {
  const { tk, native } = ctx;
  const threads = ctx.threads;
  const reuse = reuseCases(ctx);
  let reuseRows;
  try {
    reuseRows = measure('alloc', reuse.cases, ctx);
  } finally {
    for (const t of reuse.owned) t.dispose();
  }
  tk.setThreads(1);
  const x = tk.randn([N], { seed: 21 });
  const h = native.empty('f32', [N]);
  native.fill(h, 0);
  try {
    // copyBandwidth times a copy between two buffers it has already touched
    const reps = ctx.quick ? 2 : 16;
    const copyBest = Math.max(...[0, 1, 2].map(() => native.copyBandwidth(BYTES, reps)));
    const copyMs = (2 * BYTES) / copyBest * 1e3;
    const copyRow = {
      ...infoRow('copy, reused buffers', `${BYTES / MiB} MiB`, 'GB/s', copyBest / 1e9,
        'native copyBandwidth (memcpy into a buffer it has touched before), best of 3'),
      timeMs: copyMs, faultsPerCall: 0, sysMsPerCall: 0,
    };
    const rows = [copyRow];
    const measured = measure('alloc', [
      { op: 'clone, fresh output', shape: `[${N}]`, kind: 'info', work: 2 * BYTES, fn: () => x.clone().dispose(),
        note: 'memcpy into a new tensor: read + write bytes' },
      { op: 'fill, existing tensor', shape: `[${N}]`, kind: 'info', work: BYTES, fn: () => native.fill(h, 1),
        note: 'write-only, pages already mapped' },
      { op: 'empty+fill+dispose', shape: `[${N}]`, kind: 'info', work: BYTES, fn: () => {
        const t = native.empty('f32', [N]);
        native.fill(t, 1);
        t.dispose();
      }, note: 'write-only into a fresh allocation' },
      { op: 'empty+dispose', shape: `[${N}]`, kind: 'info', work: null, fn: () => native.empty('f32', [N]).dispose(),
        note: 'allocation and free without touching the pages' },
    ], ctx);
    rows.push(...measured);
    const [clone, fill, fresh, bare] = measured;
    if (clone && fill && fresh && bare && !clone.error && !fill.error && !fresh.error && !bare.error) {
      const pages = BYTES / 4096;
      const perPageUs = ((fresh.timeMs - fill.timeMs - bare.timeMs) / pages) * 1e3;
      rows.push(infoRow('fresh 4 KiB page', 'derived', 'µs/page', perPageUs,
        '(empty+fill+dispose - fill - empty+dispose) / pages: fault + zeroing + unmapping, per page'));
      rows.push(infoRow('fresh-output share', 'clone vs copy', '% of clone time', 100 * Math.max(0, 1 - copyMs / clone.timeMs),
        '1 - (copy into reused buffers) / (clone): the part of a copy-like op that the fresh output costs'));
      rows.push(infoRow('fresh-output share', 'fill fresh vs reused', '% of fill time', 100 * Math.max(0, 1 - fill.timeMs / fresh.timeMs),
        '1 - fill(existing) / (empty+fill+dispose)'));
    }
    return [...reuseRows, ...rows];
  } finally {
    x.dispose();
    h.dispose();
    tk.setThreads(threads);
  }
}
