// Chat templates: Jinja rendered by @huggingface/jinja with the variables transformers passes
// (messages, tools, documents, add_generation_prompt, the special tokens, raise_exception).
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import type { ChatMessage } from './types.js';

/** Thrown when a chat template calls raise_exception(...) or fails to parse or render. */
export class ChatTemplateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChatTemplateError';
  }
}

/** Carries a raise_exception message through the Jinja interpreter untouched. */
class RaisedByTemplate extends Error {}

export interface ChatRenderContext {
  messages: readonly ChatMessage[];
  addGenerationPrompt: boolean;
  tools?: unknown[];
  documents?: unknown[];
  /** bos_token, eos_token, ...: only the tokens that are set (unset ones stay undefined in Jinja). */
  specialTokens: Record<string, string | string[]>;
  templateKwargs?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (t === undefined) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
    if (compiled.size > 64) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

export function validateMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new TypeError('applyChatTemplate: messages must be an array of { role, content }');
  messages.forEach((m, i) => {
    if (m === null || typeof m !== 'object' || typeof m.role !== 'string') {
      throw new TypeError(`applyChatTemplate: messages[${i}] must be an object with a string role`);
    }
  });
}

// The globals transformers' chat environment has. @huggingface/jinja's Template.render declares its
// own raise_exception (a plain Error, indistinguishable from a render bug) and does not let
// variables shadow globals, so the template runs here on an Interpreter with our own environment.
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  if (step > 0) for (let i = start; i < stop; i += step) out.push(i);
  else for (let i = start; i > stop; i += step) out.push(i);
  return out;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python's datetime.now().strftime for the common directives (C locale names). */
export function strftime(date: Date, format: string): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return format.replace(/%[YymdebBaAHIMSpj%]/g, (t) => {
    switch (t) {
      case '%Y': return String(date.getFullYear());
      case '%y': return p2(date.getFullYear() % 100);
      case '%m': return p2(date.getMonth() + 1);
      case '%d': return p2(date.getDate());
      case '%e': return String(date.getDate()).padStart(2, ' ');
      case '%b': return MONTHS[date.getMonth()]!.slice(0, 3);
      case '%B': return MONTHS[date.getMonth()]!;
      case '%a': return DAYS[date.getDay()]!.slice(0, 3);
      case '%A': return DAYS[date.getDay()]!;
      case '%H': return p2(date.getHours());
      case '%I': return p2(date.getHours() % 12 || 12);
      case '%M': return p2(date.getMinutes());
      case '%S': return p2(date.getSeconds());
      case '%p': return date.getHours() < 12 ? 'AM' : 'PM';
      case '%j': {
        const start = new Date(date.getFullYear(), 0, 1);
        return String(Math.floor((date.getTime() - start.getTime()) / 86_400_000) + 1).padStart(3, '0');
      }
      default: return '%';
    }
  });
}

function globalsEnvironment(): Environment {
  const env = new Environment();
  for (const [k, v] of [['false', false], ['true', true], ['none', null], ['False', false], ['True', true], ['None', null]] as const) {
    env.set(k, v);
  }
  env.set('range', range);
  env.set('strftime_now', (format: unknown) => strftime(new Date(), String(format)));
  env.set('raise_exception', (message: unknown) => {
    throw new RaisedByTemplate(String(message));
  });
  return env;
}

export function renderChatTemplate(source: string, ctx: ChatRenderContext): string {
  const template = compile(source);
  const env = new Environment(globalsEnvironment());
  const vars: Record<string, unknown> = {
    ...ctx.specialTokens,
    ...(ctx.templateKwargs ?? {}),
    messages: ctx.messages,
    add_generation_prompt: ctx.addGenerationPrompt,
  };
  if (ctx.tools !== undefined) vars.tools = ctx.tools;
  if (ctx.documents !== undefined) vars.documents = ctx.documents;
  try {
    for (const [k, v] of Object.entries(vars)) if (v !== undefined) env.set(k, v);
    const out = new Interpreter(env).run(template.parsed).value;
    if (typeof out !== 'string') throw new Error(`rendered to ${typeof out}, not a string`);
    return out;
  } catch (e) {
    if (e instanceof RaisedByTemplate) throw new ChatTemplateError(e.message);
    throw new ChatTemplateError(`chat template failed to render: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Normalizes tokenizer_config.json's chat_template (a string, a list of { name, template }, or a
 * name → template object) to a name → template record. A plain string becomes 'default'.
 * Returns an error message (naming the offending part) instead of throwing.
 */
export function parseChatTemplates(value: unknown): Record<string, string> | string {
  if (value === undefined || value === null) return {};
  if (typeof value === 'string') return { default: value };
  const out: Record<string, string> = {};
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i] as { name?: unknown; template?: unknown } | null;
      if (item === null || typeof item !== 'object' || typeof item.name !== 'string' || typeof item.template !== 'string') {
        return `chat_template[${i}] must be an object { name: string, template: string }`;
      }
      out[item.name] = item.template;
    }
    return out;
  }
  if (typeof value === 'object') {
    for (const [name, template] of Object.entries(value as Record<string, unknown>)) {
      if (typeof template !== 'string') return `chat_template.${name} must be a string`;
      out[name] = template;
    }
    return out;
  }
  return 'chat_template must be a string or a list of { name, template }';
}

/** transformers' choice: an explicit name or literal template, else 'tool_use' with tools, else 'default'. */
export function selectChatTemplate(
  templates: Readonly<Record<string, string>>,
  requested: string | undefined,
  hasTools: boolean,
): string {
  if (requested !== undefined) return Object.hasOwn(templates, requested) ? templates[requested]! : requested;
  if (hasTools && Object.hasOwn(templates, 'tool_use')) return templates.tool_use!;
  if (Object.hasOwn(templates, 'default')) return templates.default!;
  const names = Object.keys(templates);
  if (names.length === 0) {
    throw new ChatTemplateError('this tokenizer has no chat template (tokenizer_config.json chat_template); pass { chatTemplate }');
  }
  throw new ChatTemplateError(
    `this tokenizer has several chat templates and none is named 'default' (${names.join(', ')}); pass { chatTemplate: name }`,
  );
}
