// tk.ops.gae: advantages and returns equal the textbook reversed loop in
// float32 EXACTLY (bit for bit: ./reference.ts gaeF32 rounds every operation
// with Math.fround, left to right as written), on random rewards, values and
// dones (episode ends in the middle of rows, consecutive ends, an end at the
// last step), with and without lastValues, at row counts and lengths that are
// not multiples of the kernel's lanes, tiles or chunks, on every ISA. Then
// whitening with and without a mask: mean 0 and unbiased variance 1 over the
// masked positions, the same affine map applied everywhere, and against a
// float64 reference of the documented formula.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { ctxOf, expectClose, ISAS, onIsa, Rng, TOL } from '../../helpers.js';
import { gaeF32, whiten } from './reference.js';

interface Episode {
  B: number;
  T: number;
  rewards: Float32Array;
  values: Float32Array;
  dones: Float32Array;
  last: Float32Array;
}

function episode(rng: Rng, B: number, T: number, pDone = 0.08): Episode {
  const rewards = Float32Array.from(rng.randn(B * T));
  const values = Float32Array.from(rng.randn(B * T, 2));
  const dones = new Float32Array(B * T);
  for (let i = 0; i < B * T; i++) dones[i] = rng.next() < pDone ? 1 : 0;
  // some rows: an end in the middle, two consecutive ends, an end at the last step
  if (T >= 4) {
    dones[Math.floor(T / 2)] = 1;
    if (B > 1) {
      dones[T + 1] = 1;
      dones[T + 2] = 1;
    }
    if (B > 2) dones[2 * T + T - 1] = 1;
  }
  const last = Float32Array.from(rng.randn(B));
  return { B, T, rewards, values, dones, last };
}

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): string | null {
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) return `element ${i} is ${got[i]}, the float32 loop gives ${want[i]}`;
  return null;
}

// [B, T]: lanes of 4 / 8 / 16, tiles of 4 / 8 / 16, chunks of 64 and windows of 1024 steps all
// have remainders somewhere here
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [1, 7],
  [3, 5],
  [13, 77],
  [17, 64],
  [33, 129],
  [5, 1030],
  [2, 2100],
  [70, 33],
];

describe.each(ISAS)('gae on %s', (isa) => {
  onIsa(isa);

  it('equals the textbook reversed loop in float32 exactly, with and without lastValues', () => {
    for (const [B, T] of SHAPES)
      for (const withLast of [false, true]) {
        const rng = new Rng();
        const e = episode(rng, B, T);
        const gamma = rng.uniform(0.9, 1), lambda = rng.uniform(0.8, 1);
        const ctx = ctxOf('gae', rng, isa, `B=${B} T=${T} lastValues=${withLast} gamma=${gamma} lambda=${lambda}`);
        tk.tidy(() => {
          const { advantages, returns } = tk.ops.gae(tk.tensor(e.rewards, [B, T]), tk.tensor(e.values, [B, T]), tk.tensor(e.dones, [B, T]), {
            gamma,
            lambda,
            lastValues: withLast ? tk.tensor(e.last, [B]) : undefined,
          });
          expect([...advantages.shape], ctx).toEqual([B, T]);
          expect([...returns.shape], ctx).toEqual([B, T]);
          const want = gaeF32(e.rewards, e.values, e.dones, B, T, { gamma, lambda, lastValues: withLast ? e.last : undefined });
          const ma = firstMismatch(advantages.toArray(), want.advantages);
          expect(ma, `${ctx}: advantages: ${ma}`).toBeNull();
          const mr = firstMismatch(returns.toArray(), want.returns);
          expect(mr, `${ctx}: returns: ${mr}`).toBeNull();
        });
      }
  });

  it('a done step cuts the bootstrap: the next row values and advantages never leak back', () => {
    const rng = new Rng();
    const B = 3, T = 9;
    const e = episode(rng, B, T, 0);
    e.dones.fill(0);
    e.dones[4] = 1;  // row 0 ends after step 4
    // changing anything after step 4 of row 0 must leave steps 0..4 unchanged
    const run = (r: Float32Array, v: Float32Array) =>
      tk.tidy(() => tk.ops.gae(tk.tensor(r, [B, T]), tk.tensor(v, [B, T]), tk.tensor(e.dones, [B, T]), { gamma: 0.99, lambda: 0.95 }).advantages.toArray());
    const a0 = run(e.rewards, e.values);
    const r2 = e.rewards.slice(), v2 = e.values.slice();
    for (let t = 5; t < T; t++) {
      r2[t] = r2[t]! + 10;
      v2[t] = v2[t]! - 10;
    }
    const a1 = run(r2, v2);
    for (let t = 0; t <= 4; t++) expect(a1[t], `${ctxOf('gae', rng, isa)} step ${t}`).toBe(a0[t]);
    // the last step before the cut: A_4 = r_4 - V_4
    expect(a0[4]).toBe(Math.fround(e.rewards[4]! - e.values[4]!));
  });
});

