// Memory: dispose() frees at once, tidy() disposes what its function made and
// did not return, and the garbage collector is the backstop for tensors that
// nobody disposes (native memory is V8 ArrayBuffer memory, so V8 sees it and
// frees it during collection, even in a synchronous loop that never yields to
// the event loop).
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import type { Tensor } from 'tunekit';

const { ops } = tk;
const MB = 1 << 20;
const arrayBufferBytes = () => process.memoryUsage().arrayBuffers;

describe('dispose', () => {
  it('frees the memory at once and is idempotent', () => {
    const before = arrayBufferBytes();
    const t = tk.zeros([64 * MB / 4]); // 64 MiB
    expect(arrayBufferBytes() - before).toBeGreaterThanOrEqual(64 * MB);
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(arrayBufferBytes() - before).toBeLessThan(MB);
    t.dispose();
    expect(() => t.toArray()).toThrow(TypeError);
    expect(() => ops.add(t, t)).toThrow(/^add: argument 'a' is a disposed tensor/);
  });

  it('a view keeps shared storage until the last view is disposed', () => {
    const before = arrayBufferBytes();
    const x = tk.full([4 * MB], 3); // 16 MiB
    const v = ops.reshape(x, [2 * MB, 2]);
    const d = x.detach();
    // (read through small slices: toArray() of the whole would allocate 16 MiB more)
    const peek = (t: Tensor) => tk.tidy(() => ops.slice(ops.reshape(t, [-1]), 0, 5, 6).item());
    x.dispose();
    expect(v.disposed).toBe(false);
    expect(peek(v)).toBe(3);
    expect(arrayBufferBytes() - before).toBeGreaterThanOrEqual(16 * MB);
    v.dispose();
    expect(peek(d)).toBe(3);
    d.dispose();
    expect(arrayBufferBytes() - before).toBeLessThan(MB);
  });
});

