#!/usr/bin/env python3
"""PyTorch side of bench/gpu-check.mjs (one subprocess for every case).

usage: python3 bench/gpu_check_torch.py MANIFEST.json OUT.json

MANIFEST (written by gpu-check.mjs): {device, quick, cases: [{id, op, dtype, params, backward,
  check: {inputs: [{name, shape, kind 'f32'|'i32', float, grad, file}], outputs: [{shape, file}],
          grads: [{name, shape, file}]},
  time: {inputs: [{name, shape, dist, scale, high, p, float, grad}]}, bytes?, extra?}]}
Check: loads the check-shape inputs (raw little-endian f32 / i32, bf16-rounded already for bf16
cases), runs the op in torch on the GPU in the case dtype, and reports the relative norm error of
tunekit's outputs (and gradients) against torch's. Timing: the torch equivalent on the big shape,
inputs drawn on the GPU, torch.cuda.Event timing, warmup, median of repeats; fwd under no_grad,
and fwd+bwd for backward cases.
OUT: {info: {torch, device}, cases: {id: {fwd_ms, fwdbwd_ms, copy_ms, err_fwd, err_bwd, error}}}
"""
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- ops
def quantize_rows(x, exact):
    """Symmetric absmax per row: scale = amax / 127, q = round-half-even(x * 127 / amax)."""
    amax = x.abs().amax(dim=1, keepdim=True)
    scale = amax / 127.0
    safe = torch.where(amax > 0, amax, torch.ones_like(amax))
    if exact:
        q = torch.round(x.double() * 127.0 / safe.double())
    else:
        q = torch.round(x * (127.0 / safe))
    q = torch.where(amax > 0, q, torch.zeros_like(q)).to(torch.int8)
    return q, scale


def gae_loop(r, v, d, gamma, lam):
    """The textbook reversed loop over T, vectorized over B (lastValues = 0)."""
    B, T = r.shape
    gl = float(np.float32(gamma) * np.float32(lam))
    adv = torch.empty_like(r)
    last = torch.zeros(B, device=r.device, dtype=r.dtype)
    nv = torch.zeros(B, device=r.device, dtype=r.dtype)
    for t in range(T - 1, -1, -1):
        nonterm = 1.0 - d[:, t]
        delta = r[:, t] + gamma * nv * nonterm - v[:, t]
        last = delta + gl * nonterm * last
        adv[:, t] = last
        nv = v[:, t]
    return adv, adv + v


def rms_norm(x, w, eps):
    if hasattr(F, 'rms_norm'):
        return F.rms_norm(x, (x.shape[-1],), w, eps)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def make_fn(op, x, p, exact=False):
    """A closure computing the op on the dict of tensors x: returns a list of outputs."""
    if op == 'matmul':
        return lambda: [x['a'] @ (x['b'].mT if p.get('transB') else x['b'])]
    if op == 'add':
        return lambda: [x['a'] + x['b']]
    if op == 'mul':
        return lambda: [x['a'] * x['b']]
    if op == 'gelu':
        return lambda: [F.gelu(x['x'], approximate='tanh')]
    if op == 'silu':
        return lambda: [F.silu(x['x'])]
    if op == 'sum':
        return lambda: [x['x'].sum(-1)]
    if op == 'softmax':
        return lambda: [torch.softmax(x['x'], -1)]
    if op == 'logSoftmax':
        return lambda: [torch.log_softmax(x['x'], -1)]
    if op == 'layerNorm':
        return lambda: [F.layer_norm(x['x'], (x['x'].shape[-1],), x['w'], x['b'], p['eps'])]
    if op == 'rmsNorm':
        return lambda: [rms_norm(x['x'], x['w'], p['eps'])]
    if op == 'crossEntropy':
        return lambda: [F.cross_entropy(x['logits'], x['targets'], ignore_index=-100)]
    if op == 'embedding':
        return lambda: [F.embedding(x['ids'], x['table'])]
    if op == 'attention':
        return lambda: [F.scaled_dot_product_attention(x['q'], x['k'], x['v'], is_causal=bool(p['causal']))]
    if op == 'loraLinear':
        s = p['scale']
        return lambda: [x['x'] @ x['w'].T + s * (x['x'] @ x['a'].T) @ x['b'].T]
    if op == 'int8Linear':
        qw, sw = quantize_rows(x['w'], exact)  # once, untimed
        qwt, swt = qw.t(), sw.t()

        def f():
            qx, sx = quantize_rows(x['x'], exact)
            return [torch._int_mm(qx, qwt).float() * sx * swt]
        return f
    if op == 'gae':
        return lambda: list(gae_loop(x['rewards'], x['values'], x['dones'], p['gamma'], p['lambda']))
    raise ValueError(f"no torch equivalent for op '{op}'")


