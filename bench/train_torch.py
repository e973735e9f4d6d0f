#!/usr/bin/env python3
"""PyTorch eager baseline for bench/train.bench.js: the same small GPT-2-style
model, batch and optimizer, full fine-tuning and LoRA (c_attn, r=8), timed on
the CPU. Prints one JSON line: {"full_tokens_per_s": ..., "lora_tokens_per_s": ...}.

    python3 bench/train_torch.py [--d 256] [--layers 4] [--heads 4] [--T 128] [--batch 8] [--vocab 512] [--steps 8]

Needs python3 with torch (Debian: apt-get install python3-torch; run it with
/usr/bin/python3). Threads: torch.set_num_threads(os.cpu_count()).
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln_1 = nn.LayerNorm(d)
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.c_fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)
        self.lora = None

    def attn_in(self, x):
        y = self.c_attn(x)
        if self.lora is not None:
            a, b, s = self.lora
            y = y + s * (x @ a.t()) @ b.t()
        return y

    def forward(self, x, mask):
        B, T, C = x.shape
        D = C // self.h
        q, k, v = self.attn_in(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, self.h, D).transpose(1, 2)
        k = k.view(B, T, self.h, D).transpose(1, 2)
        v = v.view(B, T, self.h, D).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)  # eager: the unfused composition
        att = att.masked_fill(mask, float('-inf')).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh'))


class GPT(nn.Module):
    def __init__(self, vocab, d, layers, heads, T):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(T, d)
        self.h = nn.ModuleList([Block(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.register_buffer('mask', torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

    def forward(self, ids):
        B, T = ids.shape
        x = self.wte(ids) + self.wpe(torch.arange(T))
        for b in self.h:
            x = b(x, self.mask[:T, :T])
        return self.ln_f(x) @ self.wte.weight.t()


def run(model, params, ids, steps):
    opt = torch.optim.AdamW(params, lr=1e-4)
    B, T = ids.shape

    def step():
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    return B * T * steps / dt


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--d', type=int, default=256)
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--heads', type=int, default=4)
    p.add_argument('--T', type=int, default=128)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--vocab', type=int, default=512)
    p.add_argument('--steps', type=int, default=8)
    a = p.parse_args()
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    ids = torch.randint(0, a.vocab, (a.batch, a.T))
    model = GPT(a.vocab, a.d, a.layers, a.heads, a.T)
    full = run(model, list(model.parameters()), ids, a.steps)
    for prm in model.parameters():
        prm.requires_grad_(False)
    lora_params = []
    for b in model.h:
        A = nn.Parameter(torch.randn(8, a.d) * 0.01)
        Bm = nn.Parameter(torch.zeros(3 * a.d, 8))
        b.lora = (A, Bm, 16 / 8)
        lora_params += [A, Bm]
    lora = run(model, lora_params, ids, a.steps)
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(), 'full_tokens_per_s': full, 'lora_tokens_per_s': lora}))


if __name__ == '__main__':
    main()
