// The embedded base model and the one-command quickstart.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { BASE_MODEL_DIR, quickstart } from '../../dist/train/quickstart.js';

const out = mkdtempSync(join(tmpdir(), 'tk-quickstart-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('embedded base model', () => {
  it('is a small byte-level GPT-2 that writes English', () => {
    const m = tk.loadModel(BASE_MODEL_DIR) as tk.PreTrainedModel;
    const n = m.namedParameters().reduce((a, [, t]) => a + t.numel, 0);
    expect(n).toBeLessThan(5_000_000);  // ≤ 20 MB in f32
    expect(m.tokenizer).not.toBeNull();
    const text = m.generate(['One day, the little'], { maxNewTokens: 40 })[0]!.text!;
    // mostly lowercase letters, spaces and punctuation, with real words from the corpus
    expect(text).toMatch(/^[A-Za-z ,.!"']+$/);
    expect(text.split(' ').filter((w) => /^(the|a|and|was|in|at|on|by|near)$/.test(w)).length).toBeGreaterThan(0);
    m.dispose();
  });
});

describe('quickstart', () => {
  it('LoRA fine-tuning lifts the task accuracy and lowers the evaluation loss, and saves a PEFT adapter', async () => {
    const r = await quickstart({ outDir: out, quiet: true });
    expect(r.before.accuracy).toBeLessThan(0.75);
    expect(r.after.accuracy).toBeGreaterThan(0.9);
    expect(r.after.loss).toBeLessThan(r.before.loss / 10);
    expect(existsSync(join(out, 'adapter', 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);
  }, 600_000);
});
