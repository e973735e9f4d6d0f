// Pieces shared by the architectures: masked attention, rotary tables,
// position ids and the key/value cache.
import * as ops from '../ops/index.js';
import { packedAttentionMask } from '../data/pack.js';
import { tensor, Tensor, type Device } from '../tensor.js';

/** Per layer: keys and values of every position seen so far, [B, Hkv, S, D]. */
export interface LayerCache {
  k: Tensor;
  v: Tensor;
}

/** The state a forward pass carries between generation steps. */
export class KVCache {
  layers: Array<LayerCache | null>;
  /** attention mask of the cached positions, [B][S] (1 = real token) */
  mask: number[][];
  constructor(numLayers: number, batch: number) {
    this.layers = new Array(numLayers).fill(null);
    this.mask = Array.from({ length: batch }, () => []);
  }
  get length(): number {
    return this.mask[0]?.length ?? 0;
  }
  /** Appends this step's k, v to layer `i` and returns the full k, v. */
  update(i: number, k: Tensor, v: Tensor): LayerCache {
    const prev = this.layers[i];
    const next = prev ? { k: ops.concat([prev.k, k], 2), v: ops.concat([prev.v, v], 2) } : { k, v };
    if (prev) {
      prev.k.dispose();
      prev.v.dispose();
    }
    this.layers[i] = next;
    next.k._keep();
    next.v._keep();
    return next;
  }
  dispose(): void {
    for (const l of this.layers) {
      l?.k.dispose();
      l?.v.dispose();
    }
    this.layers.fill(null);
  }
}

/**
 * The key mask [B][S] (1 = real token). Packed rows also carry segmentIds
 * [B][T] (1, 2, ... per example, 0 on padding): attention then stays causal
 * inside each example and never crosses into another.
 */
export type KeyMask = number[][] & { segmentIds?: number[][] };


/**
 * Which keys each query may not see, as an i8 tensor [B, 1, T, S] (1 = masked),
 * or null when nothing is masked. keyMask: [B][S], 1 for real tokens.
 * With causal, query t (absolute position S - T + t) sees keys j <= S - T + t.
 */
export function buildAttentionMask(keyMask: number[][], T: number, causal: boolean, device: Device = 'cpu'): Tensor | null {
  const B = keyMask.length, S = keyMask[0]?.length ?? 0;
  const m = new Int8Array(B * T * S);
  let any = false;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let j = 0; j < S; j++) {
        const masked = keyMask[b]![j] === 0 || (causal && j > S - T + t);
        if (masked) {
          m[(b * T + t) * S + j] = 1;
          any = true;
        }
      }
  return any ? tensor(m, [B, 1, T, S], { dtype: 'i8', device }) : null;
}

/** True when keyMask is [B][T] with every key real and no packed segments (nothing to mask but causality). */
export function isFullKeyMask(keyMask: KeyMask, T: number): boolean {
  if (keyMask.segmentIds) return false;
  for (const row of keyMask) {
    if (row.length !== T) return false;
    for (const m of row) if (m !== 1) return false;
  }
  return true;
}

/**
 * Attention for the models: the fused kernel (tk.ops.attention) whenever the
 * key mask is a prefix of real tokens in every row (no padding, or right
 * padding expressed as kvLengths); the masked composition otherwise (left
 * padding during batched generation).
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, keyMask: KeyMask, causal: boolean, scale?: number): Tensor {
  const T = q.shape[2]!;
  const device = q.device;
  if (keyMask.segmentIds) {
    const ids = keyMask.segmentIds;  // [B][T]: block-diagonal causal mask, as the data pipeline builds it
    return attentionComposite(q, k, v, tensor(packedAttentionMask(ids), [ids.length, 1, T, T], { dtype: 'i8', device }), scale);
  }
  const lengths = keyMask.map((row) => {
    const n = row.indexOf(0) < 0 ? row.length : row.indexOf(0);
    return row.slice(n).every((x) => x === 0) ? n : -1;
  });
  if (lengths.every((n) => n >= 0)) {
    const S = keyMask[0]?.length ?? 0;
    const full = lengths.every((n) => n === S);
    const kvLengths = full ? undefined : tensor(Int32Array.from(lengths), [lengths.length], { dtype: 'i32', device });
    return ops.attention(q, k, v, { causal, scale, kvLengths });
  }
  return attentionComposite(q, k, v, buildAttentionMask(keyMask, T, causal, device), scale);
}

/**
 * Scaled dot-product attention by composition of core ops (the unfused path).
 * q: [B, H, T, D], k, v: [B, Hkv, S, D] with H a multiple of Hkv; mask as from
 * buildAttentionMask. Fully masked rows attend uniformly (finite, never NaN).
 */
export function attentionComposite(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, scale?: number): Tensor {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const Hkv = k.shape[1]!, S = k.shape[2]!;
  const G = H / Hkv;
  const s = scale ?? 1 / Math.sqrt(D);
  // group query heads by their kv head: [B, Hkv, G, T, D] against [B, Hkv, 1, S, D]
  const qg = G === 1 ? q : ops.reshape(q, [B, Hkv, G, T, D]);
  const kg = G === 1 ? k : ops.reshape(k, [B, Hkv, 1, S, D]);
  const vg = G === 1 ? v : ops.reshape(v, [B, Hkv, 1, S, D]);
  let scores = ops.scale(ops.matmul(qg, kg, { transB: true }), s);
  if (mask) {
    const m = G === 1 ? mask : ops.reshape(mask, [B, 1, 1, T, S]);
    scores = ops.maskedFill(scores, m, -1e9);
  }
  const p = ops.softmax(scores, -1);
  const out = ops.matmul(p, vg);
  return G === 1 ? out : ops.reshape(out, [B, H, T, D]);
}

