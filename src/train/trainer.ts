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
import { native } from '../native/binding.js';
import { autocast } from '../cuda.js';
import { AdamW, gradNorm, lrMultiplier, SGD, type Optimizer } from '../optim/index.js';
import { manualSeed, tensor, tidy, type Tensor } from '../tensor.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { applyLora, loadAdapter, type LoraModel } from '../peft/index.js';
import { cleanTemporary, latestCheckpoint, listCheckpoints, readState, removeCheckpoint, writeCheckpoint, writeJsonFile } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { MetricsLog, Progress, type StepMetrics } from './progress.js';
import { copyTokenizerFiles, resolveTokenizer } from './tools.js';

export interface TrainOptions {
  /** continue from the newest checkpoint in outDir */
  resume?: boolean;
  /**
   * a fresh run (no resume) in an outDir that holds an earlier run's checkpoints: remove them
   * (default false: that is an error, so that a forgotten --resume does not silently lose a run)
   */
  overwrite?: boolean;
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
  /** steps whose loss (or gradient norm) was NaN or Inf and that were skipped (skipNonFinite) */
  skippedSteps: number;
  /** malformed data lines skipped while loading (skipBadLines), training and validation files together */
  skippedLines: number;
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
  constructor(
    readonly step: number,
    readonly loss: number,
    /** the gradient norm, when the loss was finite but the gradients were not */
    readonly gradNorm?: number,
  ) {
    super(
      gradNorm === undefined
        ? `training stopped: loss is ${loss} at step ${step} (set skipNonFinite to skip such steps)`
        : `training stopped: gradient norm is ${gradNorm} at step ${step} (loss ${loss}; set skipNonFinite to skip such steps)`,
    );
    this.name = 'NonFiniteLossError';
  }
}

