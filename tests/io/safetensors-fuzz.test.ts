// Hostile and corrupted files: every one must either throw an Error naming the
// file or load into tensors that agree with the header and the file's bytes.
// Runs in-process: a native crash or a hang fails this whole test file.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { buildFile, concatBytes, f32le, i64le, prng, tempDir, tensorBytes, u64le } from './st-bytes.js';

let dir = '';
let cleanup = (): void => {};
beforeAll(() => ({ dir, cleanup } = tempDir('st-fuzz')));
afterAll(() => cleanup());

const ST_TO_TK: Record<string, tk.DType> = { F32: 'f32', BF16: 'bf16', F16: 'f16', I8: 'i8', I32: 'i32' };

type Outcome = { ok: true; tensors: number } | { ok: false; error: Error };

/**
 * Loads path; on success checks that every tensor matches its header entry and
 * that saving it again reproduces the file's bytes for that tensor.
 */
function attempt(p: string): Outcome {
  let out: Record<string, tk.Tensor>;
  try {
    out = tk.loadSafetensors(p);
  } catch (e) {
    if (!(e instanceof Error)) throw new Error(`non-Error thrown for ${p}: ${String(e)}`);
    if (!e.message.includes(p)) throw new Error(`error message does not name the file: ${e.message}`);
    return { ok: false, error: e };
  }
  try {
    const header = tk.readSafetensorsHeader(p);
    const bytes = new Uint8Array(fs.readFileSync(p));
    expect(Object.keys(out).sort()).toEqual([...header.tensors.keys()].sort());
    const direct: Record<string, tk.Tensor> = {};
    for (const [name, info] of header.tensors) {
      const t = out[name]!;
      expect(t.shape).toEqual(info.shape);
      if (ST_TO_TK[info.dtype]) {
        expect(t.dtype).toBe(ST_TO_TK[info.dtype]);
        Object.defineProperty(direct, name, { value: t, enumerable: true });
      }
    }
    // the loaded bytes are the file's bytes: save them and compare tensor by tensor
    const again = path.join(dir, 'resaved.safetensors');
    tk.saveSafetensors(again, direct);
    const re = new Uint8Array(fs.readFileSync(again));
    const reHeader = tk.readSafetensorsHeader(again);
    for (const name of Object.keys(direct)) {
      const a = tensorBytes(bytes, ...header.tensors.get(name)!.dataOffsets);
      const b = tensorBytes(re, ...reHeader.tensors.get(name)!.dataOffsets);
      if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) throw new Error(`tensor ${name}: loaded bytes differ from the file`);
    }
    return { ok: true, tensors: header.tensors.size };
  } finally {
    for (const t of Object.values(out)) t.dispose();
  }
}

/** A small valid file with every dtype, a 0-d and an empty tensor, and metadata. */
function smallValidFile(): Uint8Array {
  const p = path.join(dir, 'seed.safetensors');
  const ts = {
    w: tk.tensor([0.5, -1, 2, -0, 3.25, 1e-3], [2, 3]),
    b: tk.tensor([1, 2, 3], [3], { dtype: 'bf16' }),
    h: tk.tensor([1, -2], [2], { dtype: 'f16' }),
    q: tk.tensor(new Int8Array([-1, 2, 3, 4, 5]), [5], { dtype: 'i8' }),
    s: tk.tensor(new Int32Array([77]), [], { dtype: 'i32' }),
    e: tk.zeros([0, 5]),
  };
  tk.saveSafetensors(p, ts, { format: 'pt' });
  for (const t of Object.values(ts)) t.dispose();
  return new Uint8Array(fs.readFileSync(p));
}

