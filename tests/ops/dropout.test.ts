// dropout: the drop rate (within 5 standard deviations of p), the 1 / (1 - p)
// scaling of kept elements, determinism for a seed (and tk.manualSeed),
// independence of the ISA and thread count, and a backward that reuses the
// forward's mask.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import * as ref from '../reference.js';
import { checkGrad, ctxOf, DEFAULT_THREADS, expectClose, ISAS, onIsa, Rng, T, TOL } from '../helpers.js';

const N = 100_003;

describe.each(ISAS)('dropout on %s', (isa) => {
  onIsa(isa);

  it.each([0.1, 0.5, 0.9])('p = %s: drop rate, scaling of the kept elements', (p) => {
    const rng = new Rng();
    const seed = rng.int(0, 2 ** 31);
    // inputs never 0, so that y == 0 exactly marks a dropped element
    const x = rng.signedAway(N, 0.5, 2);
    const y = tk.tidy(() => tk.ops.dropout(tk.tensor(Float32Array.from(x)), p, { seed }).toArray());
    const keep = new Uint8Array(N);
    let dropped = 0;
    for (let i = 0; i < N; i++) if (y[i] === 0) dropped++; else keep[i] = 1;
    const ctx = ctxOf('dropout', rng, isa, `p=${p} seed=${seed}`);
    const sigma = Math.sqrt((p * (1 - p)) / N);
    expect(Math.abs(dropped / N - p), `${ctx}: drop rate ${dropped / N}`).toBeLessThan(5 * sigma);
    expectClose(y, ref.dropoutWithMask({ shape: [N], data: x }, keep, p).data, TOL.exact, ctx);
  });

  it('the mask has no visible structure: rates agree over halves, and across neighbours', () => {
    const rng = new Rng();
    const seed = rng.int(0, 2 ** 31);
    const y = tk.tidy(() => tk.ops.dropout(tk.ones([N]), 0.5, { seed }).toArray());
    let a = 0, b = 0, both = 0;
    for (let i = 0; i < N; i++) {
      if (y[i] === 0) (i < N / 2 ? a++ : b++);
      if (i > 0 && y[i] === 0 && y[i - 1] === 0) both++;
    }
    const half = N / 2, sigma = Math.sqrt(0.25 / half);
    const ctx = ctxOf('dropout', rng, isa, `seed=${seed}`);
    expect(Math.abs(a / half - 0.5), ctx).toBeLessThan(5 * sigma);
    expect(Math.abs(b / half - 0.5), ctx).toBeLessThan(5 * sigma);
    expect(Math.abs(both / (N - 1) - 0.25), ctx).toBeLessThan(5 * Math.sqrt(0.25 * 0.75 / N));
  });

  it('the same seed gives the same mask; different seeds differ', () => {
    const rng = new Rng();
    const seed = rng.int(0, 2 ** 31);
    tk.tidy(() => {
      const x = tk.ones([4099]);
      const a = tk.ops.dropout(x, 0.3, { seed }).toArray();
      const b = tk.ops.dropout(x, 0.3, { seed }).toArray();
      const c = tk.ops.dropout(x, 0.3, { seed: seed + 1 }).toArray();
      expect(Array.from(a), `seed=${seed}`).toEqual(Array.from(b));
      expect(Array.from(a), `seed=${seed}`).not.toEqual(Array.from(c));
      // without a seed: the global sequence, reproducible through tk.manualSeed
      tk.manualSeed(seed);
      const d = tk.ops.dropout(x, 0.3).toArray();
      const e = tk.ops.dropout(x, 0.3).toArray();
      tk.manualSeed(seed);
      expect(Array.from(tk.ops.dropout(x, 0.3).toArray()), `seed=${seed}`).toEqual(Array.from(d));
      expect(Array.from(d)).not.toEqual(Array.from(e));
    });
  });

  it('the mask does not depend on the thread count', () => {
    const seed = new Rng().int(0, 2 ** 31);
    try {
      const run = () => tk.tidy(() => Array.from(tk.ops.dropout(tk.ones([N]), 0.4, { seed }).toArray()));
      tk.setThreads(1);
      const one = run();
      tk.setThreads(2);
      expect(run(), `seed=${seed}`).toEqual(one);
    } finally {
      tk.setThreads(DEFAULT_THREADS);
    }
  });

  it('backward applies the forward mask and scale (finite differences with that mask)', () => {
    for (const p of [0.25, 0.6]) {
      const rng = new Rng();
      const seed = rng.int(0, 2 ** 31);
      const x = { shape: [7, 13], data: rng.signedAway(91) };
      // the mask this seed draws, read off a forward on ones
      const keep = tk.tidy(() => Array.from(tk.ops.dropout(tk.ones([7, 13]), p, { seed }).toArray(), (v) => (v === 0 ? 0 : 1)));
      checkGrad({
        ctx: ctxOf('dropout', rng, isa, `p=${p} seed=${seed}`),
        rng,
        inputs: [x],
        ours: ([t]) => tk.ops.dropout(t!, p, { seed }),
        ref: ([a]) => ref.dropoutWithMask(a!, keep, p),
        fwdTol: TOL.exact,
      });
    }
  });

  it('p = 0 is the identity, p = 1 gives zeros, p outside [0, 1] throws', () => {
    const rng = new Rng();
    const x = rng.arr([33]);
    tk.tidy(() => {
      expect(Array.from(tk.ops.dropout(T(x), 0, { seed: 3 }).toArray())).toEqual(Array.from(x.data));
      expect(Array.from(tk.ops.dropout(T(x), 1, { seed: 3 }).toArray()).every((v) => v === 0)).toBe(true);
      expect(() => tk.ops.dropout(T(x), 1.5)).toThrow(/p must be/);
      expect(() => tk.ops.dropout(T(x), -0.1)).toThrow(/p must be/);
    });
  });
});

it('dropout masks agree across ISAs', () => {
  const seed = new Rng().int(0, 2 ** 31);
  const masks = ISAS.map((isa) => {
    tk.setIsa(isa);
    return tk.tidy(() => Array.from(tk.ops.dropout(tk.ones([4099]), 0.5, { seed }).toArray()));
  });
  for (const m of masks) expect(m, `seed=${seed}`).toEqual(masks[0]);
});
