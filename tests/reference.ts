// Plain float64 reference implementations of every tk.ops op, written as
// readable loops over Float64Array with no tricks. The op tests compare the
// native float32 kernels against these, and differentiate these by central
// finite differences to check the native backward passes.
//
// An array is { shape, data } in row-major order. Integer inputs (targets,
// ids, positions) are plain number arrays.

export interface Arr {
  shape: number[];
  data: Float64Array;
}

export function arr(data: ArrayLike<number>, shape: readonly number[]): Arr {
  const n = numel(shape);
  if (data.length !== n) throw new Error(`reference: ${data.length} values for shape [${shape}]`);
  return { shape: [...shape], data: Float64Array.from(data) };
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let st = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    s[k] = st;
    st *= shape[k]!;
  }
  return s;
}

function normAxis(axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw new Error(`reference: bad axis ${axis}`);
  return axis < 0 ? axis + rank : axis;
}

/** [outer, n, inner] around `axis` */
function splitAxis(shape: readonly number[], axis: number): [number, number, number] {
  let outer = 1, inner = 1;
  for (let k = 0; k < axis; k++) outer *= shape[k]!;
  for (let k = axis + 1; k < shape.length; k++) inner *= shape[k]!;
  return [outer, shape[axis]!, inner];
}

// ---------------------------------------------------------------- broadcasting
export function broadcastShapes(...shapes: ReadonlyArray<readonly number[]>): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    for (let k = 0; k < s.length; k++) {
      const o = rank - s.length + k;
      const d = s[k]!;
      if (out[o] === 1) out[o] = d;
      else if (d !== 1 && d !== out[o]) throw new Error(`reference: shapes do not broadcast: ${shapes.map((x) => `[${x}]`).join(' ')}`);
    }
  }
  return out;
}

/** Flat index into an operand of shape `s` for the multi-index `idx` of the broadcast shape. */
function bcastOffset(idx: readonly number[], s: readonly number[]): number {
  const rank = idx.length;
  let off = 0, st = 1;
  for (let k = s.length - 1; k >= 0; k--) {
    const d = s[k]!;
    const i = d === 1 ? 0 : idx[rank - s.length + k]!;
    off += i * st;
    st *= d;
  }
  return off;
}

function unravel(flat: number, shape: readonly number[], out: number[]): void {
  for (let k = shape.length - 1; k >= 0; k--) {
    const d = shape[k]!;
    out[k] = flat % d;
    flat = Math.floor(flat / d);
  }
}

/** Elementwise f over operands broadcast together (NumPy rules). */
export function broadcastMap(operands: readonly Arr[], f: (...v: number[]) => number): Arr {
  const shape = broadcastShapes(...operands.map((o) => o.shape));
  const n = numel(shape);
  const out = new Float64Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  const vals = new Array<number>(operands.length);
  for (let i = 0; i < n; i++) {
    unravel(i, shape, idx);
    for (let k = 0; k < operands.length; k++) vals[k] = operands[k]!.data[bcastOffset(idx, operands[k]!.shape)]!;
    out[i] = f(...vals);
  }
  return { shape, data: out };
}

export type BinaryName = 'add' | 'sub' | 'mul' | 'div';
export function binary(op: BinaryName, a: Arr, b: Arr): Arr {
  const f = { add: (x: number, y: number) => x + y, sub: (x: number, y: number) => x - y, mul: (x: number, y: number) => x * y, div: (x: number, y: number) => x / y }[op];
  return broadcastMap([a, b], f);
}

// ---------------------------------------------------------------- elementwise
export function map(x: Arr, f: (v: number) => number): Arr {
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(x.data[i]!);
  return { shape: [...x.shape], data: out };
}

const GELU_C = Math.sqrt(2 / Math.PI);
/**
 * GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))),
 * evaluated as x * sigmoid(2u) (the same function): 1 + tanh(u) cancels even in
 * float64 once x < -6.
 */
export const gelu = (v: number): number => v / (1 + Math.exp(-2 * GELU_C * (v + 0.044715 * v * v * v)));
export const silu = (v: number): number => v / (1 + Math.exp(-v));
export const relu = (v: number): number => (v > 0 ? v : 0);