describe('safetensors fuzzing', () => {
  it('every truncated prefix of a valid file is rejected with an error naming the file', () => {
    const full = smallValidFile();
    const p = path.join(dir, 'prefix.safetensors');
    fs.writeFileSync(p, full);
    expect(attempt(p)).toEqual({ ok: true, tensors: 6 });
    for (let len = 0; len < full.length; len++) {
      fs.writeFileSync(p, full.subarray(0, len));
      const r = attempt(p);
      if (r.ok) throw new Error(`prefix of ${len} bytes loaded`);
      expect(r.error).toBeInstanceOf(tk.SafetensorsError);
    }
  });

  it('random byte corruption (seeded): errors name the file, successes are consistent', () => {
    const full = smallValidFile();
    const n = Number(new DataView(full.buffer, full.byteOffset).getBigUint64(0, true));
    const rnd = prng(0x5afe7e45);
    const pick = (k: number): number => Math.floor(rnd() * k);
    const interesting = [0, 0xff, 0x7f, 0x80, 0x20, 0x22, 0x2c, 0x2d, 0x2e, 0x30, 0x31, 0x39, 0x3a, 0x5b, 0x5d, 0x7b, 0x7d, 0x65, 0xc0, 0xed];
    const p = path.join(dir, 'corrupt.safetensors');
    let ok = 0;
    let failed = 0;
    for (let v = 0; v < 4000; v++) {
      let bytes: Uint8Array = full.slice();
      const edits = 1 + pick(4);
      for (let k = 0; k < edits; k++) {
        // mostly the header (the data section accepts any bytes), sometimes the length field
        const r = rnd();
        const pos = r < 0.1 ? pick(8) : r < 0.85 ? 8 + pick(n) : pick(bytes.length);
        const kind = pick(4);
        if (kind === 0) bytes[pos] = pick(256);
        else if (kind === 1) bytes[pos] = bytes[pos]! ^ (1 << pick(8));
        else if (kind === 2) bytes[pos] = interesting[pick(interesting.length)]!;
        else if (pos > 8) {
          // delete or duplicate a byte (shifts everything after it)
          bytes = pick(2) === 0
            ? concatBytes(bytes.subarray(0, pos), bytes.subarray(pos + 1))
            : concatBytes(bytes.subarray(0, pos + 1), bytes.subarray(pos));
        }
      }
      fs.writeFileSync(p, bytes);
      const r = attempt(p);
      if (r.ok) ok++;
      else failed++;
    }
    expect(ok + failed).toBe(4000);
    expect(failed).toBeGreaterThan(1000);
    expect(ok).toBeGreaterThan(10); // e.g. corrupted data bytes, spaces in padding
  });

  it('structural header mutations (seeded): errors name the file, successes are consistent', () => {
    const full = smallValidFile();
    const n = Number(new DataView(full.buffer, full.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(full.subarray(8, 8 + n))) as Record<string, Record<string, unknown>>;
    const data = full.subarray(8 + n);
    const rnd = prng(1234567);
    const pick = (k: number): number => Math.floor(rnd() * k);
    const junk = (): unknown =>
      [
        -1, 0.5, 1.5, 2 ** 53, 2 ** 64, 1e308, -0, NaN, null, true, 'F32', 'I64', 'F8_E4M3', 'f32', '', [], {}, [0],
        [0, 0], [1, 2, 3], [-1, 4], [4, 2], [0, 1e20], ['0', '4'], { dtype: 'F32' }, 7, data.length, data.length + 1,
      ][pick(28)];
    const p = path.join(dir, 'mutated.safetensors');
    let ok = 0;
    for (let v = 0; v < 1500; v++) {
      const h = JSON.parse(JSON.stringify(header)) as Record<string, Record<string, unknown>>;
      const names = Object.keys(h);
      const name = names[pick(names.length)]!;
      const field = ['dtype', 'shape', 'data_offsets', 'format'][pick(4)]!;
      const r = pick(5);
      if (r === 0) h[name] = junk() as Record<string, unknown>;
      else if (r === 1) delete h[name]![field];
      else if (r === 2 && Array.isArray(h[name]![field])) (h[name]![field] as unknown[])[pick(3)] = junk();
      else h[name]![field] = junk();
      // JSON.stringify turns NaN and infinities into null; all the better
      fs.writeFileSync(p, buildFile(JSON.stringify(h), data));
      if (attempt(p).ok) ok++;
    }
    expect(ok).toBeGreaterThan(0); // e.g. deleting a tensor or changing metadata
  });
});

// ---------------------------------------------------------------- hostile files

const entry = (dtype: string, shape: unknown, offsets: unknown): string =>
  JSON.stringify({ t: { dtype, shape, data_offsets: offsets } });
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const deep = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;

const hostile: Array<[string, () => Uint8Array, RegExp]> = [
  ['an empty file', () => new Uint8Array(0), /too short/],
  ['a 7-byte file', () => new Uint8Array(7), /too short/],
  ['header length 2^64 - 1', () => concatBytes(u64le(2n ** 64n - 1n), enc('{}')), /exceeds the limit/],
  ['header length 2^63', () => concatBytes(u64le(2n ** 63n), enc('{}')), /exceeds the limit/],
  ['header length just over 100 MB', () => concatBytes(u64le(100_000_001), enc('{}      ')), /exceeds the limit/],
  ['header length larger than the file', () => concatBytes(u64le(4096), enc('{}      ')), /larger than the rest of the file/],
  ['header length 0', () => concatBytes(u64le(0), enc('{}')), /too small/],
  ['header length 1', () => concatBytes(u64le(1), enc('{}')), /too small/],
  ['offsets past the end', () => buildFile(entry('F32', [2], [0, 8]), f32le([1])), /run past the end/],
  ['offsets far past the end', () => buildFile(entry('F32', [2 ** 40], [0, 2 ** 42]), f32le([1])), /run past the end/],
  ['begin after end', () => buildFile(entry('F32', [0], [8, 4]), f32le([1, 2, 3])), /end before they begin/],
  [
    'overlapping offsets',
    () =>
      buildFile(
        JSON.stringify({
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        }),
        f32le([1, 2, 3]),
      ),
    /overlap/,
  ],
  [
    'identical offsets (aliasing)',
    () =>
      buildFile(
        JSON.stringify({
          a: { dtype: 'I8', shape: [4], data_offsets: [0, 4] },
          b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        }),
        f32le([1]),
      ),
    /overlap/,
  ],
  [
    'a tensor inside another',
    () =>
      buildFile(
        JSON.stringify({
          a: { dtype: 'I8', shape: [12], data_offsets: [0, 12] },
          b: { dtype: 'I8', shape: [2], data_offsets: [4, 6] },
          c: { dtype: 'I8', shape: [2], data_offsets: [8, 10] },
        }),
        f32le([1, 2, 3]),
      ),
    /overlap/,
  ],
  ['an unknown dtype', () => buildFile(entry('F33', [1], [0, 4]), f32le([1])), /unknown dtype "F33"/],
  ['a lowercase dtype', () => buildFile(entry('f32', [1], [0, 4]), f32le([1])), /unknown dtype "f32"/],
  ['a numeric dtype', () => buildFile(entry(7 as unknown as string, [1], [0, 4]), f32le([1])), /unknown dtype/],
  ['dtype "__proto__"', () => buildFile(entry('__proto__', [1], [0, 4]), f32le([1])), /unknown dtype/],
  ['dtype "toString"', () => buildFile(entry('toString', [1], [0, 4]), f32le([1])), /unknown dtype/],
  ['a missing dtype', () => buildFile('{"t":{"shape":[1],"data_offsets":[0,4]}}', f32le([1])), /unknown dtype/],
  ['shape/length mismatch (too few bytes)', () => buildFile(entry('F32', [2, 3], [0, 20]), new Uint8Array(24)), /needs 24 bytes.*hold 20/],
  ['shape/length mismatch (too many bytes)', () => buildFile(entry('F32', [1], [0, 8]), f32le([1, 2])), /needs 4 bytes/],
  ['shape/length mismatch (huge product)', () => buildFile(entry('F32', [2 ** 40, 2 ** 40, 2 ** 40], [0, 8]), f32le([1, 2])), /needs more bytes/],
  ['dtype/length mismatch', () => buildFile(entry('F16', [2], [0, 8]), f32le([1, 2])), /needs 4 bytes/],
  ['a negative shape entry', () => buildFile(entry('F32', [-1], [0, 4]), f32le([1])), /non-negative integers/],
  ['a fractional shape entry', () => buildFile(entry('F32', [1.5], [0, 4]), f32le([1])), /non-negative integers/],
  ['an unsafe-integer shape entry', () => buildFile('{"t":{"dtype":"F32","shape":[1e20],"data_offsets":[0,4]}}', f32le([1])), /non-negative integers/],
  ['a string shape entry', () => buildFile(entry('F32', ['1'], [0, 4]), f32le([1])), /non-negative integers/],
  ['a null shape entry', () => buildFile(entry('F32', [null], [0, 4]), f32le([1])), /non-negative integers/],
  ['a shape that is not an array', () => buildFile(entry('F32', 1, [0, 4]), f32le([1])), /shape must be an array/],
  ['a shape object with length', () => buildFile(entry('F32', { length: 1, 0: 1 }, [0, 4]), f32le([1])), /shape must be an array/],
  ['negative offsets', () => buildFile(entry('F32', [1], [-4, 0]), f32le([1])), /data_offsets must be non-negative integers/],
  ['fractional offsets', () => buildFile(entry('F32', [1], [0, 4.5]), f32le([1, 2])), /data_offsets must be non-negative integers/],
  ['three offsets', () => buildFile(entry('F32', [1], [0, 4, 8]), f32le([1, 2])), /data_offsets must be an array \[begin, end\]/],
  ['string offsets', () => buildFile(entry('F32', [1], ['0', '4']), f32le([1])), /data_offsets must be non-negative integers/],
  ['missing offsets', () => buildFile('{"t":{"dtype":"F32","shape":[1]}}', f32le([1])), /data_offsets must be an array/],
  ['a JSON array header', () => buildFile('[1,2,3]'), /must be a JSON object, got an array/],
  ['a JSON string header', () => buildFile('"hello"'), /must be a JSON object, got the string/],
  ['a JSON number header', () => buildFile('12345678'), /must be a JSON object, got the number/],
  ['a JSON null header', () => buildFile('null'), /must be a JSON object, got null/],
  ['a JSON true header', () => buildFile('true'), /must be a JSON object/],
  ['invalid JSON', () => buildFile('{"t": {"dtype": "F32",'), /not valid JSON/],
  ['trailing garbage after JSON', () => buildFile('{}{}'), /not valid JSON/],
  ['a header padded with NUL bytes', () => concatBytes(u64le(8), enc('{}'), new Uint8Array(6)), /not valid JSON/],
  ['invalid UTF-8 (0xff)', () => buildFile(concatBytes(enc('{"a'), new Uint8Array([0xff]), enc('":1}'))), /UTF-8/],
  ['invalid UTF-8 (overlong slash)', () => buildFile(concatBytes(enc('{"'), new Uint8Array([0xc0, 0xaf]), enc('":{}}'))), /UTF-8/],
  ['invalid UTF-8 (encoded surrogate)', () => buildFile(concatBytes(enc('{"'), new Uint8Array([0xed, 0xa0, 0x80]), enc('":{}}'))), /UTF-8/],
  ['invalid UTF-8 (truncated sequence)', () => buildFile(concatBytes(enc('{"'), new Uint8Array([0xe2, 0x82]), enc('":{}}'))), /UTF-8/],
  ['deeply nested JSON in an entry', () => buildFile(`{"t":${deep(200_000)}}`), /entry must be an object|not valid JSON/],
  ['deeply nested JSON objects', () => buildFile(`{"t":${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}}`), /unknown dtype|not valid JSON/],
  ['deeply nested metadata', () => buildFile(`{"__metadata__":{"k":${deep(200_000)}}}`), /must be a string|not valid JSON/],
  ['non-string metadata value', () => buildFile('{"__metadata__":{"k":1}}'), /"__metadata__" value for key "k" must be a string/],
  ['metadata that is an array', () => buildFile('{"__metadata__":["a"]}'), /"__metadata__" must be an object/],
  ['metadata that is a string', () => buildFile('{"__metadata__":"pt"}'), /"__metadata__" must be an object/],
  ['an entry that is a number', () => buildFile('{"t":5}'), /tensor "t": entry must be an object/],
  ['an entry that is an array', () => buildFile('{"t":["F32",[1],[0,4]]}', f32le([1])), /entry must be an object/],
  ['17 dimensions', () => buildFile(entry('F32', new Array(17).fill(1), [0, 4]), f32le([1])), /17 dimensions/],
  ['an unsupported dtype', () => buildFile(entry('F8_E5M2', [4], [0, 4]), f32le([1])), /F8_E5M2 is not supported/],
  ['an I64 out of range', () => buildFile(entry('I64', [1], [0, 8]), i64le([-(2n ** 40n)])), /does not fit in i32/],
  [
    'a huge tensor name',
    () => buildFile(JSON.stringify({ ['n'.repeat(1_000_000)]: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }), f32le([1])),
    /tensor "n{120}\.\.\.": data_offsets/,
  ],
];

describe('hostile safetensors files', () => {
  it.each(hostile)('%s', (what, make, re) => {
    const p = path.join(dir, `hostile-${what.replace(/\W+/g, '-')}.safetensors`);
    fs.writeFileSync(p, make());
    const r = attempt(p);
    if (r.ok) throw new Error(`hostile file "${what}" loaded`);
    expect(r.error).toBeInstanceOf(tk.SafetensorsError);
    expect(r.error.message).toContain(p);
    expect(r.error.message).toMatch(re);
    expect(r.error.message.length).toBeLessThan(2000);
  });

  it('a header of exactly 100 MB (the limit) is read and parsed', () => {
    const n = 100_000_000;
    const bytes = Buffer.alloc(8 + n, 0x20);
    bytes.writeBigUInt64LE(BigInt(n), 0);
    bytes.write('{}', 8 + n - 2);
    const p = path.join(dir, 'hostile-100mb.safetensors');
    fs.writeFileSync(p, bytes);
    expect(attempt(p)).toEqual({ ok: true, tensors: 0 });
    fs.rmSync(p);
  });

  it('empty tensors with enormous dimensions are consistent (zero bytes) and load', () => {
    const p = path.join(dir, 'empty-huge.safetensors');
    fs.writeFileSync(p, buildFile(entry('F32', [2 ** 50, 0, 2 ** 50], [0, 0])));
    const out = tk.loadSafetensors(p);
    expect(out.t!.shape).toEqual([2 ** 50, 0, 2 ** 50]);
    expect(out.t!.numel).toBe(0);
    out.t!.dispose();
  });

  it('a FIFO is rejected without blocking', () => {
    const p = path.join(dir, 'fifo.safetensors');
    try {
      execFileSync('mkfifo', [p]);
    } catch {
      return; // no mkfifo here
    }
    const r = attempt(p);
    if (r.ok) throw new Error('a FIFO loaded');
    expect(r.error.message).toMatch(/not a regular file/);
  });
});
