// Safetensors reader and writer (https://github.com/huggingface/safetensors).
//
// File layout:
//   [0, 8)          N: little-endian u64, the header length in bytes
//   [8, 8 + N)      UTF-8 JSON object: { name: { dtype, shape, data_offsets: [begin, end] }, ...,
//                   "__metadata__"?: { string: string } }
//   [8 + N, EOF)    the data section; data_offsets are relative to its start. Little-endian, C order.
//
// Reading validates every field of the header before anything is allocated from
// it, then allocates each tensor natively and reads the file straight into the
// tensor's bytes (no intermediate copy of the data). Writing goes straight from
// the tensors' native bytes into a temporary file that is fsynced and renamed
// over the target, so a failed save never damages an existing file.
import * as fs from 'node:fs';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { native, type DType, type NativeTensor } from '../native/binding.js';
import { Tensor, wrap } from '../tensor.js';

// ---------------------------------------------------------------- types

/** Every dtype name the safetensors format defines. */
export type SafetensorsDType =
  | 'BOOL'
  | 'F4'
  | 'F6_E2M3'
  | 'F6_E3M2'
  | 'U8'
  | 'I8'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'F8_E8M0'
  | 'I16'
  | 'U16'
  | 'F16'
  | 'BF16'
  | 'I32'
  | 'U32'
  | 'F32'
  | 'C64'
  | 'F64'
  | 'I64'
  | 'U64';

/** One tensor's entry in a safetensors header. */
export interface SafetensorsTensorInfo {
  /** The dtype name as written in the file, e.g. 'BF16'. */
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** [begin, end) in bytes, relative to the start of the data section. */
  readonly dataOffsets: readonly [number, number];
}

/** The parsed and validated header of a safetensors file. */
export interface SafetensorsHeader {
  /** Tensor entries by name, in name order. */
  readonly tensors: Map<string, SafetensorsTensorInfo>;
  /** The `__metadata__` map ({} when the file has none). */
  readonly metadata: Record<string, string>;
  /** N, the length of the JSON header in bytes. */
  readonly headerSize: number;
  /** Absolute file offset of the data section (8 + N). */
  readonly dataStart: number;
  readonly fileSize: number;
}

export interface LoadSafetensorsOptions {
  /** Load only these tensors (each must exist in the file). Default: all. */
  names?: readonly string[];
  /**
   * Convert every floating-point tensor (F32, F16, BF16, F64) to this dtype after
   * loading, e.g. 'f32' to train a bf16 checkpoint in full precision. Integer
   * tensors keep their dtype.
   */
  dtype?: 'f32' | 'bf16' | 'f16';
}

/** Every error from this module: names the file, and the tensor when there is one. */
export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  /** The file being read or written. */
  readonly path: string;
  /** The tensor concerned, when the problem is about one tensor. */
  readonly tensor: string | undefined;

  constructor(path: string, message: string, opts: { tensor?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.path = path;
    this.tensor = opts.tensor;
  }
}

// ---------------------------------------------------------------- dtype tables

/** Size in bits of one element of each safetensors dtype. */
const DTYPE_BITS: Readonly<Record<SafetensorsDType, number>> = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
};

/** Safetensors dtypes stored byte-for-byte as a tunekit dtype. */
const DIRECT: Partial<Record<SafetensorsDType, DType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16', I8: 'i8', I32: 'i32' };
/** Safetensors dtypes converted on load (elementwise, through a bounded scratch buffer). */
const CONVERTED: Partial<Record<SafetensorsDType, DType>> = {
  F64: 'f32',
  I64: 'i32',
  U64: 'i32',
  U32: 'i32',
  I16: 'i32',
  U16: 'i32',
  U8: 'i32',
  BOOL: 'i32',
};
const FLOAT_SOURCES: ReadonlySet<SafetensorsDType> = new Set(['F32', 'BF16', 'F16', 'F64']);

/** tunekit dtype -> safetensors name and element size. */
const TO_ST: Readonly<Record<DType, { name: SafetensorsDType; size: number }>> = {
  f32: { name: 'F32', size: 4 },
  bf16: { name: 'BF16', size: 2 },
  f16: { name: 'F16', size: 2 },
  i8: { name: 'I8', size: 1 },
  i32: { name: 'I32', size: 4 },
};

/**
 * The order of the safetensors library's Dtype enum ("increasing alignment").
 * Writers sort tensors by this rank descending, then by name, and pack the data
 * with no gaps: every tensor then starts at a multiple of its element size.
 */
