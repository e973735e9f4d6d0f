// Helpers for building safetensors files byte by byte in tests (no tunekit code involved).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** A fresh temporary directory, removed by the returned cleanup function. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tunekit-${prefix}-`));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** u64 little-endian. */
export function u64le(n: bigint | number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n), true);
  return b;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * A safetensors file: the header (a JSON string, or raw bytes) padded with
 * spaces to a multiple of `align` bytes (1 = no padding), its length as a u64,
 * then the data. headerLen overrides the length field.
 */
export function buildFile(
  header: string | Uint8Array,
  data: Uint8Array = new Uint8Array(0),
  opts: { align?: number; headerLen?: bigint | number } = {},
): Uint8Array {
  let h = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const align = opts.align ?? 8;
  const padded = Math.ceil(h.length / align) * align;
  if (padded > h.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(h);
    h = p;
  }
  return concatBytes(u64le(opts.headerLen ?? h.length), h, data);
}

/** Little-endian bytes of typed values. */
export function f32le(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
  return b;
}
export function u32le(bits: number[]): Uint8Array {
  const b = new Uint8Array(bits.length * 4);
  const dv = new DataView(b.buffer);
  bits.forEach((v, i) => dv.setUint32(i * 4, v >>> 0, true));
  return b;
}
export function i32le(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 4);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setInt32(i * 4, v, true));
  return b;
}
export function u16le(bits: number[]): Uint8Array {
  const b = new Uint8Array(bits.length * 2);
  const dv = new DataView(b.buffer);
  bits.forEach((v, i) => dv.setUint16(i * 2, v, true));
  return b;
}
export function i16le(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 2);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setInt16(i * 2, v, true));
  return b;
}
export function i64le(values: bigint[]): Uint8Array {
  const b = new Uint8Array(values.length * 8);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setBigInt64(i * 8, v, true));
  return b;
}
export function u64leArr(values: bigint[]): Uint8Array {
  const b = new Uint8Array(values.length * 8);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setBigUint64(i * 8, v, true));
  return b;
}
export function f64le(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 8);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setFloat64(i * 8, v, true));
  return b;
}

/** IEEE half -> number (reference decoder). */
export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 -> number (reference decoder). */
export function bf16ToNumber(h: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, (h & 0xffff) << 16);
  return dv.getFloat32(0);
}

/** The bytes [8 + N + begin, 8 + N + end) of a file. */
export function tensorBytes(file: Uint8Array, begin: number, end: number): Uint8Array {
  const n = Number(new DataView(file.buffer, file.byteOffset, 8).getBigUint64(0, true));
  return file.subarray(8 + n + begin, 8 + n + end);
}

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
