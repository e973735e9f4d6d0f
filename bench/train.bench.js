// Training throughput on the CPU: one optimizer step (forward, backward, AdamW)
// of a small GPT-2 (d=256, 4 layers, 4 heads, T=128, batch 8, vocab 512), full
// fine-tuning and LoRA (c_attn, r=8), reported as model FLOP/s against the FMA
// peak and as tokens/s side by side with PyTorch eager on the same model and
// batch (bench/train_torch.py, run when a python3 with torch is found: Debian's
// python3-torch is /usr/bin/python3). Goal: ≥ 2× PyTorch.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { measure } from './lib.js';

export const title = 'training step';

const here = dirname(fileURLToPath(import.meta.url));
const CFG = { d: 256, layers: 4, heads: 4, T: 128, batch: 8, vocab: 512 };

function torchBaseline(quick) {
  for (const py of ['/usr/bin/python3', 'python3']) {
    try {
      const out = execFileSync(py, [join(here, 'train_torch.py'), '--steps', quick ? '2' : '8'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 600_000 });
      return JSON.parse(out.trim().split('\n').pop());
    } catch {
      // no torch in this python
    }
  }
  return null;
}

export function run(ctx) {
  const { tk } = ctx;
  const { d, layers, heads, T, batch, vocab } = CFG;
  const config = { model_type: 'gpt2', vocab_size: vocab, n_positions: T, n_embd: d, n_layer: layers, n_head: heads };
  let seed = 12345;
  const ids = Array.from({ length: batch }, () =>
    Array.from({ length: T }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % vocab)),
  );
  const targets = tk.tensor(Int32Array.from(ids.flatMap((r) => r.slice(1))), [batch * (T - 1)], { dtype: 'i32' });
  const tokens = batch * T;

  function stepper(method) {
    tk.manualSeed(0);
    const model = tk.createModel(config);
    model.train();
    if (method === 'lora') tk.applyLora(model, { r: 8, alpha: 16, targetModules: ['c_attn'] });
    const params = model.namedParameters().filter(([, t]) => t.requiresGrad);
    const opt = new tk.AdamW(params, { lr: 1e-4 });
    const nParams = model.namedParameters().reduce((a, [, t]) => a + t.numel, 0);
    const step = () =>
      tk.tidy(() => {
        const logits = model.forward(ids);
        const shifted = tk.ops.reshape(tk.ops.slice(logits, 1, 0, T - 1), [batch * (T - 1), vocab]);
        const loss = tk.ops.crossEntropy(shifted, targets);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        return loss.item();
      });
    // model FLOPs of a step: 6 per parameter per token (2 forward + 4 backward), plus attention
    // (QK^T and PV: 4·T·d per token forward, doubled twice for backward), as in the PaLM/llm.c count.
    // LoRA skips the frozen weights' gradient (2 of the 6), roughly.
    const perTok = (method === 'lora' ? 4 : 6) * nParams + 12 * layers * T * d;
    return { step, flops: perTok * tokens, model };
  }

  const full = stepper('full');
  const lora = stepper('lora');
  const check = (s) => () => {
    const l = s.step();
    return Number.isFinite(l) ? null : `loss ${l}`;
  };
  const rows = measure(
    'train',
    [
      { op: 'full fine-tune step', shape: `GPT d${d} L${layers} T${T} B${batch}`, kind: 'flop', work: full.flops, target: 0.3, fn: full.step, check: check(full), note: 'forward + backward + AdamW' },
      { op: 'LoRA step (c_attn, r=8)', shape: `GPT d${d} L${layers} T${T} B${batch}`, kind: 'flop', work: lora.flops, target: 0.3, fn: lora.step, check: check(lora), note: 'frozen base, fused loraLinear' },
    ],
    ctx,
  );
  const torch = torchBaseline(ctx.quick);
  for (const r of rows) {
    if (r.error) continue;
    const tps = tokens / (r.timeMs / 1e3);
    const key = r.op.startsWith('full') ? 'full_tokens_per_s' : 'lora_tokens_per_s';
    r.tokensPerSec = tps;
    r.torchTokensPerSec = torch ? torch[key] : null;
    r.vsTorch = torch ? tps / torch[key] : null;
    r.note = `${r.note}; ${tps.toFixed(0)} tok/s` + (torch ? `, torch ${torch.torch} ${torch[key].toFixed(0)} tok/s, ratio ${(tps / torch[key]).toFixed(2)}× (goal ≥ 2×)` : ', torch not found (apt-get install python3-torch)');
  }
  full.model.dispose();
  lora.model.dispose();
  return rows;
}
