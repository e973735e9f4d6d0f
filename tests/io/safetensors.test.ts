import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import {
  bf16ToNumber,
  buildFile,
  concatBytes,
  f16ToNumber,
  f32le,
  f64le,
  i16le,
  i32le,
  i64le,
  tempDir,
  tensorBytes,
  u16le,
  u32le,
  u64le,
  u64leArr,
} from './st-bytes.js';

let dir = '';
let cleanup = (): void => {};
beforeAll(() => ({ dir, cleanup } = tempDir('st')));
afterAll(() => cleanup());

const file = (name: string): string => path.join(dir, name);

function write(name: string, bytes: Uint8Array): string {
  const p = file(name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** The error thrown by fn (fails the test if fn returns). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    return e as Error;
  }
  throw new Error('expected an error, but the call returned');
}

function bits32(a: Float32Array): number[] {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
}

/** Element-wise equality that tells -0 from 0 and accepts NaN === NaN. */
function sameValues(a: ArrayLike<number>, b: ArrayLike<number>): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++)
    if (!Object.is(a[i], b[i])) throw new Error(`element ${i}: ${a[i]} !== ${b[i]}`);
}

function tmpLeftovers(): string[] {
  return fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));
}

function disposeAll(r: Record<string, tk.Tensor>): void {
  for (const t of Object.values(r)) t.dispose();
}

// ---------------------------------------------------------------- round trip