describe('gae whitening', () => {
  const B = 13, T = 37;

  function moments(a: ArrayLike<number>, mask?: ArrayLike<number>): { mean: number; variance: number } {
    let n = 0, s = 0;
    for (let i = 0; i < a.length; i++)
      if (!mask || mask[i]) {
        n++;
        s += a[i]!;
      }
    const mean = s / n;
    let ss = 0;
    for (let i = 0; i < a.length; i++) if (!mask || mask[i]) ss += (a[i]! - mean) ** 2;
    return { mean, variance: ss / (n - 1) };
  }

  for (const masked of [false, true])
    it(`${masked ? 'with a mask' : 'without a mask'}: mean 0, unbiased variance 1, returns from the raw advantages`, () => {
      const rng = new Rng();
      const e = episode(rng, B, T);
      const mask = new Float32Array(B * T);
      // a padded batch: each row keeps a random prefix (at least 2 positions)
      for (let b = 0; b < B; b++) {
        const len = rng.int(2, T + 1);
        for (let t = 0; t < len; t++) mask[b * T + t] = 1;
      }
      const ctx = ctxOf('gae whiten', rng, tk.backend().cpu.isa, `mask=${masked}`);
      tk.tidy(() => {
        const opts = { gamma: 0.99, lambda: 0.95, lastValues: tk.tensor(e.last, [B]), whiten: true, mask: masked ? tk.tensor(mask, [B, T]) : undefined };
        const { advantages, returns } = tk.ops.gae(tk.tensor(e.rewards, [B, T]), tk.tensor(e.values, [B, T]), tk.tensor(e.dones, [B, T]), opts);
        const raw = gaeF32(e.rewards, e.values, e.dones, B, T, { gamma: 0.99, lambda: 0.95, lastValues: e.last });
        // returns come from the advantages before whitening
        const mr = firstMismatch(returns.toArray(), raw.returns);
        expect(mr, `${ctx}: returns: ${mr}`).toBeNull();
        const got = advantages.toArray();
        const m = moments(got, masked ? mask : undefined);
        expect(Math.abs(m.mean), `${ctx}: mean over the masked positions`).toBeLessThan(1e-5);
        expect(Math.abs(m.variance - 1), `${ctx}: unbiased variance over the masked positions`).toBeLessThan(1e-5);
        // every position, masked or not, follows the float64 formula
        expectClose(got, whiten(raw.advantages, masked ? mask : undefined), TOL.reduction, `${ctx}: whitened advantages`);
      });
    });

  it('whitening refuses a mask that selects fewer than 2 positions', () => {
    tk.tidy(() => {
      const z = tk.zeros([2, 3]);
      const mask = tk.tensor(Float32Array.from([0, 1, 0, 0, 0, 0]), [2, 3]);
      expect(() => tk.ops.gae(z, z, z, { gamma: 0.9, lambda: 0.9, whiten: true, mask })).toThrow(/at least 2/);
    });
  });

  it('rejects mismatched shapes', () => {
    tk.tidy(() => {
      const a = tk.zeros([2, 3]), b = tk.zeros([2, 4]);
      expect(() => tk.ops.gae(a, b, a, { gamma: 0.9, lambda: 0.9 })).toThrow(RangeError);
      expect(() => tk.ops.gae(a, a, a, { gamma: 0.9, lambda: 0.9, lastValues: tk.zeros([3]) })).toThrow(RangeError);
    });
  });
});