const ALIGN_RANK: readonly SafetensorsDType[] = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0',
  'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
];

function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

// ---------------------------------------------------------------- limits

/** Largest header accepted (the safetensors library's own limit). */
const MAX_HEADER_SIZE = 100_000_000;
/** Bytes per read()/write() call (Node caps one call at 2 GiB). */
const IO_CHUNK = 1 << 30;
/** Scratch size for tensors converted on load. */
const CONVERT_CHUNK = 1 << 20;
const MAX_RANK = 16; // the native engine's limit
const LITTLE_ENDIAN_HOST = endianness() === 'LE';
const METADATA_KEY = '__metadata__';

// ---------------------------------------------------------------- helpers

/** A short printable form of a (possibly hostile, huge) name for messages. */
function q(name: string): string {
  const s = JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}...` : name);
  return s;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${q(v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  if (v === undefined) return 'nothing (missing)';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Own enumerable data property, safe for names like "__proto__". */
function setOwn<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function errnoText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Has a lone UTF-16 surrogate (not representable in UTF-8, rejected by other readers). */
function hasLoneSurrogate(s: string): boolean {
  return /\p{Cs}/u.test(s);
}

function swapBytes(bytes: Uint8Array, size: number): void {
  if (size <= 1) return;
  for (let i = 0; i + size <= bytes.length; i += size)
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
}

/** Reads exactly buf.length bytes at position, or throws (through onShort) on end of file. */
function readFully(fd: number, buf: Uint8Array, position: number, onShort: () => never): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.readSync(fd, buf, done, Math.min(buf.length - done, IO_CHUNK), position + done);
    if (n <= 0) onShort();
    done += n;
  }
}

function writeFully(fd: number, buf: Uint8Array): void {
  let done = 0;
  while (done < buf.length) {
    const n = fs.writeSync(fd, buf, done, Math.min(buf.length - done, IO_CHUNK));
    if (n <= 0) throw new Error('write returned no progress');
    done += n;
  }
}

/** Writes little-endian data from a host-order view (swapping through a bounded scratch on big-endian hosts). */
function writeLittleEndian(fd: number, bytes: Uint8Array, size: number): void {
  if (LITTLE_ENDIAN_HOST || size === 1) return writeFully(fd, bytes);
  const scratch = new Uint8Array(Math.min(bytes.length, CONVERT_CHUNK));
  for (let off = 0; off < bytes.length; off += scratch.length) {
    const part = scratch.subarray(0, Math.min(scratch.length, bytes.length - off));
    part.set(bytes.subarray(off, off + part.length));
    swapBytes(part, size);
    writeFully(fd, part);
  }
}

// ---------------------------------------------------------------- reading

/**
 * Opens a file for reading without blocking on FIFOs and the like, and checks
 * that it is a regular file. Returns the descriptor and the file size.
 */
function openForRead(path: string): { fd: number; size: number } {
  if (typeof path !== 'string' || path.length === 0)
    throw new SafetensorsError(String(path), `safetensors: path must be a non-empty string, got ${describe(path)}`);
  const nonblock = (fs.constants as { O_NONBLOCK?: number }).O_NONBLOCK;
  let fd: number;
  try {
    fd = fs.openSync(path, nonblock === undefined ? 'r' : fs.constants.O_RDONLY | nonblock);
  } catch (e) {
    throw new SafetensorsError(path, `cannot open safetensors file ${path}: ${errnoText(e)}`, { cause: e });
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SafetensorsError(path, `cannot read safetensors file ${path}: not a regular file`);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    if (e instanceof SafetensorsError) throw e;
    throw new SafetensorsError(path, `cannot read safetensors file ${path}: ${errnoText(e)}`, { cause: e });
  }
}

/** Reads and validates the header from an open file. */
function parseHeader(path: string, fd: number, fileSize: number): SafetensorsHeader {
  const bad = (msg: string, tensor?: string): never => {
    throw new SafetensorsError(
      path,
      `invalid safetensors file ${path}: ${tensor === undefined ? '' : `tensor ${q(tensor)}: `}${msg}`,
      tensor === undefined ? {} : { tensor },
    );
  };
  if (fileSize < 8) bad(`file is ${fileSize} bytes, too short for the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, () => bad('file ended while reading the header length'));
  const n64 = lenBuf.readBigUInt64LE(0);
  if (n64 < 2n) bad(`header length ${n64} is too small (at least 2 bytes, "{}")`);
  if (n64 > BigInt(MAX_HEADER_SIZE)) bad(`header length ${n64} exceeds the limit of ${MAX_HEADER_SIZE} bytes`);
  const n = Number(n64);
  if (n > fileSize - 8) bad(`header length ${n} is larger than the rest of the file (${fileSize - 8} bytes)`);

  const headerBytes = Buffer.allocUnsafe(n);
  readFully(fd, headerBytes, 8, () => bad('file ended while reading the header'));
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return bad('header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return bad(`header is not valid JSON (${errnoText(e)})`);
  }
  if (!isPlainObject(json)) return bad(`header must be a JSON object, got ${describe(json)}`);

  const dataStart = 8 + n;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Array<[string, SafetensorsTensorInfo]> = [];
  for (const name of Object.keys(json)) {
    const v = json[name];
    if (name === METADATA_KEY) {
      if (v === null) continue;
      if (!isPlainObject(v)) bad(`"__metadata__" must be an object of strings, got ${describe(v)}`);
      for (const k of Object.keys(v as object)) {
        const s = (v as Record<string, unknown>)[k];
        if (typeof s !== 'string') bad(`"__metadata__" value for key ${q(k)} must be a string, got ${describe(s)}`);
        setOwn(metadata, k, s as string);
      }
      continue;
    }
    entries.push([name, parseEntry(name, v, dataLength, bad)]);
  }

  // No two tensors may share bytes (empty tensors occupy none).
  const byStart = entries.filter(([, i]) => i.dataOffsets[1] > i.dataOffsets[0]);
  byStart.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  for (let i = 1; i < byStart.length; i++) {
    const [pn, p] = byStart[i - 1]!;
    const [cn, c] = byStart[i]!;
    if (c.dataOffsets[0] < p.dataOffsets[1])
      bad(
        `data_offsets [${c.dataOffsets.join(', ')}] overlap those of tensor ${q(pn)} [${p.dataOffsets.join(', ')}]`,
        cn,
      );
  }

  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { tensors: new Map(entries), metadata, headerSize: n, dataStart, fileSize };
}

