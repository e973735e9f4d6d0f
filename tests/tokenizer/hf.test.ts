// Loading Hugging Face tokenizer directories: ids computed by hand from the tiny vocabularies in
// fixtures.ts (see the id tables there).
import { describe, expect, it } from 'vitest';
import * as tk from 'tunekit';
import { gpt2Config, gpt2Json, llamaConfig, llamaLegacyJson, llamaMetaspaceJson, writeDir } from './fixtures.js';

const gpt2Dir = () => writeDir({ 'tokenizer.json': gpt2Json(), 'tokenizer_config.json': gpt2Config() });
const llamaDir = (extra: Record<string, unknown> = {}) =>
  writeDir({ 'tokenizer.json': llamaLegacyJson(), 'tokenizer_config.json': llamaConfig(extra) });

describe('GPT-2 style byte-level BPE', () => {
  it('applies merges by rank', async () => {
    const t = await tk.loadTokenizer(gpt2Dir());
    // "hello": h e l l o -> he l l o -> he ll o -> he llo -> hello (259)
    // " world": Ġw (rank 4) beats o r (rank 6); then Ġwo (rank 5) takes the o, so "or" never forms
    expect(t.encode('hello world!')).toEqual([259, 261, 114, 108, 100, 33]);
    // é is two bytes (C3 A9); no merge with them, l l o still merge; emoji: its four bytes
    expect(t.encode('héllo 😀')).toEqual([104, 195, 169, 258, 32, 240, 159, 152, 128]);
    // GPT-2 adds no special tokens around text
    expect(t.encode('hello', { addSpecialTokens: true })).toEqual([259]);
    expect(t.encode('')).toEqual([]);
  });

  it('decodes to the exact text', async () => {
    const t = await tk.loadTokenizer(gpt2Dir());
    for (const s of ['hello world!', 'héllo 😀  tabs\tand\nnewlines ', ' leading space', 'a . b , c', '']) {
      expect(t.decode(t.encode(s))).toBe(s);
    }
    expect(t.decode([259, 261, 114, 108, 100, 33])).toBe('hello world!');
    expect(t.decode(Int32Array.from([259, 261, 114, 108, 100, 33]))).toBe('hello world!');
  });

  it('reads special tokens from tokenizer_config.json (string and {content} forms)', async () => {
    const t = await tk.loadTokenizer(gpt2Dir());
    expect(t.bosToken).toBe('<|endoftext|>');
    expect(t.eosToken).toBe('<|endoftext|>');
    expect(t.bosTokenId).toBe(263);
    expect(t.eosTokenId).toBe(263);
    expect(t.unkTokenId).toBe(263);
    expect(t.padTokenId).toBeNull();
    expect(t.modelMaxLength).toBe(1024);
    expect(t.vocabSize).toBe(267);
    expect(t.specialTokenIds).toEqual([263, 264, 265]);
    expect(t.tokenToId('hello')).toBe(259);
    expect(t.tokenToId('Ġwo')).toBe(261);
    expect(t.tokenToId('<|im_end|>')).toBe(265);
    expect(t.tokenToId('nope')).toBeNull();
    expect(t.idToToken(260)).toBe('Ġw');
    expect(t.idToToken(266)).toBe('<tool>');
    expect(t.idToToken(9999)).toBeNull();
  });

  it('recognizes added tokens in text, unless allowSpecial is false', async () => {
    const t = await tk.loadTokenizer(gpt2Dir());
    expect(t.encode('a<|im_end|>b<tool>')).toEqual([97, 265, 98, 266]);
    // special strings become text; the non-special added token <tool> is still recognized
    expect(t.encode('a<|im_end|>b<tool>', { allowSpecial: false })).toEqual([
      97, 60, 124, 105, 109, 95, 101, 110, 100, 124, 62, 98, 266,
    ]);
    expect(t.decode([97, 265, 98, 263])).toBe('a<|im_end|>b<|endoftext|>');
    expect(t.decode([97, 265, 98, 266, 263], { skipSpecialTokens: true })).toBe('ab<tool>');
    expect(t.decode([263], { skipSpecialTokens: true })).toBe('');
    expect(t.decode([])).toBe('');
    expect(() => t.decode([267])).toThrow(/267 is not a token id/);
    expect(() => t.decode([1.5])).toThrow(/not a token id/);
  });

  it('split_special_tokens: true makes allowSpecial default to false', async () => {
    const dir = writeDir({ 'tokenizer.json': gpt2Json(), 'tokenizer_config.json': gpt2Config({ split_special_tokens: true }) });
    const t = await tk.loadTokenizer(dir);
    expect(t.encode('<|im_end|>')).toHaveLength(10);
    expect(t.encode('<|im_end|>', { allowSpecial: true })).toEqual([265]);
  });
});

