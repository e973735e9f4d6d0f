// A LoRA run on a saved base model: only lora_A / lora_B change (the base
// weights stay bit-identical), the adapter lands in outDir/adapter in PEFT's
// format; `tunekit merge` gives a plain model whose logits equal the LoRA
// model's; `tunekit eval` prints eval_loss (with the adapter, and on the merged model).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { baseConfig, cleanup, expectSameBits, makeTask, paramsOf, relErr, runCli, sameBits, tempRoot, TINY_GPT2, writeYaml } from './util.js';

let root: string;
let task: { train: string; valid: string };
let baseDir: string, outDir: string;
let basePrams: Record<string, Float32Array>;
let result: tk.TrainResult;

beforeAll(async () => {
  root = tempRoot('lora');
  task = makeTask(join(root, 'task'), 12, 4, 14);
  baseDir = join(root, 'base');
  tk.manualSeed(5);
  tk.saveModel(tk.createModel({ ...TINY_GPT2, vocab_size: tk.byteTokenizer().vocabSize }), baseDir);
  basePrams = paramsOf(tk.loadModel(baseDir, { tokenizer: false }));
  outDir = join(root, 'run');
  const cfg = tk.resolveConfig(baseConfig(task, outDir, { model: baseDir, method: 'lora', steps: 6, lr: 0.02, weightDecay: 0.1, lora: { r: 4, alpha: 8, dropout: 0.1 } }));
  result = await tk.train(cfg, { quiet: true });
});
afterAll(() => cleanup(root));

