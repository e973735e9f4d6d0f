// The trainer: a model, a JSONL file and a config in; a better model (or a
// LoRA adapter), checkpoints and metrics out. Checkpoints hold weights (or the
// adapter), optimizer state and the data position; resuming gives the same
// final weights as an uninterrupted run, bit for bit on the CPU.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../autograd.js';
import { epochOrder } from '../data/prng.js';
import { collateLm, collatePacked } from '../data/collate.js';
import { loadJsonlSync } from '../data/dataset.js';
import type { Dataset } from '../data/dataset.js';
import type { LmBatch, LmExample, PackedExample } from '../data/types.js';
import { loadSafetensors, saveSafetensors } from '../io/index.js';
import { createModel, loadModel, saveModel, type AnyModel } from '../models/index.js';
import type { PreTrainedModel } from '../models/base.js';
import * as ops from '../ops/index.js';
import { AdamW, clipGradNorm, lrMultiplier, SGD, type Optimizer } from '../optim/index.js';
import { manualSeed, tensor, tidy, type Tensor } from '../tensor.js';
import { byteTokenizer, loadTokenizerSync, type Tokenizer } from '../tokenizer/index.js';
import { applyLora, loadAdapter, type LoraModel } from '../peft/index.js';
import { cleanTemporary, latestCheckpoint, readState, writeCheckpoint, writeJsonFile } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { MetricsLog, Progress } from './progress.js';
import { copyTokenizerFiles } from './tools.js';

export interface TrainOptions {
  /** continue from the newest checkpoint in outDir */
  resume?: boolean;
  /** no progress output */
  quiet?: boolean;
  /** stop after this step (for tests: simulates an interruption without a signal) */
  stopAfterStep?: number;
  /** handle SIGINT: save a checkpoint at the end of the current step and return (default true) */
  handleSigint?: boolean;
}

export interface EvalResult {
  step: number;
  eval_loss: number;
  eval_ppl: number;
  eval_tokens: number;
}

export interface TrainResult {
  outDir: string;
  step: number;
  totalSteps: number;
  lastLoss: number;
  evals: EvalResult[];
  interrupted: boolean;
  stoppedEarly: boolean;
  skippedSteps: number;
  model: AnyModel;
  tokenizer: Tokenizer;
}

interface TrainerState {
  step: number;
  epoch: number;
  index: number;
  bestEvalLoss: number | null;
  evalsWithoutImprovement: number;
  skippedSteps: number;
  optimizer: { kind: string; step: number; hyper: Record<string, number | boolean> };
  config: TrainConfig;
}

export class NonFiniteLossError extends Error {
  constructor(readonly step: number, readonly loss: number) {
    super(`training stopped: loss is ${loss} at step ${step} (set skipNonFinite to skip such steps)`);
    this.name = 'NonFiniteLossError';
  }
}

// ---------------------------------------------------------------- pieces
function resolveTokenizer(cfg: TrainConfig): Tokenizer {
  if (cfg.tokenizer === 'byte') return byteTokenizer();
  const dir = cfg.tokenizer ?? (typeof cfg.model === 'string' ? cfg.model : null);
  if (!dir) return byteTokenizer();
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`${join(dir, 'tokenizer.json')}: not found (set 'tokenizer' to a directory or 'byte')`);
  return loadTokenizerSync(dir);
}

function buildBaseModel(cfg: TrainConfig, tok: Tokenizer, fromDir?: string): AnyModel {
  if (fromDir) return loadModel(fromDir, { tokenizer: false });
  if (typeof cfg.model === 'string') return loadModel(cfg.model, { tokenizer: false });
  manualSeed(cfg.seed);
  const c = { ...cfg.model } as Record<string, unknown>;
  if (c.vocab_size === undefined) c.vocab_size = tok.vocabSize;
  return createModel(c);
}