# ---------------------------------------------------------------- helpers
DT = {'f32': torch.float32, 'bf16': torch.bfloat16}


def load(spec, dev, dtype, want_grad):
    a = np.fromfile(spec['file'], dtype=np.float32 if spec['kind'] == 'f32' else np.int32).reshape(spec['shape'])
    t = torch.from_numpy(a).to(dev)
    if spec['kind'] == 'i32':
        return t.long()
    if spec['float']:
        t = t.to(DT[dtype])
    if want_grad and spec.get('grad'):
        t.requires_grad_(True)
    return t


def gen(spec, dev, dtype, want_grad):
    shape = spec['shape']
    d = spec['dist']
    if d == 'randn':
        t = torch.randn(shape, device=dev)
        if spec.get('scale', 1) != 1:
            t = t * spec['scale']
    elif d == 'rand':
        t = torch.rand(shape, device=dev)
    elif d == 'ids':
        return torch.randint(0, spec['high'], shape, device=dev)
    elif d == 'bernoulli':
        t = (torch.rand(shape, device=dev) < spec['p']).float()
    else:
        raise ValueError(f"unknown distribution '{d}'")
    if spec['float']:
        t = t.to(DT[dtype])
    if want_grad and spec.get('grad'):
        t.requires_grad_(True)
    return t


def relnorm(ours_file, shape, t):
    o = torch.from_numpy(np.fromfile(ours_file, dtype=np.float32).reshape(shape)).to(t.device, torch.float64)
    r = t.detach().to(torch.float64).reshape(o.shape)
    num = float((o - r).norm())
    den = float(r.norm())
    e = num / den if den > 0 else num
    return e if math.isfinite(e) else 'inf'


def maxerr(es):
    if any(e == 'inf' for e in es):
        return 'inf'
    return max(es) if es else None


def backward_of(outs, x, specs):
    y = outs[0]
    if 'dy' in x:
        y.backward(x['dy'])
    else:
        y.backward()
    grads = []
    for s in specs:
        if s.get('grad'):
            grads.append((s['name'], x[s['name']].grad))
    return grads


def drop_grads(x):
    for t in x.values():
        if isinstance(t, torch.Tensor) and t.grad is not None:
            t.grad = None


def make_timer(dev, quick):
    target = 15.0 if quick else 60.0  # ms per repeat
    repeats = 3 if quick else 7

    def elapsed(fn, n):
        if dev == 'cuda':
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(n):
                fn()
            e.record()
            e.synchronize()
            return s.elapsed_time(e)
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t) * 1e3

    def time_it(fn):
        est = elapsed(fn, 1)
        if est < 1000:
            est = elapsed(fn, 1)
        if est > 2000:
            return est
        n = max(1, min(1000, round(target / max(est, 1e-3))))
        samples = sorted(elapsed(fn, n) / n for _ in range(1 if est > 500 else repeats))
        m = len(samples) // 2
        return samples[m] if len(samples) % 2 else (samples[m - 1] + samples[m]) / 2

    return time_it


# ---------------------------------------------------------------- AdamW
def adamw_opt(param, p, dev):
    kw = dict(lr=p['lr'], betas=(p['beta1'], p['beta2']), eps=p['eps'], weight_decay=p['weightDecay'])
    if dev == 'cuda':
        kw['fused'] = True
    return torch.optim.AdamW([param], **kw)


def adamw_check(c, dev, r):
    p = c['params']
    ins = {s['name']: load(s, dev, 'f32', False) for s in c['check']['inputs']}
    param = ins['p'].clone().requires_grad_(True)
    param.grad = ins['g'].clone()
    opt = adamw_opt(param, p, dev)
    for _ in range(p['steps']):
        opt.step()
    delta = param.detach() - ins['p']
    o = c['check']['outputs'][0]
    r['err_fwd'] = relnorm(o['file'], o['shape'], delta)


