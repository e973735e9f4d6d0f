// Chat templates rendered with @huggingface/jinja, with transformers' variables.
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { CHATML, LLAMA2_CHAT, gpt2Config, gpt2Json, llamaConfig, llamaLegacyJson, writeDir } from './fixtures.js';

const gpt2 = (extra: Record<string, unknown> = {}) =>
  tk.loadTokenizer(writeDir({ 'tokenizer.json': gpt2Json(), 'tokenizer_config.json': gpt2Config(extra) }));
const llama = () => tk.loadTokenizer(writeDir({ 'tokenizer.json': llamaLegacyJson(), 'tokenizer_config.json': llamaConfig() }));

const conversation: tk.ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello!' },
  { role: 'user', content: 'Bye' },
];

describe('ChatML', () => {
  it('renders exactly', async () => {
    const t = await gpt2();
    expect(t.chatTemplate).toBe(CHATML);
    expect(t.applyChatTemplate(conversation, { tokenize: false })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n' +
        '<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n',
    );
    expect(t.applyChatTemplate([{ role: 'user', content: 'Hi' }], { tokenize: false, addGenerationPrompt: true })).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('tokenizes (the default) with the template special tokens recognized and none added', async () => {
    const t = await gpt2({ split_special_tokens: true });
    // <|im_start|> u s e r \n hello <|im_end|> \n
    expect(t.applyChatTemplate([{ role: 'user', content: 'hello' }])).toEqual([264, 117, 115, 101, 114, 10, 259, 265, 10]);
    expect(t.applyChatTemplate([{ role: 'user', content: 'hello' }], { tokenize: true, addGenerationPrompt: true }).slice(-13)).toEqual([
      265, 10, 264, 97, 115, 115, 105, 115, 116, 97, 110, 116, 10,
    ]);
  });

  it('picks templates from the list form by name, and tool_use when tools are given', async () => {
    const t = await gpt2({
      chat_template: [
        { name: 'default', template: CHATML },
        { name: 'tool_use', template: '{% for tool in tools %}[{{ tool.name }}]{% endfor %}{{ messages | length }}' },
      ],
    });
    expect(Object.keys(t.chatTemplates)).toEqual(['default', 'tool_use']);
    const msgs = [{ role: 'user', content: 'x' }];
    expect(t.applyChatTemplate(msgs, { tokenize: false })).toBe('<|im_start|>user\nx<|im_end|>\n');
    expect(t.applyChatTemplate(msgs, { tokenize: false, tools: [{ name: 'calc' }, { name: 'web' }] })).toBe('[calc][web]1');
    expect(t.applyChatTemplate(msgs, { tokenize: false, chatTemplate: 'tool_use', tools: [] })).toBe('1');
    // a string that is not a name is a literal template
    expect(t.applyChatTemplate(msgs, { tokenize: false, chatTemplate: '{{ bos_token }}{{ messages[0].content }}' })).toBe('<|endoftext|>x');
  });

  it('passes templateKwargs and leaves unset special tokens undefined', async () => {
    const t = await gpt2();
    const tpl = "{{ 'pad' if pad_token is defined else 'nopad' }} {{ 'think' if enable_thinking else 'fast' }} {{ range(3) | join(',') }}";
    expect(t.applyChatTemplate([], { tokenize: false, chatTemplate: tpl, templateKwargs: { enable_thinking: false } })).toBe('nopad fast 0,1,2');
    expect(t.applyChatTemplate([], { tokenize: false, chatTemplate: "{{ strftime_now('%Y') | length }}" })).toBe('4');
  });

  it('errors: no template, bad template, bad messages', async () => {
    const t = await gpt2({ chat_template: undefined });
    expect(t.chatTemplate).toBeNull();
    expect(() => t.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(/no chat template/);
    expect(() => t.applyChatTemplate([], { chatTemplate: '{% for %}' })).toThrow(tk.ChatTemplateError);
    // @ts-expect-error role missing
    expect(() => t.applyChatTemplate([{ content: 'x' }], { chatTemplate: CHATML })).toThrow(/messages\[0\]/);
  });
});

describe('Llama-2 chat template', () => {
  it('renders exactly, system prompt folded into the first turn', async () => {
    const t = await llama();
    expect(t.chatTemplate).toBe(LLAMA2_CHAT);
    expect(t.applyChatTemplate(conversation, { tokenize: false })).toBe(
      '<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]',
    );
    expect(t.applyChatTemplate([{ role: 'user', content: '  hello  ' }], { tokenize: false })).toBe('<s>[INST] hello [/INST]');
  });

  it('tokenizes with <s> and </s> as ids where the template wrote them', async () => {
    const t = await llama();
    const ids = t.applyChatTemplate(conversation.slice(1));
    const text = t.applyChatTemplate(conversation.slice(1), { tokenize: false });
    expect(ids).toEqual(t.encode(text, { addSpecialTokens: false }));
    expect(ids[0]).toBe(1);
    expect(ids.filter((i) => i === 1)).toHaveLength(2);
    expect(ids.filter((i) => i === 2)).toHaveLength(1);
    // the legacy Prepend normalizer puts ▁ before every text section, also the one after </s><s>
    // (as the Rust tokenizer does with this tokenizer.json), hence the double space
    expect(t.decode(ids, { skipSpecialTokens: true })).toBe('[INST] Hi [/INST] Hello!  [INST] Bye [/INST]');
  });

  it('raise_exception on bad role order becomes a ChatTemplateError with the message', async () => {
    const t = await llama();
    const bad = [
      { role: 'user', content: 'a' },
      { role: 'user', content: 'b' },
    ];
    expect(() => t.applyChatTemplate(bad)).toThrow(tk.ChatTemplateError);
    expect(() => t.applyChatTemplate(bad)).toThrow('Conversation roles must alternate user/assistant/user/assistant/...');
    expect(() => t.applyChatTemplate([{ role: 'assistant', content: 'a' }], { tokenize: false })).toThrow(/must alternate/);
  });
});