/** How parameter names relate to a checkpoint's keys: strip a leading prefix, then add one. */
export interface CheckpointKeyMap {
  strip: string;
  add: string;
}

export function applyKeyMap(name: string, m: CheckpointKeyMap): string {
  const base = m.strip && name.startsWith(m.strip) ? name.slice(m.strip.length) : name;
  return m.add + base;
}

export interface RopeScaling {
  type?: string;
  rope_type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/** inv_freq[d] = theta^(-2d/D), adjusted for rope_scaling (linear, llama3) as transformers does. */
export function ropeInvFreq(D: number, theta: number, scaling?: RopeScaling | null): Float64Array {
  const half = D / 2;
  const inv = new Float64Array(half);
  for (let d = 0; d < half; d++) inv[d] = 1 / Math.pow(theta, (2 * d) / D);
  const kind = scaling?.rope_type ?? scaling?.type;
  if (!scaling || !kind || kind === 'default') return inv;
  const factor = scaling.factor ?? 1;
  if (kind === 'linear') {
    for (let d = 0; d < half; d++) inv[d]! /= factor;
    return inv;
  }
  if (kind === 'llama3') {
    const low = scaling.low_freq_factor ?? 1, high = scaling.high_freq_factor ?? 4;
    const oldCtx = scaling.original_max_position_embeddings ?? 8192;
    const lowWavelen = oldCtx / low, highWavelen = oldCtx / high;
    for (let d = 0; d < half; d++) {
      const f = inv[d]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        inv[d] = f / factor;
      } else {
        const smooth = (oldCtx / wavelen - low) / (high - low);
        inv[d] = (1 - smooth) * (f / factor) + smooth * f;
      }
    }
    return inv;
  }
  throw new Error(`rope_scaling type '${kind}' is not supported (supported: linear, llama3)`);
}

/** cos and sin of positions × inv_freq, each [B, 1, T, D/2], for per-sequence positions [B][T]. */
export function ropeTables(positions: number[][], invFreq: Float64Array, device: Device = 'cpu'): { cos: Tensor; sin: Tensor } {
  const B = positions.length, T = positions[0]?.length ?? 0, half = invFreq.length;
  const c = new Float32Array(B * T * half), s = new Float32Array(B * T * half);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const p = positions[b]![t]!;
      for (let d = 0; d < half; d++) {
        const a = p * invFreq[d]!;
        c[(b * T + t) * half + d] = Math.cos(a);
        s[(b * T + t) * half + d] = Math.sin(a);
      }
    }
  return { cos: tensor(c, [B, 1, T, half], { device }), sin: tensor(s, [B, 1, T, half], { device }) };
}

/** Rotate-half RoPE: x [B, H, T, D] with tables [B, 1, T, D/2]. */
export function applyRope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const D = x.shape[3]!, half = D / 2;
  const x1 = ops.slice(x, 3, 0, half), x2 = ops.slice(x, 3, half, D);
  const r1 = ops.sub(ops.mul(x1, cos), ops.mul(x2, sin));
  const r2 = ops.add(ops.mul(x2, cos), ops.mul(x1, sin));
  return ops.concat([r1, r2], 3);
}

/** Position of each new token: the count of real tokens before it (left padding aware). */
export function positionIds(cache: KVCache | null, mask: number[][]): number[][] {
  return mask.map((row, b) => {
    let p = cache ? cache.mask[b]!.reduce((a, x) => a + x, 0) : 0;
    return row.map((m) => {
      const pos = Math.max(p, 0);
      if (m) p++;
      return m ? pos : Math.max(p - 1, 0);
    });
  });
}

/** ids as an i32 tensor [B, T] on `device` and validated nested arrays. */
export function idsTensor(ids: Tensor | number[][], device: Device = 'cpu'): { t: Tensor; rows: number[][] } {
  if (ids instanceof Tensor) {
    if (ids.dtype !== 'i32' || ids.ndim !== 2) throw new TypeError(`inputIds must be an i32 tensor [B, T], got ${ids.dtype} [${ids.shape}]`);
    const a = ids.toArray();
    const [B, T] = ids.shape as [number, number];
    const rows = Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
    return { t: ids.to(device), rows };
  }
  const B = ids.length, T = ids[0]?.length ?? 0;
  if (ids.some((r) => r.length !== T)) throw new RangeError('inputIds rows must have equal length (pad them and pass attentionMask)');
  const flat = new Int32Array(B * T);
  ids.forEach((r, b) => r.forEach((x, t) => (flat[b * T + t] = x)));
  return { t: tensor(flat, [B, T], { dtype: 'i32', device }), rows: ids };
}

export function maskRows(attentionMask: Tensor | number[][] | undefined, B: number, T: number): number[][] {
  if (!attentionMask) return Array.from({ length: B }, () => new Array(T).fill(1));
  if (attentionMask instanceof Tensor) {
    const a = attentionMask.toArray();
    if (attentionMask.numel !== B * T) throw new RangeError(`attentionMask must be [${B}, ${T}]`);
    return Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T), (x) => (x ? 1 : 0)));
  }
  if (attentionMask.length !== B || attentionMask.some((r) => r.length !== T)) throw new RangeError(`attentionMask must be [${B}, ${T}]`);
  return attentionMask.map((r) => r.map((x) => (x ? 1 : 0)));
}

