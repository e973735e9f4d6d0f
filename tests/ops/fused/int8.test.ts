// quantizeInt8 / dequantizeInt8 / int8Linear.
//
// quantizeInt8 is checked EXACTLY against the rule of ./reference.ts: per row
// (axis 0) or per column (axis 1), scale = float32(amax / 127) and q =
// round-half-to-even of the exact quotient w * 127 / amax (the kernel's
// nearbyint in double), with ties planted on purpose, groups whose amax is
// tiny (a float32 inverse 127 / amax would overflow there), and all-zero
// groups (scale 0, q 0, no NaN).
//
// int8Linear: relative norm error <= 1.5e-2 against the exact product with the
// unquantized weight on Gaussian data (weights and activations both quantized);
// with planted outliers (a few input columns x50), threshold 6 keeps the error
// near the Gaussian level while threshold 0 shows the degradation; bias; the
// backward in x through the dequantized weight and the bias gradient against
// float64 references; on every ISA (AVX-512 runs the VNNI kernel where the CPU
// has it, the other ISAs the portable int32 dot products).
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../../reference.js';
import type { Arr } from '../../reference.js';
import { ctxOf, expectClose, f64, ISAS, onIsa, relErr, Rng, T, TOL } from '../../helpers.js';
import { dequantizeInt8, quantizeInt8 } from './reference.js';

