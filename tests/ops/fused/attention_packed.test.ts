// The models' attention straight from a fused projection (attentionPacked: q, k, v read in
// place from qkv [B, T, 3·C], the heads merged into [B, T, C] as they are written; one
// [B, T, 3·C] gradient) against the composition it replaces: slices, permutes and
// tk.ops.attention (itself checked against float64 in attention.test.ts). The same kernel
// runs on strided views, so forward and gradients agree to rounding, on every ISA, causal
// or not, D on and off the vector width, T on and off the 64-query block, and through both
// backward schedules (B·H below and above twice the thread count).
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { attentionPacked } from '../../../dist/ops/attention.js';
import { ctxOf, expectClose, ISAS, onIsa, Rng, T } from '../../helpers.js';

const CASES: Array<{ B: number; T: number; H: number; D: number }> = [
  { B: 2, T: 13, H: 3, D: 8 },
  { B: 1, T: 70, H: 2, D: 64 },
  { B: 2, T: 128, H: 4, D: 64 },
  { B: 1, T: 5, H: 1, D: 97 },
];

function composed(qkv: tk.Tensor, H: number, causal: boolean, scale: number): tk.Tensor {
  const [B, Tn, W] = qkv.shape as [number, number, number];
  const C = W / 3, D = C / H;
  const part = (i: number) => tk.ops.permute(tk.ops.reshape(tk.ops.slice(qkv, 2, i * C, (i + 1) * C), [B, Tn, H, D]), [0, 2, 1, 3]);
  const a = tk.ops.attention(part(0), part(1), part(2), { causal, scale });
  return tk.ops.reshape(tk.ops.permute(a, [0, 2, 1, 3]), [B, Tn, C]);
}

describe.each(ISAS)('attentionPacked on %s', (isa) => {
  onIsa(isa);

  describe.each([true, false])('causal %s', (causal) => {
    it.each(CASES)('B=$B T=$T H=$H D=$D: forward and qkv gradient match the composition', ({ B, T: Tn, H, D }) => {
      const rng = new Rng();
      const ctx = ctxOf('attentionPacked', rng, isa, `B=${B} T=${Tn} H=${H} D=${D} causal=${causal}`);
      const data = rng.arr([B, Tn, 3 * H * D]);
      const R = rng.arr([B, Tn, H * D]);
      const scale = 1 / Math.sqrt(D);
      const run = (f: (x: tk.Tensor) => tk.Tensor) =>
        tk.tidy(() => {
          const x = T(data, true);
          const y = f(x);
          y.backward(T(R));
          const out = { y: Float64Array.from(y.toArray()), g: Float64Array.from(x.grad!.toArray()) };
          x.grad!.dispose();
          return out;
        });
      const ours = run((x) => attentionPacked(x, H, { causal, scale }));
      const theirs = run((x) => composed(x, H, causal, scale));
      expect(ours.y.length).toBe(B * Tn * H * D);
      expectClose(ours.y, theirs.y, 1e-6, `${ctx} forward`);
      expectClose(ours.g, theirs.g, 1e-6, `${ctx} gradient`);
    });
  });
});