// ---------------------------------------------------------------- pieces
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
  const loss = ops.crossEntropy(shifted, tensor(targets, [B * (T - 1)], { dtype: 'i32', device: logits.device }), { ignoreIndex: -100, reduction: 'sum' });
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
  if (cfg.device === 'cuda' && !native.backendInfo().cuda.available)
    throw new Error(`device: 'cuda' was asked for, but CUDA is not available: ${native.backendInfo().cuda.reason ?? 'unknown reason'}`);
  if (cfg.dtype === 'bf16' && cfg.device !== 'cuda') throw new Error("dtype: 'bf16' needs device: 'cuda' (the CPU computes in f32)");
  const outDir = cfg.outDir;
  cleanTemporary(outDir);  // half-written checkpoints of a killed run
  const resumeFrom = opts.resume ? latestCheckpoint(outDir) : null;
  if (!opts.resume) {
    // a fresh run must not mix with an earlier one's checkpoints (pruning keeps the highest steps,
    // which would delete the new run's own checkpoints)
    const old = listCheckpoints(outDir);
    if (old.length && !opts.overwrite)
      throw new Error(
        `${outDir}: already holds checkpoints (newest ${old[old.length - 1]!.dir}); pass --resume (resume: true) to continue that run, --overwrite (overwrite: true) to start over, or choose another outDir`,
      );
    for (const c of old) removeCheckpoint(outDir, c.dir);
  }
  const state: TrainerState | null = resumeFrom ? readState<TrainerState>(resumeFrom.dir) : null;
  if (state && state.config?.method && state.config.method !== cfg.method)
    throw new Error(`${resumeFrom!.dir}: the checkpoint is of a '${state.config.method}' run, but method is '${cfg.method}'`);

  const tok = resolveTokenizer(cfg.tokenizer, typeof cfg.model === 'string' ? cfg.model : null, "set 'tokenizer' to a directory or 'byte'");
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
  const skippedLines = trainData.skipped + (cfg.validationData && validData ? validData.skipped : 0);
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
    if (resumeFrom) loadAdapter(model as PreTrainedModel, join(resumeFrom.dir, 'adapter'), { isTrainable: true });
  }
  if (!('generate' in model)) throw new Error(`train: model_type '${model.config.model_type}' is not a causal language model`);
  const lm = model as PreTrainedModel;
  if (tok.vocabSize > lm.vocabSize)
    throw new Error(`train: the tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${lm.vocabSize} (set 'tokenizer' to the model's own)`);
  lm.tokenizer = tok;
  lm.train();
  // on CUDA the parameters (f32 masters) move to the device; dtype 'bf16' runs the matmuls in bf16 (tk.autocast)
  if (cfg.device === 'cuda') lm.to('cuda');
  const mixed = <R>(fn: () => R): R => (cfg.dtype === 'bf16' ? autocast('bf16', fn) : fn());

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
  // a resumed run repeats the steps after its checkpoint: their old records go
  if (resumeFrom) metrics.truncateAfter(step);
  else metrics.reset();
  const progress = new Progress(totalSteps, cfg.logEvery, process.stderr, opts.quiet ?? false, step);
  if (opts.resume) progress.message(resumeFrom ? `resuming from ${resumeFrom.dir} (step ${step}/${totalSteps})` : `no checkpoint in ${outDir}: starting from step 0`);
  if (skippedLines) {
    const first = [...trainData.skippedReasons, ...(validData?.skippedReasons ?? [])][0];
    progress.message(`skipped ${skippedLines} malformed data line(s)${first ? ` (first: ${first})` : ''}`);
  }
  const evals: EvalResult[] = [];
  let interrupted = false, stoppedEarly = false, lastLoss = NaN;
  const onSigint = () => {
    // first SIGINT: finish the step, save a checkpoint, return; a second one: stop now
    if (interrupted) process.exit(130);
    interrupted = true;
    progress.message('SIGINT: saving a checkpoint at the end of this step (again to abort without saving)');
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

  let savedStep = resumeFrom ? resumeFrom.step : -1;
  let savedEvals = evals.length;
  const saveCheckpoint = () => {
    // the same state was saved already (e.g. saveEvery hit at the step SIGINT arrived in)
    if (savedStep === step && savedEvals === evals.length) return;
    savedStep = step;
    savedEvals = evals.length;
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
    if (opts.stopAfterStep !== undefined && step >= opts.stopAfterStep) interrupted = true;
    while (step < totalSteps && !interrupted && !stoppedEarly) {
      const t0 = performance.now();
      manualSeed((cfg.seed * 1000003 + step) % 2147483647);  // dropout masks depend on (seed, step) only
      const micro = Array.from({ length: cfg.gradAccum }, nextBatch);
      const counts = micro.map(tokenCount);
      const stepTokens = counts.reduce((a, b) => a + b, 0);
      let lossSum = 0;
      for (const [i, batch] of micro.entries()) {
        if (counts[i] === 0) continue;
        lossSum += tidy(() =>
          mixed(() => {
            const { loss } = lmLossSum(lm, batch);
            const scaled = ops.scale(loss, 1 / stepTokens);
            scaled.backward();
            return loss.item();
          }),
        );
      }
      // a step without loss tokens (every label masked) has loss 0, not NaN: nothing to learn, nothing wrong
      const loss = stepTokens ? lossSum / stepTokens : 0;
      const lr = cfg.lr * lrMultiplier(step, { kind: cfg.schedule, warmupSteps: cfg.warmupSteps, totalSteps });
      const ps = params.map(([, t]) => t);
      // the norm before clipping; a finite loss can still give Inf/NaN gradients, which would poison the weights
      const gradNormValue = stepTokens ? gradNorm(ps) : 0;
      const finite = Number.isFinite(loss) && Number.isFinite(gradNormValue);
      if (!finite) {
        optimizer.zeroGrad();
        if (!cfg.skipNonFinite) throw new NonFiniteLossError(step + 1, loss, Number.isFinite(loss) ? gradNormValue : undefined);
        skippedSteps++;
      } else {
        // clip (as clipGradNorm, reusing the norm computed above)
        const coef = cfg.maxGradNorm / (gradNormValue + 1e-6);
        if (cfg.maxGradNorm > 0 && coef < 1) for (const p of ps) if (p.grad) native.scale_(p.grad._handle(), coef);
        optimizer.lr = lr;
        optimizer.step();
        optimizer.zeroGrad();
      }
      step++;
      lastLoss = loss;
      const dt = (performance.now() - t0) / 1000;
      const totalTok = micro.reduce((a, b) => a + b.attentionMask.reduce((s, r) => s + r.reduce((x, y) => x + y, 0), 0), 0);
      const m: StepMetrics = {
        step,
        loss,
        lr,
        tokens_per_s: totalTok / dt,
        grad_norm: Number.isFinite(gradNormValue) ? gradNormValue : undefined,
        epoch: epoch + Math.min(index, order.length) / Math.max(1, order.length),
      };
      if (!finite) {
        m.skipped = true;
        progress.message(`step ${step}: ${Number.isFinite(loss) ? `gradient norm ${gradNormValue}` : `loss ${loss}`}, step skipped (skipNonFinite)`);
      }
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
        // the tokenizer the run used (resolveTokenizer): a directory's files, or the byte tokenizer written out
        const tokDir = cfg.tokenizer === 'byte' ? null : (cfg.tokenizer ?? (typeof cfg.model === 'string' ? cfg.model : null));
        if (tokDir) copyTokenizerFiles(tokDir, join(outDir, 'final'));
        else if ('saveSync' in tok) (tok as unknown as { saveSync(d: string): void }).saveSync(join(outDir, 'final'));
      } else (lm as unknown as LoraModel).saveAdapter(join(outDir, 'adapter'));
    }
  } finally {
    progress.stop();
    if (opts.handleSigint ?? true) process.off('SIGINT', onSigint);
  }
  return { outDir, step, totalSteps, lastLoss, evals, interrupted, stoppedEarly, skippedSteps, skippedLines, model, tokenizer: tok };
}

/** Reads the final metrics line of a run. */
export function lastMetrics(outDir: string): Record<string, unknown> | null {
  const p = join(outDir, 'metrics.jsonl');
  if (!existsSync(p)) return null;
  const lines = readFileSync(p, 'utf8').trim().split('\n');
  return lines.length ? (JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>) : null;
}
