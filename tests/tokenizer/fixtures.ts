// Tiny tokenizer directories built by hand (no hub access): a GPT-2 style byte-level BPE and two
// Llama-style sentencepiece conversions (legacy normalizer + byte fallback, and Metaspace).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tmpDir(prefix = 'tk-tok-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeDir(files: Record<string, unknown>, dir = tmpDir()): string {
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  return dir;
}

/** GPT-2's byte → symbol table, written out independently of tunekit's copy. */
export const GPT2_BYTE_SYMBOL: string[] = (() => {
  const bs: number[] = [];
  for (let b = '!'.charCodeAt(0); b <= '~'.charCodeAt(0); b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table = new Array<string>(256);
  bs.forEach((b, i) => (table[b] = String.fromCharCode(cs[i]!)));
  return table;
})();

export const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// meta-llama/Llama-2-7b-chat-hf's template, verbatim.
export const LLAMA2_CHAT =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}' +
  '{% for message in loop_messages %}' +
  "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

function added(id: number, content: string, special = true) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

/**
 * GPT-2 style: ids 0..255 are the byte symbols at their byte values; merges make
 * he=256 ll=257 llo=258 hello=259 Ġw=260 Ġwo=261 or=262; added <|endoftext|>=263,
 * <|im_start|>=264, <|im_end|>=265 (special) and <tool>=266 (not special).
 */
export function gpt2Json(): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  GPT2_BYTE_SYMBOL.forEach((s, b) => (vocab[s] = b));
  const merged = ['he', 'll', 'llo', 'hello', 'Ġw', 'Ġwo', 'or'];
  merged.forEach((t, i) => (vocab[t] = 256 + i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(263, '<|endoftext|>'), added(264, '<|im_start|>'), added(265, '<|im_end|>'), added(266, '<tool>', false)],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      // ranks 0..6; the new [a, b] list form is tested by llama below
      merges: ['h e', 'l l', 'll o', 'he llo', 'Ġ w', 'Ġw o', 'o r'],
    },
  };
}

export function gpt2Config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    bos_token: '<|endoftext|>',
    eos_token: { content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false, __type: 'AddedToken' },
    unk_token: '<|endoftext|>',
    pad_token: null,
    model_max_length: 1024,
    chat_template: CHATML,
    ...extra,
  };
}

/**
 * Llama-2 style sentencepiece conversion: <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF> = 3..258, then
 * ▁=259 h=260 e=261 l=262 o=263 w=264 r=265 d=266 ▁h=267 ll=268 ▁he=269 llo=270 ▁hello=271
 * ▁w=272 or=273 ▁wor=274 ld=275.
 */
export function llamaVocab(): Record<string, number> {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '▁h', 'll', '▁he', 'llo', '▁hello', '▁w', 'or', '▁wor', 'ld'].forEach(
    (t, i) => (vocab[t] = 259 + i),
  );
  return vocab;
}

const LLAMA_MERGES = [
  ['▁', 'h'],
  ['l', 'l'],
  ['▁h', 'e'],
  ['ll', 'o'],
  ['▁he', 'llo'],
  ['▁', 'w'],
  ['o', 'r'],
  ['▁w', 'or'],
  ['l', 'd'],
];

function llamaModel(): Record<string, unknown> {
  return {
    type: 'BPE',
    dropout: null,
    unk_token: '<unk>',
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    ignore_merges: false,
    vocab: llamaVocab(),
    merges: LLAMA_MERGES,
  };
}

const LLAMA_ADDED = [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')];

const LLAMA_POST = {
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [
    { SpecialToken: { id: '<s>', type_id: 0 } },
    { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '<s>', type_id: 1 } },
    { Sequence: { id: 'B', type_id: 1 } },
  ],
  special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
};

/** As Llama-2's tokenizer.json: Prepend/Replace normalizer, byte fallback, Replace/ByteFallback/Fuse/Strip decoder. */
export function llamaLegacyJson(): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: LLAMA_ADDED,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: LLAMA_POST,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: llamaModel(),
  };
}

/** As newer sentencepiece conversions (legacy=false): Metaspace pre-tokenizer and decoder. */
export function llamaMetaspaceJson(): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: LLAMA_ADDED,
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: LLAMA_POST,
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    model: llamaModel(),
  };
}

export function llamaConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    eos_token: { __type: 'AddedToken', content: '</s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    unk_token: { __type: 'AddedToken', content: '<unk>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    model_max_length: 1e30, // transformers writes int(1e30) for "no limit"
    padding_side: 'right',
    chat_template: LLAMA2_CHAT,
    tokenizer_class: 'LlamaTokenizer',
    ...extra,
  };
}
