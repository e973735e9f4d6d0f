// The table of PEFT methods by peft_type. src/peft/index.ts fills it (one
// registerPeftMethod call per method); PeftModel and loadAdapter look methods
// up here, so a new method is one folder plus one line there.
import type { Module } from '../nn/module.js';
import { PeftError, type PeftType } from './config.js';
import type { LoraConfig } from './lora/config.js';
import type { LoraTuner } from './lora/model.js';

/** The config of any registered method (a union as methods are added). */
export type PeftConfig = LoraConfig;
/** The tuner (PEFT's BaseTuner subclass) of any registered method. */
export type PeftTuner = LoraTuner;

export interface PeftMethod {
  peftType: PeftType;
  /** the options of the method's tk.apply* function, resolved for a model */
  resolveOptions(opts: unknown, model: Module, where: string): PeftConfig;
  /** a config from a parsed adapter_config.json (errors name `file` and the field) */
  fromJson(json: unknown, file: string): PeftConfig;
  /** adapter_config.json's object as PEFT writes it */
  toJson(config: PeftConfig): Record<string, unknown>;
  /** the tuner that wraps a model's layers */
  createTuner(model: Module): PeftTuner;
}

const methods = new Map<string, PeftMethod>();

export function registerPeftMethod(m: PeftMethod): void {
  methods.set(m.peftType, m);
}

/** The method for a peft_type; `where` and `field` name the source in the error. */
export function peftMethod(peftType: unknown, where: string, field = 'peft_type'): PeftMethod {
  const m = typeof peftType === 'string' ? methods.get(peftType) : undefined;
  if (!m)
    throw new PeftError(where, `${field === 'peft_type' ? "field 'peft_type'" : field} is ${JSON.stringify(peftType)}; supported PEFT methods: ${[...methods.keys()].join(', ')}`, field);
  return m;
}

export function registeredPeftTypes(): string[] {
  return [...methods.keys()];
}