describe('LoRA run', () => {
  it('only lora_A / lora_B change; the base weights are bit-identical', () => {
    const after = paramsOf(result.model);
    const loraNames = Object.keys(after).filter((n) => /\.lora_[AB]\./.test(n));
    expect(loraNames.length).toBeGreaterThan(0);
    const baseAfter: Record<string, Float32Array> = {};
    for (const [n, v] of Object.entries(after)) if (!loraNames.includes(n)) baseAfter[n.replace('.base_layer.', '.')] = v;
    expectSameBits(basePrams, baseAfter, 'base weights after LoRA training (weight decay on)');
    // lora_B starts at zero and has moved
    const bs = loraNames.filter((n) => n.includes('.lora_B.'));
    expect(bs.length).toBeGreaterThan(0);
    for (const n of bs) expect(after[n]!.some((x) => x !== 0), n).toBe(true);
    // and only they train
    for (const [n, t] of result.model.namedParameters()) expect(t.requiresGrad, n).toBe(loraNames.includes(n));
  });

  it('the adapter is written to outDir/adapter in PEFT format', () => {
    const dir = join(outDir, 'adapter');
    expect(readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.peft_type).toBe('LORA');
    expect(cfg.r).toBe(4);
    expect(cfg.lora_alpha).toBe(8);
    expect(cfg.task_type).toBe('CAUSAL_LM');
    expect(cfg.inference_mode).toBe(true);
    const keys = Object.keys(tk.loadSafetensors(join(dir, 'adapter_model.safetensors')));
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(k).toMatch(/^base_model\.model\..+\.lora_[AB]\.weight$/);
    // the trained factors, as saved
    const saved = tk.loadSafetensors(join(dir, 'adapter_model.safetensors'));
    const after = paramsOf(result.model);
    for (const [k, t] of Object.entries(saved)) {
      const name = k.replace(/^base_model\.model\./, '').replace(/\.lora_([AB])\.weight$/, '.lora_$1.default.weight');
      expect(sameBits(t.toArray() as Float32Array, after[name]!), k).toBe(true);
    }
    // no full model is written for a LoRA run
    expect(readdirSync(outDir)).not.toContain('final');
  });

  it('tunekit merge: the merged model gives the LoRA model\'s logits', async () => {
    const merged = join(root, 'merged');
    const r = await runCli(['merge', '--model', baseDir, '--adapter', join(outDir, 'adapter'), '--out', merged]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/merged model written/);
    const plain = tk.loadModel(merged, { tokenizer: false }) as tk.PreTrainedModel;
    expect(plain.namedParameters().some(([n]) => n.includes('lora_'))).toBe(false);
    const withAdapter = tk.loadAdapter(tk.loadModel(baseDir, { tokenizer: false }), join(outDir, 'adapter')) as unknown as tk.PreTrainedModel;
    plain.eval();
    withAdapter.eval();
    const tok = tk.byteTokenizer();
    const ids = [tok.encode('Review: The song was lovely.\nSentiment:'), tok.encode('What a dull trip! Sentiment: no')].map((x) => x.slice(0, 24));
    const T = Math.min(...ids.map((x) => x.length));
    const batch = ids.map((x) => x.slice(0, T));
    const a = tk.noGrad(() => tk.tidy(() => plain.forward(batch).toArray() as Float32Array));
    const b = tk.noGrad(() => tk.tidy(() => withAdapter.forward(batch).toArray() as Float32Array));
    const base = tk.noGrad(() => tk.tidy(() => (tk.loadModel(baseDir, { tokenizer: false }) as tk.PreTrainedModel).forward(batch).toArray() as Float32Array));
    expect(relErr(a, b)).toBeLessThan(1e-5);
    expect(relErr(base, b)).toBeGreaterThan(1e-4);  // the adapter does change the outputs
  });

  it('tunekit eval prints eval_loss (with the adapter, and on the merged model: the same)', async () => {
    const withAdapter = await runCli(['eval', '--model', baseDir, '--adapter', join(outDir, 'adapter'), '--tokenizer', 'byte', '--data', task.valid, '--seq-len', '128']);
    expect(withAdapter.code, withAdapter.stderr).toBe(0);
    const e1 = JSON.parse(withAdapter.stdout.trim()) as { eval_loss: number; eval_ppl: number; eval_tokens: number };
    expect(Number.isFinite(e1.eval_loss)).toBe(true);
    expect(e1.eval_ppl).toBeCloseTo(Math.exp(e1.eval_loss), 6);
    // the run's own final evaluation (same data, same model) agrees
    expect(e1.eval_loss).toBeCloseTo(result.evals.at(-1)!.eval_loss, 5);
    const merged = await runCli(['eval', '--model', join(root, 'merged'), '--tokenizer', 'byte', '--data', task.valid, '--seq-len', '128']);
    expect(merged.code, merged.stderr).toBe(0);
    const e2 = JSON.parse(merged.stdout.trim()) as { eval_loss: number };
    expect(Math.abs(e2.eval_loss - e1.eval_loss) / e1.eval_loss).toBeLessThan(1e-5);
    // without the adapter: the base model's (different) loss
    const plain = await runCli(['eval', '--model', baseDir, '--tokenizer', 'byte', '--data', task.valid, '--seq-len', '128']);
    expect((JSON.parse(plain.stdout.trim()) as { eval_loss: number }).eval_loss).not.toBeCloseTo(e1.eval_loss, 3);
  });

  it('LoRA through the CLI on a model directory: --method lora --lora-r 2', async () => {
    const dir = join(root, 'cli-run');
    const yaml = writeYaml(join(root, 'cli.yaml'), baseConfig(task, dir, { model: baseDir, method: 'lora', steps: 2 }));
    const r = await runCli(['train', '--config', yaml, '--lora-r', '2', '--lora-target-modules', 'c_attn', '--quiet']);
    expect(r.code, r.stderr).toBe(0);
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter', 'adapter_config.json'), 'utf8')) as { r: number; target_modules: unknown };
    expect(cfg.r).toBe(2);
    expect(cfg.target_modules).toEqual(['c_attn']);
    const m = tk.loadAdapter(tk.loadModel(baseDir, { tokenizer: false }), join(dir, 'adapter'));
    expect(m.adapterNames).toEqual(['default']);
  });
});

describe('full fine-tuning output', () => {
  it('final/ is a loadable model directory with the tokenizer', async () => {
    const dir = join(root, 'full');
    const r = await tk.train(tk.resolveConfig(baseConfig(task, dir, { model: baseDir, steps: 2 })), { quiet: true });
    const m = tk.loadModel(join(dir, 'final')) as tk.PreTrainedModel;
    expectSameBits(paramsOf(r.model), paramsOf(m), 'final/ weights');
    expect(m.tokenizer).not.toBeNull();
  });
});
