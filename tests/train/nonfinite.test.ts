// A NaN or Inf loss stops the run with NonFiniteLossError naming the step,
// unless skipNonFinite: then such steps are skipped (counted, marked in
// metrics.jsonl) and the weights stay as they were.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, expectSameBits, makeTask, paramsOf, readMetrics, runCli, tempRoot, TINY_GPT2 } from './util.js';

let root: string;
let task: { train: string; valid: string };

/** A saved tiny model with `value` written into one element of one tensor. */
function poisonedModel(name: string, value: number): string {
  const dir = join(root, name);
  tk.manualSeed(3);
  const m = tk.createModel({ ...TINY_GPT2, vocab_size: tk.byteTokenizer().vocabSize });
  tk.saveModel(m, dir);
  const file = join(dir, 'model.safetensors');
  const ts = tk.loadSafetensors(file);
  const key = Object.keys(ts).find((k) => k.endsWith('h.0.ln_1.weight'))!;
  expect(key).toBeDefined();
  const a = ts[key]!.toArray() as Float32Array;
  a[5] = value;
  ts[key] = tk.tensor(a, ts[key]!.shape);
  tk.saveSafetensors(file, ts);
  return dir;
}

let nanDir: string, infDir: string;
beforeAll(() => {
  root = tempRoot('nonfinite');
  task = makeTask(join(root, 'task'), 8, 2, 6);
  nanDir = poisonedModel('nan-model', NaN);
  infDir = poisonedModel('inf-model', Infinity);
});
afterAll(() => cleanup(root));

describe('non-finite loss', () => {
  it('NaN weights: NonFiniteLossError naming step 1', async () => {
    const cfg = tk.resolveConfig(baseConfig(task, join(root, 'nan-stop'), { model: nanDir, steps: 3 }));
    const err = await tk.train(cfg, { quiet: true }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(tk.NonFiniteLossError);
    const e = err as InstanceType<typeof tk.NonFiniteLossError>;
    expect(e.step).toBe(1);
    expect(Number.isNaN(e.loss)).toBe(true);
    expect(e.message).toMatch(/step 1\b/);
    expect(e.message).toMatch(/NaN/);
    expect(e.message).toMatch(/skipNonFinite/);
  });

  it('Inf in the weights: stops too (LoRA run), naming the step', async () => {
    const cfg = tk.resolveConfig(baseConfig(task, join(root, 'inf-stop'), { model: infDir, method: 'lora', steps: 3 }));
    await expect(tk.train(cfg, { quiet: true })).rejects.toThrow(/(loss|gradient norm) is (NaN|-?Infinity) at step 1\b/);
  });

  it('the CLI exits non-zero with the step in stderr', async () => {
    const r = await runCli(['train', '--model', nanDir, '--tokenizer', 'byte', '--data', task.train, '--out-dir', join(root, 'nan-cli'), '--steps', '2', '--method', 'full']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/at step 1\b/);
  });

  it('skipNonFinite: the run completes, every step skipped and counted, weights unchanged', async () => {
    const before = paramsOf(tk.loadModel(nanDir, { tokenizer: false }));
    const dir = join(root, 'nan-skip');
    const cfg = tk.resolveConfig(baseConfig(task, dir, { model: nanDir, steps: 3, skipNonFinite: true }));
    const r = await tk.train(cfg, { quiet: true });
    expect(r.step).toBe(3);
    expect(r.skippedSteps).toBe(3);
    expectSameBits(before, paramsOf(r.model), 'weights after skipped steps');
    expectSameBits(before, paramsOf(tk.loadModel(join(dir, 'final'), { tokenizer: false })), 'final/ after skipped steps');
    const steps = readMetrics(dir).filter((m) => 'loss' in m);
    expect(steps.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(steps.every((m) => m.skipped === true)).toBe(true);
  });

  it('skipNonFinite with finite data: nothing is skipped', async () => {
    const r = await tk.train(tk.resolveConfig(baseConfig(task, join(root, 'clean'), { steps: 2, skipNonFinite: true })), { quiet: true });
    expect(r.skippedSteps).toBe(0);
    expect(Number.isFinite(r.lastLoss)).toBe(true);
  });
});
