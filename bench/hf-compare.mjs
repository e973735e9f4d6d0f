// The tunekit half of bench/hf-compare.py: loads each checkpoint the Python
// half wrote in WORK on DEVICE and prints one JSON line with tunekit's logits
// (BERT: hidden states and pooled output) and greedy generations.
//   node bench/hf-compare.mjs WORK [cpu|cuda]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tk from 'tunekit';

const [work, device = 'cpu'] = process.argv.slice(2);
const { ids } = JSON.parse(readFileSync(join(work, 'hf.json'), 'utf8'));
const B = ids.length, T = ids[0].length;
const nest = (a, dims) => {
  if (dims.length === 1) return Array.from(a);
  const step = a.length / dims[0];
  return Array.from({ length: dims[0] }, (_, i) => nest(a.subarray(i * step, (i + 1) * step), dims.slice(1)));
};
const out = {};
for (const name of ['gpt2', 'llama']) {
  const m = tk.loadModel(join(work, name), { device });
  const logits = tk.noGrad(() => m.forward(ids));
  const gen = m.generate(ids, { maxNewTokens: 12 });
  out[name] = { logits: nest(logits.toArray(), [B, T, logits.shape[2]]), generated: gen.map((g) => g.tokens) };
}
const bert = tk.loadModel(join(work, 'bert'), { device });
const r = tk.noGrad(() => bert.forward(ids));
out.bert = { hidden: nest(r.lastHiddenState.toArray(), r.lastHiddenState.shape), pooled: nest(r.pooled.toArray(), r.pooled.shape) };
console.log(JSON.stringify(out));
