// Plain float64 references of the four fused ops (attention, loraLinear,
// quantizeInt8 / int8Linear, gae), written as readable loops with no tricks,
// in the style of tests/reference.ts (whose matmul they reuse). The fused
// tests compare the native kernels with these and differentiate these by
// central finite differences to check the native backward passes.
import * as ref from '../../reference.js';
import type { Arr } from '../../reference.js';

export interface AttentionRefOptions {
  causal?: boolean;
  /** default 1 / sqrt(D) */
  scale?: number;
  /** keys j >= kvLengths[b] are masked */
  kvLengths?: readonly number[];
}

/** Number of keys query t of batch b sees: min(S, kvLengths[b], t + (S - T) + 1 when causal), at least 0. */
export function keyLimit(b: number, t: number, T: number, S: number, o: AttentionRefOptions): number {
  let lim = S;
  if (o.kvLengths) lim = Math.min(lim, o.kvLengths[b]!);
  if (o.causal) lim = Math.min(lim, t + (S - T) + 1);
  return Math.max(lim, 0);
}

/**
 * softmax(scale · q·kᵀ + mask) · v per (batch, head): q [B, H, T, D], k and v
 * [B, Hkv, S, D], query head h reads kv head floor(h / (H / Hkv)). A query
 * that sees no key gives zeros.
 */
export function attention(q: Arr, k: Arr, v: Arr, o: AttentionRefOptions = {}): Arr {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  const [, Hkv, S] = k.shape as [number, number, number, number];
  const G = H / Hkv;
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const out = new Float64Array(B * H * T * D);
  const s = new Float64Array(S);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const hk = Math.floor(h / G);
      for (let t = 0; t < T; t++) {
        const lim = keyLimit(b, t, T, S, o);
        if (lim === 0) continue;
        const qo = ((b * H + h) * T + t) * D;
        let m = -Infinity;
        for (let j = 0; j < lim; j++) {
          const ko = ((b * Hkv + hk) * S + j) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.data[qo + d]! * k.data[ko + d]!;
          s[j] = scale * dot;
          m = Math.max(m, s[j]!);
        }
        let z = 0;
        for (let j = 0; j < lim; j++) {
          s[j] = Math.exp(s[j]! - m);
          z += s[j]!;
        }
        for (let j = 0; j < lim; j++) {
          const p = s[j]! / z;
          const vo = ((b * Hkv + hk) * S + j) * D;
          for (let d = 0; d < D; d++) out[qo + d] += p * v.data[vo + d]!;
        }
      }
    }
  return { shape: [B, H, T, D], data: out };
}

export interface LoraRefOptions {
  scale: number;
  bias?: Arr;
  fanInFanOut?: boolean;
}

/** y = x·wᵀ + scale·(x·aᵀ)·bᵀ + bias; x [..., in], w [out, in] ([in, out] with fanInFanOut), a [r, in], b [out, r] */
export function loraLinear(x: Arr, w: Arr, a: Arr, b: Arr, o: LoraRefOptions): Arr {
  const base = ref.matmul(x, w, false, !o.fanInFanOut);
  const low = ref.matmul(ref.matmul(x, a, false, true), b, false, true);
  const out = new Float64Array(base.data.length);
  const N = o.bias ? o.bias.data.length : 1;
  for (let i = 0; i < out.length; i++) out[i] = base.data[i]! + o.scale * low.data[i]! + (o.bias ? o.bias.data[i % N]! : 0);
  return { shape: base.shape, data: out };
}

// ---------------------------------------------------------------- int8
/** Round half to even (the kernel's nearbyint in the default rounding mode). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Symmetric absmax quantization of a 2-d float32 array, one scale per index of `axis`
 * (0: per row, 1: per column). amax = max |w| over the group; scale = float32(amax / 127);
 * q = round-half-to-even of the exact quotient w · 127 / amax (|q| <= 127 follows from
 * |w| <= amax, so the clamp never acts); amax = 0 gives scale 0 and q 0.
 * In float64, w · 127 is exact and the division correctly rounded; a correctly rounded
 * quotient of float32 operands never lands on a half-integer it is not equal to, so this
 * is the exact rule.
 */
export function quantizeInt8(w: Arr, axis = 0): { q: Int8Array; scale: Float64Array } {
  const [R, C] = w.shape as [number, number];
  const G = axis === 0 ? R : C;
  const amax = new Float64Array(G);
  for (let r = 0; r < R; r++)
    for (let c = 0; c < C; c++) {
      const g = axis === 0 ? r : c;
      amax[g] = Math.max(amax[g]!, Math.abs(w.data[r * C + c]!));
    }
  const q = new Int8Array(R * C);
  for (let r = 0; r < R; r++)
    for (let c = 0; c < C; c++) {
      const m = amax[axis === 0 ? r : c]!;
      q[r * C + c] = m > 0 ? Math.max(-127, Math.min(127, roundHalfEven((w.data[r * C + c]! * 127) / m))) : 0;
    }
  return { q, scale: amax.map((m) => Math.fround(m / 127)) };
}

/** q [R, C] · scale [R] as float64 */
export function dequantizeInt8(q: ArrayLike<number>, scale: ArrayLike<number>, R: number, C: number): Arr {
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[r * C + c] = q[r * C + c]! * scale[r]!;
  return { shape: [R, C], data: out };
}

// ---------------------------------------------------------------- gae
export interface GaeRefOptions {
  gamma: number;
  lambda: number;
  lastValues?: ArrayLike<number>;
}

/**
 * The textbook reversed loop (CleanRL / the PPO paper) in float32: every
 * operation rounded to float32 (Math.fround), evaluated left to right as written,
 * gamma and lambda taken as float32 and gamma * lambda rounded once:
 *   nd = 1 - done_t
 *   delta = r_t + gamma * V_{t+1} * nd - V_t          (V_T = lastValues, default 0)
 *   A_t = delta + gamma * lambda * nd * A_{t+1}       (A_T = 0)
 *   returns_t = A_t + V_t
 */
export function gaeF32(rewards: ArrayLike<number>, values: ArrayLike<number>, dones: ArrayLike<number>, B: number, T: number, o: GaeRefOptions): { advantages: Float32Array; returns: Float32Array } {
  const f = Math.fround;
  const g = f(o.gamma), gl = f(g * f(o.lambda));
  const adv = new Float32Array(B * T), ret = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    let a = 0;
    let vnext = o.lastValues ? f(o.lastValues[b]!) : 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = b * T + t;
      const nd = f(1 - dones[i]!);
      const delta = f(f(rewards[i]! + f(f(g * vnext) * nd)) - values[i]!);
      a = f(delta + f(f(gl * nd) * a));
      adv[i] = a;
      ret[i] = f(a + values[i]!);
      vnext = values[i]!;
    }
  }
  return { advantages: adv, returns: ret };
}

/**
 * (A - mean) / sqrt(var + 1e-8) with mean and the unbiased variance over the
 * positions where mask != 0 (all when no mask), applied to every position (TRL's
 * masked_whiten with shift_mean).
 */
export function whiten(a: ArrayLike<number>, mask?: ArrayLike<number>): Float64Array {
  let n = 0, s = 0;
  for (let i = 0; i < a.length; i++)
    if (!mask || mask[i]) {
      n++;
      s += a[i]!;
    }
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < a.length; i++) if (!mask || mask[i]) ss += (a[i]! - mean) ** 2;
  const inv = 1 / Math.sqrt(ss / (n - 1) + 1e-8);
  return Float64Array.from(a, (v) => (v - mean) * inv);
}
