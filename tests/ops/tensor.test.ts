// Tensor creation and conversion: tk.tensor in every dtype, toArray types,
// .to('bf16') / .to('f16') rounding (bit-exact against a float64 model of
// round-to-nearest-even, and the 2^-9 / 2^-12 relative bounds), integer casts,
// and tk.rand / tk.randn determinism and statistics.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import { DEFAULT_ISA, DEFAULT_THREADS, expectClose, ISAS, relErr, Rng } from '../helpers.js';

describe('tk.tensor and toArray', () => {
  it('f32: values round to float32 once, from arrays, Float32Array and Float64Array', () => {
    const rng = new Rng();
    const v = Array.from({ length: 33 }, () => rng.normal() * 1e3);
    for (const data of [v, Float64Array.from(v), Float32Array.from(v)]) {
      const t = tk.tensor(data, [3, 11]);
      expect(t.dtype).toBe('f32');
      expect([...t.shape]).toEqual([3, 11]);
      const a = t.toArray();
      expect(a).toBeInstanceOf(Float32Array);
      expect(Array.from(a), `seed=${rng.seed}`).toEqual(v.map(Math.fround));
    }
    expect([...tk.tensor([1, 2, 3]).shape]).toEqual([3]);
    const s = tk.tensor(2.5);
    expect([...s.shape]).toEqual([]);
    expect(s.item()).toBe(2.5);
  });

  it('i32 and i8: exact integers, typed arrays infer the dtype, non-integers and overflow throw', () => {
    const rng = new Rng();
    const vi = rng.ints(13, -2147483648, 2147483647);
    const ti = tk.tensor(Int32Array.from(vi));
    expect(ti.dtype).toBe('i32');
    expect(ti.toArray()).toBeInstanceOf(Int32Array);
    expect(Array.from(ti.toArray()), `seed=${rng.seed}`).toEqual(vi);
    const v8 = rng.ints(13, -128, 128);
    const t8 = tk.tensor(Int8Array.from(v8));
    expect(t8.dtype).toBe('i8');
    expect(t8.toArray()).toBeInstanceOf(Int8Array);
    expect(Array.from(t8.toArray())).toEqual(v8);
    expect(Array.from(tk.tensor(v8, [13], { dtype: 'i8' }).toArray())).toEqual(v8);
    expect(() => tk.tensor([1.5], [1], { dtype: 'i32' })).toThrow(/not a valid i32/);
    expect(() => tk.tensor([128], [1], { dtype: 'i8' })).toThrow(/not a valid i8/);
    expect(() => tk.tensor([2 ** 31], [1], { dtype: 'i32' })).toThrow(/not a valid i32/);
    expect(() => tk.tensor([1, 2, 3], [2])).toThrow(/elements/);
  });

  it('bf16 and f16 tensors hold the round-to-nearest-even values and read back as Float32Array', () => {
    const rng = new Rng();
    const v = Float32Array.from({ length: 1001 }, () => rng.normal() * Math.exp(rng.uniform(-8, 8)));
    const b = tk.tensor(v, [1001], { dtype: 'bf16' });
    const h = tk.tensor(v, [1001], { dtype: 'f16' });
    expect(b.dtype).toBe('bf16');
    expect(h.dtype).toBe('f16');
    expect(b.toArray()).toBeInstanceOf(Float32Array);
    expect(Array.from(b.toArray()), `seed=${rng.seed}`).toEqual(Array.from(v, ref.roundBf16));
    expect(Array.from(h.toArray()), `seed=${rng.seed}`).toEqual(Array.from(v, ref.roundF16));
  });
});

// A JS number becomes bf16 / f16 through float32 with round-to-odd (native/napi/ops_tensor.cc),
// so the result is the correctly rounded double: a value just above a bf16 halfway point must
// not land on the halfway point in float32 and then tie to even the wrong way.
it('bf16 / f16 from JS numbers round once, to nearest', () => {
  expect(tk.tensor([1 + 2 ** -8 + 2 ** -30], [1], { dtype: 'bf16' }).toArray()[0]).toBe(1 + 2 ** -7);
  expect(tk.tensor([-(1 + 2 ** -8 + 2 ** -30)], [1], { dtype: 'bf16' }).toArray()[0]).toBe(-(1 + 2 ** -7));
  expect(tk.tensor([1 + 2 ** -11 + 2 ** -30], [1], { dtype: 'f16' }).toArray()[0]).toBe(1 + 2 ** -10);
  expect(tk.tensor([1 + 2 ** -8], [1], { dtype: 'bf16' }).toArray()[0]).toBe(1);  // an exact tie still goes to even
  expect(tk.full([2], 1 + 2 ** -8 + 2 ** -30, { dtype: 'bf16' }).toArray()[0]).toBe(1 + 2 ** -7);
});