export const unaryFns = {
  neg: (v: number) => -v,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  gelu,
  silu,
  relu,
};

// ---------------------------------------------------------------- matmul
/**
 * a: [..., M, K] ([..., K, M] with transA), b: [..., K, N] ([..., N, K] with transB)
 * -> [...broadcast(batchA, batchB), M, N]
 */
export function matmul(a: Arr, b: Arr, transA = false, transB = false): Arr {
  const ra = a.shape.length, rb = b.shape.length;
  const M = transA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const K = transA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = transB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = transB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (K !== Kb) throw new Error('reference matmul: inner dimensions differ');
  const ba = a.shape.slice(0, ra - 2), bb = b.shape.slice(0, rb - 2);
  const batch = broadcastShapes(ba, bb);
  const nb = numel(batch);
  const out = new Float64Array(nb * M * N);
  const idx = new Array<number>(batch.length).fill(0);
  for (let bi = 0; bi < nb; bi++) {
    unravel(bi, batch, idx);
    const oa = bcastOffset(idx, ba) * M * K, ob = bcastOffset(idx, bb) * K * N;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a.data[oa + k * M + m]! : a.data[oa + m * K + k]!;
          const bv = transB ? b.data[ob + n * K + k]! : b.data[ob + k * N + n]!;
          s += av * bv;
        }
        out[bi * M * N + m * N + n] = s;
      }
  }
  return { shape: [...batch, M, N], data: out };
}

// ---------------------------------------------------------------- reductions
export type ReduceName = 'sum' | 'mean' | 'max';
/** Reduces over `axes` (all when undefined). */
export function reduce(op: ReduceName, x: Arr, axes?: number | readonly number[], keepDims = false): Arr {
  const rank = x.shape.length;
  const ax = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === 'number' ? [normAxis(axes, rank)] : [...new Set(axes.map((a) => normAxis(a, rank)))];
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const n = numel(kept);
  const acc = new Float64Array(n).fill(op === 'max' ? -Infinity : 0);
  let count = 1;
  for (const a of ax) count *= x.shape[a]!;
  const idx = new Array<number>(rank).fill(0);
  const kst = stridesOf(kept);
  for (let i = 0; i < x.data.length; i++) {
    unravel(i, x.shape, idx);
    let o = 0;
    for (let k = 0; k < rank; k++) if (!ax.includes(k)) o += idx[k]! * kst[k]!;
    const v = x.data[i]!;
    acc[o] = op === 'max' ? Math.max(acc[o]!, v) : acc[o]! + v;
  }
  if (op === 'mean') for (let i = 0; i < n; i++) acc[i]! /= count;
  const shape = keepDims ? kept : x.shape.filter((_, i) => !ax.includes(i));
  return { shape, data: acc };
}

// ---------------------------------------------------------------- softmax
export function softmax(x: Arr, axis = -1, log = false): Arr {
  const ax = normAxis(axis, x.shape.length);
  const [outer, n, inner] = splitAxis(x.shape, ax);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++)
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => (o * n + j) * inner + i;
      let m = -Infinity;
      for (let j = 0; j < n; j++) m = Math.max(m, x.data[at(j)]!);
      let s = 0;
      for (let j = 0; j < n; j++) s += Math.exp(x.data[at(j)]! - m);
      const lse = m + Math.log(s);
      for (let j = 0; j < n; j++) out[at(j)] = log ? x.data[at(j)]! - lse : Math.exp(x.data[at(j)]! - lse);
    }
  return { shape: [...x.shape], data: out };
}

export const logSoftmax = (x: Arr, axis = -1): Arr => softmax(x, axis, true);