function expectExact(got: ArrayLike<number>, want: ArrayLike<number>, ctx: string): void {
  expect(got.length, `${ctx}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) expect.fail(`${ctx}: element ${i} is ${got[i]}, the rule gives ${want[i]}`);
}

/** A [R, C] matrix with the hard cases planted: exact ties, an all-zero row, a tiny row, a single nonzero. */
function hardMatrix(rng: Rng, R: number, C: number): Arr {
  const w = rng.arr([R, C]);
  // row 0: amax = 127 * 2^-3, so w * 127 / amax = w * 8: multiples of 1/16 are exact ties at k + 0.5
  for (let c = 0; c < C; c++) w.data[c] = (rng.int(-253, 254) / 2 + (rng.next() < 0.5 ? 0.25 : 0)) / 8;
  w.data[0] = 127 / 8;
  // row 1: all zero
  for (let c = 0; c < C; c++) w.data[C + c] = 0;
  // row 2: tiny values (amax ~1e-39, subnormal; 127 / amax overflows float32)
  for (let c = 0; c < C; c++) w.data[2 * C + c] = Math.fround(rng.uniform(-1, 1) * 1e-39);
  // row 3: one nonzero (negative) entry
  for (let c = 0; c < C; c++) w.data[3 * C + c] = 0;
  w.data[3 * C + (C >> 1)] = -3.5;
  // row 4: amax = 3 * 127 * 2^-5 (127 / amax inexact) with ties w = (2k + 1) * 3 * 2^-6
  for (let c = 0; c < C; c++) w.data[4 * C + c] = ((2 * rng.int(-63, 63) + 1) * 3) / 64;
  w.data[4 * C] = (3 * 127) / 32;
  return w;
}

describe('quantizeInt8', () => {
  for (const axis of [0, 1])
    it(`axis ${axis}: exact q and scale by the rule (round half to even), ties, tiny and zero groups`, () => {
      for (const [R, C] of [[7, 13], [37, 131], [5, 1]] as Array<[number, number]>) {
        const rng = new Rng();
        const w = R >= 5 && C > 4 ? hardMatrix(rng, R, C) : rng.arr([R, C], 3);
        const ctx = ctxOf('quantizeInt8', rng, tk.backend().cpu.isa, `[${R}, ${C}] axis=${axis}`);
        tk.tidy(() => {
          const { q, scale } = tk.ops.quantizeInt8(T(w), { axis });
          expect(q.dtype, ctx).toBe('i8');
          expect([...q.shape], ctx).toEqual([R, C]);
          expect([...scale.shape], ctx).toEqual([axis === 0 ? R : C]);
          const want = quantizeInt8(w, axis);
          expectExact(q.toArray(), want.q, `${ctx}: q`);
          expectExact(scale.toArray(), want.scale, `${ctx}: scale`);
          const qa = q.toArray();
          for (let i = 0; i < qa.length; i++) expect(Math.abs(qa[i]!), `${ctx}: |q| <= 127`).toBeLessThanOrEqual(127);
        });
      }
    });

  it('the group maximum maps to +-127 exactly, and dequantization is within half a step', () => {
    const rng = new Rng();
    const R = 19, C = 67;
    const w = rng.arr([R, C], 5);
    const ctx = ctxOf('quantizeInt8 range', rng, tk.backend().cpu.isa);
    tk.tidy(() => {
      const { q, scale } = tk.ops.quantizeInt8(T(w));
      const qa = q.toArray(), sa = scale.toArray();
      const deq = tk.ops.dequantizeInt8(q, scale).toArray();
      for (let r = 0; r < R; r++) {
        let amax = 0, at = 0;
        for (let c = 0; c < C; c++)
          if (Math.abs(w.data[r * C + c]!) > amax) {
            amax = Math.abs(w.data[r * C + c]!);
            at = c;
          }
        expect(Math.abs(qa[r * C + at]!), `${ctx}: row ${r} maximum`).toBe(127);
        for (let c = 0; c < C; c++) {
          const i = r * C + c;
          expect(deq[i], `${ctx}: dequantize is q * scale`).toBe(Math.fround(qa[i]! * sa[r]!));
          expect(Math.abs(deq[i]! - w.data[i]!), `${ctx}: row ${r} col ${c} error`).toBeLessThanOrEqual(0.5 * sa[r]! * (1 + 1e-6) + 1e-7 * amax);
        }
      }
    });
  });

  it('all-zero input: scales 0, q 0, dequantized zeros, never NaN', () => {
    tk.tidy(() => {
      for (const axis of [0, 1]) {
        const { q, scale } = tk.ops.quantizeInt8(tk.zeros([4, 6]), { axis });
        expect([...q.toArray()]).toEqual(new Array(24).fill(0));
        expect([...scale.toArray()]).toEqual(new Array(axis === 0 ? 4 : 6).fill(0));
      }
      const { q, scale } = tk.ops.quantizeInt8(tk.zeros([4, 6]));
      const d = tk.ops.dequantizeInt8(q, scale).toArray();
      for (const v of d) expect(Object.is(v, 0)).toBe(true);
    });
  });

  it('rejects non-finite values, non-2-d input and a bad axis', () => {
    tk.tidy(() => {
      expect(() => tk.ops.quantizeInt8(tk.tensor(Float32Array.from([1, NaN, 2, 3]), [2, 2]))).toThrow(/non-finite/);
      expect(() => tk.ops.quantizeInt8(tk.tensor(Float32Array.from([1, Infinity, 2, 3]), [2, 2]))).toThrow(/non-finite/);
      expect(() => tk.ops.quantizeInt8(tk.zeros([2, 2, 2]))).toThrow(RangeError);
      expect(() => tk.ops.quantizeInt8(tk.zeros([2, 2]), { axis: 2 })).toThrow();
    });
  });
});

// ---------------------------------------------------------------- int8Linear

/** ||y - x·wᵀ|| / ||x·wᵀ|| for y = int8Linear(x, quantize(w)); x [N, in], w [out, in] */
function int8Error(x: Arr, w: Arr, threshold: number): number {
  return tk.tidy(() => {
    const { q, scale } = tk.ops.quantizeInt8(T(w));
    const y = tk.ops.int8Linear(T(x), q, scale, { threshold });
    return relErr(f64(y), ref.matmul(x, w, false, true).data);
  });
}

describe.each(ISAS)('int8Linear on %s', (isa) => {
  onIsa(isa);

  it('Gaussian data: relative norm error <= 1.5e-2 against the unquantized product; bias; leading dims', () => {
    for (const [lead, inF, outF] of [[[37], 131, 67], [[4, 5], 1031, 45], [[129], 256, 97], [[9], 7, 5]] as Array<[number[], number, number]>) {
      const rng = new Rng();
      const x = rng.arr([...lead, inF]);
      const w = rng.arr([outF, inF], 0.05);
      const bias = rng.arr([outF]);
      const ctx = ctxOf('int8Linear', rng, isa, `x=[${x.shape}] w=[${w.shape}]`);
      tk.tidy(() => {
        const { q, scale } = tk.ops.quantizeInt8(T(w));
        const y = tk.ops.int8Linear(T(x), q, scale, { bias: T(bias) });
        expect([...y.shape], ctx).toEqual([...lead, outF]);
        const exact = ref.matmul(x, w, false, true);
        // the bias adds exactly: take it off and measure the quantization error of the product
        const got = f64(y).map((v, i) => v - bias.data[i % outF]!);
        const err = relErr(got, exact.data);
        expect(err, `${ctx}: relative norm error ${err.toExponential(2)}`).toBeLessThanOrEqual(1.5e-2);
        expect(err, `${ctx}: an int8 product is not exact (the test would be vacuous)`).toBeGreaterThan(1e-4);
      });
    }
  });

  it('the int8 product itself is exact: activations on the int8 grid give x·(q·scale)ᵀ to float32 rounding', () => {
    // rows of x that are (integer in [-127, 127]) * s quantize without error, so the
    // result must equal the float64 product with the dequantized weight
    const rng = new Rng();
    const N = 23, inF = 301, outF = 37;
    const x: Arr = { shape: [N, inF], data: new Float64Array(N * inF) };
    for (let n = 0; n < N; n++) {
      const s = 2 ** rng.int(-6, 3);
      for (let c = 0; c < inF; c++) x.data[n * inF + c] = rng.int(-127, 128) * s;
      x.data[n * inF + rng.int(0, inF)] = 127 * s;  // the row maximum: scale exactly s
    }
    const w = rng.arr([outF, inF]);
    const ctx = ctxOf('int8Linear grid', rng, isa);
    tk.tidy(() => {
      const { q, scale } = tk.ops.quantizeInt8(T(w));
      const wd = dequantizeInt8(q.toArray(), scale.toArray(), outF, inF);
      const y = tk.ops.int8Linear(T(x), q, scale);
      expectClose(f64(y), ref.matmul(x, wd, false, true), TOL.matmul, ctx);
    });
  });

  it('planted outliers (3 input columns x50): threshold 6 keeps the Gaussian error level, threshold 0 degrades', () => {
    const rng = new Rng();
    const N = 67, inF = 257, outF = 61;
    const x = rng.arr([N, inF]);
    const cols = [5, 100, 200];
    for (let n = 0; n < N; n++) for (const c of cols) x.data[n * inF + c] = Math.fround(x.data[n * inF + c]! * 50);
    // Gaussian entries stay below 6 here (the test needs the outlier columns to be the only ones above it)
    for (let i = 0; i < x.data.length; i++) if (!cols.includes(i % inF) && Math.abs(x.data[i]!) > 5.5) x.data[i] = Math.sign(x.data[i]!) * 5.5;
    const w = rng.arr([outF, inF], 0.05);
    const clean: Arr = { shape: x.shape, data: x.data.map((v, i) => (cols.includes(i % inF) ? Math.fround(v / 50) : v)) };
    const ctx = ctxOf('int8Linear outliers', rng, isa);
    const eGauss = int8Error(clean, w, 0);
    const e6 = int8Error(x, w, 6);
    const e0 = int8Error(x, w, 0);
    const msg = `${ctx}: Gaussian ${eGauss.toExponential(2)}, outliers with threshold 6 ${e6.toExponential(2)}, threshold 0 ${e0.toExponential(2)}`;
    expect(eGauss, msg).toBeLessThanOrEqual(1.5e-2);
    expect(e6, msg).toBeLessThanOrEqual(1.5e-2);           // near the Gaussian level
    expect(e6, msg).toBeLessThanOrEqual(2 * eGauss);
    expect(e0, msg).toBeGreaterThanOrEqual(3 * e6);        // the degradation the threshold prevents
    expect(e0, msg).toBeGreaterThan(1.5e-2);
  });

  it('backward: x through the dequantized weight, bias as the sum over rows', () => {
    for (const lead of [[13], [2, 5]]) {
      const rng = new Rng();
      const inF = 67, outF = 29;
      const x = rng.arr([...lead, inF]);
      const w = rng.arr([outF, inF]);
      const bias = rng.arr([outF]);
      const ctx = ctxOf('int8Linear backward', rng, isa, `x=[${x.shape}]`);
      tk.tidy(() => {
        const { q, scale } = tk.ops.quantizeInt8(T(w));
        const xt = T(x, true), bt = T(bias, true);
        const y = tk.ops.int8Linear(xt, q, scale, { bias: bt });
        const R = rng.arr([...y.shape]);
        y.backward(T(R));
        const wd = dequantizeInt8(q.toArray(), scale.toArray(), outF, inF);
        expectClose(f64(xt.grad!), ref.matmul(R, wd), TOL.matmul, `${ctx}: grad x`);
        expectClose(f64(bt.grad!), ref.reduce('sum', { shape: [R.data.length / outF, outF], data: R.data }, 0), TOL.reduction, `${ctx}: grad bias`);
      });
    }
  });

  it('rows of x that are zero, subnormal, or hold NaN / infinity', () => {
    const rng = new Rng();
    const inF = 257, outF = 29;
    const w = rng.arr([outF, inF]);
    const bias = rng.arr([outF]);
    const rows: number[][] = [
      Array.from(rng.randn(inF)),                                 // 0: ordinary
      new Array(inF).fill(0),                                     // 1: all zero -> exactly the bias
      Array.from(rng.randn(inF), (v) => Math.fround(v * 1e-39)),  // 2: subnormal (127 / amax overflows f32)
      Array.from(rng.randn(inF)),                                 // 3: a NaN -> a NaN row
      Array.from(rng.randn(inF)),                                 // 4: an infinity -> a non-finite row
      Array.from(rng.randn(inF)),                                 // 5: ordinary again
    ];
    rows[3]![5] = NaN;
    rows[4]![9] = Infinity;
    const x: Arr = { shape: [rows.length, inF], data: Float64Array.from(rows.flat()) };
    const ctx = ctxOf('int8Linear edge rows', rng, isa);
    tk.tidy(() => {
      const { q, scale } = tk.ops.quantizeInt8(T(w));
      // without a bias (a bias would swallow the subnormal row's products)
      const y = f64(tk.ops.int8Linear(T(x), q, scale));
      const yb = f64(tk.ops.int8Linear(T(x), q, scale, { bias: T(bias) }));
      const wd = dequantizeInt8(q.toArray(), scale.toArray(), outF, inF);
      const row = (r: number) => ({ shape: [1, inF], data: x.data.slice(r * inF, (r + 1) * inF) });
      // rows are independent: the ordinary rows come out bit for bit as without the odd rows
      const alone = f64(tk.ops.int8Linear(T({ shape: [2, inF], data: Float64Array.from([...row(0).data, ...row(5).data]) }), q, scale));
      for (const [k, r] of [[0, 0], [1, 5]] as const)
        for (let j = 0; j < outF; j++) expect(y[r * outF + j], `${ctx}: row ${r} output ${j}`).toBe(alone[k * outF + j]);
      // the subnormal row quantizes like any other: activation error only (~0.7% here)
      const want = ref.matmul(row(2), wd, false, true).data;
      expect(relErr(y.slice(2 * outF, 3 * outF), want), `${ctx}: subnormal row`).toBeLessThanOrEqual(3e-2);
      for (let j = 0; j < outF; j++) {
        expect(Object.is(y[outF + j], 0), `${ctx}: zero row gives zeros`).toBe(true);
        expect(yb[outF + j], `${ctx}: zero row gives the bias`).toBe(Math.fround(bias.data[j]!));
      }
      for (let j = 0; j < outF; j++) {
        expect(Number.isNaN(y[3 * outF + j]) && Number.isNaN(yb[3 * outF + j]), `${ctx}: NaN row`).toBe(true);
        expect(Number.isFinite(y[4 * outF + j]) || Number.isFinite(yb[4 * outF + j]), `${ctx}: infinite row`).toBe(false);
      }
    });
  });

  it('q and scale never require grad, and a bias-free layer backpropagates to x only', () => {
    const rng = new Rng();
    tk.tidy(() => {
      const { q, scale } = tk.ops.quantizeInt8(T(rng.arr([5, 7])));
      const xt = T(rng.arr([3, 7]), true);
      const y = tk.ops.int8Linear(xt, q, scale);
      y.backward(tk.ones([3, 5]));
      expect(xt.grad, ctxOf('int8Linear', rng, isa)).not.toBeNull();
      expect(q.grad).toBeNull();
      expect(scale.grad).toBeNull();
    });
  });
});

it('int8Linear rejects bad shapes and dtypes', () => {
  tk.tidy(() => {
    const { q, scale } = tk.ops.quantizeInt8(tk.randn([4, 6]));
    expect(() => tk.ops.int8Linear(tk.randn([3, 5]), q, scale)).toThrow(RangeError);
    expect(() => tk.ops.int8Linear(tk.randn([3, 6]), tk.randn([4, 6]), scale)).toThrow(/i8/);
    expect(() => tk.ops.int8Linear(tk.randn([3, 6]), q, tk.randn([3]))).toThrow(RangeError);
    expect(() => tk.ops.int8Linear(tk.randn([3, 6]), q, scale, { bias: tk.randn([5]) })).toThrow(RangeError);
    expect(() => tk.ops.int8Linear(tk.randn([3, 6]), q, scale, { threshold: -1 })).toThrow(RangeError);
  });
});
