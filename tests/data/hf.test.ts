// The pipeline with a Hugging Face BPE tokenizer (tokenizer.json + tokenizer_config.json), where
// merges can join prompt and completion into one token and the chat template is ChatML.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import * as tk from 'tunekit';

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const HE = 256, LLO = 258, HELLO = 259, EOT = 260, IM_START = 261, IM_END = 262;
const X = -100;

let tok: tk.Tokenizer;
beforeAll(async () => {
  const vocab: Record<string, number> = {};
  tk.BYTE_TO_UNICODE.forEach((s, b) => (vocab[s] = b));
  ['he', 'll', 'llo', 'hello'].forEach((t, i) => (vocab[t] = 256 + i));
  const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(EOT, '<|endoftext|>'), added(IM_START, '<|im_start|>'), added(IM_END, '<|im_end|>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges: ['h e', 'l l', 'll o', 'he llo'] },
  };
  const config = { eos_token: '<|endoftext|>', pad_token: null, chat_template: CHATML };
  const dir = mkdtempSync(join(tmpdir(), 'tunekit-data-hf-'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  tok = await tk.loadTokenizer(dir);
});

describe('with a BPE tokenizer', () => {
  it('checks the fixture: "hello" is one token', () => {
    expect(tok.encode('hello')).toEqual([HELLO]);
    expect(tok.encode('hel')).toEqual([HE, 108]);
  });

  it('a token that straddles the prompt/completion boundary belongs to the completion', () => {
    const ds = tk.datasetFromJsonl('{"prompt":"hel","completion":"lo"}\n{"prompt":"he","completion":"llo"}', tok, { kind: 'lm' });
    // "hello" is one merged token: the prompt ids [he, l] are not a prefix, so nothing is masked
    expect(ds.examples[0]).toEqual({ inputIds: [HELLO, EOT], labels: [HELLO, EOT] });
    expect(ds.examples[1]).toEqual({ inputIds: [HELLO, EOT], labels: [HELLO, EOT] });
    // "a llo" pre-tokenizes to 'a', 'Ġllo' -> a, Ġ, llo: the prompt "a " is [a, Ġ], a clean prefix
    const clean = tk.datasetFromJsonl('{"prompt":"a ","completion":"llo"}', tok, { kind: 'lm' });
    expect(clean.examples[0]).toEqual({ inputIds: [97, 32, LLO, EOT], labels: [X, X, LLO, EOT] });
  });

  it('ChatML: assistant content and its <|im_end|>\\n are trained; pad falls back to eos', () => {
    const ds = tk.datasetFromJsonl(JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }), tok, { format: 'chat' });
    const ex = ds.examples[0]!;
    const sp = (s: string) => tok.encode(s, { addSpecialTokens: false });
    const head = [IM_START, ...sp('user\nhi'), IM_END, ...sp('\n'), IM_START, ...sp('assistant\n')];
    expect(ex.inputIds).toEqual([...head, HELLO, IM_END, ...sp('\n')]);
    expect(ex.labels).toEqual([...head.map(() => X), HELLO, IM_END, ...sp('\n')]);
    expect(ds.padTokenId).toBe(EOT);
  });
});