/** Shifted causal-LM loss: logits at t score labels[t + 1]; returns the summed loss and the token count. */
export function lmLossSum(model: PreTrainedModel, batch: LmBatch): { loss: Tensor; tokens: number } {
  const B = batch.inputIds.length, T = batch.inputIds[0]?.length ?? 0;
  const targets = new Int32Array(B * (T - 1));
  let tokens = 0;
  for (let b = 0; b < B; b++)
    for (let t = 1; t < T; t++) {
      const y = batch.labels[b]![t]!;
      targets[b * (T - 1) + t - 1] = y;
      if (y !== -100) tokens++;
    }
  const logits = model.forward(batch.inputIds, {
    attentionMask: batch.attentionMask,
    positionIds: batch.positionIds,
    segmentIds: batch.segmentIds,
  });
  const V = logits.shape[2]!;
  const shifted = ops.reshape(ops.slice(logits, 1, 0, T - 1), [B * (T - 1), V]);
  const loss = ops.crossEntropy(shifted, tensor(targets, [B * (T - 1)], { dtype: 'i32' }), { ignoreIndex: -100, reduction: 'sum' });
  return { loss, tokens };
}

function tokenCount(batch: LmBatch): number {
  let n = 0;
  for (const row of batch.labels) for (let t = 1; t < row.length; t++) if (row[t] !== -100) n++;
  return n;
}

/** Mean token loss and perplexity over a dataset (no gradients). */
export function evaluateLm(model: PreTrainedModel, data: Dataset<LmExample> | Dataset<PackedExample>, batchSize: number, padTokenId: number, maxBatches = 0): { loss: number; ppl: number; tokens: number } {
  const wasTraining = model.training;
  model.eval();
  let sum = 0, tokens = 0;
  try {
    const n = data.length;
    for (let i = 0, k = 0; i < n && (!maxBatches || k < maxBatches); i += batchSize, k++) {
      const ex = data.examples.slice(i, i + batchSize);
      const batch = data.kind === 'packed' ? collatePacked(ex as PackedExample[], { padTokenId }) : collateLm(ex as LmExample[], { padTokenId });
      const r = noGrad(() =>
        tidy(() => {
          const { loss, tokens: t } = lmLossSum(model, batch);
          return { v: loss.item(), t };
        }),
      );
      sum += r.v;
      tokens += r.t;
    }
  } finally {
    model.train(wasTraining);
  }
  const loss = tokens ? sum / tokens : NaN;
  return { loss, ppl: Math.exp(loss), tokens };
}

