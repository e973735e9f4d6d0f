// Parameter-efficient fine-tuning, one folder per method as in Hugging Face
// PEFT: <method>/config.ts (options, adapter_config.json), <method>/layer.ts
// (the wrapped layer: forward, merge, unmerge, delta weight), <method>/model.ts
// (the tuner that finds and wraps target layers). Methods are registered here,
// in one place; PeftModel and tk.loadAdapter find them by peft_type.
import { LORA_METHOD } from './lora/model.js';
import { registerPeftMethod } from './registry.js';

registerPeftMethod(LORA_METHOD);

export { applyLora, loadAdapter, isPeftModel } from './peft-model.js';
export type { PeftModel, LoraModel, PeftModelMethods, SaveAdapterOptions, LoadAdapterOptions } from './peft-model.js';
export { PeftError, TASK_TYPES, ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME } from './config.js';
export type { TaskType, PeftType } from './config.js';
export { registeredPeftTypes } from './registry.js';
export type { PeftConfig, PeftMethod } from './registry.js';
export { DEFAULT_LORA_TARGET_MODULES, loraScale } from './lora/config.js';
export type { LoraOptions, LoraConfig } from './lora/config.js';
export { LoraLinear } from './lora/layer.js';
export { LoraTuner } from './lora/model.js';
export type { LoraTarget } from './lora/model.js';
