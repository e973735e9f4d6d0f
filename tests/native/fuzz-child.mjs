// Fuzz driver run in a child process by tests/native/fuzz.test.ts (a crash
// must not take the test runner down with it):
//
//   node --expose-gc tests/native/fuzz-child.mjs native <seed> <calls>
//   node --expose-gc tests/native/fuzz-child.mjs ops <seed> <calls>
//
// `native` drives every function the addon exports, and the NativeTensor
// methods, with bad arguments; `ops` does the same for the public tk.ops
// functions. Every call that throws must throw a TypeError or RangeError
// whose message starts with the op's name; a call marked must-throw that
// returns is a failure too. The last stdout line is a JSON summary. With
// FUZZ_TRACE=1 each call is printed to stderr before it runs (to find the
// call that crashed).
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const [mode = 'native', seedArg = '1', callsArg = '3000'] = process.argv.slice(2);
const SEED = Number(seedArg) >>> 0;
const CALLS = Number(callsArg);
const TRACE = process.env.FUZZ_TRACE === '1';

// ---------------------------------------------------------------- seeded PRNG
function mulberry32(a) {
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = mulberry32(SEED);
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo)); // [lo, hi)
const pick = (xs) => xs[int(0, xs.length)];
const chance = (p) => rand() < p;

// ---------------------------------------------------------------- bookkeeping
const stats = { mode, seed: SEED, calls: 0, threw: 0, returned: 0, mustThrow: 0, failures: [], failureCount: 0, perFn: {} };