/** logits [N, V], targets [N]; rows with target === ignoreIndex count for nothing. */
export function crossEntropy(logits: Arr, targets: readonly number[], ignoreIndex = -100, reduction: 'mean' | 'sum' | 'none' = 'mean'): Arr {
  const [N, V] = logits.shape as [number, number];
  const rows = new Float64Array(N);
  let count = 0;
  for (let r = 0; r < N; r++) {
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    count++;
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, logits.data[r * V + j]!);
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(logits.data[r * V + j]! - m);
    rows[r] = m + Math.log(s) - logits.data[r * V + t]!;
  }
  if (reduction === 'none') return { shape: [N], data: rows };
  let total = 0;
  for (let r = 0; r < N; r++) total += rows[r]!;
  return { shape: [], data: Float64Array.of(reduction === 'mean' ? total / count : total) };
}

// ---------------------------------------------------------------- normalization
/** over the last axis: (x - mean) / sqrt(var + eps) * w + b (biased variance, as PyTorch) */
export function layerNorm(x: Arr, w: Arr, b: Arr | null, eps = 1e-5): Arr {
  const C = x.shape[x.shape.length - 1]!;
  const rows = x.data.length / C;
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let j = 0; j < C; j++) mu += x.data[r * C + j]!;
    mu /= C;
    let v = 0;
    for (let j = 0; j < C; j++) v += (x.data[r * C + j]! - mu) ** 2;
    v /= C;
    const rs = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < C; j++) out[r * C + j] = (x.data[r * C + j]! - mu) * rs * w.data[j]! + (b ? b.data[j]! : 0);
  }
  return { shape: [...x.shape], data: out };
}

/** over the last axis: x / sqrt(mean(x^2) + eps) * w (Llama) */
export function rmsNorm(x: Arr, w: Arr, eps = 1e-6): Arr {
  const C = x.shape[x.shape.length - 1]!;
  const rows = x.data.length / C;
  const out = new Float64Array(x.data.length);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < C; j++) s += x.data[r * C + j]! ** 2;
    const rs = 1 / Math.sqrt(s / C + eps);
    for (let j = 0; j < C; j++) out[r * C + j] = x.data[r * C + j]! * rs * w.data[j]!;
  }
  return { shape: [...x.shape], data: out };
}

// ---------------------------------------------------------------- embedding, dropout, rope
/** table [V, C], ids (shape idsShape) -> [...idsShape, C] */
export function embedding(table: Arr, ids: readonly number[], idsShape: readonly number[]): Arr {
  const C = table.shape[1]!;
  const out = new Float64Array(ids.length * C);
  ids.forEach((id, i) => {
    for (let c = 0; c < C; c++) out[i * C + c] = table.data[id * C + c]!;
  });
  return { shape: [...idsShape, C], data: out };
}

/**
 * x * keep / (1 - p) for a given keep mask (1 = kept). p is a float32 (as the kernel
 * takes it): elements are kept with probability 1 - fround(p), and dividing by that
 * same value keeps the expectation exactly x.
 */
export function dropoutWithMask(x: Arr, keep: ArrayLike<number>, p: number): Arr {
  const out = new Float64Array(x.data.length);
  const scale = 1 / (1 - Math.fround(p));
  for (let i = 0; i < out.length; i++) out[i] = keep[i] ? x.data[i]! * scale : 0;
  return { shape: [...x.shape], data: out };
}

/**
 * Rotary embedding, rotate-half convention (Hugging Face Llama): x [B, H, T, D];
 * for d < D/2 the pair (x[d], x[d + D/2]) rotates by the angle positions[t] * theta^(-2d/D).
 */
export function rope(x: Arr, positions: readonly number[], theta = 10000): Arr {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  const half = D / 2;
  const out = new Float64Array(x.data.length);
  for (let bh = 0; bh < B * H; bh++)
    for (let t = 0; t < T; t++) {
      const base = (bh * T + t) * D;
      for (let d = 0; d < half; d++) {
        const a = positions[t]! * Math.pow(theta, (-2 * d) / D);
        const c = Math.cos(a), s = Math.sin(a);
        const x1 = x.data[base + d]!, x2 = x.data[base + d + half]!;
        out[base + d] = x1 * c - x2 * s;
        out[base + d + half] = x2 * c + x1 * s;
      }
    }
  return { shape: [...x.shape], data: out };
}

