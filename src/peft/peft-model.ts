// A model with adapters (PEFT's PeftModel). tk.applyLora and tk.loadAdapter
// wrap the target layers in place and give the model itself PEFT's methods
// (adapter management, merge / unmerge, trainable-parameter counts, saving
// and loading adapters in PEFT's directory format), so the model's own
// forward, generate, save code paths all run with the active adapter.
//
// Parameter names inside the model follow PEFT's LoRA layers:
//   transformer.h.0.attn.c_attn.base_layer.weight
//   transformer.h.0.attn.c_attn.lora_A.default.weight
// and the saved adapter keys are PEFT's:
//   base_model.model.transformer.h.0.attn.c_attn.lora_A.weight
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSafetensors, readSafetensorsHeader, saveSafetensors } from '../io/index.js';
import type { AnyModel } from '../models/index.js';
import { Module } from '../nn/module.js';
import type { Tensor } from '../tensor.js';
import {
  ADAPTER_CONFIG_NAME,
  ADAPTER_WEIGHTS_NAME,
  DEFAULT_ADAPTER,
  PEFT_KEY_PREFIX,
  PeftError,
  type PeftType,
  pyFixed,
  readJsonFile,
  show,
  thousands,
} from './config.js';
import type { LoraOptions } from './lora/config.js';
import type { LoraTarget } from './lora/model.js';
import { peftMethod, type PeftConfig, type PeftMethod, type PeftTuner } from './registry.js';

export interface SaveAdapterOptions {
  /** which adapters (default: all); 'default' goes to dir, any other to dir/<name>, as PEFT's save_pretrained */
  adapterNames?: string[];
}

export interface LoadAdapterOptions {
  /** the name the adapter gets (default 'default') */
  adapterName?: string;
  /**
   * false (default, as PEFT's from_pretrained): the adapter is frozen
   * (inference mode) and the model is put in eval mode; true: its factors train.
   */
  isTrainable?: boolean;
}

/** What a model gains from tk.applyLora / tk.loadAdapter (PEFT's PeftModel methods). */
export interface PeftModelMethods<M extends Module = AnyModel> {
  readonly peftType: PeftType;
  /** the tuner that owns the adapters (PEFT's peft_model.base_model) */
  readonly peftTuner: PeftTuner;
  /** adapter name -> config */
  readonly peftConfig: Record<string, PeftConfig>;
  readonly adapterNames: string[];
  /** the adapter the forward uses */
  readonly activeAdapter: string | null;
  /** true while an adapter is merged into the base weights */
  readonly merged: boolean;
  /** Adds an adapter (not made active: call setAdapter). Options as tk.applyLora, or a config from peftConfig. */
  addAdapter(name: string, options?: LoraOptions | PeftConfig): void;
  /** Makes `name` the adapter the forward adds (its factors trainable, the others frozen); unmerges first. */
  setAdapter(name: string): void;
  deleteAdapter(name: string): void;
  /** Adds adapters (default: the active one) into the base weights: W += scale · B·A (transposed for Conv1D). */
  merge(adapterNames?: string[]): void;
  /** Subtracts every merged adapter from the base weights again. */
  unmerge(): void;
  /** Runs fn with the adapters off (the base model's outputs), as PEFT's disable_adapter(). */
  withAdaptersDisabled<R>(fn: () => R): R;
  /** Merges the active adapter into the base weights, puts the plain Linear layers back and returns the plain model. */
  mergeAndUnload(): M;
  /** Puts the base layers back without merging; returns the plain model as it was before the adapters. */
  unload(): M;
  /** [trainable, all] parameter counts, as PEFT's get_nb_trainable_parameters (all includes the adapters). */
  getNbTrainableParameters(): [number, number];
  /** Prints and returns "trainable params: N || all params: M || trainable%: P" exactly as PEFT formats it. */
  printTrainableParameters(): string;
  /** The parameters that train (the active adapter's LoRA factors), for an optimizer. */
  trainableParameters(): Tensor[];
  /**
   * Writes adapter_model.safetensors and adapter_config.json in PEFT's format
   * (PeftModel.from_pretrained loads them): keys base_model.model.<path>.lora_A.weight
   * and .lora_B.weight, config keys sorted, inference_mode true.
   */
  saveAdapter(dir: string, opts?: SaveAdapterOptions): void;
  /** Loads a PEFT adapter directory as adapter `adapterName` (see tk.loadAdapter). */
  loadAdapter(dir: string, adapterName?: string, opts?: { isTrainable?: boolean }): void;
}