describe('conversions with .to()', () => {
  // bf16 keeps 8 significant bits: rounding to nearest costs at most the unit roundoff 2^-8
  // per element (f16: 11 bits, 2^-11); over random data the norm error is ~2^-8 / sqrt(3)
  it(".to('bf16'): bit-exact round to nearest even, relative error <= 2^-8 per element and in norm", () => {
    const rng = new Rng();
    // magnitudes over the whole float32 range, including bf16 subnormals
    const v = Float32Array.from({ length: 4099 }, () => (rng.next() < 0.5 ? -1 : 1) * Math.exp(rng.uniform(-90, 88)));
    const x = tk.tensor(v);
    const y = x.to('bf16');
    expect(y.dtype).toBe('bf16');
    const back = y.to('f32');
    expect(back.dtype).toBe('f32');
    const a = back.toArray();
    const ctx = `seed=${rng.seed}`;
    expect(Array.from(a), ctx).toEqual(Array.from(v, ref.roundBf16));
    for (let i = 0; i < v.length; i++)
      if (Math.abs(v[i]!) >= 2 ** -126) expect(Math.abs(a[i]! - v[i]!) / Math.abs(v[i]!), `${ctx} x=${v[i]}`).toBeLessThanOrEqual(2 ** -8);
    const normal = rng.randn(4099);
    const err = relErr(tk.tensor(Float32Array.from(normal)).to('bf16').toArray(), normal);
    // measured 0.71 to 0.77 of 2^-8 / sqrt(3) over many seeds
    expect(err, ctx).toBeLessThan(2 ** -8 / Math.sqrt(3));
    expect(err, ctx).toBeGreaterThan(2 ** -8 / Math.sqrt(3) / 2);  // it did round, to 8 bits
  });

  it(".to('f16'): bit-exact round to nearest even with subnormals and overflow to inf", () => {
    const rng = new Rng();
    const v = Float32Array.from({ length: 4099 }, () => (rng.next() < 0.5 ? -1 : 1) * Math.exp(rng.uniform(-20, 11.2)));
    const a = tk.tensor(v).to('f16').toArray();
    const ctx = `seed=${rng.seed}`;
    expect(Array.from(a), ctx).toEqual(Array.from(v, ref.roundF16));
    for (let i = 0; i < v.length; i++)
      if (Math.abs(v[i]!) >= 2 ** -14 && Math.abs(v[i]!) <= 65504) expect(Math.abs(a[i]! - v[i]!) / Math.abs(v[i]!), `${ctx} x=${v[i]}`).toBeLessThanOrEqual(2 ** -11);
    // the edges: largest finite, the halfway point to inf, the smallest subnormal, ties to even
    const edges = [65504, 65519, 65520, 1e6, 2 ** -24, 2 ** -25, 1.5 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -0, NaN];
    const e = tk.tensor(edges).to('f16').toArray();
    expect(Array.from(e.subarray(0, 10))).toEqual([65504, 65504, Infinity, Infinity, 2 ** -24, 0, 2 ** -24, 1, 1 + 4 * 2 ** -11, -0]);
    expect(e[10]).toBeNaN();
  });

  it('bf16 edges: ties to even, overflow to inf, NaN stays NaN', () => {
    const e = tk.tensor([1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, -Infinity, NaN]).to('bf16').toArray();
    expect(Array.from(e.subarray(0, 4))).toEqual([1, 1 + 4 * 2 ** -8, Infinity, -Infinity]);
    expect(e[4]).toBeNaN();
  });

  it('float to integer casts truncate toward zero and saturate; integer to float is exact', () => {
    const t = tk.tensor([-2.7, -0.5, 0.5, 2.7, 1e10, -1e10, 300, -300, NaN]);
    const i32 = t.to('i32');
    expect(i32.dtype).toBe('i32');
    const a = Array.from(i32.toArray());
    expect(a.slice(0, 4)).toEqual([-2, 0, 0, 2]);
    expect(a[4]).toBeGreaterThanOrEqual(2147483520);
    expect(a[5]).toBe(-2147483648);
    expect(a[8]).toBe(0);
    expect(Array.from(t.to('i8').toArray())).toEqual([-2, 0, 0, 2, 127, -128, 127, -128, 0]);
    const big = [16777216, -16777216, 123456789];
    expect(Array.from(tk.tensor(Int32Array.from(big)).to('f32').toArray())).toEqual(big.map(Math.fround));
    expect(Array.from(tk.tensor(Int8Array.from([-128, 127])).to('i32').toArray())).toEqual([-128, 127]);
  });

  it('.to() of a float dtype is differentiable: the gradient comes back as f32', () => {
    const x = tk.tensor([1, 2, 3], [3], { requiresGrad: true });
    x.to('bf16').to('f32').backward(tk.tensor([0.5, -1, 2]));
    expect(x.grad!.dtype).toBe('f32');
    expect(Array.from(x.grad!.toArray())).toEqual([0.5, -1, 2]);
  });
});

