// tk.ops.attention (flash-style, f32): forward against the float64 reference
// (relative norm error <= 1e-5, inside the issue's 1e-4; measured <= 1.4e-6) for
// causal and not, S > T (prefix keys: query i sees keys j <= i + (S - T)),
// T > S under causal (early queries see nothing), grouped-query heads,
// kvLengths (0 gives zeros, never NaN), custom scales, D from 1 to 256 (97,
// 128, 256 included), sizes off the 16-query block and the 64-key tile, on
// every ISA. Backward (dq, dk, dv) by central differences of the float64
// reference through a random projection, through both schedules of the
// kernel (one pass per kv head when B*Hkv >= 2 threads, two passes otherwise).
// Then the flash-attention rule in reduced precision (see the comment there).
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import type { Arr } from '../../reference.js';
import { checkGrad, ctxOf, DEFAULT_THREADS, expectClose, f64, ISAS, onIsa, relErr, Rng, T, TOL } from '../../helpers.js';
import { attention, keyLimit, type AttentionRefOptions } from './reference.js';

/**
 * Forward, relative norm error against float64: the issue's bound for f32 is 1e-4; measured
 * errors are 1e-7 to 1.4e-6 (the largest with scores of +-200), so 1e-5 keeps ~7x headroom
 * and catches what 1e-4 would let through (a sloppy exp, a rescale rounded once too often).
 */
const FWD_TOL = 1e-5;
/** Backward against central differences of the float64 reference: measured 5e-7 at most. */
const GRAD_TOL = TOL.grad;

interface Case {
  B: number;
  H: number;
  Hkv: number;
  T: number;
  S: number;
  D: number;
  causal?: boolean;
  kv?: number[];
  scale?: number;
}

const FWD: Case[] = [
  { B: 2, H: 4, Hkv: 2, T: 13, S: 13, D: 7, causal: true },
  { B: 2, H: 4, Hkv: 4, T: 13, S: 13, D: 7 },
  { B: 1, H: 3, Hkv: 1, T: 17, S: 45, D: 97, causal: true },           // prefix keys, 3 query heads per kv head
  { B: 1, H: 3, Hkv: 1, T: 17, S: 45, D: 97 },
  { B: 2, H: 2, Hkv: 1, T: 33, S: 131, D: 128, kv: [131, 0] },          // an empty batch: zeros
  { B: 3, H: 2, Hkv: 2, T: 37, S: 70, D: 64, causal: true, kv: [70, 40, 1] },  // kvLengths and the causal offset together
  { B: 1, H: 2, Hkv: 2, T: 19, S: 19, D: 1, causal: true },
  { B: 1, H: 1, Hkv: 1, T: 21, S: 67, D: 256, scale: 0.02 },
  { B: 1, H: 4, Hkv: 2, T: 65, S: 65, D: 31, causal: true, scale: -0.3 },  // a negative scale
  { B: 2, H: 1, Hkv: 1, T: 9, S: 5, D: 3, causal: true },               // T > S: queries 0..3 see no key
  { B: 1, H: 1, Hkv: 1, T: 1, S: 1, D: 5 },
  { B: 1, H: 2, Hkv: 1, T: 1, S: 200, D: 16, causal: true, kv: [150] },  // one query against a cache
];

// backward by finite differences: small shapes through both kernel schedules (B*Hkv
// = 1 always takes two passes; 16 takes the one-pass schedule up to 8 threads)
const GRAD: Case[] = [
  { B: 2, H: 4, Hkv: 2, T: 5, S: 8, D: 3, causal: true, kv: [8, 3] },
  { B: 1, H: 2, Hkv: 1, T: 6, S: 6, D: 5, scale: 0.7 },
  { B: 2, H: 2, Hkv: 2, T: 4, S: 9, D: 2, kv: [0, 9] },
  { B: 1, H: 1, Hkv: 1, T: 17, S: 70, D: 4, causal: true },   // crosses the query block and the key tile
  { B: 4, H: 8, Hkv: 4, T: 3, S: 5, D: 2, causal: true },
];

const label = (c: Case) =>
  `B=${c.B} H=${c.H} Hkv=${c.Hkv} T=${c.T} S=${c.S} D=${c.D} causal=${!!c.causal}${c.kv ? ` kvLengths=[${c.kv}]` : ''}${c.scale !== undefined ? ` scale=${c.scale}` : ''}`;

function make(rng: Rng, c: Case, scale = 1): Arr[] {
  return [rng.arr([c.B, c.H, c.T, c.D], scale), rng.arr([c.B, c.Hkv, c.S, c.D], scale), rng.arr([c.B, c.Hkv, c.S, c.D])];
}

function ours(c: Case, [q, k, v]: tk.Tensor[]): tk.Tensor {
  return tk.ops.attention(q!, k!, v!, {
    causal: c.causal,
    scale: c.scale,
    kvLengths: c.kv ? tk.tensor(Int32Array.from(c.kv), [c.B], { dtype: 'i32' }) : undefined,
  });
}

