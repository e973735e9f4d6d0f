// The LoRA tuner (PEFT's LoraModel, the object behind peft_model.base_model):
// finds the target layers of a model by the config's rules (PEFT's
// check_target_module_exists), wraps each in a LoraLinear (in place, through
// Module.setChild), keeps the adapters' configs, switches, merges and removes
// adapters, and maps adapter weights to PEFT's saved keys:
// base_model.model.<module path>.lora_A.weight [r, in] and .lora_B.weight
// [out, r] (no adapter name in the key).
import type { Linear } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor.js';
import { ConfigSource, fieldLabel, PeftError, PEFT_KEY_PREFIX, pyRegex, show } from '../config.js';
import type { PeftMethod } from '../registry.js';
import { loraConfigFromJson, loraConfigToJson, resolveLoraOptions, type LoraConfig, type LoraOptions } from './config.js';
import { isLoraTargetable, LoraLinear } from './layer.js';

/** One layer an adapter will wrap: its dotted path in the model, shapes and rank. */
export interface LoraTarget {
  path: string;
  layer: Linear | LoraLinear;
  inFeatures: number;
  outFeatures: number;
  r: number;
  alpha: number;
}

/** The output layer PEFT's 'all-linear' leaves out (get_output_embeddings: lm_head). */
function outputLayerPath(model: Module): string | null {
  return 'lm_head' in model.children ? 'lm_head' : null;
}

export class LoraTuner {
  /** adapter name -> config (PEFT's peft_config) */
  readonly peftConfig: Map<string, LoraConfig> = new Map();
  private active: string | null = null;

  constructor(readonly model: Module) {}

  /** the adapter the forward uses (null before the first one is added) */
  get activeAdapter(): string | null {
    return this.active;
  }

  /** Every LoRA layer with its dotted path in the model. */
  loraLayers(): Array<[string, LoraLinear]> {
    const out: Array<[string, LoraLinear]> = [];
    for (const [p, m] of this.model.namedModules()) if (m instanceof LoraLinear) out.push([p, m]);
    return out;
  }

  /**
   * The layers a config selects, without changing anything (PEFT's
   * check_target_module_exists, exclude_modules, layers_to_transform,
   * rank_pattern and alpha_pattern). Throws when a selected module is not a
   * Linear, or when nothing is selected.
   */
  planTargets(cfg: LoraConfig, src: ConfigSource): LoraTarget[] {
    const modules = [...this.model.namedModules()].filter(([p]) => p !== '');
    // the insides of existing LoRA layers (base_layer, lora_A.x, ...) are never targets
    const wrapped = modules.filter(([, m]) => m instanceof LoraLinear).map(([p]) => p + '.');
    const candidates = modules.filter(([p]) => !wrapped.some((w) => p.startsWith(w)));
    let targets = cfg.targetModules;
    if (targets === 'all-linear') {
      // PEFT: the last names of every linear layer but the output layer, then matched as a list
      const out = outputLayerPath(this.model);
      targets = [...new Set(candidates.filter(([p, m]) => isLoraTargetable(m) && p !== out).map(([p]) => p.slice(p.lastIndexOf('.') + 1)))];
    }
    const listMatch = (key: string, list: string[]) => list.includes(key) || list.some((t) => key.endsWith('.' + t));
    const targetRe = typeof targets === 'string' ? pyRegex(targets, 'full', src, 'targetModules', 'target_modules') : null;
    const ex = cfg.excludeModules;
    const excludeRe = typeof ex === 'string' ? pyRegex(ex, 'full', src, 'excludeModules', 'exclude_modules') : null;
    const ltt = cfg.layersToTransform;
    const useLayers = ltt !== null && (!Array.isArray(ltt) || ltt.length > 0);
    const layerRes = (() => {
      const lp = cfg.layersPattern;
      const pats = lp === null || (Array.isArray(lp) && !lp.length) ? null : Array.isArray(lp) ? lp : [lp];
      // re.match(r".*\.[^.]*\.(\d+)\.", key) without a pattern; with one, rf".*\.{pattern}\.(\d+)\."
      return pats ? pats.map((p) => pyRegex(`.*\\.${p}\\.(\\d+)\\.`, 'start', src, 'layersPattern', 'layers_pattern')) : [/^.*\.[^.]*\.(\d+)\./];
    })();
    const patternRe = (pat: Record<string, number>, camel: string, snake: string) =>
      Object.keys(pat).map((k) => [k, pyRegex(k, 'suffix', src, camel, snake)] as const);
    const rankRes = patternRe(cfg.rankPattern, 'rankPattern', 'rank_pattern');
    const alphaRes = patternRe(cfg.alphaPattern, 'alphaPattern', 'alpha_pattern');

    const plan: LoraTarget[] = [];
    for (const [key, m] of candidates) {
      if (ex !== null && (excludeRe ? excludeRe.test(key) : listMatch(key, ex as string[]))) continue;
      let found: boolean;
      if (targetRe) found = targetRe.test(key);
      else if ((targets as string[]).includes(key)) found = true;
      else {
        found = (targets as string[]).some((t) => key.endsWith('.' + t));
        if (found && useLayers) {
          // layer index from the path ("...h.3.attn.c_attn" -> 3); layersPattern patterns are matched from the start
          let idx: number | null = null;
          for (const re of layerRes) {
            const mm = re.exec(key);
            if (mm) {
              idx = Number(mm[1]);
              break;
            }
          }
          found = idx !== null && (Array.isArray(ltt) ? ltt.includes(idx) : idx === ltt);
        }
      }
      if (!found) continue;
      if (!isLoraTargetable(m))
        throw new PeftError(
          src.where,
          `${fieldLabel(src, 'targetModules', 'target_modules')} selects module '${key}' (${m.constructor.name}), which LoRA cannot wrap: only Linear layers (GPT-2's Conv1D included) are supported`,
          src.style === 'json' ? 'target_modules' : 'targetModules',
        );
      const r = rankRes.find(([, re]) => re.test(key))?.[0];
      const a = alphaRes.find(([, re]) => re.test(key))?.[0];
      plan.push({
        path: key,
        layer: m,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        r: r !== undefined ? cfg.rankPattern[r]! : cfg.r,
        alpha: a !== undefined ? cfg.alphaPattern[a]! : cfg.loraAlpha,
      });
    }
    if (!plan.length)
      throw new PeftError(
        src.where,
        `${fieldLabel(src, 'targetModules', 'target_modules')}: target modules ${show(cfg.targetModules)} not found in the base model ` +
          `(module paths look like ${show(candidates.filter(([, m]) => isLoraTargetable(m)).slice(0, 3).map(([p]) => p))})`,
        src.style === 'json' ? 'target_modules' : 'targetModules',
      );
    return plan;
  }

