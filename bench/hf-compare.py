#!/usr/bin/env python3
"""Cross-check tunekit's models against Hugging Face transformers.

Run on a machine with torch and transformers (the GPU hosts have them; CPU is
enough for the CPU half), from the repository root after building tunekit:

    python3 bench/hf-compare.py [--work DIR] [--tol 1e-4] [--node node] [--devices cpu,cuda]

It writes tiny random GPT-2, Llama (grouped-query attention) and BERT
checkpoints with transformers' from_config (fixed seed, safetensors), computes
transformers' logits (BERT: last hidden state and pooled output) for fixed
input ids and transformers' greedy generations (GPT-2, Llama: 12 new tokens),
then runs `node bench/hf-compare.mjs WORK DEVICE` which loads each checkpoint
with tk.loadModel on that device and writes tunekit's outputs. It prints one
line per model and device: max relative error (max|a-b| / max|b|) of the
logits, and whether the greedy tokens agree. Exit status 0 when every error is
within --tol and every generation agrees.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import (BertConfig, BertModel, GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, LlamaForCausalLM)

IDS = [[5, 17, 3, 29, 8, 41, 2, 11], [7, 7, 23, 1, 36, 4, 19, 30]]


def build(work):
    torch.manual_seed(0)
    models = {
        'gpt2': GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=48, n_layer=2, n_head=4)),
        'llama': LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                              num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
                                              rope_theta=10000.0, tie_word_embeddings=False)),
        'bert': BertModel(BertConfig(vocab_size=50, hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=96, max_position_embeddings=64)),
    }
    ref = {}
    ids = torch.tensor(IDS)
    for name, m in models.items():
        m.eval()
        d = os.path.join(work, name)
        m.save_pretrained(d, safe_serialization=True)
        with torch.no_grad():
            if name == 'bert':
                out = m(input_ids=ids)
                ref[name] = {'hidden': out.last_hidden_state.tolist(), 'pooled': out.pooler_output.tolist()}
            else:
                logits = m(input_ids=ids).logits
                gen = m.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)[:, ids.shape[1]:]
                eos = m.config.eos_token_id

                def cut(row):  # tunekit returns the tokens up to and including eos, no padding
                    return row[:row.index(eos) + 1] if eos in row else row

                ref[name] = {'logits': logits.tolist(), 'generated': [cut(r) for r in gen.tolist()]}
    with open(os.path.join(work, 'hf.json'), 'w') as f:
        json.dump({'ids': IDS, 'ref': ref}, f)


def max_rel(a, b):
    a, b = torch.tensor(a), torch.tensor(b)
    return float((a - b).abs().max() / b.abs().max())


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--work', default=None)
    p.add_argument('--tol', type=float, default=1e-4)
    p.add_argument('--node', default='node')
    p.add_argument('--devices', default='cpu,cuda')
    a = p.parse_args()
    work = a.work or tempfile.mkdtemp(prefix='tk-hf-')
    build(work)
    ref = json.load(open(os.path.join(work, 'hf.json')))['ref']
    ok = True
    here = os.path.dirname(os.path.abspath(__file__))
    for dev in a.devices.split(','):
        r = subprocess.run([a.node, os.path.join(here, 'hf-compare.mjs'), work, dev], capture_output=True, text=True)
        if r.returncode != 0:
            print(f'{dev}: tunekit failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}')
            ok = ok and dev != 'cpu'
            continue
        ours = json.loads(r.stdout.strip().splitlines()[-1])
        for name in ('gpt2', 'llama', 'bert'):
            o, h = ours[name], ref[name]
            if name == 'bert':
                e = max(max_rel(o['hidden'], h['hidden']), max_rel(o['pooled'], h['pooled']))
                print(f'{dev:4s} {name:5s} max rel err {e:.2e}')
                ok = ok and e <= a.tol
            else:
                e = max_rel(o['logits'], h['logits'])
                same = o['generated'] == h['generated']
                print(f'{dev:4s} {name:5s} max rel err {e:.2e}  greedy tokens {"agree" if same else "DIFFER"}')
                ok = ok and e <= a.tol and same
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
