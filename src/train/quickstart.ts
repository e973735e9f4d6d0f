// `tunekit quickstart`: LoRA fine-tuning of the embedded base model on the
// bundled sentiment task, with evaluation loss and task accuracy before and after.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../models/index.js';
import type { PreTrainedModel } from '../models/base.js';
import { loadAdapter } from '../peft/index.js';
import { byteTokenizer } from '../tokenizer/index.js';
import { resolveConfig } from './config.js';
import { loadJsonlSync, type Dataset } from '../data/dataset.js';
import type { LmExample } from '../data/types.js';
import { evaluateLm, train } from './trainer.js';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BASE_MODEL_DIR = join(packageRoot, 'assets', 'base-model');
export const TASK_DIR = join(packageRoot, 'assets', 'sentiment');

interface TaskExample {
  prompt: string;
  completion: string;
}

/** Accuracy of picking the right label by comparing the log-likelihood of each label continuation. */
export function labelAccuracy(model: PreTrainedModel, examples: TaskExample[], labels: string[]): number {
  const tok = model.tokenizer ?? byteTokenizer();
  let correct = 0;
  const contexts: string[] = [], conts: string[] = [];
  for (const e of examples)
    for (const l of labels) {
      contexts.push(e.prompt);
      conts.push(l);
    }
  const ll = model.logLikelihood(contexts, conts, { tokenizer: tok, batchSize: 16 });
  examples.forEach((e, i) => {
    const scores = labels.map((_, j) => ll[i * labels.length + j]!);
    const best = labels[scores.indexOf(Math.max(...scores))];
    if (best === e.completion) correct++;
  });
  return correct / examples.length;
}

function readTask(path: string): TaskExample[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as TaskExample);
}

export interface QuickstartOptions {
  outDir: string;
  /** base model directory (default: the embedded one, assets/base-model) */
  baseModel?: string;
  steps?: number;
  quiet?: boolean;
}

export async function quickstart(o: QuickstartOptions): Promise<{ before: { loss: number; accuracy: number }; after: { loss: number; accuracy: number } }> {
  const base = o.baseModel ?? BASE_MODEL_DIR;
  if (!existsSync(join(base, 'model.safetensors'))) throw new Error(`${base}: the base model is missing`);
  const valid = join(TASK_DIR, 'valid.jsonl');
  const task = readTask(valid);
  const labels = [...new Set(task.map((e) => e.completion))].sort();
  const measure = (adapter?: string) => {
    const model = loadModel(base) as PreTrainedModel;
    model.tokenizer ??= byteTokenizer();
    if (adapter) loadAdapter(model, adapter);
    const accuracy = labelAccuracy(model, task, labels);
    const tok = model.tokenizer;
    const data = loadJsonlSync(valid, tok, { seqLen: 256, kind: 'lm' } as never) as unknown as Dataset<LmExample>;
    const { loss } = evaluateLm(model, data, 16, tok.padTokenId ?? tok.eosTokenId ?? 0);
    model.dispose();
    return { loss, accuracy };
  };
  const log = (s: string) => {
    if (!o.quiet) console.log(s);
  };
  const before = measure();
  log(`before fine-tuning: eval loss ${before.loss.toFixed(4)}, task accuracy ${(100 * before.accuracy).toFixed(1)}%`);
  const cfg = resolveConfig({
    model: base,
    data: join(TASK_DIR, 'train.jsonl'),
    validationData: valid,
    method: 'lora',
    lora: { r: 8, alpha: 16, targetModules: ['c_attn', 'c_proj', 'c_fc'] },
    batchSize: 16,
    seqLen: 256,
    steps: o.steps ?? 150,
    lr: 3e-3,
    warmupSteps: 10,
    schedule: 'cosine',
    evalEvery: 50,
    evalBatches: 4,
    logEvery: 10,
    outDir: o.outDir,
    seed: 0,
  });
  await train(cfg, { quiet: o.quiet, overwrite: true });  // a demo: running it again starts over
  const adapter = join(o.outDir, 'adapter');
  const after = measure(adapter);
  log(`after fine-tuning:  eval loss ${after.loss.toFixed(4)}, task accuracy ${(100 * after.accuracy).toFixed(1)}%`);
  log(`adapter saved to ${adapter} (PEFT format)`);
  return { before, after };
}