/**
 * A model with adapters: the model itself (its target layers are LoRA layers,
 * so forward, generate, ... run with the active adapter) plus PeftModelMethods.
 */
export type PeftModel<M extends Module = AnyModel> = M & PeftModelMethods<M>;
/** A model with LoRA adapters (tk.applyLora's result). */
export type LoraModel<M extends Module = AnyModel> = PeftModel<M>;

/** The adapter state of one model. */
class PeftState {
  readonly tuner: PeftTuner;
  /** requiresGrad of every base parameter before the adapters, restored by unload() */
  readonly origRequiresGrad: Map<string, boolean>;
  constructor(
    readonly model: Module,
    readonly method: PeftMethod,
  ) {
    this.tuner = method.createTuner(model);
    this.origRequiresGrad = new Map(model.namedParameters().map(([n, t]) => [n, t.requiresGrad]));
  }
}

const states = new WeakMap<Module, PeftState>();

/** Whether a model has adapters (was given them by tk.applyLora or tk.loadAdapter). */
export function isPeftModel<M extends Module>(model: M): model is PeftModel<M> {
  return model instanceof Module && states.has(model);
}

const METHOD_NAMES = [
  'peftType', 'peftTuner', 'peftConfig', 'adapterNames', 'activeAdapter', 'merged', 'addAdapter', 'setAdapter', 'deleteAdapter',
  'merge', 'unmerge', 'withAdaptersDisabled', 'mergeAndUnload', 'unload', 'getNbTrainableParameters', 'printTrainableParameters',
  'trainableParameters', 'saveAdapter', 'loadAdapter',
] as const;

function attach<M extends Module>(model: M, peftType: PeftType, where: string): PeftState {
  for (const k of METHOD_NAMES)
    if (k in model) throw new PeftError(where, `the model already has a member '${k}'; it cannot take PEFT's methods`);
  const st = new PeftState(model, peftMethod(peftType, where, 'peftType'));
  const tuner = st.tuner;
  type GetterKeys = 'peftType' | 'peftTuner' | 'peftConfig' | 'adapterNames' | 'activeAdapter' | 'merged';
  const getters: Record<GetterKeys, () => unknown> = {
    peftType: () => st.method.peftType,
    peftTuner: () => tuner,
    peftConfig: () => Object.fromEntries(tuner.peftConfig),
    adapterNames: () => [...tuner.peftConfig.keys()],
    activeAdapter: () => tuner.activeAdapter,
    merged: () => tuner.merged,
  };
  const methods: Omit<PeftModelMethods<M>, GetterKeys> = {
    addAdapter(name, options = {}) {
      checkName(name, 'addAdapter');
      if (tuner.peftConfig.has(name)) throw new PeftError('addAdapter', `adapter '${name}' already exists`);
      const cfg = 'peftType' in options ? { ...(options as PeftConfig) } : st.method.resolveOptions(options, model, 'addAdapter');
      tuner.injectAdapter(name, cfg, tuner.planTargets(cfg, { where: 'addAdapter', style: 'options' }));
    },
    setAdapter: (name) => tuner.setAdapter(name),
    deleteAdapter: (name) => tuner.deleteAdapter(name),
    merge: (names) => tuner.merge(names),
    unmerge: () => tuner.unmerge(),
    withAdaptersDisabled(fn) {
      tuner.setDisabled(true);
      try {
        return fn();
      } finally {
        tuner.setDisabled(false);
      }
    },
    mergeAndUnload: () => unloadModel(model, true),
    unload: () => unloadModel(model, false),
    getNbTrainableParameters() {
      let trainable = 0, all = 0;
      for (const [, t] of model.namedParameters()) {
        all += t.numel;
        if (t.requiresGrad) trainable += t.numel;
      }
      return [trainable, all];
    },
    printTrainableParameters() {
      const [t, a] = (model as unknown as PeftModelMethods).getNbTrainableParameters();
      const s = `trainable params: ${thousands(t)} || all params: ${thousands(a)} || trainable%: ${pyFixed((100 * t) / a, 4)}`;
      console.log(s);
      return s;
    },
    trainableParameters: () => model.parameters().filter((t) => t.requiresGrad),
    saveAdapter: (dir, opts = {}) => saveAdapterDir(st, dir, opts),
    loadAdapter: (dir, adapterName = DEFAULT_ADAPTER, opts = {}) => loadInto(st, dir, adapterName, opts.isTrainable ?? false),
  };
  for (const [k, get] of Object.entries(getters)) Object.defineProperty(model, k, { get, configurable: true, enumerable: false });
  for (const [k, fn] of Object.entries(methods)) Object.defineProperty(model, k, { value: fn, configurable: true, enumerable: false, writable: false });
  states.set(model, st);
  return st;
}