const refOpts = (c: Case): AttentionRefOptions => ({ causal: c.causal, scale: c.scale, kvLengths: c.kv });

/** Query rows (b, h, t) that see no key: they must be exactly zero. */
function emptyRows(c: Case): number[] {
  const rows: number[] = [];
  for (let b = 0; b < c.B; b++)
    for (let h = 0; h < c.H; h++)
      for (let t = 0; t < c.T; t++) if (keyLimit(b, t, c.T, c.S, refOpts(c)) === 0) rows.push((b * c.H + h) * c.T + t);
  return rows;
}

describe.each(ISAS)('attention on %s', (isa) => {
  onIsa(isa);

  it('forward matches the float64 reference (relative norm error <= 1e-5)', () => {
    for (const c of FWD) {
      const rng = new Rng();
      const xs = make(rng, c, 1.5);  // scores of a few units: a peaked softmax
      const ctx = ctxOf('attention', rng, isa, label(c));
      tk.tidy(() => {
        const y = ours(c, xs.map((a) => T(a)));
        expect([...y.shape], ctx).toEqual([c.B, c.H, c.T, c.D]);
        const got = f64(y);
        expectClose(got, attention(xs[0]!, xs[1]!, xs[2]!, refOpts(c)), FWD_TOL, ctx);
        for (const r of emptyRows(c))
          for (let d = 0; d < c.D; d++) expect(Object.is(got[r * c.D + d], 0), `${ctx}: row ${r} sees no key: zeros`).toBe(true);
      });
    }
  });

  it('large scores (a nearly one-hot softmax) stay accurate and finite', () => {
    const c: Case = { B: 1, H: 2, Hkv: 1, T: 29, S: 77, D: 33, causal: true };
    const rng = new Rng();
    const xs = make(rng, c, 6);  // scores ~ +-200
    const ctx = ctxOf('attention large scores', rng, isa);
    // exp(s - max) carries the rounding of s (|s| u, ~1e-5 at |s| = 200) into every weight:
    // the problem's own conditioning, so this case gets the issue's 1e-4 (measured <= 2e-6)
    tk.tidy(() => expectClose(f64(ours(c, xs.map((a) => T(a)))), attention(xs[0]!, xs[1]!, xs[2]!, refOpts(c)), 1e-4, ctx));
  });

  it('dq, dk and dv match finite differences of the float64 reference', () => {
    for (const c of GRAD) {
      const rng = new Rng();
      checkGrad({
        ctx: ctxOf('attention', rng, isa, label(c)),
        rng,
        inputs: make(rng, c),
        ours: (ts) => ours(c, ts),
        ref: ([q, k, v]) => attention(q!, k!, v!, refOpts(c)),
        fwdTol: FWD_TOL,
        tol: GRAD_TOL,
      });
    }
  });

  it('rows that see no key: zero output and zero gradients, never NaN', () => {
    const c: Case = { B: 3, H: 2, Hkv: 1, T: 7, S: 11, D: 5, causal: true, kv: [0, 11, 0] };
    const rng = new Rng();
    const xs = make(rng, c);
    const ctx = ctxOf('attention empty rows', rng, isa);
    tk.tidy(() => {
      const ts = xs.map((a) => T(a, true));
      const y = ours(c, ts);
      const yv = y.toArray();
      for (let b = 0; b < c.B; b += 2)
        for (let i = 0; i < c.H * c.T * c.D; i++) expect(Object.is(yv[b * c.H * c.T * c.D + i], 0), `${ctx}: batch ${b}`).toBe(true);
      y.backward(T(rng.arr([...y.shape])));
      for (const [name, t, per] of [['dq', ts[0]!, c.H * c.T * c.D], ['dk', ts[1]!, c.Hkv * c.S * c.D], ['dv', ts[2]!, c.Hkv * c.S * c.D]] as const) {
        const g = t.grad!.toArray();
        for (let i = 0; i < g.length; i++) expect(Number.isFinite(g[i]!), `${ctx}: ${name}[${i}] is ${g[i]}`).toBe(true);
        for (const b of [0, 2]) for (let i = 0; i < per; i++) expect(Object.is(g[b * per + i], 0) || g[b * per + i] === 0, `${ctx}: ${name} of empty batch ${b}`).toBe(true);
      }
    });
  });
});

describe('attention schedules and threads', () => {
  afterAll(() => tk.setThreads(DEFAULT_THREADS));
  it('the backward agrees with finite differences with 1 thread and with the default threads', () => {
    for (const threads of [1, DEFAULT_THREADS]) {
      tk.setThreads(threads);
      for (const c of [GRAD[0]!, GRAD[1]!]) {
        const rng = new Rng();
        checkGrad({
          ctx: ctxOf('attention', rng, tk.backend().cpu.isa, `threads=${threads} ${label(c)}`),
          rng,
          inputs: make(rng, c),
          ours: (ts) => ours(c, ts),
          ref: ([q, k, v]) => attention(q!, k!, v!, refOpts(c)),
          fwdTol: FWD_TOL,
          tol: GRAD_TOL,
        });
      }
    }
  });
});