describe('saveSafetensors -> loadSafetensors', () => {
  it('round-trips every dtype bit-exactly, with 0-d and empty tensors and metadata', () => {
    const nanBits = [0x7fc00000, 0x7fc00001, 0xffc12345, 0x7f800001 /* signalling */, 0x7fbfffff, 0x80000000 /* -0 */];
    const f32src = new Float32Array(new Uint32Array([...nanBits, 0x00000001 /* min subnormal */, 0x7f7fffff]).buffer);
    const f32 = tk.tensor(f32src, [2, 4]);
    const bf16Values = [1, -2.5, 0.15625, -0, 0, Infinity, -Infinity, 3.3895313892515355e38, 9.183549615799121e-41];
    const bf16 = tk.tensor(bf16Values, [9], { dtype: 'bf16' });
    const f16Values = [1, -2.5, 65504, -0, 5.960464477539063e-8, Infinity, 0.333251953125];
    const f16 = tk.tensor(f16Values, [7], { dtype: 'f16' });
    const i8Values = Array.from({ length: 256 }, (_, i) => i - 128);
    const i8 = tk.tensor(new Int8Array(i8Values), [16, 16], { dtype: 'i8' });
    const i32Values = [0, 1, -1, 2147483647, -2147483648, 123456789];
    const i32 = tk.tensor(new Int32Array(i32Values), [3, 2], { dtype: 'i32' });
    const scalar = tk.tensor(-7.25);
    const empty = tk.zeros([0, 5], { dtype: 'f16' });
    const emptyI32 = tk.zeros([3, 0], { dtype: 'i32' });
    const metadata = { format: 'pt', note: 'ünïcödé ✓ "quoted" \\ \n', empty: '' };
    const p = file('roundtrip.safetensors');
    tk.saveSafetensors(p, { f32, bf16, f16, i8, i32, scalar, empty, emptyI32 }, metadata);

    const header = tk.readSafetensorsHeader(p);
    expect(header.metadata).toEqual(metadata);
    const out = tk.loadSafetensors(p);
    expect(Object.keys(out)).toEqual(['bf16', 'empty', 'emptyI32', 'f16', 'f32', 'i32', 'i8', 'scalar']);

    expect(out.f32!.dtype).toBe('f32');
    expect(out.f32!.shape).toEqual([2, 4]);
    // the stored bits, NaN payloads and -0 included
    const stored = tensorBytes(new Uint8Array(fs.readFileSync(p)), ...header.tensors.get('f32')!.dataOffsets);
    expect([...stored]).toEqual([...u32le([...new Uint32Array(f32src.buffer)])]);
    expect(bits32(out.f32!.toArray() as Float32Array)).toEqual(bits32(f32.toArray() as Float32Array));

    expect(out.bf16!.dtype).toBe('bf16');
    sameValues(out.bf16!.toArray(), bf16Values);
    expect(out.f16!.dtype).toBe('f16');
    sameValues(out.f16!.toArray(), f16Values);
    expect(out.i8!.dtype).toBe('i8');
    expect(out.i8!.shape).toEqual([16, 16]);
    expect([...out.i8!.toArray()]).toEqual(i8Values);
    expect(out.i32!.dtype).toBe('i32');
    expect([...out.i32!.toArray()]).toEqual(i32Values);
    expect(out.scalar!.shape).toEqual([]);
    expect(out.scalar!.item()).toBe(-7.25);
    expect(out.empty!.shape).toEqual([0, 5]);
    expect(out.empty!.dtype).toBe('f16');
    expect(out.empty!.numel).toBe(0);
    expect(out.emptyI32!.shape).toEqual([3, 0]);
    disposeAll(out);
    for (const t of [f32, bf16, f16, i8, i32, scalar, empty, emptyI32]) t.dispose();
  });

  it('writes a space-padded header whose length is a multiple of 8, names in order, data aligned and packed', () => {
    const p = file('layout.safetensors');
    const tensors = {
      'z.bias': tk.tensor([1, 2, 3], [3], { dtype: 'bf16' }),
      'a.weight': tk.tensor([1, 2, 3, 4, 5], [5]),
      'm.ids': tk.tensor(new Int32Array([1, 2, 3]), [3], { dtype: 'i32' }),
      'b.q': tk.tensor(new Int8Array([1, 2, 3]), [3], { dtype: 'i8' }),
      'c.h': tk.tensor([1], [1], { dtype: 'f16' }),
      'B.upper': tk.tensor([7], [1]),
    };
    tk.saveSafetensors(p, tensors, { format: 'pt' });
    const bytes = new Uint8Array(fs.readFileSync(p));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(text).toMatch(/^\{.*\} *$/);
    expect(text.length - text.trimEnd().length).toBeLessThan(8);
    const json = JSON.parse(text) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    expect(Object.keys(json)).toEqual(['__metadata__', 'B.upper', 'a.weight', 'b.q', 'c.h', 'm.ids', 'z.bias']);

    // packed without gaps in the safetensors library's order: F32, I32, BF16, F16, I8 (then names)
    const byOffset = Object.entries(json)
      .filter(([k]) => k !== '__metadata__')
      .sort((x, y) => x[1].data_offsets[0] - y[1].data_offsets[0]);
    expect(byOffset.map(([k]) => k)).toEqual(['B.upper', 'a.weight', 'm.ids', 'z.bias', 'c.h', 'b.q']);
    let end = 0;
    const size: Record<string, number> = { F32: 4, I32: 4, BF16: 2, F16: 2, I8: 1 };
    for (const [, info] of byOffset) {
      expect(info.data_offsets[0]).toBe(end);
      expect(info.data_offsets[0] % size[info.dtype]!).toBe(0);
      end = info.data_offsets[1];
    }
    expect(bytes.length).toBe(8 + n + end);

    const header = tk.readSafetensorsHeader(p);
    expect([...header.tensors.keys()]).toEqual(['B.upper', 'a.weight', 'b.q', 'c.h', 'm.ids', 'z.bias']);
    expect(header.headerSize).toBe(n);
    expect(header.dataStart).toBe(8 + n);
    expect(header.dataStart % 8).toBe(0);
    expect(header.fileSize).toBe(bytes.length);
    expect(header.tensors.get('a.weight')).toEqual({ dtype: 'F32', shape: [5], dataOffsets: [4, 24] });
    for (const t of Object.values(tensors)) t.dispose();
  });

  it('saves an empty set of tensors as the safetensors library does ("{}" padded to 8)', () => {
    const p = file('none.safetensors');
    tk.saveSafetensors(p, {});
    expect([...fs.readFileSync(p)]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    expect(tk.loadSafetensors(p)).toEqual({});
    expect(tk.readSafetensorsHeader(p).metadata).toEqual({});
  });

  it('keeps awkward names (unicode, "__proto__", dots, empty) as own keys', () => {
    const p = file('names.safetensors');
    const src: Record<string, tk.Tensor> = {};
    const names = ['__proto__', 'constructor', 'émbed.wte', '', 'a/b.c[0]'];
    names.forEach((n, i) => Object.defineProperty(src, n, { value: tk.tensor([i], [1]), enumerable: true }));
    tk.saveSafetensors(p, src);
    const out = tk.loadSafetensors(p);
    expect(Object.keys(out).sort()).toEqual([...names].sort());
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    names.forEach((n, i) => expect(Object.getOwnPropertyDescriptor(out, n)!.value.item()).toBe(i));
    disposeAll(out);
  });

  it('works inside tidy(): returned tensors are kept, others disposed', () => {
    const p = file('tidy.safetensors');
    const a = tk.tensor([1, 2], [2]);
    tk.saveSafetensors(p, { a, b: a });
    a.dispose();
    const kept = tk.tidy(() => tk.loadSafetensors(p));
    expect(kept.a!.disposed).toBe(false);
    expect([...kept.b!.toArray()]).toEqual([1, 2]);
    disposeAll(kept);
  });
});

// ---------------------------------------------------------------- raw bit patterns

describe('raw bit patterns', () => {
  it('survive file -> load -> save byte for byte (all bf16/f16/i8 patterns, f32 NaN payloads)', () => {
    const all16 = Array.from({ length: 65536 }, (_, i) => i);
    const f32Bits = [0x7fc00000, 0x7fc00001, 0xffc12345, 0x7f800001, 0xff800001, 0x7fbfffff, 0x80000000, 0, 1, 0x807fffff, 0x7f800000, 0xff800000, 0x3f800000];
    const i32Values = [0, -1, 2147483647, -2147483648, 42];
    const i8Bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    // our writer's layout: keys by name after __metadata__, data by dtype alignment then name
    const parts: Array<[string, string, number[], Uint8Array]> = [
      ['f32', 'F32', [f32Bits.length], u32le(f32Bits)],
      ['i32', 'I32', [5], i32le(i32Values)],
      ['scalar', 'I32', [], i32le([-5])],
      ['bf16', 'BF16', [256, 256], u16le(all16)],
      ['empty', 'F16', [0, 5], new Uint8Array(0)],
      ['f16', 'F16', [65536], u16le(all16)],
      ['i8', 'I8', [256], i8Bytes],
    ];
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    const offsets = new Map<string, [number, number]>();
    let off = 0;
    for (const [name, , , data] of parts) {
      offsets.set(name, [off, off + data.length]);
      off += data.length;
    }
    for (const [name, dtype, shape] of [...parts].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
      header[name] = { dtype, shape, data_offsets: offsets.get(name) };
    const original = buildFile(JSON.stringify(header), concatBytes(...parts.map((x) => x[3])));
    const p = write('bits.safetensors', original);

    const out = tk.loadSafetensors(p);
    expect(bits32(out.f32!.toArray() as Float32Array)).toEqual(f32Bits.map((b) => b >>> 0));
    expect([...out.i32!.toArray()]).toEqual(i32Values);
    expect(out.scalar!.item()).toBe(-5);
    expect([...out.i8!.toArray()]).toEqual([...new Int8Array(i8Bytes.buffer)]);
    const bf = out.bf16!.toArray();
    const hf = out.f16!.toArray();
    for (let i = 0; i < 65536; i++) {
      const rb = bf16ToNumber(i);
      const rh = f16ToNumber(i);
      if (Number.isNaN(rb) ? !Number.isNaN(bf[i]!) : !Object.is(bf[i], rb)) throw new Error(`bf16 pattern ${i}: ${bf[i]} vs ${rb}`);
      if (Number.isNaN(rh) ? !Number.isNaN(hf[i]!) : !Object.is(hf[i], rh)) throw new Error(`f16 pattern ${i}: ${hf[i]} vs ${rh}`);
    }

    const p2 = file('bits-resaved.safetensors');
    tk.saveSafetensors(p2, out, { format: 'pt' });
    expect(Buffer.compare(fs.readFileSync(p2), Buffer.from(original))).toBe(0);
    disposeAll(out);
  });
});

// ---------------------------------------------------------------- files as other writers make them

describe('files written by the Python safetensors library', () => {
  it("loads the library's own serialization test vector", () => {
    // safetensors' Rust test: {"attn.0": F32 [1, 2, 3] = 0..5}, no metadata; header is exactly 64 bytes
    const json = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    expect(json.length).toBe(64);
    const bytes = concatBytes(u64le(64), new TextEncoder().encode(json), f32le([0, 1, 2, 3, 4, 5]));
    expect([...bytes.subarray(0, 12)]).toEqual([64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116]);
    expect([...bytes.subarray(72)]).toEqual([0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64]);
    const p = write('rust-vector.safetensors', bytes);
    const out = tk.loadSafetensors(p);
    expect(out['attn.0']!.shape).toEqual([1, 2, 3]);
    expect([...out['attn.0']!.toArray()]).toEqual([0, 1, 2, 3, 4, 5]);
    // and our writer produces the same bytes for the same tensor
    const p2 = file('rust-vector-ours.safetensors');
    tk.saveSafetensors(p2, out);
    expect([...fs.readFileSync(p2)]).toEqual([...bytes]);
    disposeAll(out);
  });

  it('loads a transformers-style checkpoint with every common dtype (hand-built, little-endian)', () => {
    // As safetensors.torch.save_file(tensors, metadata={"format": "pt"}) writes it: __metadata__
    // first, then tensors sorted by dtype (descending alignment) then name, packed, header
    // padded with spaces to a multiple of 8.
    const parts: Array<[string, string, number[], Uint8Array]> = [
      ['position_ids', 'I64', [1, 4], i64le([0n, 1n, 2n, -3n])],
      ['ratio', 'F64', [2], f64le([0.1, -1e300])],
      ['model.embed.weight', 'F32', [3, 2], f32le([0.5, -1.25, 3, 4, -0, 1e-20])],
      ['counts', 'U32', [2], u32le([7, 2147483647])],
      ['step', 'I32', [], i32le([-123456])],
      ['model.norm.bias', 'BF16', [3], u16le([0x3f80, 0xc020, 0x0001])],
      ['lm_head.weight', 'F16', [2, 2], u16le([0x3c00, 0xc100, 0x7bff, 0x0001])],
      ['shorts', 'I16', [2], i16le([-32768, 32767])],
      ['ushorts', 'U16', [1], u16le([65535])],
      ['quant', 'I8', [3], new Uint8Array([0x80, 0x7f, 0xff])],
      ['bytes', 'U8', [2], new Uint8Array([0, 255])],
      ['attention_mask', 'BOOL', [4], new Uint8Array([1, 0, 1, 1])],
    ];
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let off = 0;
    for (const [name, dtype, shape, data] of parts) {
      const size = { I64: 8, F64: 8, F32: 4, U32: 4, I32: 4, BF16: 2, F16: 2, I16: 2, U16: 2 }[dtype] ?? 1;
      expect(off % size).toBe(0);
      header[name] = { dtype, shape, data_offsets: [off, off + data.length] };
      off += data.length;
    }
    const p = write('python-style.safetensors', buildFile(JSON.stringify(header), concatBytes(...parts.map((x) => x[3]))));

    const h = tk.readSafetensorsHeader(p);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.tensors.get('position_ids')).toEqual({ dtype: 'I64', shape: [1, 4], dataOffsets: [0, 32] });
    expect(h.dataStart % 8).toBe(0);

    const out = tk.loadSafetensors(p);
    const expectT = (name: string, dtype: tk.DType, shape: number[], values: number[]): void => {
      const t = out[name]!;
      expect(t.dtype, name).toBe(dtype);
      expect(t.shape, name).toEqual(shape);
      sameValues(t.toArray(), values);
    };
    expectT('position_ids', 'i32', [1, 4], [0, 1, 2, -3]);
    expectT('ratio', 'f32', [2], [Math.fround(0.1), -Infinity]);
    expectT('model.embed.weight', 'f32', [3, 2], [0.5, -1.25, 3, 4, -0, Math.fround(1e-20)]);
    expectT('counts', 'i32', [2], [7, 2147483647]);
    expectT('step', 'i32', [], [-123456]);
    expectT('model.norm.bias', 'bf16', [3], [1, -2.5, bf16ToNumber(1)]);
    expectT('lm_head.weight', 'f16', [2, 2], [1, -2.5, 65504, 2 ** -24]);
    expectT('shorts', 'i32', [2], [-32768, 32767]);
    expectT('ushorts', 'i32', [1], [65535]);
    expectT('quant', 'i8', [3], [-128, 127, -1]);
    expectT('bytes', 'i32', [2], [0, 255]);
    expectT('attention_mask', 'i32', [4], [1, 0, 1, 1]);
    disposeAll(out);

    // subset + float conversion: float tensors become f32, integer tensors keep their dtype
    const some = tk.loadSafetensors(p, { names: ['lm_head.weight', 'model.norm.bias', 'step', 'ratio'], dtype: 'f32' });
    expect(Object.keys(some)).toEqual(['lm_head.weight', 'model.norm.bias', 'step', 'ratio']);
    expect(some['lm_head.weight']!.dtype).toBe('f32');
    sameValues(some['lm_head.weight']!.toArray(), [1, -2.5, 65504, 2 ** -24]);
    expect(some['model.norm.bias']!.dtype).toBe('f32');
    sameValues(some['model.norm.bias']!.toArray(), [1, -2.5, bf16ToNumber(1)]);
    expect(some.step!.dtype).toBe('i32');
    expect(some.ratio!.dtype).toBe('f32');
    disposeAll(some);

    const half = tk.loadSafetensors(p, { names: ['model.embed.weight'], dtype: 'bf16' });
    expect(half['model.embed.weight']!.dtype).toBe('bf16');
    sameValues(half['model.embed.weight']!.toArray(), [0.5, -1.25, 3, 4, -0, half['model.embed.weight']!.toArray()[5]!]);
    disposeAll(half);
  });

  it('accepts headers in any key order, pretty-printed, with extra entry fields and null metadata', () => {
    const json = `{
      "b": { "shape": [2], "data_offsets": [8, 16], "dtype": "F32", "extra": {"x": [1]} },
      "__metadata__": null,
      "a": { "dtype": "F32", "data_offsets": [0, 8], "shape": [2] }
    }`;
    const p = write('pretty.safetensors', buildFile(json, f32le([1, 2, 3, 4]), { align: 1 }));
    const out = tk.loadSafetensors(p);
    expect([...out.a!.toArray()]).toEqual([1, 2]);
    expect([...out.b!.toArray()]).toEqual([3, 4]);
    expect(tk.readSafetensorsHeader(p).metadata).toEqual({});
    disposeAll(out);
  });
});

// ---------------------------------------------------------------- conversions and options

describe('loadSafetensors conversions and options', () => {
  const one = (dtype: string, shape: number[], data: Uint8Array): string =>
    JSON.stringify({ t: { dtype, shape, data_offsets: [0, data.length] } });

  it('converts a large I64 tensor (many scratch chunks) exactly', () => {
    const n = 300_001;
    const vals = Array.from({ length: n }, (_, i) => BigInt((i * 7919) % 2147483647) - 1073741824n);
    const data = i64le(vals);
    const p = write('i64-big.safetensors', buildFile(one('I64', [n], data), data));
    const out = tk.loadSafetensors(p);
    const a = out.t!.toArray();
    expect(a.length).toBe(n);
    for (let i = 0; i < n; i += 997) expect(a[i]).toBe(Number(vals[i]));
    expect(a[n - 1]).toBe(Number(vals[n - 1]));
    disposeAll(out);
  });

  it.each([
    ['I64', i64le([1n, 2147483648n])],
    ['I64', i64le([-2147483649n, 0n])],
    ['U64', u64leArr([0n, 18446744073709551615n])],
    ['U64', u64leArr([2147483648n, 0n])],
    ['U32', u32le([1, 0x80000000])],
  ])('rejects %s values out of i32 range, naming file, tensor and value', (dtype, data) => {
    const p = write(`range-${dtype}.safetensors`, buildFile(one(dtype, [2], data), data));
    const e = thrown(() => tk.loadSafetensors(p));
    expect(e).toBeInstanceOf(tk.SafetensorsError);
    expect(e.message).toContain(p);
    expect(e.message).toMatch(new RegExp(`"t".*${dtype} value -?\\d+ at index \\d does not fit in i32`));
    expect((e as tk.SafetensorsError).tensor).toBe('t');
  });

  it('accepts I64 values at the i32 limits', () => {
    const data = i64le([2147483647n, -2147483648n]);
    const p = write('i64-limits.safetensors', buildFile(one('I64', [2], data), data));
    const out = tk.loadSafetensors(p);
    expect([...out.t!.toArray()]).toEqual([2147483647, -2147483648]);
    disposeAll(out);
  });

  it.each(['F8_E4M3', 'F8_E5M2', 'C64'])('rejects unsupported dtype %s by name (but the header reads)', (dtype) => {
    const size = dtype === 'C64' ? 8 : 1;
    const data = new Uint8Array(2 * size);
    const json = JSON.stringify({
      t: { dtype, shape: [2], data_offsets: [0, data.length] },
      ok: { dtype: 'I8', shape: [1], data_offsets: [data.length, data.length + 1] },
    });
    const p = write(`unsupported-${dtype}.safetensors`, buildFile(json, concatBytes(data, new Uint8Array([5]))));
    expect(tk.readSafetensorsHeader(p).tensors.get('t')!.dtype).toBe(dtype);
    const e = thrown(() => tk.loadSafetensors(p));
    expect(e.message).toContain(p);
    expect(e.message).toContain(`dtype ${dtype} is not supported`);
    expect(e.message).toContain('"t"');
    const ok = tk.loadSafetensors(p, { names: ['ok'] });
    expect([...ok.ok!.toArray()]).toEqual([5]);
    disposeAll(ok);
  });

  it('reads sub-byte dtypes in the header (F4: two per byte) and rejects an odd count', () => {
    const good = write('f4.safetensors', buildFile(one('F4', [4], new Uint8Array(2)), new Uint8Array(2)));
    expect(tk.readSafetensorsHeader(good).tensors.get('t')!.dtype).toBe('F4');
    expect(thrown(() => tk.loadSafetensors(good)).message).toContain('dtype F4 is not supported');
    const odd = write('f4-odd.safetensors', buildFile(JSON.stringify({ t: { dtype: 'F4', shape: [3], data_offsets: [0, 2] } }), new Uint8Array(2)));
    expect(thrown(() => tk.readSafetensorsHeader(odd)).message).toMatch(/not a whole number of bytes/);
  });

  it('rejects unknown names and bad options, naming the file', () => {
    const data = f32le([1]);
    const p = write('opts.safetensors', buildFile(one('F32', [1], data), data));
    const e = thrown(() => tk.loadSafetensors(p, { names: ['t', 'missing'] }));
    expect(e.message).toContain(p);
    expect(e.message).toContain('"missing"');
    expect(thrown(() => tk.loadSafetensors(p, { dtype: 'i32' as 'f32' })).message).toContain(p);
    expect(thrown(() => tk.loadSafetensors(p, { names: [1 as unknown as string] })).message).toContain(p);
    const dup = tk.loadSafetensors(p, { names: ['t', 't'] });
    expect(Object.keys(dup)).toEqual(['t']);
    disposeAll(dup);
  });

  it('rejects tensors with more dimensions than the engine supports', () => {
    const shape = new Array(17).fill(1);
    const p = write('rank17.safetensors', buildFile(one('F32', shape, f32le([1])), f32le([1])));
    expect(tk.readSafetensorsHeader(p).tensors.get('t')!.shape).toEqual(shape);
    const e = thrown(() => tk.loadSafetensors(p));
    expect(e.message).toContain(p);
    expect(e.message).toMatch(/17 dimensions/);
  });
});

// ---------------------------------------------------------------- failed saves

describe('saveSafetensors failures leave existing files untouched', () => {
  function existing(name: string): { p: string; before: Buffer } {
    const p = file(name);
    const t = tk.tensor([1, 2, 3], [3]);
    tk.saveSafetensors(p, { keep: t }, { v: '1' });
    t.dispose();
    return { p, before: fs.readFileSync(p) };
  }

  it('a disposed tensor', () => {
    const { p, before } = existing('keep-disposed.safetensors');
    const a = tk.tensor([9], [1]);
    const b = tk.tensor([8], [1]);
    b.dispose();
    const e = thrown(() => tk.saveSafetensors(p, { a, b }));
    expect(e).toBeInstanceOf(tk.SafetensorsError);
    expect(e.message).toContain(p);
    expect(e.message).toContain('"b"');
    expect(e.message).toMatch(/disposed/);
    expect(Buffer.compare(fs.readFileSync(p), before)).toBe(0);
    expect(tmpLeftovers()).toEqual([]);
    a.dispose();
  });

  it('a directory that does not exist', () => {
    const p = path.join(dir, 'no', 'such', 'dir', 'x.safetensors');
    const t = tk.tensor([1], [1]);
    const e = thrown(() => tk.saveSafetensors(p, { t }));
    expect(e.message).toContain(p);
    expect(fs.existsSync(path.join(dir, 'no'))).toBe(false);
    t.dispose();
  });

  it('a target that is a directory (the rename fails after the data is written)', () => {
    const p = file('a-directory.safetensors');
    fs.mkdirSync(p);
    fs.writeFileSync(path.join(p, 'inside'), 'x');
    const t = tk.tensor([1], [1]);
    const e = thrown(() => tk.saveSafetensors(p, { t }));
    expect(e.message).toContain(p);
    expect(fs.readdirSync(p)).toEqual(['inside']);
    expect(tmpLeftovers()).toEqual([]);
    t.dispose();
  });

  it.each([
    ['a non-tensor value', () => ({ t: [1, 2, 3] as unknown as tk.Tensor }), undefined, /not a Tensor/],
    ['the reserved name __metadata__', () => ({ __metadata__: tk.tensor([1], [1]) }), undefined, /reserved/],
    ['a non-string metadata value', () => ({ t: tk.tensor([1], [1]) }), { n: 1 as unknown as string }, /metadata value for key "n"/],
    ['a lone surrogate in a name', () => ({ ['bad\ud800']: tk.tensor([1], [1]) }), undefined, /not valid Unicode/],
    ['tensors that are not an object', () => null as unknown as Record<string, tk.Tensor>, undefined, /must be an object/],
  ])('%s', (_what, make, metadata, re) => {
    const { p, before } = existing(`keep-${_what.replace(/\W/g, '-')}.safetensors`);
    const e = thrown(() => tk.saveSafetensors(p, make(), metadata));
    expect(e.message).toContain(p);
    expect(e.message).toMatch(re);
    expect(Buffer.compare(fs.readFileSync(p), before)).toBe(0);
    expect(tmpLeftovers()).toEqual([]);
  });

  it('a successful save replaces the file atomically and leaves no temporary file', () => {
    const { p } = existing('replace.safetensors');
    const t = tk.tensor([4, 5], [2]);
    tk.saveSafetensors(p, { t });
    const out = tk.loadSafetensors(p);
    expect(Object.keys(out)).toEqual(['t']);
    expect([...out.t!.toArray()]).toEqual([4, 5]);
    expect(tmpLeftovers()).toEqual([]);
    disposeAll(out);
    t.dispose();
  });
});

describe('read errors name the file', () => {
  it('missing file, directory, empty path', () => {
    const missing = file('does-not-exist.safetensors');
    for (const fn of [() => tk.loadSafetensors(missing), () => tk.readSafetensorsHeader(missing)]) {
      const e = thrown(fn);
      expect(e).toBeInstanceOf(tk.SafetensorsError);
      expect(e.message).toContain(missing);
      expect((e as tk.SafetensorsError).path).toBe(missing);
    }
    expect(thrown(() => tk.loadSafetensors(dir)).message).toContain(dir);
    expect(thrown(() => tk.loadSafetensors('')).message).toMatch(/path/);
  });
});