describe('tidy', () => {
  it('disposes intermediates and keeps the returned tensor', () => {
    const a = tk.tensor([1, 2, 3]);
    let mid: Tensor | undefined;
    const out = tk.tidy(() => {
      mid = ops.mul(a, a);
      return ops.add(mid, 1);
    });
    expect(mid!.disposed).toBe(true);
    expect(out.disposed).toBe(false);
    expect(a.disposed).toBe(false); // made outside
    expect([...out.toArray()]).toEqual([2, 5, 10]);
  });

  it('keeps tensors returned in arrays and plain objects (also nested)', () => {
    const made: Tensor[] = [];
    const r = tk.tidy(() => {
      const x = tk.ones([2]);
      const y = ops.scale(x, 2);
      const z = ops.scale(x, 3);
      made.push(x);
      return { y, more: [z, { w: ops.add(y, z) }] };
    });
    expect(made[0]!.disposed).toBe(true);
    const { y, more } = r as unknown as { y: Tensor; more: [Tensor, { w: Tensor }] };
    expect([...y.toArray()]).toEqual([2, 2]);
    expect([...more[0].toArray()]).toEqual([3, 3]);
    expect([...more[1].w.toArray()]).toEqual([5, 5]);
    const arr = tk.tidy(() => [tk.ones([1]), tk.zeros([1])]);
    expect(arr.map((t) => t.disposed)).toEqual([false, false]);
  });

  it('nested: the inner result belongs to the outer scope', () => {
    let inner: Tensor | undefined;
    let innerMid: Tensor | undefined;
    const out = tk.tidy(() => {
      inner = tk.tidy(() => {
        innerMid = tk.ones([3]);
        return ops.scale(innerMid, 5);
      });
      expect(innerMid!.disposed).toBe(true);
      expect(inner.disposed).toBe(false);
      return ops.sum(inner);
    });
    expect(inner!.disposed).toBe(true); // not returned by the outer function
    expect(out.item()).toBe(15);
  });

  it('keep() exempts a tensor; dispose inside tidy is fine', () => {
    let kept: Tensor | undefined;
    tk.tidy(() => {
      kept = tk.keep(tk.ones([2]));
      const t = tk.ones([2]);
      t.dispose();
    });
    expect(kept!.disposed).toBe(false);
  });

  it('disposes what was made when the function throws or returns a promise', () => {
    let made: Tensor | undefined;
    expect(() =>
      tk.tidy(() => {
        made = tk.ones([2]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(made!.disposed).toBe(true);
    let made2: Tensor | undefined;
    expect(() =>
      tk.tidy(() => {
        made2 = tk.ones([2]);
        return Promise.resolve(1) as unknown as number;
      }),
    ).toThrow(/^tidy: /);
    expect(made2!.disposed).toBe(true);
  });

  it('gradients written by backward() inside tidy survive it', () => {
    const w = tk.tensor([1, 2, 3], [3], { requiresGrad: true });
    const loss = tk.tidy(() => {
      const l = ops.sum(ops.mul(w, w));
      l.backward();
      return l.item();
    });
    expect(loss).toBe(14);
    expect(w.grad).not.toBeNull();
    expect(w.grad!.disposed).toBe(false);
    expect([...w.grad!.toArray()]).toEqual([2, 4, 6]);
    // a second backward in another tidy accumulates into the surviving grad
    tk.tidy(() => ops.sum(ops.scale(w, 2)).backward());
    expect([...w.grad!.toArray()]).toEqual([4, 6, 8]);
    expect(w.grad!.disposed).toBe(false);
  });
});

// ---------------------------------------------------------------- long loops
// A small MLP: x [B, D] -> matmul W1 + b1 -> gelu -> layerNorm -> matmul W2 + b2
// -> crossEntropy. Each iteration allocates ~200 kB in ~30 tensors, so 5000 of
// them move ~1 GB through the allocator: any leak shows up as RSS growth (RSS
// is measured after 1000 warm-up steps, once V8's heap has settled).
function mlp() {
  const B = 32, D = 64, H = 128, C = 16;
  const p = {
    w1: tk.randn([D, H], { seed: 1, requiresGrad: true }),
    b1: tk.zeros([H], { requiresGrad: true }),
    g: tk.ones([H], { requiresGrad: true }),
    beta: tk.zeros([H], { requiresGrad: true }),
    w2: tk.randn([H, C], { seed: 2, requiresGrad: true }),
    b2: tk.zeros([C], { requiresGrad: true }),
  };
  const x = tk.randn([B, D], { seed: 3 });
  const y = tk.tensor(Int32Array.from({ length: B }, (_, i) => (i * 7) % C), [B]);
  const params = Object.values(p);
  const step = (): number => {
    const h = ops.layerNorm(ops.gelu(ops.add(ops.matmul(x, p.w1), p.b1)), p.g, p.beta);
    const logits = ops.add(ops.matmul(h, p.w2), p.b2);
    const loss = ops.crossEntropy(logits, y);
    loss.backward();
    return loss.item();
  };
  return { params, step };
}

function rssGrowth(iters: number, warmup: number, body: (i: number) => void): { growthMB: number; peakMB: number } {
  for (let i = 0; i < warmup; i++) body(i);
  const base = process.memoryUsage.rss();
  let peak = base;
  for (let i = 0; i < iters; i++) {
    body(i);
    if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage.rss());
  }
  const end = process.memoryUsage.rss();
  return { growthMB: (Math.max(peak, end) - base) / MB, peakMB: Math.max(peak, end) / MB };
}

describe('memory stays bounded over many training steps', () => {
  it('5000 forward/backward steps without tidy or dispose (the GC is the backstop)', () => {
    const { params, step } = mlp();
    let last = 0;
    const t0 = performance.now();
    const r = rssGrowth(5000, 1000, () => {
      last = step();
      for (const q of params) q.grad = null; // dropped, never disposed
    });
    const secs = (performance.now() - t0) / 1000;
    expect(Number.isFinite(last)).toBe(true);
    expect(r.growthMB, `RSS grew ${r.growthMB.toFixed(1)} MB (peak ${r.peakMB.toFixed(0)} MB) in ${secs.toFixed(1)} s`).toBeLessThan(100);
    expect(secs).toBeLessThan(30);
  });

  it('5000 forward/backward steps inside tidy, grads disposed', () => {
    const { params, step } = mlp();
    let last = 0;
    let probe: Tensor | undefined;
    const r = rssGrowth(5000, 1000, (i) => {
      last = tk.tidy(() => {
        if (i === 0) probe = tk.ones([1]);
        return step();
      });
      for (const q of params) {
        q.grad?.dispose();
        q.grad = null;
      }
    });
    expect(probe?.disposed ?? true).toBe(true);
    expect(Number.isFinite(last)).toBe(true);
    expect(r.growthMB, `RSS grew ${r.growthMB.toFixed(1)} MB (peak ${r.peakMB.toFixed(0)} MB)`).toBeLessThan(100);
  });

  it('large tensors dropped in a synchronous loop are collected', () => {
    // 2000 x 4 MiB = 8 GB allocated without a single dispose or await
    const r = rssGrowth(2000, 20, () => {
      const t = tk.full([MB], 1);
      ops.sum(t).item();
    });
    expect(r.growthMB, `RSS grew ${r.growthMB.toFixed(1)} MB`).toBeLessThan(200);
  });
});