describe('tk.rand and tk.randn', () => {
  it('the same seed gives the same values, on every ISA and thread count; different seeds differ', () => {
    const seed = new Rng().int(0, 2 ** 31);
    try {
      const runs: number[][] = [];
      for (const isa of ISAS)
        for (const threads of [1, 2]) {
          tk.setIsa(isa);
          tk.setThreads(threads);
          runs.push([...Array.from(tk.rand([70001], { seed }).toArray()), ...Array.from(tk.randn([70001], { seed }).toArray())]);
        }
      for (const r of runs) expect(r, `seed=${seed}`).toEqual(runs[0]);
      expect(Array.from(tk.randn([64], { seed: seed + 1 }).toArray())).not.toEqual(runs[0]!.slice(70001, 70001 + 64));
    } finally {
      tk.setIsa(DEFAULT_ISA);
      tk.setThreads(DEFAULT_THREADS);
    }
  });

  it('tk.manualSeed makes calls without a seed reproducible', () => {
    const seed = new Rng().int(0, 2 ** 31);
    tk.manualSeed(seed);
    const a = [tk.randn([33]).toArray(), tk.rand([7]).toArray()].map((t) => Array.from(t));
    tk.manualSeed(seed);
    const b = [tk.randn([33]).toArray(), tk.rand([7]).toArray()].map((t) => Array.from(t));
    expect(b, `seed=${seed}`).toEqual(a);
    expect(a[0]).not.toEqual(Array.from(tk.randn([33]).toArray()));
  });

  it('rand is uniform on [0, 1) and randn standard normal (moments within 5 standard errors)', () => {
    const seed = new Rng().int(0, 2 ** 31);
    const n = 200_003;
    const u = tk.rand([n], { seed }).toArray();
    const z = tk.randn([n], { seed }).toArray();
    let su = 0, suu = 0, sz = 0, szz = 0, sz4 = 0, lo = 0;
    for (let i = 0; i < n; i++) {
      expect(u[i]! >= 0 && u[i]! < 1).toBe(true);
      su += u[i]!;
      suu += u[i]! * u[i]!;
      if (u[i]! < 0.1) lo++;
      sz += z[i]!;
      szz += z[i]! ** 2;
      sz4 += z[i]! ** 4;
    }
    const ctx = `seed=${seed}`;
    expect(Math.abs(su / n - 0.5), ctx).toBeLessThan(5 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(suu / n - 1 / 3), ctx).toBeLessThan(5 * Math.sqrt(4 / 45 / n));
    expect(Math.abs(lo / n - 0.1), ctx).toBeLessThan(5 * Math.sqrt(0.09 / n));
    expect(Math.abs(sz / n), ctx).toBeLessThan(5 / Math.sqrt(n));
    expect(Math.abs(szz / n - 1), ctx).toBeLessThan(5 * Math.sqrt(2 / n));
    expect(Math.abs(sz4 / n - 3), ctx).toBeLessThan(5 * Math.sqrt(96 / n));
    // rand / randn in other dtypes are the f32 values rounded once
    expectClose(tk.randn([1001], { seed, dtype: 'bf16' }).toArray(), Array.from(tk.randn([1001], { seed }).toArray(), ref.roundBf16), 0, ctx);
  });
});