  /**
   * Adds an adapter: wraps (or extends) every planned layer. `weights` gives
   * the factors per module path (loaded adapters); otherwise they are initialized.
   */
  injectAdapter(name: string, cfg: LoraConfig, plan: LoraTarget[], weights?: Map<string, { a: Tensor; b: Tensor }>): void {
    if (this.peftConfig.has(name)) throw new PeftError('addAdapter', `adapter '${name}' already exists`);
    if (!weights && cfg.initLoraWeights !== true && cfg.initLoraWeights !== false && cfg.initLoraWeights !== 'gaussian')
      throw new PeftError('addAdapter', `initLoraWeights ${show(cfg.initLoraWeights)} is not implemented (true, false, 'gaussian')`, 'initLoraWeights');
    const config = { ...cfg };
    // as PEFT: Conv1D targets turn fan_in_fan_out on in the config, and 'all-linear' becomes the layers' last names
    if (plan.some((t) => t.layer.fanInFanOut)) config.fanInFanOut = true;
    if (config.targetModules === 'all-linear') config.targetModules = [...new Set(plan.map((t) => t.path.slice(t.path.lastIndexOf('.') + 1)))];
    for (const t of plan) {
      let layer: LoraLinear;
      if (t.layer instanceof LoraLinear) layer = t.layer;
      else {
        layer = new LoraLinear(t.layer);
        this.model.setChild(t.path, layer);
      }
      layer.updateLayer(name, {
        r: t.r,
        alpha: t.alpha,
        dropout: config.loraDropout,
        useRslora: config.useRslora,
        init: config.initLoraWeights,
        weights: weights?.get(t.path),
      });
    }
    this.peftConfig.set(name, config);
    if (this.active === null) this.active = name;
    this.setAdapter(this.active);
  }