// ---------------------------------------------------------------- the flash-attention rule
//
// FlashAttention's tests require the fused kernel's error, on bf16 inputs, to be no worse
// than twice the error of the unfused computation done in the same precision, both
// measured against a float32/float64 computation on the same bf16-valued inputs. This
// engine has no bf16 attention kernel on the CPU: attention takes f32 tensors and
// computes in f32. The test below emulates the bf16 setting: q, k, v are rounded to
// bf16 (.to('bf16').to('f32')), the unfused composition rounds every intermediate to
// bf16 (scores, scaled scores, probabilities, output) as a bf16 PyTorch computation
// stores them, and our output is rounded to bf16 once, as a bf16 kernel's output is.
// With an f32 kernel the rule then holds by a wide margin (our error is the single
// output rounding, ~0.5 bf16 ulp), so this check is implied by the f32 bound above and
// is NOT an independent test of reduced-precision accuracy; it becomes one when a
// reduced-precision kernel exists (then drop the f32 round trips on q, k, v and feed
// bf16 tensors). It does pin down the reference computation to compare against.
describe('attention in reduced precision (the flash-attention rule, emulated)', () => {
  const bf = (t: tk.Tensor) => t.to('bf16').to('f32');

  for (const causal of [false, true])
    it(`bf16 inputs, causal=${causal}: error <= 2x the unfused bf16 composition`, () => {
      const B = 2, H = 4, Tn = 67, D = 64;
      const rng = new Rng();
      const ctx = ctxOf('attention bf16 rule', rng, tk.backend().cpu.isa, `causal=${causal}`);
      tk.tidy(() => {
        const [q, k, v] = make(rng, { B, H, Hkv: H, T: Tn, S: Tn, D }, 1.5).map((a) => bf(T(a)));
        const qa: Arr = { shape: [B, H, Tn, D], data: f64(q!) }, ka: Arr = { shape: [B, H, Tn, D], data: f64(k!) }, va: Arr = { shape: [B, H, Tn, D], data: f64(v!) };
        const exact = attention(qa, ka, va, { causal });
        // unfused, every intermediate in bf16
        let s = bf(tk.ops.matmul(q!, k!, { transB: true }));
        s = bf(tk.ops.scale(s, 1 / Math.sqrt(D)));
        if (causal) {
          const m = new Float32Array(Tn * Tn);
          for (let i = 0; i < Tn; i++) for (let j = i + 1; j < Tn; j++) m[i * Tn + j] = 1;
          s = tk.ops.maskedFill(s, tk.tensor(m, [Tn, Tn]), -Infinity);
        }
        const p = bf(tk.ops.softmax(s, -1));
        const unfused = bf(tk.ops.matmul(p, v!));
        const fused = bf(tk.ops.attention(q!, k!, v!, { causal }));
        const eUnfused = relErr(f64(unfused), exact.data);
        const eFused = relErr(f64(fused), exact.data);
        const eF32 = relErr(f64(tk.ops.attention(q!, k!, v!, { causal })), exact.data);
        const msg = `${ctx}: fused ${eFused.toExponential(2)} (f32 output ${eF32.toExponential(2)}), unfused bf16 ${eUnfused.toExponential(2)}`;
        expect(eUnfused, `${msg}: the emulated bf16 computation must be bf16-accurate (else the comparison is meaningless)`).toBeGreaterThan(1e-3);
        expect(eUnfused, msg).toBeLessThan(5e-2);
        expect(eFused, msg).toBeLessThanOrEqual(2 * eUnfused);
        expect(eF32, msg).toBeLessThanOrEqual(FWD_TOL);
      });
    });
});

it('attention validates its arguments', () => {
  tk.tidy(() => {
    const q = tk.randn([1, 3, 4, 8]), k = tk.randn([1, 2, 4, 8]);
    expect(() => tk.ops.attention(q, k, k)).toThrow(/multiple/);
    expect(() => tk.ops.attention(tk.randn([1, 1, 2, 257]), tk.randn([1, 1, 2, 257]), tk.randn([1, 1, 2, 257]))).toThrow(/256/);
    const q2 = tk.randn([2, 2, 3, 4]), k2 = tk.randn([2, 1, 5, 4]);
    expect(() => tk.ops.attention(q2, k2, k2, { kvLengths: tk.tensor(Int32Array.from([6, 1]), [2], { dtype: 'i32' }) })).toThrow(RangeError);
    expect(() => tk.ops.attention(q2, k2, k2, { kvLengths: tk.tensor(Int32Array.from([1]), [1], { dtype: 'i32' }) })).toThrow(RangeError);
    expect(() => tk.ops.attention(q2, k2, tk.randn([2, 1, 5, 3]))).toThrow(RangeError);
  });
});
