// Format detection and validation of one JSONL record. Detection, per line, by the fields present
// (first rule that matches; other fields are ignored):
//   messages                      -> 'chat'            {"messages": [{"role", "content"}, ...]}
//   chosen and rejected           -> 'preference'      {"prompt"?, "chosen", "rejected"}
//   instruction                   -> 'alpaca'          {"instruction", "input"?, "output"}
//   prompt and completion         -> 'completion'      {"prompt", "completion"}
//   text and label                -> 'classification'  {"text", "label"}
//   text                          -> 'text'            {"text"}
// With options.format the line must have that format's fields instead.
import type { ChatMessage } from '../tokenizer/types.js';
import { RecordError } from './errors.js';
import type { DataFormat, DataRecord, PreferenceRecord } from './types.js';

const FORMAT_HELP =
  'expected one of {"text"}, {"prompt","completion"}, {"instruction","input","output"}, {"messages"}, {"text","label"}, {"prompt","chosen","rejected"}';

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function has(obj: Record<string, unknown>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(obj, key) && obj[key] !== null && obj[key] !== undefined;
}

function str(obj: Record<string, unknown>, key: string, what: string): string {
  if (!has(obj, key)) throw new RecordError('missing_field', `missing field "${key}" (${what} record)`);
  const v = obj[key];
  if (typeof v !== 'string') throw new RecordError('wrong_type', `wrong type: "${key}" must be a string, got ${describe(v)}`);
  return v;
}

function messages(v: unknown, key: string, allowEmpty = false): ChatMessage[] {
  if (!Array.isArray(v)) throw new RecordError('wrong_type', `wrong type: "${key}" must be an array of messages, got ${describe(v)}`);
  if (v.length === 0 && !allowEmpty) throw new RecordError('wrong_type', `wrong type: "${key}" is an empty array`);
  return v.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw new RecordError('wrong_type', `wrong type: "${key}"[${i}] must be an object {"role","content"}, got ${describe(m)}`);
    }
    const msg = m as Record<string, unknown>;
    if (!has(msg, 'role')) throw new RecordError('missing_field', `missing field "role" in "${key}"[${i}]`);
    if (typeof msg.role !== 'string') throw new RecordError('wrong_type', `wrong type: "${key}"[${i}].role must be a string, got ${describe(msg.role)}`);
    if (!has(msg, 'content')) throw new RecordError('missing_field', `missing field "content" in "${key}"[${i}]`);
    if (typeof msg.content !== 'string') {
      throw new RecordError('wrong_type', `wrong type: "${key}"[${i}].content must be a string, got ${describe(msg.content)}`);
    }
    return msg as ChatMessage;
  });
}

/** The format of an object by the detection rules above, or a RecordError. */
export function detectFormat(obj: Record<string, unknown>): DataFormat {
  if (has(obj, 'messages')) return 'chat';
  if (has(obj, 'chosen') || has(obj, 'rejected')) return 'preference';
  if (has(obj, 'instruction')) return 'alpaca';
  if (has(obj, 'prompt') && has(obj, 'completion')) return 'completion';
  if (has(obj, 'text') && has(obj, 'label')) return 'classification';
  if (has(obj, 'text')) return 'text';
  if (has(obj, 'prompt')) throw new RecordError('missing_field', 'missing field "completion" (prompt-completion record)');
  if (has(obj, 'output')) throw new RecordError('missing_field', 'missing field "instruction" (alpaca record)');
  if (has(obj, 'label')) throw new RecordError('missing_field', 'missing field "text" (classification record)');
  const keys = Object.keys(obj);
  throw new RecordError(
    'unknown_format',
    `unknown format: ${keys.length === 0 ? 'empty object' : `fields ${keys.map((k) => JSON.stringify(k)).join(', ')}`}; ${FORMAT_HELP}`,
  );
}

/** Validates a parsed JSON value as a record (of `format`, or the detected one). */
export function toRecord(value: unknown, format?: DataFormat): DataRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecordError('not_object', `wrong type: a line must be a JSON object, got ${describe(value)}`);
  }
  const obj = value as Record<string, unknown>;
  const f = format ?? detectFormat(obj);
  switch (f) {
    case 'text':
      return { format: 'text', text: str(obj, 'text', 'text') };
    case 'completion':
      return { format: 'completion', prompt: str(obj, 'prompt', 'prompt-completion'), completion: str(obj, 'completion', 'prompt-completion') };
    case 'alpaca': {
      const instruction = str(obj, 'instruction', 'alpaca');
      const input = has(obj, 'input') ? str(obj, 'input', 'alpaca') : '';
      return { format: 'alpaca', instruction, input, output: str(obj, 'output', 'alpaca') };
    }
    case 'chat':
      if (!has(obj, 'messages')) throw new RecordError('missing_field', 'missing field "messages" (chat record)');
      return { format: 'chat', messages: messages(obj.messages, 'messages') };
    case 'classification': {
      const text = str(obj, 'text', 'classification');
      if (!has(obj, 'label')) throw new RecordError('missing_field', 'missing field "label" (classification record)');
      const label = obj.label;
      if (typeof label === 'string') return { format: 'classification', text, label };
      if (typeof label === 'number' && Number.isSafeInteger(label) && label >= 0) return { format: 'classification', text, label };
      if (typeof label === 'number') throw new RecordError('wrong_type', `wrong type: "label" must be a string or a non-negative integer, got ${label}`);
      throw new RecordError('wrong_type', `wrong type: "label" must be a string or a non-negative integer, got ${describe(label)}`);
    }
    case 'preference':
      return preference(obj);
    default:
      throw new TypeError(`unknown data format ${JSON.stringify(f)}`);
  }
}

function preference(obj: Record<string, unknown>): PreferenceRecord {
  for (const k of ['chosen', 'rejected']) {
    if (!has(obj, k)) throw new RecordError('missing_field', `missing field "${k}" (preference record)`);
  }
  const conversational = Array.isArray(obj.chosen);
  if (conversational) {
    const chosen = messages(obj.chosen, 'chosen');
    const rejected = messages(obj.rejected, 'rejected');
    const prompt = has(obj, 'prompt') ? messages(obj.prompt, 'prompt') : null;
    return { format: 'preference', conversational, prompt, chosen, rejected };
  }
  const chosen = str(obj, 'chosen', 'preference');
  const rejected = str(obj, 'rejected', 'preference');
  const prompt = has(obj, 'prompt') ? str(obj, 'prompt', 'preference') : null;
  return { format: 'preference', conversational, prompt, chosen, rejected };
}
