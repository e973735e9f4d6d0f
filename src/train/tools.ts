// The building blocks of `tunekit eval` and `tunekit merge`.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadJsonlSync, type Dataset } from '../data/dataset.js';
import type { LmExample } from '../data/types.js';
import { loadModel, saveModel, type AnyModel } from '../models/index.js';
import type { PreTrainedModel } from '../models/base.js';
import { loadAdapter, type LoraModel } from '../peft/index.js';
import { byteTokenizer, loadTokenizerSync, type Tokenizer } from '../tokenizer/index.js';
import { evaluateLm } from './trainer.js';

/**
 * The tokenizer of a run: 'byte', a directory, else the model directory's
 * (the byte tokenizer when there is none, e.g. a model built from a config).
 * `hint` ends the error message: how to name a tokenizer where this is called.
 */
export function resolveTokenizer(tokenizer: string | undefined, modelDir: string | null, hint: string): Tokenizer {
  if (tokenizer === 'byte') return byteTokenizer();
  const dir = tokenizer ?? modelDir;
  if (!dir) return byteTokenizer();
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${join(dir, 'tokenizer.json')}: not found (${hint})`);
  return loadTokenizerSync(dir);
}

function tokenizerFor(model: string, tokenizer?: string): Tokenizer {
  return resolveTokenizer(tokenizer, model, 'pass --tokenizer DIR or --tokenizer byte');
}

export function evaluateModelOnFile(o: { model: string; data: string; adapter?: string; tokenizer?: string; seqLen: number; batchSize: number }): { loss: number; ppl: number; tokens: number } {
  const tok = tokenizerFor(o.model, o.tokenizer);
  const model = loadModel(o.model, { tokenizer: false });
  if (!('generate' in model)) throw new Error(`${o.model}: not a causal language model`);
  if (o.adapter) loadAdapter(model as PreTrainedModel, o.adapter);
  const data = loadJsonlSync(o.data, tok, { seqLen: o.seqLen, kind: 'lm' } as never) as unknown as Dataset<LmExample>;
  return evaluateLm(model as PreTrainedModel, data, o.batchSize, tok.padTokenId ?? tok.eosTokenId ?? 0);
}

export function mergeAdapterToDir(modelDir: string, adapterDir: string, outDir: string): AnyModel {
  const model = loadModel(modelDir, { tokenizer: false });
  if (!('generate' in model)) throw new Error(`${modelDir}: not a causal language model`);
  const lora = loadAdapter(model as PreTrainedModel, adapterDir) as unknown as LoraModel;
  const merged = lora.mergeAndUnload();
  saveModel(merged as AnyModel, outDir);
  copyTokenizerFiles(modelDir, outDir);
  return merged as AnyModel;
}

const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

/** Copies the tokenizer files of a model directory (those present) into another. */
export function copyTokenizerFiles(fromDir: string, toDir: string): void {
  mkdirSync(toDir, { recursive: true });
  for (const f of TOKENIZER_FILES) if (existsSync(join(fromDir, f))) copyFileSync(join(fromDir, f), join(toDir, f));
}
