// Optimizers against plain float64 implementations of torch.optim's update rules.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

const seed = () => Math.floor(Math.random() * 2 ** 31);

function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let n = 0, d = 0;
  for (let i = 0; i < a.length; i++) {
    n += (a[i]! - b[i]!) ** 2;
    d += b[i]! ** 2;
  }
  return Math.sqrt(n / d);
}

function randArray(n: number, s: number): Float64Array {
  let x = s >>> 0 || 1;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = ((x >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

describe('AdamW', () => {
  it('matches torch.optim.AdamW in float64 over several steps, decay only on matrices', () => {
    const s = seed();
    const shapes = [[7, 13], [13]];
    const init = shapes.map((sh, i) => randArray(sh.reduce((a, b) => a * b), s + i));
    const params: Array<[string, tk.Tensor]> = shapes.map((sh, i) => [`p${i}`, tk.tensor(Float32Array.from(init[i]!), sh, { requiresGrad: true })]);
    const opt = new tk.AdamW(params, { lr: 3e-3, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
    const ref = init.map((p) => ({ p: Float64Array.from(Float32Array.from(p)), m: new Float64Array(p.length), v: new Float64Array(p.length) }));
    for (let t = 1; t <= 5; t++) {
      shapes.forEach((sh, i) => {
        const g = Float32Array.from(randArray(init[i]!.length, s * 7 + t * 31 + i));
        params[i]![1].grad = tk.tensor(g, sh);
        const r = ref[i]!, wd = sh.length >= 2 ? 0.1 : 0;
        const bc1 = 1 - 0.9 ** t, bc2 = 1 - 0.95 ** t;
        for (let j = 0; j < g.length; j++) {
          r.p[j] = r.p[j]! * (1 - 3e-3 * wd);
          r.m[j] = 0.9 * r.m[j]! + 0.1 * g[j]!;
          r.v[j] = 0.95 * r.v[j]! + 0.05 * g[j]! * g[j]!;
          r.p[j] = r.p[j]! - (3e-3 / bc1) * r.m[j]! / (Math.sqrt(r.v[j]!) / Math.sqrt(bc2) + 1e-8);
        }
      });
      opt.step();
      opt.zeroGrad();
    }
    params.forEach(([, p], i) => expect(relErr(p.toArray(), ref[i]!.p), `seed ${s}`).toBeLessThan(1e-6));
    expect(opt.stepCount).toBe(5);
  });

  it('state round trip continues identically', () => {
    const mk = () => tk.tensor([1, -2, 3, 0.5, 0.25, -1], [2, 3], { requiresGrad: true });
    const a = mk(), b = mk();
    const oa = new tk.AdamW([a], { lr: 0.01 }), ob = new tk.AdamW([b], { lr: 0.01 });
    const g = tk.tensor([0.3, -0.1, 0.2, 0.9, -0.4, 0.05], [2, 3]);
    for (const [p, o] of [[a, oa], [b, ob]] as const) {
      p.grad = g.clone();
      o.step();
    }
    const ob2 = new tk.AdamW([b], { lr: 0.01 });
    ob2.loadState(ob.state());
    a.grad = g.clone();
    b.grad = g.clone();
    oa.step();
    ob2.step();
    expect(Array.from(b.toArray())).toEqual(Array.from(a.toArray()));
  });
});

describe('SGD', () => {
  for (const nesterov of [false, true])
    it(`matches torch.optim.SGD (momentum, weight decay, nesterov=${nesterov})`, () => {
      const s = seed();
      const n = 37;
      const init = randArray(n, s);
      const p = tk.tensor(Float32Array.from(init), [n], { requiresGrad: true });
      const opt = new tk.SGD([p], { lr: 0.05, momentum: 0.9, weightDecay: 0.01, nesterov });
      const rp = Float64Array.from(Float32Array.from(init)), buf = new Float64Array(n);
      for (let t = 1; t <= 4; t++) {
        const g = Float32Array.from(randArray(n, s + 100 * t));
        p.grad = tk.tensor(g, [n]);
        for (let j = 0; j < n; j++) {
          let d = g[j]! + 0.01 * rp[j]!;
          buf[j] = t === 1 ? d : 0.9 * buf[j]! + d;
          d = nesterov ? d + 0.9 * buf[j]! : buf[j]!;
          rp[j] = rp[j]! - 0.05 * d;
        }
        opt.step();
      }
      expect(relErr(p.toArray(), rp), `seed ${s}`).toBeLessThan(1e-6);
    });
});

describe('schedules and clipping', () => {
  it('warmup then linear / cosine decay as transformers', () => {
    const o = { warmupSteps: 4, totalSteps: 14 };
    expect(tk.lrMultiplier(0, { kind: 'linear', ...o })).toBeCloseTo(0.25);
    expect(tk.lrMultiplier(3, { kind: 'linear', ...o })).toBeCloseTo(1);
    expect(tk.lrMultiplier(9, { kind: 'linear', ...o })).toBeCloseTo(0.5);
    expect(tk.lrMultiplier(14, { kind: 'linear', ...o })).toBeCloseTo(0);
    expect(tk.lrMultiplier(9, { kind: 'cosine', ...o })).toBeCloseTo(0.5);
    expect(tk.lrMultiplier(6.5, { kind: 'cosine', ...o })).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * 0.25)));
    expect(tk.lrMultiplier(100, { kind: 'constant', ...o })).toBe(1);
  });

  it('clipGradNorm scales to maxNorm and returns the norm before', () => {
    const a = tk.tensor([3, 4], [2], { requiresGrad: true });
    const b = tk.tensor([12], [1], { requiresGrad: true });
    a.grad = tk.tensor([3, 4], [2]);
    b.grad = tk.tensor([12], [1]);
    const norm = tk.clipGradNorm([a, b], 6.5);
    expect(norm).toBeCloseTo(13, 5);
    expect(tk.gradNorm([a, b])).toBeCloseTo(6.5, 4);
    expect(Array.from(a.grad.toArray())[0]).toBeCloseTo(1.5, 4);
  });
});