// ---------------------------------------------------------------- the loop
export async function train(cfg: TrainConfig, opts: TrainOptions = {}): Promise<TrainResult> {
  if (cfg.device === 'cuda') throw new Error('train: device cuda is not available in this build (CUDA backend not implemented yet)');
  const outDir = cfg.outDir;
  const resumeFrom = opts.resume ? latestCheckpoint(outDir) : null;
  if (opts.resume) cleanTemporary(outDir);
  const state: TrainerState | null = resumeFrom ? readState<TrainerState>(resumeFrom.dir) : null;

  const tok = resolveTokenizer(cfg);
  const padTokenId = tok.padTokenId ?? tok.eosTokenId ?? 0;

  // data
  const loadOpts = { seqLen: cfg.seqLen, skipBadLines: cfg.skipBadLines, trainOnPrompt: cfg.trainOnPrompt, ...(cfg.format ? { format: cfg.format } : {}), kind: 'lm' as const };
  let trainData = loadJsonlSync(cfg.data, tok, loadOpts as never) as unknown as Dataset<LmExample>;
  let validData: Dataset<LmExample> | null = null;
  if (cfg.validationData) validData = loadJsonlSync(cfg.validationData, tok, loadOpts as never) as unknown as Dataset<LmExample>;
  else if (cfg.validationSplit > 0) {
    const s = cfg.validationSplit < 1 ? trainData.split({ fraction: cfg.validationSplit, seed: cfg.seed }) : trainData.split({ count: Math.floor(cfg.validationSplit), seed: cfg.seed });
    trainData = s.train;
    validData = s.validation;
  }
  const data: Dataset<LmExample> | Dataset<PackedExample> = cfg.packing ? trainData.pack(cfg.seqLen) : trainData;
  const validSet: Dataset<LmExample> | Dataset<PackedExample> | null = validData && cfg.packing ? validData.pack(cfg.seqLen) : validData;
  if (data.length === 0) throw new Error(`${cfg.data}: no training examples`);

  // model
  let model: AnyModel;
  if (cfg.method === 'full') {
    model = buildBaseModel(cfg, tok, resumeFrom ? join(resumeFrom.dir, 'model') : undefined);
  } else {
    model = buildBaseModel(cfg, tok);
    manualSeed(cfg.seed);
    applyLora(model as PreTrainedModel, { r: cfg.lora.r, alpha: cfg.lora.alpha, dropout: cfg.lora.dropout, targetModules: cfg.lora.targetModules, useRslora: cfg.lora.useRslora });
    if (resumeFrom) loadAdapter(model as PreTrainedModel, join(resumeFrom.dir, 'adapter'));
  }
  if (!('generate' in model)) throw new Error(`train: model_type '${model.config.model_type}' is not a causal language model`);
  const lm = model as PreTrainedModel;
  lm.tokenizer = tok;
  lm.train();

  // schedule
  const batchesPerEpoch = Math.ceil(data.length / cfg.batchSize);
  const totalSteps = cfg.steps ?? Math.max(1, Math.ceil(((cfg.epochs ?? 1) * batchesPerEpoch) / cfg.gradAccum));
  const params = lm.namedParameters().filter(([, t]) => t.requiresGrad);
  const optimizer: Optimizer =
    cfg.optimizer === 'sgd' ? new SGD(params, { lr: cfg.lr, momentum: 0.9, weightDecay: cfg.weightDecay }) : new AdamW(params, { lr: cfg.lr, weightDecay: cfg.weightDecay });
  let step = 0, epoch = 0, index = 0, bestEval: number | null = null, sinceBest = 0, skippedSteps = 0;
  if (state && resumeFrom) {
    step = state.step;
    epoch = state.epoch;
    index = state.index;
    bestEval = state.bestEvalLoss;
    sinceBest = state.evalsWithoutImprovement;
    skippedSteps = state.skippedSteps;
    const optPath = join(resumeFrom.dir, 'optimizer.safetensors');
    const tensors = existsSync(optPath) ? loadSafetensors(optPath) : {};
    optimizer.loadState({ ...state.optimizer, tensors });
  }

  const metrics = new MetricsLog(join(outDir, 'metrics.jsonl'));
  const progress = new Progress(totalSteps, cfg.logEvery, process.stderr, opts.quiet ?? false);
  const evals: EvalResult[] = [];
  let interrupted = false, stoppedEarly = false, lastLoss = NaN;
  const onSigint = () => {
    interrupted = true;
  };
  if (opts.handleSigint ?? true) process.on('SIGINT', onSigint);

  let order = epochOrder(data.length, cfg.seed, epoch);
  const nextBatch = (): LmBatch => {
    if (index >= order.length) {
      epoch++;
      index = 0;
      order = epochOrder(data.length, cfg.seed, epoch);
    }
    const ex = order.slice(index, index + cfg.batchSize).map((i) => data.examples[i]!);
    index += cfg.batchSize;
    return data.kind === 'packed' ? collatePacked(ex as PackedExample[], { padTokenId }) : collateLm(ex as LmExample[], { padTokenId });
  };

  const saveCheckpoint = () => {
    writeCheckpoint(outDir, step, (dir) => {
      if (cfg.method === 'full') saveModel(model, join(dir, 'model'));
      else (lm as unknown as LoraModel).saveAdapter(join(dir, 'adapter'));
      const os = optimizer.state();
      saveSafetensors(join(dir, 'optimizer.safetensors'), os.tensors);
      const st: TrainerState = {
        step,
        epoch,
        index,
        bestEvalLoss: bestEval,
        evalsWithoutImprovement: sinceBest,
        skippedSteps,
        optimizer: { kind: os.kind, step: os.step, hyper: os.hyper },
        config: cfg,
      };
      writeJsonFile(join(dir, 'trainer_state.json'), st);
    });
  };

  const runEval = () => {
    if (!validSet || validSet.length === 0) return;
    const r = evaluateLm(lm, validSet, cfg.batchSize, padTokenId, cfg.evalBatches);
    const rec: EvalResult = { step, eval_loss: r.loss, eval_ppl: r.ppl, eval_tokens: r.tokens };
    evals.push(rec);
    metrics.write(rec as unknown as Record<string, unknown>);
    progress.message(`eval step ${step}: loss ${r.loss.toFixed(4)} ppl ${r.ppl.toFixed(2)}`);
    if (bestEval === null || r.loss < bestEval) {
      bestEval = r.loss;
      sinceBest = 0;
    } else sinceBest++;
    if (cfg.earlyStoppingPatience > 0 && sinceBest >= cfg.earlyStoppingPatience) stoppedEarly = true;
  };

  try {
    while (step < totalSteps && !interrupted && !stoppedEarly) {
      const t0 = performance.now();
      manualSeed((cfg.seed * 1000003 + step) % 2147483647);  // dropout masks depend on (seed, step) only
      const micro = Array.from({ length: cfg.gradAccum }, nextBatch);
      const stepTokens = micro.reduce((a, b) => a + tokenCount(b), 0);
      let lossSum = 0;
      for (const batch of micro) {
        if (tokenCount(batch) === 0) continue;
        lossSum += tidy(() => {
          const { loss } = lmLossSum(lm, batch);
          const scaled = ops.scale(loss, 1 / stepTokens);
          scaled.backward();
          return loss.item();
        });
      }
      const loss = stepTokens ? lossSum / stepTokens : NaN;
      const lr = cfg.lr * lrMultiplier(step, { kind: cfg.schedule, warmupSteps: cfg.warmupSteps, totalSteps });
      let gradNormValue = NaN;
      if (!Number.isFinite(loss)) {
        if (!cfg.skipNonFinite) throw new NonFiniteLossError(step + 1, loss);
        skippedSteps++;
        optimizer.zeroGrad();
      } else {
        const ps = params.map(([, t]) => t);
        gradNormValue = cfg.maxGradNorm > 0 ? clipGradNorm(ps, cfg.maxGradNorm) : NaN;
        optimizer.lr = lr;
        optimizer.step();
        optimizer.zeroGrad();
      }
      step++;
      lastLoss = loss;
      const dt = (performance.now() - t0) / 1000;
      const totalTok = micro.reduce((a, b) => a + b.attentionMask.reduce((s, r) => s + r.reduce((x, y) => x + y, 0), 0), 0);
      const m = { step, loss, lr, tokens_per_s: totalTok / dt, grad_norm: Number.isFinite(gradNormValue) ? gradNormValue : undefined, epoch: epoch + index / Math.max(1, order.length) };
      metrics.write(m);
      progress.update(m);
      if (cfg.evalEvery > 0 && step % cfg.evalEvery === 0) runEval();
      if (cfg.saveEvery > 0 && step % cfg.saveEvery === 0 && step < totalSteps) saveCheckpoint();
      if (opts.stopAfterStep !== undefined && step >= opts.stopAfterStep) interrupted = true;
      await new Promise<void>((r) => setImmediate(r));  // let signals and I/O through
    }
    if (interrupted) {
      saveCheckpoint();
      progress.message(`interrupted: checkpoint saved at step ${step}`);
    } else {
      if (cfg.evalEvery === 0 || step % cfg.evalEvery !== 0) runEval();
      saveCheckpoint();
      if (cfg.method === 'full') {
        saveModel(model, join(outDir, 'final'));
        const tokDir = cfg.tokenizer && cfg.tokenizer !== 'byte' ? cfg.tokenizer : typeof cfg.model === 'string' ? cfg.model : null;
        if (tokDir) copyTokenizerFiles(tokDir, join(outDir, 'final'));
        else if ('saveSync' in tok) (tok as unknown as { saveSync(d: string): void }).saveSync(join(outDir, 'final'));
      } else (lm as unknown as LoraModel).saveAdapter(join(outDir, 'adapter'));
    }
  } finally {
    progress.stop();
    if (opts.handleSigint ?? true) process.off('SIGINT', onSigint);
  }
  return { outDir, step, totalSteps, lastLoss, evals, interrupted, stoppedEarly, skippedSteps, model, tokenizer: tok };
}

/** Reads the final metrics line of a run. */
export function lastMetrics(outDir: string): Record<string, unknown> | null {
  const p = join(outDir, 'metrics.jsonl');
  if (!existsSync(p)) return null;
  const lines = readFileSync(p, 'utf8').trim().split('\n');
  return lines.length ? (JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>) : null;
}