describe('Llama-2 style (Prepend/Replace normalizer, byte fallback)', () => {
  it('encodes with add_bos_token and byte fallback', async () => {
    const t = await tk.loadTokenizer(llamaDir());
    // "▁hello▁world": ▁h, ll, ▁he, llo, ▁hello; ▁w, or, ▁wor; ld
    expect(t.encode('hello world')).toEqual([1, 271, 274, 275]);
    expect(t.encode('hello world', { addSpecialTokens: false })).toEqual([271, 274, 275]);
    // 😀 is not a piece: its UTF-8 bytes F0 9F 98 80 become <0xF0>.. = 3 + byte
    expect(t.encode('hello 😀')).toEqual([1, 271, 259, 3 + 0xf0, 3 + 0x9f, 3 + 0x98, 3 + 0x80]);
    expect(t.bosTokenId).toBe(1);
    expect(t.eosTokenId).toBe(2);
    expect(t.unkTokenId).toBe(0);
    expect(t.padTokenId).toBeNull();
    expect(t.modelMaxLength).toBeNull(); // int(1e30) means no limit
    expect(t.vocabSize).toBe(276);
    expect(t.idToToken(3 + 0x41)).toBe('<0x41>');
  });

  it('decodes byte-fallback tokens and strips the leading space', async () => {
    const t = await tk.loadTokenizer(llamaDir());
    expect(t.decode([1, 271, 259, 243, 162, 155, 131], { skipSpecialTokens: true })).toBe('hello 😀');
    expect(t.decode([271, 274, 275])).toBe('hello world');
    expect(t.decode([1, 271, 2])).toBe('<s> hello</s>');
    for (const s of ['hello world', 'Hi, naïve café ☕ 日本', 'x  y']) {
      expect(t.decode(t.encode(s), { skipSpecialTokens: true })).toBe(s);
    }
  });

  it('add_eos_token adds eos; add_bos_token false drops the post_processor bos', async () => {
    expect((await tk.loadTokenizer(llamaDir({ add_eos_token: true }))).encode('hello')).toEqual([1, 271, 2]);
    expect((await tk.loadTokenizer(llamaDir({ add_bos_token: false }))).encode('hello')).toEqual([271]);
    // without add_*_token in the config, tokenizer.json's TemplateProcessing (<s> $A) decides
    const cfg = llamaConfig();
    delete cfg.add_bos_token;
    delete cfg.add_eos_token;
    const t = await tk.loadTokenizer(writeDir({ 'tokenizer.json': llamaLegacyJson(), 'tokenizer_config.json': cfg }));
    expect(t.encode('hello')).toEqual([1, 271]);
  });

  it('Metaspace pre-tokenizer (prepend_scheme first) and decoder', async () => {
    const t = await tk.loadTokenizer(writeDir({ 'tokenizer.json': llamaMetaspaceJson(), 'tokenizer_config.json': llamaConfig() }));
    expect(t.encode('hello world')).toEqual([1, 271, 274, 275]);
    expect(t.decode([271, 274, 275])).toBe('hello world');
    // "first": no ▁ is prepended to text that follows an added token
    expect(t.encode('<s>hello', { addSpecialTokens: false })).toEqual([1, 260, 261, 270]);
  });

  it('Metaspace split: true keeps merges inside words (the library alone would merge across)', async () => {
    const json = (split: boolean | undefined) => ({
      added_tokens: [],
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', ...(split === undefined ? {} : { split }) },
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' },
      // the merge "a ▁" ranks first, so across a word boundary it wins
      model: { type: 'BPE', vocab: { '▁a': 0, '▁': 1, a: 2, 'a▁': 3, '<unk>': 4 }, merges: [['a', '▁'], ['▁', 'a']], unk_token: '<unk>' },
    });
    const load = (split: boolean | undefined) => tk.loadTokenizer(writeDir({ 'tokenizer.json': json(split), 'tokenizer_config.json': {} }));
    // split (the Rust default): "▁a" "▁a" are separate words
    expect((await load(true)).encode('a a')).toEqual([0, 0]);
    expect((await load(undefined)).encode('a a')).toEqual([0, 0]);
    // split: false: one piece "▁a▁a" -> ▁ a▁ a
    expect((await load(false)).encode('a a')).toEqual([1, 3, 2]);
    expect((await load(true)).decode([0, 0])).toBe('a a');
  });

  it('loadTokenizerSync gives the same tokenizer', async () => {
    const dir = llamaDir();
    const a = await tk.loadTokenizer(dir);
    const b = tk.loadTokenizerSync(dir);
    expect(b.encode('hello world 😀')).toEqual(a.encode('hello world 😀'));
    expect(b.chatTemplate).toBe(a.chatTemplate);
  });

  it('special_tokens_map.json fills and overrides config tokens; chat_template.jinja supplies the template', async () => {
    const cfg = llamaConfig();
    delete cfg.eos_token;
    delete cfg.chat_template;
    const dir = writeDir({
      'tokenizer.json': llamaLegacyJson(),
      'tokenizer_config.json': cfg,
      'special_tokens_map.json': { eos_token: { content: '</s>' }, pad_token: '<unk>' },
      'chat_template.jinja': '{{ eos_token }}',
    });
    const t = await tk.loadTokenizer(dir);
    expect(t.eosTokenId).toBe(2);
    expect(t.padTokenId).toBe(0);
    expect(t.applyChatTemplate([], { tokenize: false })).toBe('</s>');
  });
});

