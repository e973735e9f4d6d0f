// Graph semantics of the reverse-mode autograd (src/autograd.ts): how
// gradients accumulate, flow through shared inputs, stop at noGrad and
// detach, what backward() accepts, and that deep graphs do not recurse.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import type { Tensor } from 'tunekit';

const { ops } = tk;
const arr = (t: Tensor | null | undefined) => [...t!.toArray()];
const leaf = (values: number[], shape?: number[]) => tk.tensor(values, shape ?? [values.length], { requiresGrad: true });

describe('accumulation', () => {
  it('two backward() calls on two graphs add into .grad', () => {
    const w = leaf([1, 2, 3]);
    ops.sum(ops.mul(w, w)).backward(); // 2w
    expect(arr(w.grad)).toEqual([2, 4, 6]);
    ops.sum(ops.scale(w, 3)).backward(); // + 3
    expect(arr(w.grad)).toEqual([5, 7, 9]);
    expect(w.grad!.dtype).toBe('f32');
  });

  it('a disposed or dropped .grad starts afresh', () => {
    const w = leaf([1, 2]);
    ops.sum(w).backward();
    w.grad!.dispose();
    ops.sum(ops.scale(w, 2)).backward();
    expect(arr(w.grad)).toEqual([2, 2]);
    w.grad = null;
    ops.sum(w).backward();
    expect(arr(w.grad)).toEqual([1, 1]);
  });

  it('backward through an already used graph throws (the graph is freed)', () => {
    const w = leaf([1, 2]);
    const h = ops.scale(w, 2);
    const l1 = ops.sum(h);
    l1.backward();
    expect(() => l1.backward()).toThrow(/^backward: /);
    // a second loss over the freed intermediate h cannot reach w either
    const l2 = ops.sum(ops.mul(h, h));
    expect(() => l2.backward()).toThrow(/^backward: /);
    expect(arr(w.grad)).toEqual([2, 2]); // unchanged by the failed calls
  });
});

describe('a tensor used twice', () => {
  it('x * x gives 2x', () => {
    const x = leaf([1, -2, 3]);
    ops.sum(ops.mul(x, x)).backward();
    expect(arr(x.grad)).toEqual([2, -4, 6]);
  });

  it('add(x, x) gives 2, and the incoming gradient is not shared', () => {
    const x = leaf([1, 2, 3]);
    const y = ops.add(x, x);
    ops.sum(ops.mul(y, tk.tensor([1, 10, 100]))).backward();
    expect(arr(x.grad)).toEqual([2, 20, 200]);
  });

  it('a diamond: z = a(x) + b(x) sums both paths', () => {
    const x = leaf([1, 2]);
    const z = ops.add(ops.scale(x, 3), ops.mul(x, x)); // dz/dx = 3 + 2x
    ops.sum(z).backward();
    expect(arr(x.grad)).toEqual([5, 7]);
  });

  it('an input used by several ops of one graph, through broadcasting', () => {
    const b = leaf([1, 2, 3]);
    const m = tk.ones([4, 3]);
    const y = ops.mul(ops.add(m, b), b); // (1 + b) b per row: d/db = 1 + 2b, x4 rows
    ops.sum(y).backward();
    expect(arr(b.grad)).toEqual([12, 20, 28]);
  });
});

describe('recording', () => {
  it('noGrad disables recording', () => {
    const w = leaf([1, 2]);
    const y = tk.noGrad(() => ops.mul(w, w));
    expect(y.requiresGrad).toBe(false);
    expect(y._node).toBeNull();
    expect(() => ops.sum(y).backward()).toThrow(/^backward: /);
    expect(tk.isGradEnabled()).toBe(true);
    // restored after a throw too
    expect(() => tk.noGrad(() => { throw new Error('x'); })).toThrow('x');
    expect(tk.isGradEnabled()).toBe(true);
    // nested
    tk.noGrad(() => {
      tk.noGrad(() => undefined);
      expect(tk.isGradEnabled()).toBe(false);
    });
  });

  it('detach cuts the graph and shares the values', () => {
    const w = leaf([1, 2]);
    const v = leaf([3, 4]);
    const d = ops.mul(w, w).detach();
    expect(d.requiresGrad).toBe(false);
    expect(arr(d)).toEqual([1, 4]);
    ops.sum(ops.mul(d, v)).backward();
    expect(arr(v.grad)).toEqual([1, 4]);
    expect(w.grad).toBeNull();
  });

  it('requiresGrad propagates from any input and only from inputs that require it', () => {
    const a = leaf([1, 2]);
    const c = tk.tensor([3, 4]);
    expect(ops.add(a, c).requiresGrad).toBe(true);
    expect(ops.add(c, a).requiresGrad).toBe(true);
    expect(ops.add(c, c).requiresGrad).toBe(false);
    expect(ops.add(c, 1).requiresGrad).toBe(false);
    expect(ops.sum(ops.gelu(ops.scale(a, 2))).requiresGrad).toBe(true);
    // gradients reach only what requires them
    const y = ops.sum(ops.mul(a, c));
    y.backward();
    expect(arr(a.grad)).toEqual([3, 4]);
    expect(c.grad).toBeNull();
    // int tensors cannot require grad
    expect(() => tk.tensor([1], [1], { dtype: 'i32', requiresGrad: true })).toThrow(TypeError);
  });

  it('non-leaf tensors do not keep .grad', () => {
    const w = leaf([1, 2]);
    const h = ops.scale(w, 2);
    ops.sum(h).backward();
    expect(h.grad).toBeNull();
    expect(arr(w.grad)).toEqual([2, 2]);
  });
});