function parseEntry(
  name: string,
  v: unknown,
  dataLength: number,
  bad: (msg: string, tensor?: string) => never,
): SafetensorsTensorInfo {
  if (!isPlainObject(v)) bad(`entry must be an object, got ${describe(v)}`, name);
  const e = v as Record<string, unknown>;
  const dtype = e['dtype'];
  if (!isSafetensorsDType(dtype)) bad(`unknown dtype ${typeof dtype === 'string' ? q(dtype) : describe(dtype)}`, name);
  const shape = e['shape'];
  if (!Array.isArray(shape)) bad(`shape must be an array, got ${describe(shape)}`, name);
  for (let i = 0; i < (shape as unknown[]).length; i++) {
    const d = (shape as unknown[])[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      bad(`shape must contain non-negative integers, got ${describe(d)} at dimension ${i}`, name);
  }
  const offs = e['data_offsets'];
  if (!Array.isArray(offs) || offs.length !== 2) bad(`data_offsets must be an array [begin, end]`, name);
  const [begin, end] = offs as unknown[];
  for (const o of [begin, end])
    if (typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0)
      bad(`data_offsets must be non-negative integers, got [${describe(begin)}, ${describe(end)}]`, name);
  const b = begin as number;
  const en = end as number;
  if (b > en) bad(`data_offsets [${b}, ${en}] end before they begin`, name);
  if (en > dataLength) bad(`data_offsets [${b}, ${en}] run past the end of the data section (${dataLength} bytes)`, name);

  // Expected byte length, exact: product(shape) * bits / 8. Every non-zero
  // factor is >= 1, so the product can stop as soon as it passes the span.
  const dims = shape as number[];
  const span = BigInt(en - b);
  let numel = dims.includes(0) ? 0n : 1n;
  if (numel !== 0n)
    for (const d of dims) {
      numel *= BigInt(d);
      if (numel > span * 8n) break;
    }
  const bits = numel * BigInt(DTYPE_BITS[dtype as SafetensorsDType]);
  if (bits % 8n !== 0n || bits / 8n !== span) {
    const shown = dims.length > 32 ? `${dims.slice(0, 32).join(', ')}, ...` : dims.join(', ');
    const need = bits % 8n !== 0n ? 'is not a whole number of bytes' : numel > span * 8n ? 'needs more bytes' : `needs ${bits / 8n} bytes`;
    bad(`shape [${shown}] of ${dtype} ${need}, but data_offsets [${b}, ${en}] hold ${span}`, name);
  }
  return { dtype: dtype as SafetensorsDType, shape: Object.freeze([...dims]), dataOffsets: Object.freeze([b, en]) as readonly [number, number] };
}

/**
 * Reads and validates the header of a safetensors file without reading any
 * tensor data. Throws SafetensorsError (naming the file) on any problem.
 */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const { fd, size } = openForRead(path);
  try {
    return wrapIo(path, () => parseHeader(path, fd, size));
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs fn, turning any non-SafetensorsError (I/O errors, native errors) into one that names the file. */
function wrapIo<R>(path: string, fn: () => R, tensor?: string): R {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    const t = tensor === undefined ? '' : `tensor ${q(tensor)}: `;
    throw new SafetensorsError(path, `cannot read safetensors file ${path}: ${t}${errnoText(e)}`, { cause: e, tensor });
  }
}

/**
 * Loads tensors from a safetensors file. Each tensor is allocated natively and
 * the file is read straight into its storage, so peak memory is the tensors
 * themselves (plus, with opts.dtype, one tensor's converted copy at a time).
 *
 * F32, BF16, F16, I8 and I32 load as themselves; F64 loads as f32; I64, U64,
 * U32, I16, U16, U8 and BOOL load as i32 (values out of i32 range are an
 * error). Other dtypes (F8_*, F4, F6_*, C64) are rejected with an error naming
 * the dtype.
 */
export function loadSafetensors(path: string, opts?: LoadSafetensorsOptions): Record<string, Tensor> {
  if (opts !== undefined && (typeof opts !== 'object' || opts === null))
    throw new SafetensorsError(String(path), `loadSafetensors(${String(path)}): options must be an object, got ${describe(opts)}`);
  opts ??= {};
  const { fd, size } = openForRead(path);
  const loaded: Tensor[] = [];
  try {
    return wrapIo(path, () => {
      const header = parseHeader(path, fd, size);
      const names = selectNames(path, header, opts);
      const target = opts.dtype;
      const out: Record<string, Tensor> = {};
      for (const name of names) {
        const info = header.tensors.get(name)!;
        let h = wrapIo(path, () => readTensor(path, fd, header.dataStart, name, info), name);
        if (target !== undefined && FLOAT_SOURCES.has(info.dtype) && h.dtype !== target) {
          const src = h;
          try {
            h = wrapIo(path, () => native.cast(src, target), name);
          } finally {
            src.dispose();
          }
        }
        const t = wrap(h);
        loaded.push(t);
        setOwn(out, name, t);
      }
      return out;
    });
  } catch (e) {
    for (const t of loaded) t.dispose();
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

function selectNames(path: string, header: SafetensorsHeader, opts: LoadSafetensorsOptions): string[] {
  if (opts.dtype !== undefined && opts.dtype !== 'f32' && opts.dtype !== 'bf16' && opts.dtype !== 'f16')
    throw new SafetensorsError(path, `loadSafetensors(${path}): dtype must be 'f32', 'bf16' or 'f16', got ${describe(opts.dtype)}`);
  if (opts.names === undefined) return [...header.tensors.keys()];
  if (!Array.isArray(opts.names))
    throw new SafetensorsError(path, `loadSafetensors(${path}): names must be an array of strings`);
  const seen = new Set<string>();
  for (const name of opts.names) {
    if (typeof name !== 'string')
      throw new SafetensorsError(path, `loadSafetensors(${path}): names must be strings, got ${describe(name)}`);
    if (!header.tensors.has(name))
      throw new SafetensorsError(path, `safetensors file ${path} has no tensor ${q(name)}`, { tensor: name });
    seen.add(name);
  }
  return [...seen];
}

/** Allocates one tensor and fills it from the file. */
function readTensor(path: string, fd: number, dataStart: number, name: string, info: SafetensorsTensorInfo): NativeTensor {
  const direct = DIRECT[info.dtype];
  const converted = CONVERTED[info.dtype];
  if (direct === undefined && converted === undefined)
    throw new SafetensorsError(
      path,
      `cannot load tensor ${q(name)} from ${path}: dtype ${info.dtype} is not supported ` +
        `(supported: ${[...Object.keys(DIRECT), ...Object.keys(CONVERTED)].join(', ')})`,
      { tensor: name },
    );
  if (info.shape.length > MAX_RANK)
    throw new SafetensorsError(
      path,
      `cannot load tensor ${q(name)} from ${path}: ${info.shape.length} dimensions, more than the limit of ${MAX_RANK}`,
      { tensor: name },
    );
  const [begin, end] = info.dataOffsets;
  const short = (): never => {
    throw new SafetensorsError(path, `invalid safetensors file ${path}: tensor ${q(name)}: file ended inside the tensor data`, {
      tensor: name,
    });
  };
  const h = native.empty(direct ?? converted!, [...info.shape]);
  try {
    const view = native.bytesView(h);
    if (direct !== undefined) {
      if (view.length !== end - begin) throw new Error(`native tensor holds ${view.length} bytes, expected ${end - begin}`);
      readFully(fd, view, dataStart + begin, short);
      if (!LITTLE_ENDIAN_HOST) swapBytes(view, TO_ST[direct].size);
    } else {
      convertInto(path, fd, dataStart + begin, end - begin, name, info.dtype, view);
    }
    return h;
  } catch (e) {
    h.dispose();
    throw e;
  }
}

/** Reads a tensor of a dtype tunekit does not store and converts it chunk by chunk into out (host order). */
function convertInto(
  path: string,
  fd: number,
  position: number,
  byteLength: number,
  name: string,
  dtype: SafetensorsDType,
  out: Uint8Array,
): void {
  const size = DTYPE_BITS[dtype] / 8;
  const count = byteLength / size;
  // out is a 64-byte aligned native allocation holding count 4-byte elements
  const f32 = dtype === 'F64' ? new Float32Array(out.buffer, out.byteOffset, count) : null;
  const i32 = dtype === 'F64' ? null : new Int32Array(out.buffer, out.byteOffset, count);
  const perChunk = Math.max(1, Math.floor(CONVERT_CHUNK / size));
  const scratch = Buffer.allocUnsafe(Math.min(byteLength, perChunk * size));
  const dv = new DataView(scratch.buffer, scratch.byteOffset, scratch.byteLength);
  const range = (i: number, value: bigint | number): never => {
    throw new SafetensorsError(
      path,
      `cannot load tensor ${q(name)} from ${path}: ${dtype} value ${value} at index ${i} does not fit in i32`,
      { tensor: name },
    );
  };
  for (let first = 0; first < count; first += perChunk) {
    const k = Math.min(perChunk, count - first);
    const part = scratch.subarray(0, k * size);
    readFully(fd, part, position + first * size, () => {
      throw new SafetensorsError(path, `invalid safetensors file ${path}: tensor ${q(name)}: file ended inside the tensor data`, {
        tensor: name,
      });
    });
    switch (dtype) {
      case 'F64':
        for (let j = 0; j < k; j++) f32![first + j] = dv.getFloat64(j * 8, true);
        break;
      case 'I64':
        for (let j = 0; j < k; j++) {
          const lo = dv.getInt32(j * 8, true);
          if (dv.getInt32(j * 8 + 4, true) !== lo >> 31) range(first + j, dv.getBigInt64(j * 8, true));
          i32![first + j] = lo;
        }
        break;
      case 'U64':
        for (let j = 0; j < k; j++) {
          const lo = dv.getInt32(j * 8, true);
          if (dv.getInt32(j * 8 + 4, true) !== 0 || lo < 0) range(first + j, dv.getBigUint64(j * 8, true));
          i32![first + j] = lo;
        }
        break;
      case 'U32':
        for (let j = 0; j < k; j++) {
          const v = dv.getUint32(j * 4, true);
          if (v > 0x7fffffff) range(first + j, v);
          i32![first + j] = v;
        }
        break;
      case 'I16':
        for (let j = 0; j < k; j++) i32![first + j] = dv.getInt16(j * 2, true);
        break;
      case 'U16':
        for (let j = 0; j < k; j++) i32![first + j] = dv.getUint16(j * 2, true);
        break;
      case 'U8':
        for (let j = 0; j < k; j++) i32![first + j] = scratch[j]!;
        break;
      case 'BOOL':
        for (let j = 0; j < k; j++) i32![first + j] = scratch[j] === 0 ? 0 : 1;
        break;
      default:
        throw new Error(`no conversion for ${dtype}`);
    }
  }
}

// ---------------------------------------------------------------- writing

interface Planned {
  name: string;
  dtype: SafetensorsDType;
  size: number;
  shape: number[];
  bytes: Uint8Array;
}

/**
 * Saves tensors to a safetensors file that the Python safetensors library (and
 * transformers) read: header keys in name order, padded with spaces to a
 * multiple of 8 bytes; data packed without gaps in the library's order (by
 * dtype alignment, then name), so every tensor is aligned to its element size.
 *
 * The write is atomic: the data goes to `<path>.tmp-<pid>-<random>`, is
 * fsynced, and is renamed over path. On any error the temporary file is
 * removed and an existing file at path is left as it was.
 */
export function saveSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  if (typeof path !== 'string' || path.length === 0)
    throw new SafetensorsError(String(path), `saveSafetensors: path must be a non-empty string, got ${describe(path)}`);
  const fail = (msg: string, tensor?: string, cause?: unknown): never => {
    throw new SafetensorsError(path, `cannot save safetensors file ${path}: ${tensor === undefined ? '' : `tensor ${q(tensor)}: `}${msg}`, {
      tensor,
      cause,
    });
  };

  // 1. validate everything and take byte views before touching the file system
  if (!isPlainObject(tensors)) fail(`tensors must be an object of name -> Tensor, got ${describe(tensors)}`);
  const plan: Planned[] = [];
  for (const name of Object.keys(tensors)) {
    if (name === METADATA_KEY) fail(`the name "__metadata__" is reserved for metadata`);
    if (hasLoneSurrogate(name)) fail(`the name is not valid Unicode (lone surrogate)`, name);
    const t = tensors[name];
    if (!(t instanceof Tensor)) fail(`not a Tensor (got ${describe(t)})`, name);
    const tensor = t as Tensor;
    if (tensor.disposed) fail('tensor has been disposed', name);
    const st = TO_ST[tensor.dtype];
    if (!st) fail(`unsupported dtype ${String(tensor.dtype)}`, name);
    let bytes: Uint8Array;
    try {
      // a CUDA tensor is copied to the host first (the copy lives as long as its bytes are needed)
      bytes = native.bytesView(tensor.device === 'cpu' ? tensor._handle() : native.toDevice(tensor._handle(), 'cpu'));
    } catch (e) {
      return fail(errnoText(e), name, e);
    }
    if (bytes.length !== tensor.numel * st.size)
      fail(`native storage holds ${bytes.length} bytes, expected ${tensor.numel * st.size}`, name);
    plan.push({ name, dtype: st.name, size: st.size, shape: [...tensor.shape], bytes });
  }
  const meta: Record<string, string> = {};
  if (metadata !== undefined && metadata !== null) {
    if (!isPlainObject(metadata)) fail(`metadata must be an object of strings, got ${describe(metadata)}`);
    for (const k of Object.keys(metadata).sort()) {
      const v = metadata[k];
      if (typeof v !== 'string') fail(`metadata value for key ${q(k)} must be a string, got ${describe(v)}`);
      if (hasLoneSurrogate(k) || hasLoneSurrogate(v as string)) fail(`metadata key or value ${q(k)} is not valid Unicode`);
      setOwn(meta, k, v as string);
    }
  }

  // 2. layout: data in the library's order; header keys in name order
  const rank = (d: SafetensorsDType): number => ALIGN_RANK.indexOf(d);
  const byName = (a: Planned, b: Planned): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const dataOrder = [...plan].sort((a, b) => rank(b.dtype) - rank(a.dtype) || byName(a, b));
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const p of dataOrder) {
    offsets.set(p.name, [offset, offset + p.bytes.length]);
    offset += p.bytes.length;
  }
  const headerObj: Record<string, unknown> = {};
  if (metadata !== undefined && metadata !== null) setOwn(headerObj, METADATA_KEY, meta);
  for (const p of [...plan].sort(byName))
    setOwn(headerObj, p.name, { dtype: p.dtype, shape: p.shape, data_offsets: offsets.get(p.name) });
  const json = Buffer.from(JSON.stringify(headerObj), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_SIZE) fail(`header would be ${padded} bytes, more than the limit of ${MAX_HEADER_SIZE}`);
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(head, 8);

  // 3. write to a temporary file, fsync, rename over the target
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    writeFully(fd, head);
    for (const p of dataOrder) writeLittleEndian(fd, p.bytes, p.size);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== null)
      try {
        fs.closeSync(fd);
      } catch {
        /* already failing */
      }
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never created, or already gone */
    }
    fail(errnoText(e), undefined, e);
  }
  syncDirectory(dirname(path));
}

/** Makes the rename durable (best effort: not every platform can fsync a directory). */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* best effort */
  } finally {
    if (fd !== null)
      try {
        fs.closeSync(fd);
      } catch {
        /* ignore */
      }
  }
}