function describe(v, depth = 0) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'symbol') return 'Symbol()';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'function') return v.name && v.name !== 'get' ? `fn ${v.name}` : 'fn';
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? v.slice(0, 20) + '…' : v);
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  if (typeof v !== 'object') return String(v);
  if (depth === 0) {
    try {
      return describe(v, depth + 1);
    } catch {
      return 'object (throws on inspection)';
    }
  }
  try {
    if (isTensorLike(v)) {
      if (v.disposed) return 'T(disposed)';
      return `T(${v.dtype}[${v.shape.join(',')}])`;
    }
  } catch {
    return 'T(?)';
  }
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.length ?? v.byteLength})`;
  if (Array.isArray(v)) {
    if (depth > 1) return '[…]';
    const own = Object.getOwnPropertyDescriptor(v, 0);
    if (own && own.get) return '[getter…]';
    return `[${v.slice(0, 6).map((x) => describe(x, depth + 1)).join(', ')}${v.length > 6 ? `, …${v.length}` : ''}]`;
  }
  return Object.prototype.toString.call(v);
}

function fail(fn, args, why) {
  stats.failureCount++;
  if (stats.failures.length < 60) stats.failures.push({ fn, args: args.map((a) => describe(a)).join(', '), why });
}

const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());

/**
 * Calls fn(...args) and checks the outcome. prefixes: accepted op names at
 * the start of the message ("<op>: ...").
 */
function check(name, call, args, prefixes, mustThrow, label = '') {
  stats.calls++;
  const pf = (stats.perFn[name] ??= { calls: 0, threw: 0 });
  pf.calls++;
  if (mustThrow) stats.mustThrow++;
  if (TRACE) process.stderr.write(`${stats.calls} ${name}(${args.map((a) => describe(a)).join(', ')}) ${label}\n`);
  let result;
  try {
    result = call();
  } catch (e) {
    stats.threw++;
    pf.threw++;
    const list = Array.isArray(prefixes) ? prefixes : prefixes.list;
    const opName = typeof e?.message === 'string' ? /^([\w.]+): /.exec(e.message)?.[1] : undefined;
    const named = opName !== undefined && (list.includes(opName) || (!Array.isArray(prefixes) && prefixes.named(opName)));
    const ok = (e instanceof TypeError || e instanceof RangeError) && named;
    if (!ok)
      fail(name, args, `threw ${e?.constructor?.name ?? typeof e}: ${String(e?.message ?? e).slice(0, 200)} (expected a TypeError/RangeError starting with one of ${list.map((p) => `"${p}: "`).join(', ')}) ${label}`);
    return;
  }
  stats.returned++;
  if (mustThrow) fail(name, args, `returned ${describe(result)} instead of throwing ${label}`);
  release(result);
}

let isTensorLike = () => false;
let release = () => {};

// ================================================================ native mode
async function runNative() {
  const require = createRequire(join(root, 'package.json'));
  const addon = require('node-gyp-build')(root);
  const NT = addon.NativeTensor;
  isTensorLike = (v) => v instanceof NT;
  release = (r) => {
    if (r instanceof NT) r.dispose();
    else if (Array.isArray(r)) for (const x of r) release(x);
  };

  // ---- the typed list of native functions (src/native/binding.ts)
  const bindingSrc = readFileSync(join(root, 'src', 'native', 'binding.ts'), 'utf8');
  const sigs = parseBinding(bindingSrc);
  const unaryNames = [...(/export type UnaryName = ([^;]+);/.exec(bindingSrc)?.[1] ?? '').matchAll(/'(\w+)'/g)].map((m) => m[1]);
  const DTYPES = ['f32', 'bf16', 'f16', 'i8', 'i32'];

  // ---- tensors
  const f32 = (shape, lo = -1, hi = 1) => addon.rand(shape, int(0, 1e9), lo, hi);
  const i32 = (shape, lo, hi) => {
    const n = shape.reduce((p, d) => p * d, 1);
    return addon.fromArray(Array.from({ length: n }, () => int(lo, hi)), shape, 'i32');
  };
  const typed = (shape, dtype) => (dtype === 'f32' ? f32(shape) : dtype === 'i32' || dtype === 'i8' ? addon.cast(i32(shape, -3, 4), dtype) : addon.cast(f32(shape), dtype));
  const disposed = () => {
    const t = f32([2, 3]);
    t.dispose();
    return t;
  };
  const disposedView = () => {
    const t = f32([2, 3]);
    const v = addon.reshape(t, [3, 2]);
    v.dispose();
    return v;
  };
  const viewOfDisposed = () => {
    const t = f32([2, 3]);
    const v = addon.reshape(t, [6]);
    t.dispose();
    return v; // live: must still work
  };
  // valid tensors with extreme shapes: empty ones with huge sizes, 0-d, rank 16
  const edgeTensors = () => [
    addon.empty('f32', [2 ** 50, 0, 2 ** 50]),
    addon.empty('f32', [0, 2 ** 53 - 1]),
    addon.empty('f32', [2 ** 40, 0]),
    addon.empty('i32', [0, 2 ** 40]),
    addon.empty('f32', [0]),
    addon.empty('f32', []),
    f32([]),
    f32(Array(16).fill(1)),
    f32([1, 1, 1, 2, 1, 3]),
    typed([2, 3], pick(DTYPES)),
    viewOfDisposed(),
  ];
  const proto = NT.prototype;
  const realForFakes = f32([2, 3]);
  // values that are never tensors
  const notTensors = () => [
    undefined, null, 0, -1, 1.5, NaN, Infinity, '', 'f32', true, false, {}, [], [1, 2, 3],
    { shape: [2, 3], dtype: 'f32', disposed: false, dispose() {} },
    () => 0, Symbol('t'), 10n, new Float32Array(6), new ArrayBuffer(24), new Date(0), /x/, new Map(),
    Object.create(proto), Object.create(realForFakes), new Proxy(realForFakes, {}), new Proxy({}, {}),
    new NT(), disposed(), disposedView(), Object.freeze({}),
    new Proxy({}, { getPrototypeOf() { throw new Error('trap'); } }),
    new Proxy(realForFakes, { get() { throw new Error('trap'); }, getPrototypeOf() { return proto; } }),
  ];
  const notNumbers = [undefined, null, '1', '', true, {}, [], [1], 10n, Symbol('n'), () => 1, new Number(1)];
  const notBooleans = [undefined, null, 0, 1, 'true', '', {}, [], new Boolean(true), 1n];
  const notStrings = [undefined, null, 0, 1, true, {}, [], ['f32'], 1n, Symbol('s'), new String('f32')];
  const badShapes = [
    undefined, null, 2, 'x', {}, { length: 2, 0: 1, 1: 2 }, new Float32Array([2, 3]), [1, 'a'], [1, null], [[2]],
    [-1], [2, -3], [1.5], [NaN], [Infinity], [-Infinity], [2 ** 40, 2 ** 40], [2 ** 41], [2 ** 20, 2 ** 20],
    [2 ** 53 + 2, 0], [1e300, 0], Array(17).fill(1), [2 ** 30, 2 ** 30, 2 ** 30], [1n], [Symbol('d')],
  ];
  const badInts = (lo, hi) => [NaN, Infinity, -Infinity, 0.5, lo - 1, hi * 2 + 2, 2 ** 63, -(2 ** 63), '1', null, undefined, {}, 1n];
  const edgeNumbers = [0, -0, -1, 1e-30, 1e30, 1e308, -1e308, NaN, Infinity, -Infinity, 2 ** 31, 2 ** 53, 0.5, 7];
  const evilArray = (values, victims) => {
    // an array whose first element is a getter that disposes tensors and runs the GC
    const a = [...values];
    Object.defineProperty(a, 0, {
      get() {
        for (const v of victims) if (v instanceof NT) v.dispose();
        globalThis.gc?.();
        return values[0];
      },
      enumerable: true,
      configurable: true,
    });
    return a;
  };

  // ---- op names accepted in messages: the export's name, without _forward,
  // camelCased, its leading word(s) ("adamw" for adamw_step), or the public
  // op's longer name ("loraLinear" for lora_forward, "loraLinear_backward" for
  // lora_backward); ops chosen by a name argument may use that name ("gelu: ",
  // "add: ", "sum: ")
  const norm = (s) => s.toLowerCase().replace(/_/g, '');
  const prefixesFor = (fn, args) => {
    const p = new Set([fn, camel(fn)]);
    const base = fn.replace(/_forward$/, '');
    p.add(base).add(camel(base));
    const bw = /^(.*)_backward$/.exec(fn);
    if (bw) p.add(`${camel(bw[1])}_backward`);
    if (fn === 'unary_forward' || fn === 'unary_backward') {
      p.add('unary');
      if (typeof args[0] === 'string') p.add(fn === 'unary_forward' ? args[0] : `${args[0]}_backward`);
    }
    if (fn === 'binary_forward' && typeof args[0] === 'string') p.add(args[0]).add('binary');
    if (fn === 'reduce_forward' && typeof args[0] === 'string') p.add(args[0]).add('reduce');
    if (fn === 'softmax_forward') p.add('logSoftmax');
    // exports whose op has a user-facing name of its own (tensor.to, tk.cuda.*)
    const aliases = {
      toDevice: ['to'],
      cudaMemoryStats: ['cuda.memoryStats'],
      cudaEmptyCache: ['cuda.emptyCache'],
      cudaResetPeak: ['cuda.resetPeakMemoryStats'],
      cudaSynchronize: ['cuda.synchronize'],
      cudaSetSync: ['cuda.setSyncMode'],
    };
    for (const n of aliases[fn] ?? []) p.add(n);
    if (fn === 'softmax_backward') p.add('logSoftmax_backward');
    const stem = norm(bw ? bw[1] : base);
    const named = (name) => {
      const b = /^(.*)_backward$/.exec(name);
      if (!!b !== !!bw) return false; // a backward names itself so
      // "adamw" for adamw_step (a leading word of the export), "loraLinear" for lora_forward
      return (fn.startsWith(`${name}_`) && name.length >= 3) || norm(b ? b[1] : name).startsWith(stem);
    };
    return { list: [...p], named };
  };

  // ---- hand-written cases: valid bases with targeted bad arguments.
  // Each returns [args, mustThrow, label] triples; called fresh per call.
  const c = (args, must, label) => [args, must, label];
  const specs = {
    empty: () => [
      c([pick(['f64', 'F32', '', 'float']), [2]], true, 'dtype'),
      c(['f32', pick(badShapes)], true, 'shape'),
      c([pick(notStrings), [2]], true, 'dtype type'),
      c([pick(DTYPES), [2 ** 20, 2 ** 20]], true, 'too big for memory'),
    ],
    fromArray: () => [
      c([[1, 2, 3], [2, 2], 'f32'], true, 'length mismatch'),
      c([new Float32Array(5), [2, 3], 'f32'], true, 'typed length mismatch'),
      c([[1.5, 2], [2], 'i32'], true, 'non-integer i32'),
      c([[2 ** 31], [1], 'i32'], true, 'i32 overflow'),
      c([[300], [1], 'i8'], true, 'i8 overflow'),
      c([[NaN], [1], 'i32'], true, 'NaN i32'),
      c([new Float64Array([Infinity]), [1], 'i8'], true, 'inf i8'),
      c([['a', 2], [2], 'f32'], true, 'string element'),
      c([[1n, 2n], [2], 'f32'], true, 'bigint element'),
      c([new BigInt64Array(2), [2], 'f32'], true, 'BigInt64Array'),
      c([new DataView(new ArrayBuffer(8)), [2], 'f32'], true, 'DataView'),
      c([pick([{}, 'abc', 3, null, undefined, new ArrayBuffer(8)]), [2], 'f32'], true, 'data type'),
      c([[1, 2], pick(badShapes), 'f32'], true, 'shape'),
      c([[1, 2], [2], pick(['f64', '', 3, null])], true, 'dtype'),
      c([[], [2 ** 50, 0, 2 ** 50], 'f32'], false, 'empty huge'),
      c([new Float32Array(new SharedArrayBuffer(8)), [2], 'f32'], false, 'shared buffer'),
      c([(() => { const a = new Float32Array(new ArrayBuffer(8)); structuredClone(a.buffer, { transfer: [a.buffer] }); return a; })(), [0], 'f32'], false, 'detached'),
      c([new Array(2 ** 30), [2 ** 30], 'f32'], true, 'sparse array of 2^30 holes'),
      c([new Array(2 ** 28).fill(1, 0, 4), [2 ** 28], 'i8'], true, 'sparse array with values then holes'),
    ],
    fill: () => [
      c([typed([2], 'i32'), pick([1.5, NaN, Infinity, 2 ** 31, -(2 ** 31) - 1])], true, 'bad i32 value'),
      c([typed([2], 'i8'), pick([128, -129, 0.5, NaN])], true, 'bad i8 value'),
      c([f32([2]), pick(notNumbers)], true, 'value type'),
    ],
    rand: () => [
      c([pick(badShapes), 1, 0, 1], true, 'shape'),
      c([[2], pick(badInts(0, 2 ** 53)), 0, 1], true, 'seed'),
      c([[2], 1, pick([NaN, Infinity, '0', null]), 1], true, 'low'),
      c([[2], 1, 0, pick([NaN, -Infinity, {}, undefined])], true, 'high'),
    ],
    randn: () => [
      c([pick(badShapes), 1, 0, 1], true, 'shape'),
      c([[2], pick(badInts(0, 2 ** 53)), 0, 1], true, 'seed'),
      c([[2], 1, pick([NaN, Infinity]), 1], true, 'mean'),
    ],
    cast: () => [c([f32([2]), pick(['f64', 'int32', '', 3, null, undefined])], true, 'dtype')],
    reshape: () => [
      c([f32([2, 3]), pick([[5], [2, 2], [7], [-1, 6], [-6], [0]])], true, 'numel mismatch'),
      c([f32([2, 3]), pick(badShapes)], true, 'shape'),
    ],
    permute_forward: () => {
      const x = f32([2, 3, 4]);
      return [
        c([x, pick([[0, 1], [0, 1, 2, 3], [0, 0, 1], [0, 1, 3], [0, 1, -4], [0, 1, 1.5], [0, 1, NaN], [0, 1, Infinity], [0, 1, '2'], [0, 1, null]])], true, 'dims'),
        c([x, pick([undefined, null, 'x', {}, 3])], true, 'dims type'),
        c([f32([]), [0]], true, 'dims of 0-d'),
      ];
    },
    slice_forward: () => {
      const x = f32([4, 5]);
      return [
        c([x, pick([2, -3, 1.5, NaN, Infinity, '1'])], true, 'axis'),
        c([x, 1, pick([-1, 6, 1.5, NaN]), 5], true, 'start'),
        c([x, 1, 3, pick([2, 6, -1, NaN, Infinity])], true, 'end'),
        c([f32([]), 0, 0, 0], true, '0-d'),
      ];
    },
    slice_backward: () => [
      c([f32([4, 2]), [4, 5, 1], 1, 1], true, 'rank mismatch'),
      c([f32([4, 2]), [4, 5], 1, 4], true, 'does not fit'),
      c([f32([4, 2]), [3, 5], 1, 1], true, 'other dim differs'),
      c([f32([4, 2]), [4, 5], pick([2, -3, NaN]), 1], true, 'axis'),
      c([f32([4, 2]), [4, 5], 1, pick([-1, 1.5, NaN, 6])], true, 'start'),
      c([f32([4, 2]), pick(badShapes), 1, 1], true, 'shape'),
    ],
    concat_forward: () => [
      c([[], 0], true, 'empty list'),
      c([[f32([2, 3]), typed([2, 3], 'i32')], 0], true, 'dtype mismatch'),
      c([[f32([2, 3]), f32([2, 4])], 0], true, 'shape mismatch'),
      c([[f32([2, 3]), f32([2, 3, 1])], 0], true, 'rank mismatch'),
      c([[f32([2, 3]), f32([2, 3])], pick([2, -3, 0.5, NaN, '0'])], true, 'axis'),
      c([[f32([]), f32([])], 0], true, '0-d'),
      c([[f32([2, 3]), pick(notTensors())], 0], true, 'element'),
      c([pick([f32([2]), 'x', {}, null, undefined, new Float32Array(2)]), 0], true, 'list type'),
      c([[addon.empty('f32', [2 ** 52, 0]), addon.empty('f32', [2 ** 52, 0]), addon.empty('f32', [2 ** 52, 0])], 0], true, 'size overflow'),
    ],
    expand: () => [
      c([f32([2, 3]), pick([[4, 3], [2, 4], [3], [2, 3, 2]])], true, 'incompatible'),
      c([f32([1, 3]), pick(badShapes)], true, 'shape'),
    ],
    sum_to: () => [
      c([typed([2, 3], pick(['i32', 'i8', 'bf16'])), [3]], true, 'dtype'),
      c([f32([4, 3]), pick([[2, 3], [4, 3, 1], [5], [4, 1, 1]])], true, 'incompatible'),
      c([f32([4, 3]), pick(badShapes)], true, 'shape'),
    ],
    unary_forward: () => [
      c([pick(['nope', '', 'GELU', 3, null, undefined, {}]), f32([2]), 0], true, 'op'),
      c([pick(unaryNames), typed([2], pick(['i32', 'i8', 'bf16', 'f16'])), 0], true, 'dtype'),
      c([pick(unaryNames), f32([2]), pick([NaN, Infinity, '1', null, undefined])], true, 'p'),
    ],
    unary_backward: () => {
      const op = pick(unaryNames);
      return [
        c([op, f32([2, 3]), f32([2, 3]), f32([3, 2]), 0], true, 'shape mismatch gy'),
        c([op, f32([2, 3]), f32([6]), f32([2, 3]), 0], true, 'shape mismatch y'),
        c([pick(['nope', 7]), f32([2]), f32([2]), f32([2]), 0], true, 'op'),
        c([op, f32([2]), typed([2], 'i32'), f32([2]), 0], true, 'dtype'),
      ];
    },
    binary_forward: () => [
      c([pick(['add', 'sub', 'mul', 'div']), f32([2, 3]), f32(pick([[4], [3, 3], [2, 2, 2]]))], true, 'broadcast'),
      c([pick(['pow', 'max', '', 5, null]), f32([2]), f32([2])], true, 'op'),
      c([pick(['add', 'mul']), f32([2]), typed([2], pick(['i32', 'i8', 'f16']))], true, 'dtype'),
    ],
    where_forward: () => [
      c([typed([2, 3], pick(['bf16', 'f16'])), f32([2, 3]), f32([2, 3])], true, 'cond dtype'),
      c([typed([2, 3], 'i32'), f32([4, 3]), f32([2, 3])], true, 'broadcast'),
      c([typed([2, 3], 'i8'), typed([2, 3], 'i32'), f32([2, 3])], true, 'a dtype'),
    ],
    masked_fill_forward: () => [
      c([f32([2, 3]), typed(pick([[4, 2, 3], [3, 3], [2]]), 'i8'), 0], true, 'mask shape'),
      c([f32([2, 3]), typed([3], pick(['bf16', 'f16'])), 0], true, 'mask dtype'),
      c([f32([2, 3]), typed([3], 'i32'), pick(notNumbers)], true, 'value'),
      c([typed([2, 3], 'i32'), typed([3], 'i32'), 0], true, 'x dtype'),
    ],
    reduce_forward: () => [
      c([pick(['prod', 'min', '', 1]), f32([2, 3]), 0], true, 'op'),
      c([pick(['sum', 'mean', 'max']), f32([2, 3]), pick([2, -3, 0.5, NaN, '0', null])], true, 'axis'),
      c([pick(['sum', 'mean', 'max']), f32([]), 0], true, '0-d'),
      c([pick(['mean', 'max']), f32([2, 0]), 1], true, 'empty axis'),
      c([pick(['sum', 'mean', 'max']), typed([2], 'i32'), 0], true, 'dtype'),
    ],
    max_backward: () => [
      c([f32([2]), i32([2], 3, 9), [2, 3], 1], true, 'idx too big'),
      c([f32([2]), i32([2], -5, 0), [2, 3], 1], true, 'idx negative'),
      c([f32([2]), f32([2]), [2, 3], 1], true, 'idx dtype'),
      c([f32([3]), i32([3], 0, 2), [2, 3], 1], true, 'shape mismatch'),
      c([f32([2]), i32([2], 0, 2), [2, 3], pick([2, -3, NaN])], true, 'axis'),
      c([f32([2]), i32([2], 0, 2), pick(badShapes), 1], true, 'shape'),
    ],
    softmax_forward: () => [
      c([f32([2, 3]), pick([2, -3, 1.5, NaN, null]), false], true, 'axis'),
      c([f32([2, 3]), -1, pick(notBooleans)], true, 'log'),
      c([f32([]), 0, false], true, '0-d'),
      c([typed([2, 3], 'bf16'), -1, false], true, 'dtype'),
    ],
    softmax_backward: () => [
      c([f32([2, 3]), f32([3, 2]), -1, false], true, 'shape mismatch'),
      c([f32([2, 3]), f32([2, 3]), 5, false], true, 'axis'),
      c([f32([2, 3]), f32([2, 3]), -1, 'yes'], true, 'log'),
    ],
    cross_entropy_forward: () => [
      c([f32([4, 5]), i32([4], 5, 8), -100], true, 'target >= V'),
      c([f32([4, 5]), addon.fromArray([0, 1, -1, 2], [4], 'i32'), -100], true, 'target -1'),
      c([f32([4, 5]), addon.fromArray([0, 2 ** 31 - 1, 0, 0], [4], 'i32'), -100], true, 'target int max'),
      c([f32([4, 5]), addon.fromArray([-(2 ** 31), 0, 0, 0], [4], 'i32'), -100], true, 'target int min'),
      c([f32([4, 5]), f32([4]), -100], true, 'targets dtype'),
      c([f32([4, 5]), i32([3], 0, 5), -100], true, 'targets length'),
      c([f32([4, 5, 2]), i32([4], 0, 5), -100], true, 'logits rank'),
      c([f32([4, 5]), i32([4], 0, 5), pick([2 ** 31, 1.5, NaN, '0'])], true, 'ignoreIndex'),
      c([f32([2, 0]), addon.fromArray([-100, -100], [2], 'i32'), -100], true, 'no classes'),
    ],
    cross_entropy_backward: () => {
      const lg = f32([4, 5]);
      return [
        c([lg, f32([3]), i32([4], 0, 5), f32([4]), -100], true, 'lse shape'),
        c([lg, f32([4]), i32([4], 5, 9), f32([4]), -100], true, 'target >= V'),
        c([lg, f32([4]), i32([4], 0, 5), f32([2, 2]), -100], true, 'gRow shape'),
        c([lg, f32([4]), f32([4]), f32([4]), -100], true, 'targets dtype'),
      ];
    },
    layer_norm_forward: () => [
      c([f32([2, 3]), f32([4]), f32([3]), 1e-5], true, 'weight size'),
      c([f32([2, 3]), f32([3]), f32([2]), 1e-5], true, 'bias size'),
      c([f32([2, 3]), f32([3]), typed([3], 'i32'), 1e-5], true, 'bias dtype'),
      c([f32([2, 3]), f32([3]), f32([3]), pick([-1, NaN, Infinity, '1e-5', undefined])], true, 'eps'),
      c([f32([]), f32([1]), null, 1e-5], true, '0-d'),
      c([f32([2, 3]), f32([3]), pick([{}, 'b', 1, true]), 1e-5], true, 'bias type'),
    ],
    layer_norm_backward: () => {
      const x = f32([2, 3]);
      return [
        c([x, f32([3]), f32([3]), f32([2]), f32([2, 3]), true, true], true, 'mean shape'),
        c([x, f32([3]), f32([2]), f32([2]), f32([3, 2]), true, true], true, 'gy shape'),
        c([x, f32([2]), f32([2]), f32([2]), f32([2, 3]), true, true], true, 'weight shape'),
        c([x, f32([3]), f32([2]), f32([2]), f32([2, 3]), pick(notBooleans), true], true, 'needW'),
      ];
    },
    rms_norm_forward: () => [
      c([f32([2, 3]), f32([2]), 1e-6], true, 'weight size'),
      c([f32([2, 3]), f32([3]), pick([-1, NaN, null])], true, 'eps'),
      c([typed([2, 3], 'f16'), f32([3]), 1e-6], true, 'dtype'),
    ],
    rms_norm_backward: () => [
      c([f32([2, 3]), f32([3]), f32([3]), f32([2, 3]), true], true, 'rstd shape'),
      c([f32([2, 3]), f32([3]), f32([2]), f32([2, 2]), true], true, 'gy shape'),
      c([f32([2, 3]), f32([3]), f32([2]), f32([2, 3]), 'true'], true, 'needW'),
    ],
    embedding_forward: () => [
      c([f32([5, 3]), i32([2, 2], 5, 9)], true, 'id >= V'),
      c([f32([5, 3]), addon.fromArray([0, -1], [2], 'i32')], true, 'id -1'),
      c([f32([5, 3]), addon.fromArray([2 ** 31 - 1], [1], 'i32')], true, 'id int max'),
      c([f32([5, 3]), f32([2])], true, 'ids dtype'),
      c([f32([5, 3, 1]), i32([2], 0, 5)], true, 'table rank'),
      c([typed([5, 3], 'i32'), i32([2], 0, 5)], true, 'table dtype'),
      c([f32([0, 3]), i32([1], 0, 1)], true, 'empty table'),
    ],
    embedding_backward: () => [
      c([f32([2, 3]), i32([2], 0, 5), pick([-1, 1.5, NaN, 2 ** 41, '5', null])], true, 'V'),
      c([f32([2, 3]), i32([2], 5, 9), 5], true, 'id >= V'),
      c([f32([2, 4]), i32([3], 0, 5), 5], true, 'gy shape'),
      c([f32([2, 3]), i32([2], 0, 5), 2 ** 40], true, 'V too big for memory'),
      c([addon.empty('f32', [0, 2 ** 40]), addon.empty('i32', [0]), 2 ** 40], true, 'V * C overflow'),
    ],
    dropout_forward: () => [
      c([f32([4]), pick([-0.1, 1.5, NaN, Infinity, '0.5', null]), 1], true, 'p'),
      c([f32([4]), 0.5, pick(badInts(0, 2 ** 53))], true, 'seed'),
      c([typed([4], 'i32'), 0.5, 1], true, 'dtype'),
    ],
    rope_forward: () => [
      c([f32([2, 3, 4]), i32([3], 0, 9), 1e4, false], true, 'rank'),
      c([f32([1, 2, 3, 5]), i32([3], 0, 9), 1e4, false], true, 'odd D'),
      c([f32([1, 2, 3, 4]), i32([4], 0, 9), 1e4, false], true, 'positions shape'),
      c([f32([1, 2, 3, 4]), f32([3]), 1e4, false], true, 'positions dtype'),
      c([f32([1, 2, 3, 4]), i32([3], 0, 9), pick([0, -1, NaN, Infinity, '1']), false], true, 'theta'),
      c([f32([1, 2, 3, 4]), i32([3], 0, 9), 1e4, pick(notBooleans)], true, 'inverse'),
      c([f32([1, 2, 3, 4]), addon.fromArray([-(2 ** 31), 2 ** 31 - 1, 0], [3], 'i32'), 1e4, false], false, 'extreme positions'),
    ],
    matmul_forward: () => [
      c([f32([2, 3]), f32([4, 5]), false, false], true, 'inner mismatch'),
      c([f32([2, 3]), f32([2, 3]), false, false], true, 'inner mismatch (no trans)'),
      c([f32([3]), f32([3, 2]), false, false], true, '1-d'),
      c([f32([2, 2, 3]), f32([3, 3, 4]), false, false], true, 'batch broadcast'),
      c([f32([2, 3]), f32([3, 4]), pick(notBooleans), false], true, 'transA'),
      c([typed([2, 3], pick(['i32', 'bf16', 'i8'])), f32([3, 4]), false, false], true, 'dtype'),
      c([f32([2, 0]), f32([0, 3]), false, false], false, 'K = 0'),
      c([addon.empty('f32', [2 ** 50, 0, 3]), f32([3, 2]), false, false], false, 'empty huge batch'),
    ],
    // runtime: only bad values (valid ones would change the process state or run for seconds)
    setIsa: () => [c([pick(['avx1024', '', 'AVX2', 'sse', ...notStrings])], true, 'isa')],
    setThreads: () => [c([pick([0, -1, 1.5, NaN, Infinity, 1025, 2 ** 40, '2', null, undefined, {}])], true, 'threads')],
    fmaPeak: () => [c([pick([0, -1, 61, NaN, Infinity, 1e9, '1', null, undefined])], true, 'seconds')],
    copyBandwidth: () => [
      c([pick([0, 100, 4095, 2 ** 40, 2 ** 35, NaN, -1, 1.5, '4096', null]), 1], true, 'bytes'),
      c([4096, pick([0, -1, 2 ** 21, NaN, 1.5, '1', undefined])], true, 'reps'),
    ],
    setAddonDir: () => [c([pick(notStrings)], true, 'dir')],
    backendInfo: () => [c([pick([undefined, 1, 'x', {}])], false, 'ignores arguments')],
  };

  // ---- generic cases from the signature (binding.ts): type-level bad values
  const validFor = (type) => {
    switch (kindOf(type)) {
      case 'tensor': return chance(0.8) ? f32(pick([[2, 3], [3], [1, 2, 3, 4], [4, 5], [2, 2]])) : typed([2, 3], pick(DTYPES));
      case 'tensorOrNull': return chance(0.4) ? null : f32(pick([[2, 3], [3]]));
      case 'tensors': return [f32([2, 3]), f32([2, 3])];
      case 'number': return pick([0, 1, 0.5, 2, -1, 1e-5]);
      case 'shape': return pick([[2, 3], [3], [], [1, 3]]);
      case 'boolean': return chance(0.5);
      case 'dtype': return pick(DTYPES);
      case 'enum': return pick(enumValues(type, unaryNames));
      case 'data': return [1, 2, 3, 4, 5, 6];
      default: return 'x';
    }
  };
  const genericCase = (fn, params) => {
    const args = params.map((p) => validFor(p.type));
    const kinds = params.map((p) => kindOf(p.type));
    const r = rand();
    if (params.length > 0 && r < 0.2) {
      // missing arguments
      const k = int(0, params.length);
      const must = kinds.slice(k).some((kd, j) => kd !== 'tensorOrNull' && !params[k + j].optional);
      return c(args.slice(0, k), must, `first ${k} args only`);
    }
    if (params.length === 0) return c([pick([1, 'x', {}, undefined])], false, 'extra args');
    const i = int(0, params.length);
    const kd = kinds[i];
    const a = [...args];
    // an optional argument may be undefined: draw its bad values from the rest
    const bad = (list) => (params[i].optional ? list.filter((v) => v !== undefined) : list);
    if (r < 0.75) {
      switch (kd) {
        case 'tensor': a[i] = pick(notTensors()); return c(a, true, `arg ${i} not a tensor`);
        case 'tensorOrNull': a[i] = pick(notTensors().filter((v) => v !== null && v !== undefined)); return c(a, true, `arg ${i} not a tensor`);
        case 'tensors': a[i] = chance(0.5) ? pick(notTensors().filter((v) => !Array.isArray(v))) : [f32([2, 3]), pick(notTensors())]; return c(a, true, `arg ${i} not a tensor list`);
        case 'number': a[i] = pick(notNumbers); return c(a, true, `arg ${i} not a number`);
        case 'shape': a[i] = pick([undefined, null, 2, 'x', {}, new Float32Array(2), [1, 'a'], [null]]); return c(a, true, `arg ${i} not an array of numbers`);
        case 'boolean': a[i] = pick(bad(notBooleans)); return c(a, true, `arg ${i} not a boolean`);
        case 'dtype': case 'enum': a[i] = pick(bad([...notStrings, 'nope', ''])); return c(a, true, `arg ${i} not a valid name`);
        case 'data': a[i] = pick([undefined, null, 3, 'abc', {}, new BigInt64Array(2)]); return c(a, true, `arg ${i} not data`);
        default: a[i] = pick(notStrings); return c(a, true, `arg ${i} not a string`);
      }
    }
    // valid-or-not edge values: must never crash
    if (r < 0.9) {
      const ti = kinds.map((k2, j) => (k2 === 'tensor' || k2 === 'tensorOrNull' ? j : -1)).filter((j) => j >= 0);
      if (ti.length) {
        a[pick(ti)] = pick(edgeTensors());
        return c(a, false, 'edge tensor');
      }
    }
    if (kd === 'number') a[i] = pick(edgeNumbers);
    else if (kd === 'shape') a[i] = pick([[2 ** 50, 0], [0], Array(16).fill(1), evilArray([2, 3], a)]);
    else if (kd === 'tensors') a[i] = evilArray([f32([2, 3]), f32([2, 3])], a);
    else a[i] = pick(edgeTensors());
    return c(a, false, 'edge value');
  };

  // ---- the functions to drive: every export of the addon
  const exported = Object.keys(addon).filter((k) => typeof addon[k] === 'function' && k !== 'NativeTensor');
  const runtimeOnlyBad = new Set(['setIsa', 'setThreads', 'fmaPeak', 'copyBandwidth', 'setAddonDir', 'backendInfo']);
  stats.exported = exported;
  stats.untyped = exported.filter((k) => !sigs.has(k));
  stats.functions = exported.length;

  // NativeTensor and its methods with bad receivers
  const methodCase = () => {
    const which = pick(['dispose', 'shape', 'dtype', 'disposed', 'ctor']);
    if (which === 'ctor') {
      const args = [pick([undefined, 1, 'x'])];
      check('NativeTensor', () => NT(...args), args, ['NativeTensor'], true, 'call without new');
      check('NativeTensor', () => new NT(...args), args, ['NativeTensor'], false, 'new');
      return;
    }
    // shells, disposed tensors and objects inheriting from NativeTensor.prototype
    // are NativeTensor objects (valid receivers); anything else must throw
    const self = pick([...notTensors(), proto]);
    let valid = false;
    try {
      valid = self instanceof NT;
    } catch {
      // a Proxy whose getPrototypeOf trap throws: not a tensor
    }
    const desc = Object.getOwnPropertyDescriptor(proto, which);
    const call = which === 'dispose' ? () => desc.value.call(self) : () => desc.get.call(self);
    check(`NativeTensor.${which}`, call, [self], [which], !valid, 'bad this');
    // a valid receiver: a live or disposed tensor
    const t = chance(0.5) ? f32([2]) : disposed();
    check(`NativeTensor.${which}`, which === 'dispose' ? () => desc.value.call(t) : () => desc.get.call(t), [t], [which], false, 'tensor this');
  };

  // empty tensors with huge sizes: valid, and every op must return at once
  // (a loop over an outer size of 2^50 with nothing to copy hangs)
  const E = () => addon.empty('f32', [2 ** 50, 0, 2 ** 50]);
  const emptyCases = {
    slice_forward: () => [[E(), 1, 0, 0], [E(), 2, 0, 5], [E(), 0, 0, 5]],
    slice_backward: () => [[E(), [2 ** 50, 0, 2 ** 50], 1, 0], [addon.empty('f32', [2 ** 50, 0, 3]), [2 ** 50, 0, 5], 2, 1]],
    concat_forward: () => [[[E(), E()], 0], [[E(), E()], 1], [[E(), E()], 2]],
    permute_forward: () => [[E(), [2, 0, 1]], [addon.empty('f32', [0, 2 ** 50, 2 ** 50]), [2, 1, 0]]],
    expand: () => [[addon.empty('f32', [1, 0]), [2 ** 50, 0]], [addon.empty('f32', [0, 1]), [0, 2 ** 50]]],
    sum_to: () => [[addon.empty('f32', [2 ** 40, 0]), [0]], [E(), [1, 0, 1]], [E(), [0, 2 ** 50]]],
    reduce_forward: () => [['sum', E(), 0], ['sum', E(), 1], ['max', E(), 0], ['mean', E(), 2]],
    max_backward: () => [[addon.empty('f32', [2 ** 50, 0]), addon.empty('i32', [2 ** 50, 0]), [2 ** 50, 5, 0], 1]],
    softmax_forward: () => [[E(), 2, false], [E(), 1, true]],
    softmax_backward: () => [[E(), E(), 0, false]],
    layer_norm_forward: () => [[addon.empty('f32', [0, 2 ** 50]), addon.empty('f32', [0]), null, 1e-5], [addon.empty('f32', [5, 0]), addon.empty('f32', [0]), null, 1e-5]],
    rms_norm_forward: () => [[addon.empty('f32', [5, 0]), addon.empty('f32', [0]), 1e-5]],
    matmul_forward: () => [[addon.empty('f32', [2 ** 50, 0, 3]), f32([3, 2]), false, false], [f32([2, 0]), f32([0, 3]), false, false], [addon.empty('f32', [0, 2 ** 50]), addon.empty('f32', [2 ** 50, 0]), false, false]],
    binary_forward: () => [['add', E(), addon.empty('f32', [0, 2 ** 50])], ['mul', E(), E()]],
    where_forward: () => [[E(), E(), E()]],
    masked_fill_forward: () => [[E(), E(), 1]],
    unary_forward: () => [['gelu', E(), 0]],
    embedding_forward: () => [[addon.empty('f32', [0, 2 ** 50]), addon.empty('i32', [0])], [f32([3, 2]), addon.empty('i32', [2 ** 50, 0])]],
    embedding_backward: () => [[addon.empty('f32', [0, 2 ** 50]), addon.empty('i32', [0]), 0]],
    cross_entropy_forward: () => [[addon.empty('f32', [0, 2 ** 50]), addon.empty('i32', [0]), -100]],
    rope_forward: () => [[addon.empty('f32', [2 ** 50, 2 ** 50, 0, 2]), addon.empty('i32', [0]), 1e4, false]],
    cast: () => [[E(), 'bf16'], [E(), 'i8']],
    clone: () => [[E()]],
    toArray: () => [[E()]],
    fill: () => [[E(), 1]],
    reshape: () => [[E(), [0, 2 ** 50]]],
    dropout_forward: () => [[E(), 0.5, 1]],
  };
  for (const [fn, make] of Object.entries(emptyCases))
    for (const args of make()) check(fn, () => addon[fn](...args), args, prefixesFor(fn, args), false, 'empty with huge sizes');
  // and every tensor argument of every typed function, once
  for (const fn of exported) {
    const params = sigs.get(fn) ?? [];
    if (runtimeOnlyBad.has(fn)) continue;
    params.forEach((p, i) => {
      if (kindOf(p.type) !== 'tensor' && kindOf(p.type) !== 'tensorOrNull') return;
      const args = params.map((q) => validFor(q.type));
      args[i] = E();
      check(fn, () => addon[fn](...args), args, prefixesFor(fn, args), false, `arg ${i} empty with huge sizes`);
    });
  }

  for (let i = 0; i < CALLS; i++) {
    if (i % 50 === 49) methodCase();
    const fn = pick(exported);
    const params = sigs.get(fn) ?? [];
    let cs;
    if (specs[fn] && (runtimeOnlyBad.has(fn) || chance(0.6))) cs = pick(specs[fn]());
    else if (runtimeOnlyBad.has(fn)) cs = c([], fn !== 'backendInfo', 'no args');
    else cs = genericCase(fn, params);
    const [args, must, label] = cs;
    check(fn, () => addon[fn](...args), args, prefixesFor(fn, args), must, label);
    // tensors made for this call are left to the GC (as a careless caller would)
    if (i % 500 === 0) globalThis.gc?.();
  }
}

// ---------------------------------------------------------------- binding.ts
function splitTop(s) {
  const out = [];
  let depth = 0, cur = '';
  for (const ch of s) {
    if ('<[('.includes(ch)) depth++;
    if ('>])'.includes(ch)) depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function parseBinding(src) {
  const start = src.indexOf('export interface NativeAddon {');
  const body = src.slice(start, src.indexOf('\n}', start));
  const sigs = new Map();
  for (const line of body.split('\n')) {
    const m = /^\s+(\w+)\((.*)\):\s*(.+);\s*$/.exec(line);
    if (!m || sigs.has(m[1])) continue;
    sigs.set(m[1], splitTop(m[2]).map((p) => {
      const k = p.indexOf(':');
      // "name?: type" is optional: leaving it out (undefined) is valid
      const name = p.slice(0, k).trim();
      return { name: name.replace(/\?$/, ''), type: p.slice(k + 1).trim(), optional: name.endsWith('?') };
    }));
  }
  return sigs;
}

function kindOf(type) {
  if (type === 'T') return 'tensor';
  if (type === 'T | null') return 'tensorOrNull';
  if (type === 'T[]') return 'tensors';
  if (type === 'number') return 'number';
  if (type === 'number[]') return 'shape';
  if (type === 'boolean') return 'boolean';
  if (type === 'DType') return 'dtype';
  if (type.startsWith('ArrayLike')) return 'data';
  if (/Name$/.test(type) || type.includes("'")) return 'enum';
  return 'string';
}

function enumValues(type, unaryNames) {
  if (type === 'UnaryName') return unaryNames;
  if (type === 'BinaryName') return ['add', 'sub', 'mul', 'div'];
  const lits = [...type.matchAll(/'(\w+)'/g)].map((m) => m[1]);
  return lits.length ? lits : ['x'];
}

// ================================================================ ops mode
async function runOps() {
  const tk = await import('tunekit');
  isTensorLike = (v) => v instanceof tk.Tensor;
  release = (r) => {
    if (r instanceof tk.Tensor) r.dispose();
    else if (Array.isArray(r)) for (const x of r) release(x);
    else if (r && typeof r === 'object') for (const x of Object.values(r)) release(x);
  };
  const ops = tk.ops;
  const T = (shape, dtype = 'f32') => (dtype === 'f32' ? tk.rand(shape, { seed: int(0, 1e9) }) : tk.zeros(shape, { dtype }));
  const ids = (shape, lo, hi) => tk.tensor(Int32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => int(lo, hi)), shape);
  const disposed = () => {
    const t = T([2, 3]);
    t.dispose();
    return t;
  };
  // never Tensors (nor numbers: the binary ops and where take numbers for tensors)
  const bad = () => pick([undefined, null, 'x', {}, [], [1, 2], true, () => 0, 10n, Symbol('o'), new Float32Array(4), { shape: [2, 3], dtype: 'f32' }, disposed(), Object.create(tk.Tensor.prototype)]);
  const c = (args, must, label) => [args, must, label];
  const unaryOps = ['neg', 'exp', 'log', 'sqrt', 'gelu', 'geluErf', 'silu', 'relu', 'tanh'];
  const specs = {
    add: () => [c([bad(), T([2])], true, 'a'), c([T([2, 3]), T([4])], true, 'broadcast'), c([T([2]), T([2], 'i32')], true, 'dtype'), c([T([2]), bad()], true, 'b')],
    scale: () => [c([T([2]), pick([NaN, Infinity, '2', undefined])], true, 's'), c([bad(), 2], true, 'x')],
    pow: () => [c([T([2]), pick([NaN, '2', undefined, null])], true, 'p'), c([T([2], 'i32'), 2], true, 'dtype')],
    sum: () => [c([T([2, 3]), pick([2, -3, 0.5, NaN, [0, 5]])], true, 'axis'), c([bad()], true, 'x'), c([T([2], 'i32')], true, 'dtype')],
    matmul: () => [c([T([2, 3]), T([4, 5])], true, 'inner'), c([T([3]), T([3, 2])], true, '1-d'), c([bad(), T([2, 2])], true, 'a'), c([T([2, 2], 'i32'), T([2, 2])], true, 'dtype')],
    softmax: () => [c([T([2, 3]), pick([2, -3, 0.5, NaN])], true, 'axis'), c([bad()], true, 'x'), c([T([2, 3], 'bf16')], true, 'dtype')],
    logSoftmax: () => [c([T([2, 3]), pick([2, -3, 0.5, NaN])], true, 'axis'), c([bad()], true, 'x'), c([T([2, 3], pick(['i32', 'f16']))], true, 'dtype')],
    quantizeInt8: () => [c([T([2, 3], pick(['i32', 'i8']))], true, 'dtype'), c([T([2, 3]), { axis: pick([2, -3, 0.5]) }], true, 'axis'), c([bad()], true, 'w')],
    dequantizeInt8: () => [c([T([2, 3]), T([2])], true, 'q dtype'), c([T([2, 3], 'i8'), T([5])], true, 'scale shape'), c([bad(), T([2])], true, 'q')],
    attention: () => [c([T([1, 2, 3, 4]), T([1, 2, 3, 5]), T([1, 2, 3, 5])], true, 'D mismatch'), c([T([2, 3, 4]), T([2, 3, 4]), T([2, 3, 4])], true, 'rank'), c([T([1, 2, 3, 4], 'i32'), T([1, 2, 3, 4]), T([1, 2, 3, 4])], true, 'dtype')],
    crossEntropy: () => [
      c([T([4, 5]), ids([4], 5, 9)], true, 'target >= V'),
      c([T([4, 5]), ids([4], -5, -1)], true, 'target < 0'),
      c([T([4, 5]), T([4])], true, 'targets dtype'),
      c([T([4, 5]), ids([3], 0, 5)], true, 'targets length'),
      c([T([4, 5]), ids([4], 0, 5), { reduction: 'avg' }], true, 'reduction'),
      c([bad(), ids([4], 0, 5)], true, 'logits'),
      c([T([4, 5]), bad()], true, 'targets'),
    ],
    layerNorm: () => [c([T([2, 3]), T([4]), null], true, 'weight size'), c([T([2, 3]), T([3]), T([2])], true, 'bias size'), c([T([2, 3]), bad(), null], true, 'weight'), c([T([2, 3]), T([3]), null, { eps: -1 }], true, 'eps')],
    rmsNorm: () => [c([T([2, 3]), T([4])], true, 'weight size'), c([bad(), T([3])], true, 'x')],
    embedding: () => [c([T([5, 3]), ids([2], 5, 9)], true, 'id >= V'), c([T([5, 3]), ids([2], -3, -1)], true, 'id < 0'), c([T([5, 3]), T([2])], true, 'ids dtype'), c([bad(), ids([2], 0, 5)], true, 'table')],
    dropout: () => [c([T([4]), pick([-0.5, 1.5, NaN])], true, 'p'), c([bad(), 0.5], true, 'x')],
    rope: () => [c([T([2, 3, 4]), ids([3], 0, 5)], true, 'rank'), c([T([1, 2, 3, 5]), ids([3], 0, 5)], true, 'odd D'), c([T([1, 2, 3, 4]), ids([4], 0, 5)], true, 'positions')],
    reshape: () => [c([T([2, 3]), pick([[5], [-1, -1], [4, -1], 'x'])], true, 'shape'), c([bad(), [6]], true, 'x')],
    transpose: () => [c([T([2, 3]), 0, pick([2, -3, 0.5])], true, 'dims'), c([T([3])], true, 'rank 1 default dims')],
    permute: () => [c([T([2, 3]), pick([[0], [0, 0], [0, 2], 'x'])], true, 'dims')],
    concat: () => [c([[]], true, 'empty'), c([[T([2, 3]), T([2, 4])]], true, 'shape'), c([[T([2, 3]), bad()]], true, 'element'), c([bad()], true, 'list'), c([[T([2]), T([2])], 3], true, 'axis')],
    slice: () => [c([T([4, 5]), 2, 0], true, 'axis'), c([T([4, 5]), 1, 0.5], true, 'start'), c([bad(), 0, 0], true, 'x')],
    where: () => [c([T([2, 3], 'f16'), T([2, 3]), T([2, 3])], true, 'cond dtype'), c([T([2, 3], 'i32'), T([4, 3]), T([2, 3])], true, 'broadcast'), c([bad(), 1, 2], true, 'cond')],
    maskedFill: () => [c([T([2, 3]), T([4, 2, 3], 'i8'), 0], true, 'mask shape'), c([T([2, 3]), T([3], 'i8'), '0'], true, 'value'), c([T([2, 3]), bad(), 0], true, 'mask')],
    max: () => [c([T([2, 0]), 1], true, 'empty axis'), c([T([2, 3]), 5], true, 'axis')],
    mean: () => [c([T([2, 0]), 1], true, 'empty axis'), c([bad()], true, 'x')],
  };
  const names = Object.keys(ops).filter((k) => typeof ops[k] === 'function');
  stats.functions = names.length;
  stats.exported = names;
  for (let i = 0; i < CALLS; i++) {
    const name = pick(names);
    let cs;
    if (specs[name] && chance(0.7)) cs = pick(specs[name]());
    else if (['sub', 'mul', 'div'].includes(name)) cs = pick(specs.add());
    else if (unaryOps.includes(name)) cs = chance(0.5) ? c([bad()], true, 'x') : c([T([2], pick(['i32', 'i8', 'bf16']))], true, 'dtype');
    else cs = c(chance(0.5) ? [bad()] : [bad(), bad(), bad()], true, 'bad first argument');
    const [args, must, label] = cs;
    check(name, () => ops[name](...args), args, [name], must, label);
  }
}

// ================================================================ main
if (mode === 'native') await runNative();
else if (mode === 'ops') await runOps();
else throw new Error(`unknown mode ${mode}`);
console.log(JSON.stringify(stats));
