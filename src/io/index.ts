// tk I/O: checkpoint formats.
export { readSafetensorsHeader, loadSafetensors, saveSafetensors, SafetensorsError } from './safetensors.js';
export type {
  SafetensorsDType,
  SafetensorsTensorInfo,
  SafetensorsHeader,
  LoadSafetensorsOptions,
} from './safetensors.js';