// ---------------------------------------------------------------- shape ops
export function reshape(x: Arr, shape: readonly number[]): Arr {
  const s = [...shape];
  const i = s.indexOf(-1);
  if (i >= 0) s[i] = x.data.length / numel(s.filter((d) => d !== -1));
  return { shape: s, data: Float64Array.from(x.data) };
}

export function permute(x: Arr, dims: readonly number[]): Arr {
  const rank = x.shape.length;
  const d = dims.map((a) => normAxis(a, rank));
  const outShape = d.map((a) => x.shape[a]!);
  const inSt = stridesOf(x.shape);
  const out = new Float64Array(x.data.length);
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < out.length; i++) {
    unravel(i, outShape, idx);
    let off = 0;
    for (let k = 0; k < rank; k++) off += idx[k]! * inSt[d[k]!]!;
    out[i] = x.data[off]!;
  }
  return { shape: outShape, data: out };
}

export function transpose(x: Arr, dim0 = -2, dim1 = -1): Arr {
  const rank = x.shape.length;
  const a = normAxis(dim0, rank), b = normAxis(dim1, rank);
  const dims = x.shape.map((_, i) => i);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

export function concat(xs: readonly Arr[], axis = 0): Arr {
  const ax = normAxis(axis, xs[0]!.shape.length);
  const shape = [...xs[0]!.shape];
  shape[ax] = xs.reduce((s, x) => s + x.shape[ax]!, 0);
  const [outer, total, inner] = splitAxis(shape, ax);
  const out = new Float64Array(numel(shape));
  let start = 0;
  for (const x of xs) {
    const len = x.shape[ax]!;
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < len; j++)
        for (let i = 0; i < inner; i++) out[(o * total + start + j) * inner + i] = x.data[(o * len + j) * inner + i]!;
    start += len;
  }
  return { shape, data: out };
}

/** x[..., start:end, ...] along axis (start and end already in [0, len]) */
export function slice(x: Arr, axis: number, start: number, end: number): Arr {
  const ax = normAxis(axis, x.shape.length);
  const [outer, n, inner] = splitAxis(x.shape, ax);
  const len = Math.max(0, end - start);
  const shape = [...x.shape];
  shape[ax] = len;
  const out = new Float64Array(outer * len * inner);
  for (let o = 0; o < outer; o++)
    for (let j = 0; j < len; j++)
      for (let i = 0; i < inner; i++) out[(o * len + j) * inner + i] = x.data[(o * n + start + j) * inner + i]!;
  return { shape, data: out };
}

export function where(cond: Arr, a: Arr, b: Arr): Arr {
  return broadcastMap([cond, a, b], (c, x, y) => (c !== 0 ? x : y));
}

export function maskedFill(x: Arr, mask: Arr, value: number): Arr {
  return broadcastMap([x, mask], (v, m) => (m !== 0 ? value : v));
}

// ---------------------------------------------------------------- number formats
/** v rounded to a multiple of 2^e, ties to even (exact for |v / 2^e| < 2^53) */
function roundToStep(v: number, e: number): number {
  const step = Math.pow(2, e);
  const q = v / step;
  const f = Math.floor(q);
  const d = q - f;
  const r = d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
  return r * step;
}

function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  while (Math.pow(2, e) > a) e--;
  while (Math.pow(2, e + 1) <= a) e++;
  return e;
}

/** The float32 value v rounded to bfloat16 (8 significant bits, round to nearest even). */
export function roundBf16(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const a = Math.abs(v);
  const r = roundToStep(a, Math.max(exponentOf(a), -126) - 7);
  const max = (2 - 2 ** -7) * 2 ** 127;
  const out = r > max ? Infinity : r;
  return v < 0 ? -out : out;
}

/** The float32 value v rounded to IEEE half (11 significant bits, subnormals, round to nearest even). */
export function roundF16(v: number): number {
  if (!Number.isFinite(v) || v === 0) return v;
  const a = Math.abs(v);
  const r = roundToStep(a, Math.max(exponentOf(a), -14) - 10);
  const out = r > 65504 ? Infinity : r;
  return v < 0 ? -out : out;
}
