// Models on the CPU: loading a 124M-parameter GPT-2 checkpoint against the time
// to read the same file (target ≤ 2×), and greedy generation tokens/s for that
// model with and without the KV cache.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { measure } from './lib.js';

export const title = 'models (GPT-2 124M)';

function readWholeFile(path) {
  const size = statSync(path).size;
  const buf = Buffer.allocUnsafe(size);
  const fd = openSync(path, 'r');
  try {
    let off = 0;
    while (off < size) off += readSync(fd, buf, off, size - off, off);
  } finally {
    closeSync(fd);
  }
  return buf.length;
}

export function run(ctx) {
  const { tk } = ctx;
  const dir = mkdtempSync(join(tmpdir(), 'tk-bench-model-'));
  try {
    const config = { model_type: 'gpt2', vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12 };
    tk.manualSeed(0);
    const m0 = tk.createModel(config);
    m0.save(dir);
    m0.dispose();
    const file = join(dir, 'model.safetensors');
    const bytes = statSync(file).size;
    readWholeFile(file);  // warm the page cache for both
    // the baseline in the same harness: read the file into a fresh buffer, as loading does
    const [readRow] = measure(
      'model',
      [{ op: 'read the file', shape: `${(bytes / 2 ** 20).toFixed(0)} MiB into a fresh buffer`, kind: 'latency', target: Infinity, fn: () => readWholeFile(file), note: 'baseline' }],
      ctx,
    );
    const readMs = readRow.timeMs;
    const rows = [readRow];
    rows.push(
      ...measure(
        'model',
        [
          {
            op: 'loadModel', shape: `${(bytes / 2 ** 20).toFixed(0)} MiB safetensors`, kind: 'latency', target: 2 * readMs * 1e3,
            fn: () => tk.loadModel(dir).dispose(),
            note: `reading the file alone: ${readMs.toFixed(1)} ms (target ≤ 2×); both pay first-touch page faults on fresh memory`,
          },
        ],
        ctx,
      ),
    );
    const model = tk.loadModel(dir);
    const prompt = [[464, 2068, 7586, 21831, 18045, 625, 262, 16931]];
    const n = ctx.quick ? 8 : 32;
    for (const useCache of [true, false]) {
      const r = measure(
        'model',
        [
          {
            op: `generate greedy, ${useCache ? 'KV cache' : 'no cache'}`, shape: `prompt 8 + ${n} tokens`, kind: 'latency', target: Infinity,
            fn: () => model.generate(prompt, { maxNewTokens: n, useCache, stop: [] }),
            note: '',
          },
        ],
        ctx,
      )[0];
      if (!r.error) r.note = `${(n / (r.timeMs / 1e3)).toFixed(1)} tokens/s`;
      rows.push(r);
    }
    model.dispose();
    return rows;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