describe('backward() arguments', () => {
  it('a non-scalar needs an explicit grad', () => {
    const w = leaf([1, 2, 3]);
    const y = ops.scale(w, 2);
    expect(() => y.backward()).toThrow(RangeError);
    expect(() => y.backward()).toThrow(/^backward: /);
    // the failed call did not consume the graph
    y.backward(tk.tensor([1, 1, 1]));
    expect(arr(w.grad)).toEqual([2, 2, 2]);
  });

  it('an explicit grad seeds the chain rule', () => {
    const w = leaf([1, 2, 3]);
    const y = ops.mul(w, w);
    const g = tk.tensor([1, 10, 100]);
    y.backward(g);
    expect(arr(w.grad)).toEqual([2, 40, 600]);
    expect(g.disposed).toBe(false); // the caller's tensor is not consumed
    expect(arr(g)).toEqual([1, 10, 100]);
  });

  it('an explicit grad of another dtype is used as f32; a one-element root takes one too', () => {
    const w = leaf([1, 2]);
    ops.scale(w, 3).backward(tk.tensor([1, 2], [2], { dtype: 'bf16' }));
    expect(w.grad!.dtype).toBe('f32');
    expect(arr(w.grad)).toEqual([3, 6]);
    const v = leaf([5]);
    ops.sum(ops.scale(v, 2)).backward(tk.tensor(4));
    expect(arr(v.grad)).toEqual([8]);
  });

  it('bad grads and roots throw errors that name backward', () => {
    const w = leaf([1, 2]);
    const y = ops.scale(w, 2);
    expect(() => y.backward(tk.tensor([1, 2, 3]))).toThrow(/^backward: grad shape/);
    expect(() => y.backward(tk.tensor([1, 2], [1, 2]))).toThrow(RangeError);
    for (const bad of [[1, 2], 1, 'x', {}, null])
      expect(() => y.backward(bad as unknown as Tensor)).toThrow(/^backward: /);
    const g = tk.tensor([1, 1]);
    g.dispose();
    expect(() => y.backward(g)).toThrow(/^backward: /);
    const c = tk.tensor([1, 2]);
    expect(() => c.backward(tk.tensor([1, 1]))).toThrow(/^backward: /); // requires no grad
    y.dispose();
    expect(() => y.backward(tk.tensor([1, 1]))).toThrow(/^backward: /);
    // none of it touched w
    expect(w.grad).toBeNull();
  });
});

describe('dtypes', () => {
  it('grads are f32, also for bf16 and f16 leaves', () => {
    for (const dtype of ['bf16', 'f16'] as const) {
      const w = tk.tensor([1, 2, 4], [3], { dtype, requiresGrad: true });
      const y = ops.sum(ops.mul(w.to('f32'), tk.tensor([1, 2, 3])));
      y.backward();
      expect(w.grad!.dtype).toBe('f32');
      expect(arr(w.grad)).toEqual([1, 2, 3]);
    }
    const x = leaf([1, 2]);
    ops.sum(ops.scale(x.to('bf16').to('f32'), 2)).backward();
    expect(x.grad!.dtype).toBe('f32');
    expect(arr(x.grad)).toEqual([2, 2]);
  });
});

describe('deep graphs', () => {
  it('a chain of 10000 ops backpropagates without overflowing the stack', () => {
    const x = leaf([1]);
    let y: Tensor = x;
    for (let i = 0; i < 10000; i++) y = ops.scale(y, 1.0001);
    const out = ops.sum(y);
    out.backward();
    // d/dx = 1.0001^10000 = e^(10000 ln 1.0001) ~ 2.71815 (f32 products drift a little)
    expect(x.grad!.item()).toBeCloseTo(Math.pow(1.0001, 10000), 2);
  });

  it('10000 alternating two-input ops (a long ladder of shared inputs)', () => {
    const x = leaf([0.5]);
    const c = leaf([1]);
    let y: Tensor = x;
    for (let i = 0; i < 10000; i++) y = i % 2 ? ops.add(y, c) : ops.mul(y, tk.tensor([1]));
    ops.sum(y).backward();
    expect(x.grad!.item()).toBe(1);
    expect(c.grad!.item()).toBe(5000);
  });
});