/** Removes the adapters (merging them first with merge) and PEFT's methods; restores requiresGrad. */
function unloadModel<M extends Module>(model: M, merge: boolean): M {
  const st = states.get(model);
  if (!st) throw new PeftError('unload', 'the model has no adapters');
  st.tuner.unload(merge);
  for (const [n, t] of model.namedParameters()) {
    const g = st.origRequiresGrad.get(n);
    if (g !== undefined) t.requiresGrad = g;
  }
  for (const k of METHOD_NAMES) delete (model as unknown as Record<string, unknown>)[k];
  states.delete(model);
  return model;
}

function saveAdapterDir(st: PeftState, dir: string, opts: SaveAdapterOptions): void {
  const tuner = st.tuner;
  const all = [...tuner.peftConfig.keys()];
  const names = opts.adapterNames ?? all;
  if (!names.length) throw new PeftError('saveAdapter', 'the model has no adapters');
  for (const name of names) {
    const cfg = tuner.peftConfig.get(name);
    if (!cfg) throw new PeftError('saveAdapter', `no adapter '${name}' (adapters: ${all.join(', ')})`);
    const out = name === DEFAULT_ADAPTER ? dir : join(dir, name);
    mkdirSync(out, { recursive: true });
    saveSafetensors(join(out, ADAPTER_WEIGHTS_NAME), tuner.adapterStateDict(name), { format: 'pt' });
    // PEFT: json.dumps(config.to_dict(), indent=2, sort_keys=True), inference_mode set to true for the file
    const json = sortKeys(st.method.toJson({ ...cfg, inferenceMode: true }));
    const path = join(out, ADAPTER_CONFIG_NAME);
    const tmp = `${path}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(json, null, 2));
    renameSync(tmp, path);
  }
}

function checkName(name: unknown, where: string): void {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_-]+$/.test(name))
    throw new PeftError(where, `adapter name must be a non-empty string of letters, digits, '_' and '-' (it becomes part of parameter names), got ${show(name)}`);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

/** The peft_type of an adapter directory's config (errors name the file). */
function readPeftType(dir: string): { cfgPath: string; json: unknown; method: PeftMethod } {
  const cfgPath = join(dir, ADAPTER_CONFIG_NAME);
  if (!existsSync(cfgPath)) throw new PeftError(cfgPath, `not found (an adapter directory holds ${ADAPTER_CONFIG_NAME} and ${ADAPTER_WEIGHTS_NAME})`);
  const json = readJsonFile(cfgPath);
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new PeftError(cfgPath, 'must hold a JSON object');
  return { cfgPath, json, method: peftMethod((json as Record<string, unknown>).peft_type, cfgPath) };
}

/**
 * Reads and checks everything (config fields, the targeted layers, every
 * tensor's name, dtype and shape) before the model is changed, then adds the
 * adapter with the file's factors. Into an existing adapter name, as PEFT's
 * load_adapter, only the weights are loaded (into that adapter's layers).
 */
function loadInto(st: PeftState, dir: string, name: string, isTrainable: boolean): void {
  checkName(name, 'loadAdapter');
  const { cfgPath, json, method } = readPeftType(dir);
  if (method.peftType !== st.method.peftType)
    throw new PeftError(cfgPath, `field 'peft_type' is ${show(method.peftType)}, but this model's adapters are ${st.method.peftType}`, 'peft_type');
  const cfg = { ...method.fromJson(json, cfgPath), inferenceMode: !isTrainable };
  const wPath = join(dir, ADAPTER_WEIGHTS_NAME);
  if (!existsSync(wPath)) {
    if (existsSync(join(dir, 'adapter_model.bin')))
      throw new PeftError(wPath, 'not found: only safetensors adapters are supported (found adapter_model.bin; save with safe_serialization=True)');
    throw new PeftError(wPath, 'not found');
  }
  const header = readSafetensorsHeader(wPath);
  const tuner = st.tuner;
  const existing = tuner.peftConfig.has(name);
  const plan = existing ? tuner.adapterPlan(name) : tuner.planTargets(cfg, { where: cfgPath, style: 'json' });
  const selects = existing ? `adapter '${name}' (already in the model) has no layer` : `${cfgPath}'s field 'target_modules' (${show(cfg.targetModules)}) does not select it in this model`;
  const byPath = new Map<string, LoraTarget>(plan.map((t) => [t.path, t]));
  const found = new Map<string, string>();  // `${path}|A` -> file key
  for (const [key, info] of header.tensors) {
    // base_model.model.<path>.lora_A.weight; older files: <path>.lora_A.<adapter>.weight
    const m = /^(.*)\.lora_(A|B)(?:\.([A-Za-z0-9_-]+))?\.weight$/.exec(key);
    if (!m)
      throw new PeftError(wPath, `tensor '${key}' is not a LoRA factor (<module>.lora_A.weight / .lora_B.weight); trained biases, modules_to_save and embedding adapters are not supported`, key);
    let path = m[1]!;
    if (path.startsWith(PEFT_KEY_PREFIX)) path = path.slice(PEFT_KEY_PREFIX.length);
    // a task-head class around the same body (BertForSequenceClassification's "bert."): drop the first component
    if (!byPath.has(path) && path.includes('.') && byPath.has(path.slice(path.indexOf('.') + 1))) path = path.slice(path.indexOf('.') + 1);
    const t = byPath.get(path);
    if (!t) throw new PeftError(wPath, `tensor '${key}' is for module '${path}', but ${selects}`, key);
    const which = m[2] as 'A' | 'B';
    const slot = `${t.path}|${which}`;
    if (found.has(slot)) throw new PeftError(wPath, `tensors '${found.get(slot)}' and '${key}' are both lora_${which} of module '${t.path}'`, key);
    if (!FLOAT_DTYPES.has(info.dtype)) throw new PeftError(wPath, `tensor '${key}' has dtype ${info.dtype}, expected a float dtype`, key);
    const want = which === 'A' ? [t.r, t.inFeatures] : [t.outFeatures, t.r];
    if (info.shape.length !== 2 || info.shape[0] !== want[0] || info.shape[1] !== want[1]) {
      const what = which === 'A' ? `[r, in_features] = [${want.join(', ')}]` : `[out_features, r] = [${want.join(', ')}]`;
      const rFrom = existing ? `adapter '${name}'` : cfgPath;
      throw new PeftError(wPath, `tensor '${key}' has shape [${info.shape.join(', ')}], expected ${what} (r = ${t.r} from ${rFrom}; module '${t.path}' is ${t.inFeatures} -> ${t.outFeatures})`, key);
    }
    found.set(slot, key);
  }
  const missing = plan.flatMap((t) => (['A', 'B'] as const).filter((w) => !found.has(`${t.path}|${w}`)).map((w) => `${PEFT_KEY_PREFIX}${t.path}.lora_${w}.weight`));
  if (missing.length)
    throw new PeftError(
      wPath,
      `missing ${missing.length} tensor(s) of the layers ${existing ? `adapter '${name}' wraps` : `that ${cfgPath}'s target_modules select`}: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}`,
    );
  const loaded = loadSafetensors(wPath, { names: [...found.values()], dtype: 'f32' });
  const weights = new Map(plan.map((t) => [t.path, { a: loaded[found.get(`${t.path}|A`)!]!, b: loaded[found.get(`${t.path}|B`)!]! }]));
  if (existing) tuner.replaceAdapterWeights(name, weights);
  else tuner.injectAdapter(name, cfg, plan, weights);
  if (!isTrainable) st.model.eval();
}

/**
 * Adds LoRA adapters to a model's Linear layers (PEFT's get_peft_model with a
 * LoraConfig) and returns the same model with PEFT's methods (merge, unmerge,
 * addAdapter, setAdapter, printTrainableParameters, saveAdapter, ...). The
 * target layers are wrapped in place; every parameter but the new LoRA factors
 * is frozen. On a model that already has adapters, adds one named `adapterName`.
 */
export function applyLora<M extends Module = AnyModel>(model: M, options: LoraOptions = {}, adapterName = DEFAULT_ADAPTER): PeftModel<M> {
  if (!(model instanceof Module)) throw new PeftError('applyLora', `model must be a tunekit model (a Module), got ${show(model)}`);
  checkName(adapterName, 'applyLora');
  if (isPeftModel(model)) {
    model.addAdapter(adapterName, options);
    return model;
  }
  const cfg = peftMethod('LORA', 'applyLora').resolveOptions(options, model, 'applyLora');
  const st = attach(model, 'LORA', 'applyLora');
  try {
    st.tuner.injectAdapter(adapterName, cfg, st.tuner.planTargets(cfg, { where: 'applyLora', style: 'options' }));
  } catch (e) {
    unloadModel(model, false);
    throw e;
  }
  return model as PeftModel<M>;
}

/**
 * Loads an adapter saved by PEFT (or by saveAdapter) onto a model: reads
 * adapter_config.json and adapter_model.safetensors from `dir` (PEFT's keys;
 * older files with the adapter name in the keys are accepted), checks every
 * field, key and shape against the model (errors name the file and the field
 * or tensor), wraps the targeted layers and returns the model with PEFT's
 * methods. A model that already has adapters gets this one added, or, when
 * the name exists, loaded into it (weights only, as PEFT's load_adapter).
 */
export function loadAdapter<M extends Module = AnyModel>(model: M, dir: string, opts: LoadAdapterOptions = {}): PeftModel<M> {
  if (!(model instanceof Module)) throw new PeftError('loadAdapter', `model must be a tunekit model (a Module), got ${show(model)}`);
  const name = opts.adapterName ?? DEFAULT_ADAPTER;
  const isTrainable = opts.isTrainable ?? false;
  const prior = states.get(model);
  if (prior) {
    loadInto(prior, dir, name, isTrainable);
    return model as PeftModel<M>;
  }
  const { method } = readPeftType(dir);
  const st = attach(model, method.peftType, 'loadAdapter');
  try {
    // every check runs before the model changes: a bad file leaves it as it was
    loadInto(st, dir, name, isTrainable);
  } catch (e) {
    unloadModel(model, false);
    throw e;
  }
  return model as PeftModel<M>;
}