def adamw_time(c, dev, time_it, r):
    p = c['params']
    n = c['time']['inputs'][0]['shape']
    param = (torch.randn(n, device=dev) * 0.02).requires_grad_(True)
    param.grad = torch.randn(n, device=dev) * 0.01
    opt = adamw_opt(param, p, dev)
    with torch.no_grad():
        r['fwd_ms'] = time_it(opt.step)


# ---------------------------------------------------------------- main
def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        m = json.load(f)
    dev = 'cuda' if m['device'] == 'cuda' else 'cpu'
    if dev == 'cuda' and not torch.cuda.is_available():
        print('gpu_check_torch: torch sees no CUDA device', file=sys.stderr)
        sys.exit(1)
    time_it = make_timer(dev, m['quick'])
    info = {'torch': torch.__version__, 'device': torch.cuda.get_device_name(0) if dev == 'cuda' else 'cpu',
            'rms_norm': 'F.rms_norm' if hasattr(F, 'rms_norm') else 'composed',
            'tf32': bool(torch.backends.cuda.matmul.allow_tf32) if dev == 'cuda' else False}
    results = {}
    t00 = time.perf_counter()
    for c in m['cases']:
        t0 = time.perf_counter()
        r = {}
        errors = []
        op, dtype, p = c['op'], c['dtype'], c['params']
        # ---- check
        if c.get('check'):
            try:
                if op == 'adamw':
                    adamw_check(c, dev, r)
                else:
                    specs = c['check']['inputs']
                    x = {s['name']: load(s, dev, dtype, c['backward']) for s in specs}
                    outs = make_fn(op, x, p, exact=True)()
                    ours = c['check']['outputs']
                    if len(ours) != len(outs):
                        raise ValueError(f'{len(ours)} outputs from tunekit, {len(outs)} from torch')
                    r['err_fwd'] = maxerr([relnorm(o['file'], o['shape'], t) for o, t in zip(ours, outs)])
                    if c['backward']:
                        grads = dict(backward_of(outs, x, specs))
                        r['err_bwd'] = maxerr([relnorm(g['file'], g['shape'], grads[g['name']]) for g in c['check']['grads']])
                    del x, outs
            except Exception as e:  # noqa: BLE001 (one case's failure must not stop the others)
                errors.append(f'check: {type(e).__name__}: {e}')
        # ---- timing
        try:
            if op == 'adamw':
                adamw_time(c, dev, time_it, r)
            else:
                specs = c['time']['inputs']
                x = {s['name']: gen(s, dev, dtype, c['backward']) for s in specs}
                fn = make_fn(op, x, p)
                with torch.no_grad():
                    r['fwd_ms'] = time_it(fn)
                if c['backward']:
                    def fb():
                        backward_of(fn(), x, specs)
                        drop_grads(x)
                    r['fwdbwd_ms'] = time_it(fb)
                if 'copy' in (c.get('extra') or []):
                    src = torch.randn(int(c['bytes']) // 8, device=dev)
                    r['copy_ms'] = time_it(src.clone)
                    del src
                del x, fn
        except Exception as e:  # noqa: BLE001
            errors.append(f'time: {type(e).__name__}: {e}')
        if errors:
            r['error'] = '; '.join(errors)
        results[c['id']] = r
        if dev == 'cuda':
            torch.cuda.empty_cache()
        ms = r.get('fwd_ms')
        line = f"torch [{c['id']}] {c.get('label', op)}: " + ('-' if ms is None else '%.3f ms' % ms)
        if 'err_fwd' in r:
            line += ', err %s' % ('%.1e' % r['err_fwd'] if isinstance(r['err_fwd'], float) else r['err_fwd'])
        if errors:
            line += ' (' + errors[0][:160] + ')'
        print(line + ' [%.1f s]' % (time.perf_counter() - t0), flush=True)
    with open(sys.argv[2], 'w') as f:
        json.dump({'info': info, 'cases': results}, f, allow_nan=False)
    print(f'torch: {len(results)} cases in {time.perf_counter() - t00:.1f} s', flush=True)


if __name__ == '__main__':
    main()