  /**
   * Makes `name` the adapter the forward uses. Freezes every parameter that is
   * not a LoRA factor; the active adapter's factors are trainable unless its
   * config has inferenceMode; the others are frozen (PEFT's set_adapter).
   */
  setAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new PeftError('setAdapter', `no adapter '${name}' (adapters: ${[...this.peftConfig.keys()].join(', ') || 'none'})`);
    const layers = this.loraLayers();
    for (const [, l] of layers) {
      if (l.merged) l.unmerge();  // PEFT: "Adapter cannot be set when the model is merged. Unmerging the model first."
      l.activeAdapters = l.hasAdapter(name) ? [name] : [];
    }
    this.active = name;
    this.markTrainable();
  }

  /** requiresGrad: false for every base parameter; for LoRA factors, true only for the active adapter when it trains. */
  markTrainable(): void {
    const lora = new Set<Tensor>();
    for (const [, l] of this.loraLayers())
      for (const n of l.adapters) {
        const a = l.loraA(n), b = l.loraB(n);
        lora.add(a).add(b);
        const on = n === this.active && !this.peftConfig.get(n)!.inferenceMode;
        a.requiresGrad = on;
        b.requiresGrad = on;
      }
    for (const t of this.model.parameters()) if (!lora.has(t)) t.requiresGrad = false;
  }

  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new PeftError('deleteAdapter', `no adapter '${name}'`);
    for (const [, l] of this.loraLayers()) l.deleteAdapter(name);
    this.peftConfig.delete(name);
    // layers left without adapters go back to their base Linear
    for (const [p, l] of this.loraLayers()) if (!l.adapters.length) this.model.setChild(p, l.baseLayer);
    if (this.active === name) {
      const next = [...this.peftConfig.keys()][0];
      this.active = null;
      if (next !== undefined) this.setAdapter(next);
    }
  }

  merge(names?: string[]): void {
    for (const n of names ?? []) if (!this.peftConfig.has(n)) throw new PeftError('merge', `no adapter '${n}'`);
    for (const [, l] of this.loraLayers()) l.merge(names ?? l.activeAdapters);
  }

  unmerge(): void {
    for (const [, l] of this.loraLayers()) l.unmerge();
  }

  get merged(): boolean {
    return this.loraLayers().some(([, l]) => l.merged);
  }

  setDisabled(on: boolean): void {
    for (const [, l] of this.loraLayers()) l.disableAdapters = on;
  }

  /**
   * Puts the base Linear layers back (PEFT's unload / merge_and_unload): with
   * merge, the active adapters are added into the base weights first. The
   * LoRA factors are disposed.
   */
  unload(merge: boolean): void {
    for (const [p, l] of this.loraLayers()) {
      if (merge) l.merge();
      else l.unmerge();
      for (const n of l.adapters) {
        l.loraA(n).dispose();
        l.loraB(n).dispose();
      }
      this.model.setChild(p, l.baseLayer);
    }
    this.peftConfig.clear();
    this.active = null;
  }

  /** The layers an existing adapter wraps, as a plan (for loading weights into it). */
  adapterPlan(name: string): LoraTarget[] {
    return this.loraLayers()
      .filter(([, l]) => l.hasAdapter(name))
      .map(([path, l]) => ({ path, layer: l, inFeatures: l.inFeatures, outFeatures: l.outFeatures, r: l.r[name]!, alpha: l.loraAlpha[name]! }));
  }

  /**
   * Replaces an existing adapter's factors (PEFT's load_adapter into an
   * existing adapter name): trainability stays as it was; the old tensors are
   * disposed (an optimizer holding them must be rebuilt).
   */
  replaceAdapterWeights(name: string, weights: Map<string, { a: Tensor; b: Tensor }>): void {
    for (const [p, l] of this.loraLayers()) {
      const w = weights.get(p);
      if (!w || !l.hasAdapter(name)) continue;
      if (l.mergedAdapters.includes(name)) l.unmerge();
      l.replaceFactors(name, w.a, w.b);
    }
  }

  /** PEFT's saved state dict of one adapter: key -> tensor (the layer's own tensors, not copies). */
  adapterStateDict(name: string): Record<string, Tensor> {
    if (!this.peftConfig.has(name)) throw new PeftError('saveAdapter', `no adapter '${name}'`);
    const out: Record<string, Tensor> = {};
    for (const [p, l] of this.loraLayers()) {
      if (!l.hasAdapter(name)) continue;
      out[`${PEFT_KEY_PREFIX}${p}.lora_A.weight`] = l.loraA(name);
      out[`${PEFT_KEY_PREFIX}${p}.lora_B.weight`] = l.loraB(name);
    }
    return out;
  }
}

/** LoRA's entry in the PEFT method table (src/peft/index.ts registers it). */
export const LORA_METHOD: PeftMethod = {
  peftType: 'LORA',
  resolveOptions: (opts, model, where) => resolveLoraOptions(opts as LoraOptions | undefined, model, where),
  fromJson: loraConfigFromJson,
  toJson: loraConfigToJson,
  createTuner: (model) => new LoraTuner(model),
};