describe('batchEncode', () => {
  it('pads right by default, left on request, with attention masks', async () => {
    const t = await tk.loadTokenizer(llamaDir({ pad_token: '<unk>' }));
    const r = t.batchEncode(['hello world', 'hello'], { padding: true });
    expect(r.inputIds).toEqual([
      [1, 271, 274, 275],
      [1, 271, 0, 0],
    ]);
    expect(r.attentionMask).toEqual([
      [1, 1, 1, 1],
      [1, 1, 0, 0],
    ]);
    const l = t.batchEncode(['hello world', 'hello'], { padding: 'longest', paddingSide: 'left' });
    expect(l.inputIds).toEqual([
      [1, 271, 274, 275],
      [0, 0, 1, 271],
    ]);
    expect(l.attentionMask[1]).toEqual([0, 0, 1, 1]);
    t.paddingSide = 'left';
    expect(t.batchEncode(['hello world', 'hello'], { padding: true }).inputIds[1]).toEqual([0, 0, 1, 271]);
  });

  it('padding_side from tokenizer_config.json', async () => {
    const t = await tk.loadTokenizer(llamaDir({ pad_token: '<unk>', padding_side: 'left' }));
    expect(t.paddingSide).toBe('left');
    expect(t.batchEncode(['hello world', 'hello'], { padding: true }).inputIds[1]).toEqual([0, 0, 1, 271]);
  });

  it('no padding keeps lengths; max_length and padToMultipleOf', async () => {
    const t = await tk.loadTokenizer(llamaDir({ pad_token: '<unk>' }));
    const r = t.batchEncode(['hello world', 'hello']);
    expect(r.inputIds).toEqual([[1, 271, 274, 275], [1, 271]]);
    expect(r.attentionMask).toEqual([[1, 1, 1, 1], [1, 1]]);
    expect(t.batchEncode(['hello'], { padding: 'max_length', maxLength: 5 }).inputIds).toEqual([[1, 271, 0, 0, 0]]);
    expect(t.batchEncode(['hello world', 'hello'], { padding: true, padToMultipleOf: 3 }).inputIds[1]).toEqual([1, 271, 0, 0, 0, 0]);
  });

  it('truncates content but keeps the special tokens', async () => {
    const t = await tk.loadTokenizer(llamaDir({ add_eos_token: true }));
    expect(t.batchEncode(['hello world'], { truncation: true, maxLength: 3 }).inputIds).toEqual([[1, 271, 2]]);
    expect(t.batchEncode(['hello world'], { truncation: true, maxLength: 3, truncationSide: 'left' }).inputIds).toEqual([[1, 275, 2]]);
    expect(t.batchEncode(['hello world'], { truncation: true, maxLength: 10 }).inputIds).toEqual([[1, 271, 274, 275, 2]]);
    expect(() => t.batchEncode(['hello'], { truncation: true, maxLength: 1 })).toThrow(/special tokens/);
    // model_max_length is the default limit (here: none)
    expect(() => t.batchEncode(['hello'], { truncation: true })).toThrow(/maxLength/);
    const g = await tk.loadTokenizer(gpt2Dir());
    expect(g.batchEncode(['x'.repeat(2000)], { truncation: true }).inputIds[0]).toHaveLength(1024);
  });

  it('padding without a pad token is an error unless padTokenId is given', async () => {
    const t = await tk.loadTokenizer(gpt2Dir());
    expect(() => t.batchEncode(['hello', 'hello world'], { padding: true })).toThrow(/pad token/);
    const r = t.batchEncode(['hello', 'hello world'], { padding: true, padTokenId: t.eosTokenId! });
    expect(r.inputIds[0]).toEqual([259, 263, 263, 263, 263]);
  });
});
