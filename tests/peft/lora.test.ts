// LoRA (tk.applyLora, tk.loadAdapter) on tiny random GPT-2, Llama and BERT
// models: parameter counts and PEFT's summary line computed by hand, default
// and regex target modules, scale (rsLoRA too), initialization, freezing,
// merged == unmerged outputs, unmerge restoring the weights, gradients only in
// the LoRA factors, the layer's gradients against an unfused composition and
// float64 finite differences, the dropout path, several adapters, and the
// adapter directory in PEFT's format (exact keys and config fields, round
// trips, and errors naming the file and the field).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import * as tk from 'tunekit';
import { checkGrad, expectClose, f64, norm, relErr, Rng, T, TOL } from '../helpers';
import { matmul as refMatmul, type Arr } from '../reference';

const root = mkdtempSync(join(tmpdir(), 'tk-lora-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const fresh = (name: string) => join(root, `${name}-${dirCount++}`);

// ---------------------------------------------------------------- tiny models
const GPT2 = { model_type: 'gpt2', vocab_size: 37, n_positions: 16, n_embd: 12, n_layer: 2, n_head: 3 };
const LLAMA = {
  model_type: 'llama',
  vocab_size: 41,
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_position_embeddings: 32,
  tie_word_embeddings: false,
};
const BERT = { model_type: 'bert', vocab_size: 43, hidden_size: 12, num_hidden_layers: 2, num_attention_heads: 3, intermediate_size: 20, max_position_embeddings: 16 };

type Kind = 'gpt2' | 'llama' | 'bert';
const CFG: Record<Kind, Record<string, unknown>> = { gpt2: GPT2, llama: LLAMA, bert: BERT };
const IDS: Record<Kind, number[][]> = {
  gpt2: [[1, 5, 9, 2, 7, 3, 0], [4, 4, 8, 36, 11, 2, 6]],
  llama: [[1, 5, 9, 2, 7, 40, 0], [4, 4, 8, 13, 11, 2, 6]],
  bert: [[1, 5, 9, 2, 7, 42, 0], [4, 4, 8, 13, 11, 2, 6]],
};

function build(kind: Kind): tk.AnyModel {
  return tk.createModel(CFG[kind]);
}

/** A model and a directory holding its weights (so that the same base can be loaded again). */
function buildSaved(kind: Kind): { model: tk.AnyModel; dir: string } {
  const model = build(kind);
  const dir = fresh(`${kind}-base`);
  tk.saveModel(model, dir);
  return { model, dir };
}

/** Every output of a forward (logits; BERT: last hidden state then pooled) as float64. */
function outputs(m: tk.Module, ids: number[][]): Float64Array {
  return tk.noGrad(() =>
    tk.tidy(() => {
      const y = (m as unknown as { forward(ids: number[][]): tk.Tensor | tk.BertOutput }).forward(ids);
      if (y instanceof tk.Tensor) return f64(y);
      return Float64Array.from([...y.lastHiddenState.toArray(), ...y.pooled.toArray()]);
    }),
  );
}

/** Sum of outputs · R, for backward. */
function loss(m: tk.Module, ids: number[][], R: Float64Array): tk.Tensor {
  const y = (m as unknown as { forward(ids: number[][]): tk.Tensor | tk.BertOutput }).forward(ids);
  const t = y instanceof tk.Tensor ? y : tk.ops.concat([tk.ops.reshape(y.lastHiddenState, [y.lastHiddenState.numel]), tk.ops.reshape(y.pooled, [y.pooled.numel])]);
  const flat = tk.ops.reshape(t, [t.numel]);
  return tk.ops.sum(tk.ops.mul(flat, tk.tensor(Float32Array.from(R), [R.length])));
}

function names(m: tk.Module): string[] {
  return m.namedParameters().map(([n]) => n);
}

function loraLayers(m: tk.PeftModel<tk.Module>): Array<[string, tk.LoraLinear]> {
  return m.peftTuner.loraLayers();
}

// ---------------------------------------------------------------- counts by hand
/** [all base params, LoRA params of the default targets at rank r] per architecture, from the configs. */
function handCounts(kind: Kind, r: number): { base: number; lora: number } {
  if (kind === 'gpt2') {
    const C = 12, V = 37, P = 16, L = 2, I = 4 * C;
    const block = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * I + I) + (I * C + C);
    // c_attn: A [r, C], B [3C, r]
    return { base: V * C + P * C + L * block + 2 * C, lora: L * (r * C + 3 * C * r) };
  }
  if (kind === 'llama') {
    const C = 16, I = 24, V = 41, L = 2, KV = 2 * 4;  // Hkv * head_dim
    const layer = C * C + C * KV + C * KV + C * C + 3 * C * I + 2 * C;
    // q_proj: A [r, C], B [C, r]; v_proj: A [r, C], B [KV, r]
    return { base: V * C + L * layer + C + V * C, lora: L * (r * C + C * r + r * C + KV * r) };
  }
  const C = 12, I = 20, V = 43, P = 16, L = 2;
  const layer = 3 * (C * C + C) + (C * C + C) + 2 * C + (C * I + I) + (I * C + C) + 2 * C;
  // query, value: A [r, C], B [C, r]
  return { base: V * C + P * C + 2 * C + 2 * C + L * layer + (C * C + C), lora: L * 2 * (r * C + C * r) };
}

/** PEFT's line, written independently: f"{n:,d}" via Intl and f"{x:.4f}" via toFixed (no exact tie in these cases). */
function peftLine(trainable: number, all: number): string {
  const f = (n: number) => new Intl.NumberFormat('en-US').format(n);
  const pct = (100 * trainable) / all;
  expect(Math.abs(pct * 1e4 - Math.floor(pct * 1e4) - 0.5)).toBeGreaterThan(1e-6);  // not a rounding tie
  return `trainable params: ${f(trainable)} || all params: ${f(all)} || trainable%: ${pct.toFixed(4)}`;
}

describe('applyLora: targets, counts, freezing', () => {
  const DEFAULT_TARGETS: Record<Kind, RegExp> = {
    gpt2: /^transformer\.h\.\d\.attn\.c_attn$/,
    llama: /^model\.layers\.\d\.self_attn\.(q_proj|v_proj)$/,
    bert: /^encoder\.layer\.\d\.attention\.self\.(query|value)$/,
  };

  for (const kind of ['gpt2', 'llama', 'bert'] as const) {
    it(`${kind}: default target modules, trainable params and PEFT's summary line`, () => {
      const model = build(kind);
      const before = names(model);
      const r = 4;
      const peft = tk.applyLora(model, { r, alpha: 8 });
      expect(peft).toBe(model);  // the model itself, given PEFT's methods
      expect(tk.isPeftModel(model)).toBe(true);
      const wrapped = loraLayers(peft).map(([p]) => p);
      expect(wrapped.length).toBe(kind === 'gpt2' ? 2 : 4);
      for (const p of wrapped) expect(p).toMatch(DEFAULT_TARGETS[kind]);
      const { base, lora } = handCounts(kind, r);
      expect(peft.getNbTrainableParameters()).toEqual([lora, base + lora]);
      const spy = vi.spyOn(console, 'log').mockImplementation(() => {});
      const line = peft.printTrainableParameters();
      expect(spy).toHaveBeenCalledWith(line);
      spy.mockRestore();
      expect(line).toBe(peftLine(lora, base + lora));
      expect(line).toMatch(/^trainable params: [\d,]+ \|\| all params: \d{1,3}(,\d{3})+ \|\| trainable%: \d+\.\d{4}$/);
      // PEFT's parameter names: the wrapped Linear is base_layer, the factors lora_A.default / lora_B.default
      const after = names(model);
      for (const p of wrapped) {
        expect(before).toContain(`${p}.weight`);
        expect(after).not.toContain(`${p}.weight`);
        expect(after).toContain(`${p}.base_layer.weight`);
        expect(after).toContain(`${p}.lora_A.default.weight`);
        expect(after).toContain(`${p}.lora_B.default.weight`);
      }
      // every parameter but the factors is frozen
      for (const [n, t] of model.namedParameters()) expect(t.requiresGrad, n).toBe(/\.lora_[AB]\.default\.weight$/.test(n));
      expect(peft.trainableParameters().length).toBe(2 * wrapped.length);
    });
  }

  it('the task type and fan_in_fan_out follow the architecture', () => {
    const g = tk.applyLora(build('gpt2'));
    expect(g.peftConfig.default!.taskType).toBe('CAUSAL_LM');
    expect(g.peftConfig.default!.fanInFanOut).toBe(true);  // Conv1D, as PEFT turns it on
    expect(g.peftConfig.default!.r).toBe(8);  // PEFT's defaults: r 8, alpha 8, dropout 0
    expect(g.peftConfig.default!.loraAlpha).toBe(8);
    expect(g.peftConfig.default!.loraDropout).toBe(0);
    const l = tk.applyLora(build('llama'));
    expect(l.peftConfig.default!.fanInFanOut).toBe(false);
    const b = tk.applyLora(build('bert'));
    expect(b.peftConfig.default!.taskType).toBe('FEATURE_EXTRACTION');
    expect(tk.applyLora(build('llama'), { taskType: 'SEQ_CLS' }).peftConfig.default!.taskType).toBe('SEQ_CLS');
  });

  it('list target modules match the full name or a dotted suffix', () => {
    const a = tk.applyLora(build('gpt2'), { targetModules: ['attn.c_proj'] });
    expect(loraLayers(a).map(([p]) => p)).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj']);
    const b = tk.applyLora(build('gpt2'), { targetModules: ['c_proj'] });
    expect(loraLayers(b).map(([p]) => p)).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
    const c = tk.applyLora(build('gpt2'), { targetModules: ['transformer.h.1.mlp.c_fc'] });
    expect(loraLayers(c).map(([p]) => p)).toEqual(['transformer.h.1.mlp.c_fc']);
    // "_attn" is not a dotted suffix of "c_attn"
    expect(() => tk.applyLora(build('gpt2'), { targetModules: ['_attn'] })).toThrow(/option 'targetModules'.*not found in the base model/);
  });

  it('a regex string must match the whole dotted name', () => {
    const a = tk.applyLora(build('gpt2'), { targetModules: 'transformer\\.h\\.1\\.attn\\.c_attn' });
    expect(loraLayers(a).map(([p]) => p)).toEqual(['transformer.h.1.attn.c_attn']);
    const b = tk.applyLora(build('llama'), { targetModules: '.*\\.(q|v)_proj' });
    expect(loraLayers(b).map(([p]) => p)).toEqual([
      'model.layers.0.self_attn.q_proj',
      'model.layers.0.self_attn.v_proj',
      'model.layers.1.self_attn.q_proj',
      'model.layers.1.self_attn.v_proj',
    ]);
    const c = tk.applyLora(build('bert'), { targetModules: '.*layer\\.0\\..*(query|dense)' });
    expect(loraLayers(c).map(([p]) => p)).toEqual([
      'encoder.layer.0.attention.self.query',
      'encoder.layer.0.attention.output.dense',
      'encoder.layer.0.intermediate.dense',
      'encoder.layer.0.output.dense',
    ]);
    // a partial match is no match (re.fullmatch)
    const m = build('gpt2');
    expect(() => tk.applyLora(m, { targetModules: 'c_attn' })).toThrow(/not found in the base model/);
    expect(tk.isPeftModel(m)).toBe(false);
    expect(() => tk.applyLora(build('gpt2'), { targetModules: '(' })).toThrow(/option 'targetModules': invalid regular expression/);
  });

  it("'all-linear', excludeModules, layersToTransform, rankPattern and alphaPattern", () => {
    const a = tk.applyLora(build('llama'), { targetModules: 'all-linear' });
    const paths = loraLayers(a).map(([p]) => p);
    expect(paths.length).toBe(14);
    expect(paths).not.toContain('lm_head');
    // as PEFT: the request becomes the layers' last names
    expect([...(a.peftConfig.default!.targetModules as string[])].sort()).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
    const b = tk.applyLora(build('gpt2'), { targetModules: ['c_proj'], excludeModules: ['mlp.c_proj'] });
    expect(loraLayers(b).map(([p]) => p)).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj']);
    const c = tk.applyLora(build('gpt2'), { targetModules: ['c_attn', 'c_fc'], layersToTransform: [1], layersPattern: 'h' });
    expect(loraLayers(c).map(([p]) => p)).toEqual(['transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc']);
    const d = tk.applyLora(build('llama'), { targetModules: ['q_proj', 'v_proj'], layersToTransform: 0 });
    expect(loraLayers(d).map(([p]) => p)).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj']);
    const e = tk.applyLora(build('gpt2'), { r: 4, alpha: 8, targetModules: ['c_attn', 'c_proj'], rankPattern: { 'h.1.attn.c_attn': 2 }, alphaPattern: { 'mlp.c_proj': 16 } });
    for (const [p, l] of loraLayers(e)) {
      expect(l.r.default, p).toBe(p === 'transformer.h.1.attn.c_attn' ? 2 : 4);
      expect(l.scaling.default, p).toBe(p.endsWith('mlp.c_proj') ? 4 : p === 'transformer.h.1.attn.c_attn' ? 4 : 2);
      expect(l.loraA('default').shape[0]).toBe(l.r.default);
    }
  });

  it("'all-linear' is saved as the layers' last names and loads back", () => {
    const { model, dir: baseDir } = buildSaved('gpt2');
    const a = tk.applyLora(model, { targetModules: 'all-linear', initLoraWeights: false });
    a.eval();
    const dir = fresh('all-linear');
    a.saveAdapter(dir);
    const j = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect([...j.target_modules].sort()).toEqual(['c_attn', 'c_fc', 'c_proj']);
    expect(outputs(tk.loadAdapter(tk.loadModel(baseDir), dir), IDS.gpt2)).toEqual(outputs(model, IDS.gpt2));
  });

  it("any Module: targets by name; trainable% rounds as Python's format (exact ties to even)", () => {
    class Tiny extends tk.Module {
      constructor() {
        super();
        this.registerModule('emb', new tk.Embedding(6396, 1));
        this.registerModule('proj', new tk.Linear(1, 1));
      }
      forward(x: tk.Tensor): tk.Tensor {
        return (this.children.proj as tk.Linear).forward(x);
      }
    }
    const m = tk.applyLora(new Tiny(), { r: 1, targetModules: ['proj'] });
    const spy = vi.spyOn(console, 'log').mockImplementation(() => {});
    // 100 · 2 / 6400 = 0.03125 exactly: Python prints 0.0312 (toFixed(4) would print 0.0313)
    expect(m.printTrainableParameters()).toBe('trainable params: 2 || all params: 6,400 || trainable%: 0.0312');
    spy.mockRestore();
    expect(m.peftConfig.default!.taskType).toBeNull();
    expect(m.forward(tk.ones([2, 1])).shape).toEqual([2, 1]);
    expect(() => tk.applyLora(new Tiny())).toThrow(/option 'targetModules' is required for model type null/);
  });

  it('refuses modules that are not Linear, unknown options, and bad values (naming the option)', () => {
    expect(() => tk.applyLora(build('gpt2'), { targetModules: ['attn'] })).toThrow(/selects module 'transformer\.h\.0\.attn' \(GPT2Attention\), which LoRA cannot wrap/);
    expect(() => tk.applyLora(build('gpt2'), { targetModules: ['ln_1'] })).toThrow(/LoRA cannot wrap/);
    expect(() => tk.applyLora(build('gpt2'), { rank: 4 } as never)).toThrow(/applyLora: unknown option 'rank'/);
    expect(() => tk.applyLora(build('gpt2'), { r: 0 })).toThrow(/applyLora: option 'r' must be a positive integer/);
    expect(() => tk.applyLora(build('gpt2'), { dropout: 1 })).toThrow(/option 'dropout' must be a number in \[0, 1\)/);
    expect(() => tk.applyLora(build('gpt2'), { taskType: 'LM' as never })).toThrow(/option 'taskType'/);
    expect(() => tk.applyLora(build('gpt2'), { initLoraWeights: 'pissa' as never })).toThrow(/option 'initLoraWeights'/);
    const m = build('gpt2');
    tk.applyLora(m);
    expect(() => tk.applyLora(m)).toThrow(/adapter 'default' already exists/);
  });
});

describe('LoRA layer numerics', () => {
  it('A is Kaiming-uniform (bound 1/sqrt(in)), B is zero, and a fresh adapter leaves the outputs as they were', () => {
    for (const kind of ['gpt2', 'llama', 'bert'] as const) {
      const model = build(kind);
      model.eval();
      const y0 = outputs(model, IDS[kind]);
      const peft = tk.applyLora(model, { r: 8 });
      for (const [p, l] of loraLayers(peft)) {
        const a = l.loraA('default').toArray(), b = l.loraB('default').toArray();
        const bound = 1 / Math.sqrt(l.inFeatures);
        expect([...l.loraA('default').shape]).toEqual([8, l.inFeatures]);
        expect([...l.loraB('default').shape]).toEqual([l.outFeatures, 8]);
        let mx = 0, mean = 0;
        for (const v of a) {
          mx = Math.max(mx, Math.abs(v));
          mean += v / a.length;
        }
        expect(mx, p).toBeLessThanOrEqual(bound);
        expect(mx, p).toBeGreaterThan(0.8 * bound);
        expect(Math.abs(mean), p).toBeLessThan(0.3 * bound);
        expect(b.every((v) => v === 0)).toBe(true);
      }
      expectClose(outputs(model, IDS[kind]), y0, 1e-6, `${kind} fresh adapter`);
    }
  });

  it("'gaussian' init draws A ~ N(0, 1/r²); initLoraWeights false gives a non-zero B", () => {
    const g = tk.applyLora(build('llama'), { r: 4, initLoraWeights: 'gaussian', targetModules: 'all-linear' });
    const all = loraLayers(g).flatMap(([, l]) => [...l.loraA('default').toArray()]);
    const sd = Math.sqrt(all.reduce((s, v) => s + v * v, 0) / all.length);
    expect(sd).toBeGreaterThan(0.25 * 0.85);
    expect(sd).toBeLessThan(0.25 * 1.15);
    const f = tk.applyLora(build('llama'), { r: 4, initLoraWeights: false });
    for (const [, l] of loraLayers(f)) {
      const b = l.loraB('default').toArray();
      expect(Math.max(...b.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(4));
      expect(b.some((v) => v !== 0)).toBe(true);
    }
  });

  for (const [useRslora, scale] of [[false, 8 / 4], [true, 8 / 2]] as const) {
    it(`scale = alpha / ${useRslora ? 'sqrt(r) with useRslora' : 'r'}: the layer against a float64 reference`, () => {
      for (const kind of ['gpt2', 'llama'] as const) {
        const peft = tk.applyLora(build(kind), { r: 4, alpha: 8, useRslora, initLoraWeights: false });
        peft.eval();
        const rng = new Rng();
        for (const [p, l] of loraLayers(peft)) {
          expect(l.scaling.default).toBe(scale);
          const x: Arr = rng.arr([2, 3, l.inFeatures]);
          const y = tk.noGrad(() => tk.tidy(() => f64(l.forward(T(x)))));
          const W: Arr = { shape: [...l.weight.shape], data: f64(l.weight) };
          const bias = l.bias ? f64(l.bias) : new Float64Array(l.outFeatures);
          const A: Arr = { shape: [...l.loraA('default').shape], data: f64(l.loraA('default')) };
          const B: Arr = { shape: [...l.loraB('default').shape], data: f64(l.loraB('default')) };
          const x2: Arr = { shape: [6, l.inFeatures], data: x.data };
          const base = refMatmul(x2, W, false, !l.fanInFanOut);
          const low = refMatmul(refMatmul(x2, A, false, true), B, false, true);
          const ref = base.data.map((v, i) => v + bias[i % l.outFeatures]! + scale * low.data[i]!);
          expectClose(y, ref, TOL.matmul, `${kind} ${p} rslora=${useRslora} seed=${rng.seed}`);
        }
      }
    });
  }

  for (const fifo of [false, true]) {
    it(`gradients of the fused layer against an unfused composition and finite differences (fanInFanOut ${fifo})`, () => {
      const rng = new Rng();
      const IN = 13, OUT = 11, R = 3, S = 1.75;
      const inputs: Arr[] = [rng.arr([2, 5, IN]), rng.arr(fifo ? [IN, OUT] : [OUT, IN], 0.3), rng.arr([R, IN], 0.3), rng.arr([OUT, R], 0.3), rng.arr([OUT])];
      const layerOf = (ts: tk.Tensor[]) => {
        const lin = new tk.Linear(IN, OUT, { fanInFanOut: fifo });
        lin.setParam('weight', ts[1]!);
        lin.setParam('bias', ts[4]!);
        const l = new tk.LoraLinear(lin);
        // scale 1.75 = alpha / r with alpha = 5.25
        l.updateLayer('default', { r: R, alpha: S * R, dropout: 0, useRslora: false, init: true, weights: { a: ts[2]!, b: ts[3]! } });
        l.activeAdapters = ['default'];
        return l;
      };
      const ref = (xs: Arr[]): Arr => {
        const [x, w, a, b, bias] = xs as [Arr, Arr, Arr, Arr, Arr];
        const x2 = { shape: [10, IN], data: x.data };
        const base = refMatmul(x2, w, false, !fifo);
        const low = refMatmul(refMatmul(x2, a, false, true), b, false, true);
        return { shape: [2, 5, OUT], data: base.data.map((v, i) => v + bias.data[i % OUT]! + S * low.data[i]!) };
      };
      // float64 finite differences, every input (the base weight and bias too: the fused op supports them)
      checkGrad({ ctx: `loraLinear layer fifo=${fifo} seed=${rng.seed}`, rng, inputs, ours: (ts) => layerOf(ts).forward(ts[0]!), ref, fwdTol: TOL.matmul, tol: 1e-4 });
      // the same gradients from the unfused composition of core ops
      const R_ = rng.randn(2 * 5 * OUT);
      const grads = (fused: boolean) =>
        tk.tidy(() => {
          const ts = inputs.map((a, i) => T(a, i !== 1 && i !== 4));  // base weight and bias frozen, as in a model
          const y = fused
            ? layerOf(ts).forward(ts[0]!)
            : tk.ops.add(
                tk.ops.add(tk.ops.matmul(ts[0]!, ts[1]!, { transB: !fifo }), ts[4]!),
                tk.ops.scale(tk.ops.matmul(tk.ops.matmul(ts[0]!, ts[2]!, { transB: true }), ts[3]!, { transB: true }), S),
              );
          y.backward(T({ shape: [2, 5, OUT], data: R_ }));
          expect(ts[1]!.grad).toBeNull();
          expect(ts[4]!.grad).toBeNull();
          return [0, 2, 3].map((i) => f64(ts[i]!.grad!));
        });
      const gf = grads(true), gu = grads(false);
      ['x', 'A', 'B'].forEach((n, k) => expectClose(gf[k]!, gu[k]!, TOL.matmul, `grad of ${n}: fused vs unfused fifo=${fifo} seed=${rng.seed}`));
    });
  }

  it('dropout: while training only the LoRA input is dropped (unfused path); eval uses the fused op without dropout', () => {
    const rng = new Rng();
    const IN = 10, OUT = 7, R = 2, p = 0.4;
    const lin = new tk.Linear(IN, OUT);
    lin.weight.requiresGrad = false;  // frozen, as applyLora leaves it
    lin.bias!.requiresGrad = false;
    const l = new tk.LoraLinear(lin);
    l.updateLayer('default', { r: R, alpha: 3, dropout: p, useRslora: false, init: false });
    l.activeAdapters = ['default'];
    const s = 3 / R;
    const x = T(rng.arr([3, 4, IN]), true);
    const seed = 1000 + rng.int(0, 1000);
    const gout = T(rng.arr([3, 4, OUT]));
    // ours, training
    l.train();
    tk.manualSeed(seed);
    const y = l.forward(x);
    y.backward(gout);
    const yOurs = f64(y);
    const gA = f64(l.loraA('default').grad!), gB = f64(l.loraB('default').grad!), gX = f64(x.grad!);
    expect(lin.weight.grad).toBeNull();
    // the composition with the same dropout mask (same seed, same draw order)
    const x2 = T({ shape: [3, 4, IN], data: f64(x) }, true);
    const a2 = T({ shape: [R, IN], data: f64(l.loraA('default')) }, true);
    const b2 = T({ shape: [OUT, R], data: f64(l.loraB('default')) }, true);
    tk.manualSeed(seed);
    const xd = tk.ops.dropout(x2, p);
    const ref = tk.ops.add(lin.forward(x2), tk.ops.scale(tk.ops.matmul(tk.ops.matmul(xd, a2, { transB: true }), b2, { transB: true }), s));
    ref.backward(gout);
    expectClose(yOurs, f64(ref), TOL.exact, `dropout forward seed=${seed}`);
    expectClose(gA, f64(a2.grad!), TOL.exact, 'dropout grad A');
    expectClose(gB, f64(b2.grad!), TOL.exact, 'dropout grad B');
    expectClose(gX, f64(x2.grad!), TOL.exact, 'dropout grad x');
    // the dropout really dropped something (the output differs from the no-dropout one)
    const plain = tk.noGrad(() => f64(tk.ops.add(lin.forward(x2), tk.ops.scale(tk.ops.matmul(tk.ops.matmul(x2, a2, { transB: true }), b2, { transB: true }), s))));
    expect(relErr(yOurs, plain)).toBeGreaterThan(1e-3);
    // eval: no dropout
    l.eval();
    expectClose(tk.noGrad(() => f64(l.forward(x))), plain, TOL.matmul, 'eval ignores dropout');
    // a model: train mode with dropout varies call to call, eval does not
    const peft = tk.applyLora(build('llama'), { dropout: 0.5, initLoraWeights: false });
    peft.train();
    const a = outputs(peft, IDS.llama), b = outputs(peft, IDS.llama);
    expect(relErr(a, b)).toBeGreaterThan(1e-4);
    peft.eval();
    expect(outputs(peft, IDS.llama)).toEqual(outputs(peft, IDS.llama));
  });
});

describe('merge, unmerge, gradients', () => {
  for (const kind of ['gpt2', 'llama', 'bert'] as const) {
    it(`${kind}: merged and unmerged outputs agree; unmerge restores the weights; merge is in the base weight`, () => {
      const model = build(kind);
      model.eval();
      const y0 = outputs(model, IDS[kind]);
      const peft = tk.applyLora(model, { r: 4, alpha: 16, initLoraWeights: false, targetModules: kind === 'gpt2' ? ['c_attn', 'c_fc', 'c_proj'] : 'all-linear' });
      const weights = new Map(loraLayers(peft).map(([p, l]) => [p, f64(l.weight)]));
      const y1 = outputs(model, IDS[kind]);
      expect(relErr(y1, y0)).toBeGreaterThan(1e-3);  // the adapter does something
      peft.merge();
      expect(peft.merged).toBe(true);
      for (const [p, l] of loraLayers(peft)) {
        // W + scale · B·A (transposed for Conv1D)
        const d = tk.noGrad(() => tk.tidy(() => f64(l.getDeltaWeight('default'))));
        const w0 = weights.get(p)!;
        const A = { shape: [...l.loraA('default').shape], data: f64(l.loraA('default')) };
        const B = { shape: [...l.loraB('default').shape], data: f64(l.loraB('default')) };
        const ba = l.fanInFanOut ? refMatmul(A, B, true, true) : refMatmul(B, A);
        expectClose(d, ba.data.map((v) => v * l.scaling.default!), TOL.matmul, `${p} delta`);
        expectClose(f64(l.weight), w0.map((v, i) => v + d[i]!), TOL.exact, `${p} merged weight`);
      }
      const y2 = outputs(model, IDS[kind]);
      expectClose(y2, y1, 1e-5, `${kind} merged vs unmerged`);
      peft.unmerge();
      expect(peft.merged).toBe(false);
      for (const [p, l] of loraLayers(peft)) {
        // W + d - d in f32 rounds at the scale of |d|, which here (random B, alpha/r = 4) is far above |W|
        const w0 = weights.get(p)!;
        const dn = tk.noGrad(() => tk.tidy(() => norm(f64(l.getDeltaWeight('default')))));
        expectClose(f64(l.weight), w0, 1e-6 * Math.max(1, dn / norm(w0)), `${p} unmerged weight`);
      }
      expectClose(outputs(model, IDS[kind]), y1, 1e-5, `${kind} after unmerge`);
      // disabled adapters give the base outputs
      expectClose(peft.withAdaptersDisabled(() => outputs(model, IDS[kind])), y0, 1e-6, `${kind} adapters disabled`);
      // merge and unload: the plain model, its parameter names, the merged outputs
      const before = names(build(kind));
      const plain = peft.mergeAndUnload();
      expect(plain).toBe(model);
      expect(tk.isPeftModel(plain)).toBe(false);
      expect('saveAdapter' in plain).toBe(false);
      expect(names(plain)).toEqual(before);
      expect(plain.parameters().every((t) => t.requiresGrad)).toBe(true);  // restored
      expectClose(outputs(plain, IDS[kind]), y1, 1e-5, `${kind} merged and unloaded`);
    });

    it(`${kind}: gradients reach lora_A and lora_B only`, () => {
      const model = build(kind);
      const peft = tk.applyLora(model, { r: 3, initLoraWeights: false });
      peft.train();
      const rng = new Rng();
      const n = outputs(model, IDS[kind]).length;
      tk.tidy(() => loss(model, IDS[kind], rng.randn(n)).backward());
      for (const [name, t] of model.namedParameters()) {
        if (/\.lora_[AB]\.default\.weight$/.test(name)) {
          expect(t.grad, name).not.toBeNull();
          expect(f64(t.grad!).some((v) => v !== 0), name).toBe(true);
        } else expect(t.grad, name).toBeNull();
      }
    });
  }

  it('unload without merging gives the base model back', () => {
    const model = build('gpt2');
    model.eval();
    const y0 = outputs(model, IDS.gpt2);
    const peft = tk.applyLora(model, { initLoraWeights: false, targetModules: ['c_attn', 'c_proj'] });
    peft.merge();
    const plain = peft.unload();
    expectClose(outputs(plain, IDS.gpt2), y0, 1e-6, 'unloaded');
    expect(names(plain)).toEqual(names(build('gpt2')));
  });
});

describe('several adapters', () => {
  it('addAdapter, setAdapter, deleteAdapter, and what trains', () => {
    const model = build('llama');
    model.eval();
    const y0 = outputs(model, IDS.llama);
    const peft = tk.applyLora(model, { r: 4, initLoraWeights: false });
    const yA = outputs(model, IDS.llama);
    peft.addAdapter('second', { r: 2, alpha: 4, targetModules: ['o_proj', 'q_proj'], initLoraWeights: false });
    expect(peft.adapterNames).toEqual(['default', 'second']);
    expect(peft.activeAdapter).toBe('default');
    expectClose(outputs(model, IDS.llama), yA, 0, 'adding an adapter does not activate it');
    const { base, lora } = handCounts('llama', 4);
    const C = 16, L = 2;
    const second = L * 2 * (2 * C + C * 2);  // o_proj and q_proj: A [2, 16], B [16, 2]
    expect(peft.getNbTrainableParameters()).toEqual([lora, base + lora + second]);
    for (const [n, t] of model.namedParameters()) expect(t.requiresGrad, n).toBe(n.includes('.default.'));

    peft.setAdapter('second');
    expect(peft.activeAdapter).toBe('second');
    const yB = outputs(model, IDS.llama);
    expect(relErr(yB, yA)).toBeGreaterThan(1e-3);
    expect(relErr(yB, y0)).toBeGreaterThan(1e-3);
    expect(peft.getNbTrainableParameters()).toEqual([second, base + lora + second]);
    for (const [n, t] of model.namedParameters()) expect(t.requiresGrad, n).toBe(n.includes('.second.'));
    expect(peft.printTrainableParameters()).toBe(peftLine(second, base + lora + second));

    // merging the active adapter, then switching unmerges
    peft.merge();
    expectClose(outputs(model, IDS.llama), yB, 1e-5, 'second merged');
    peft.setAdapter('default');
    expect(peft.merged).toBe(false);
    expectClose(outputs(model, IDS.llama), yA, 1e-5, 'back to default');

    // both saved: default in dir, second in dir/second
    const dir = fresh('two');
    peft.saveAdapter(dir);
    expect(existsSync(join(dir, 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(dir, 'second', 'adapter_model.safetensors'))).toBe(true);
    expect(JSON.parse(readFileSync(join(dir, 'second', 'adapter_config.json'), 'utf8')).r).toBe(2);

    peft.deleteAdapter('second');
    expect(peft.adapterNames).toEqual(['default']);
    // o_proj had only the second adapter: a plain Linear again
    expect(names(model)).toContain('model.layers.0.self_attn.o_proj.weight');
    expectClose(outputs(model, IDS.llama), yA, 1e-6, 'after delete');
    expect(() => peft.setAdapter('second')).toThrow(/no adapter 'second'/);
  });
});

// ---------------------------------------------------------------- adapter files
const CONFIG_FIELDS = [
  'alpha_pattern', 'auto_mapping', 'base_model_name_or_path', 'bias', 'corda_config', 'eva_config', 'exclude_modules', 'fan_in_fan_out',
  'inference_mode', 'init_lora_weights', 'layer_replication', 'layers_pattern', 'layers_to_transform', 'loftq_config', 'lora_alpha',
  'lora_bias', 'lora_dropout', 'megatron_config', 'megatron_core', 'modules_to_save', 'peft_type', 'qalora_group_size', 'r',
  'rank_pattern', 'revision', 'target_modules', 'target_parameters', 'task_type', 'trainable_token_indices', 'use_dora', 'use_qalora',
  'use_rslora',
];

describe('adapter directories in PEFT format', () => {
  for (const kind of ['gpt2', 'llama', 'bert'] as const) {
    it(`${kind}: exactly PEFT's keys, shapes and config fields; save -> load gives identical outputs`, () => {
      const { model, dir: baseDir } = buildSaved(kind);
      const opts = { r: 4, alpha: 16, dropout: 0.05, useRslora: kind === 'llama', initLoraWeights: false } as const;
      const peft = tk.applyLora(model, opts);
      peft.eval();
      const y = outputs(model, IDS[kind]);
      const dir = fresh(`${kind}-adapter`);
      peft.saveAdapter(dir);
      const text = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
      const j = JSON.parse(text);
      expect(Object.keys(j)).toEqual(CONFIG_FIELDS);  // every field, sorted as json.dumps(sort_keys=True)
      expect(text).toBe(JSON.stringify(j, null, 2));
      expect(j).toMatchObject({
        peft_type: 'LORA',
        task_type: kind === 'bert' ? 'FEATURE_EXTRACTION' : 'CAUSAL_LM',
        r: 4,
        lora_alpha: 16,
        lora_dropout: 0.05,
        use_rslora: kind === 'llama',
        fan_in_fan_out: kind === 'gpt2',
        bias: 'none',
        inference_mode: true,
        base_model_name_or_path: null,
        init_lora_weights: false,
        modules_to_save: null,
        use_dora: false,
        lora_bias: false,
        rank_pattern: {},
        alpha_pattern: {},
        megatron_core: 'megatron.core',
      });
      expect(j.target_modules).toEqual({ gpt2: ['c_attn'], llama: ['q_proj', 'v_proj'], bert: ['query', 'value'] }[kind]);
      const header = tk.readSafetensorsHeader(join(dir, 'adapter_model.safetensors'));
      expect(header.metadata).toEqual({ format: 'pt' });
      const expected = new Map<string, number[]>();
      for (const [p, l] of loraLayers(peft)) {
        expected.set(`base_model.model.${p}.lora_A.weight`, [4, l.inFeatures]);
        expected.set(`base_model.model.${p}.lora_B.weight`, [l.outFeatures, 4]);
      }
      expect([...header.tensors.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [k, info] of header.tensors) {
        expect(info.dtype).toBe('F32');
        expect([...info.shape], k).toEqual(expected.get(k));
      }
      if (kind === 'gpt2') expect(expected.has('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')).toBe(true);
      if (kind === 'bert') expect(expected.has('base_model.model.encoder.layer.1.attention.self.value.lora_A.weight')).toBe(true);

      // load onto a fresh copy of the base
      const base2 = tk.loadModel(baseDir);
      const loaded = tk.loadAdapter(base2, dir);
      expect(loaded).toBe(base2);
      expect(loaded.training).toBe(false);
      expect(outputs(loaded, IDS[kind])).toEqual(y);
      // not trainable by default (PEFT's from_pretrained); isTrainable: true trains the factors
      expect(loaded.getNbTrainableParameters()[0]).toBe(0);
      const cfg = loaded.peftConfig.default!;
      expect(cfg).toMatchObject({ r: 4, loraAlpha: 16, loraDropout: 0.05, useRslora: kind === 'llama', inferenceMode: true });
      const trainable = tk.loadAdapter(tk.loadModel(baseDir), dir, { isTrainable: true });
      expect(trainable.getNbTrainableParameters()[0]).toBe(peft.getNbTrainableParameters()[0]);
      // and the reloaded adapter saves the same files
      const dir2 = fresh(`${kind}-resaved`);
      loaded.saveAdapter(dir2);
      expect(readFileSync(join(dir2, 'adapter_model.safetensors'))).toEqual(readFileSync(join(dir, 'adapter_model.safetensors')));
      expect(JSON.parse(readFileSync(join(dir2, 'adapter_config.json'), 'utf8'))).toEqual(j);
    });
  }

  it('regex target modules, rsLoRA and rank patterns survive the round trip', () => {
    const { model, dir: baseDir } = buildSaved('llama');
    const peft = tk.applyLora(model, { r: 4, alpha: 8, useRslora: true, targetModules: '.*\\.(q_proj|down_proj)', rankPattern: { 'layers.1.mlp.down_proj': 2 }, initLoraWeights: false });
    peft.eval();
    const dir = fresh('regex');
    peft.saveAdapter(dir);
    const j = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    expect(j.target_modules).toBe('.*\\.(q_proj|down_proj)');
    expect(j.rank_pattern).toEqual({ 'layers.1.mlp.down_proj': 2 });
    const loaded = tk.loadAdapter(tk.loadModel(baseDir), dir);
    expect(outputs(loaded, IDS.llama)).toEqual(outputs(model, IDS.llama));
    expect(loaded.peftTuner.loraLayers().find(([p]) => p === 'model.layers.1.mlp.down_proj')![1].r.default).toBe(2);
  });

  it("accepts keys with the adapter name ('.default.') and a task head's extra prefix", () => {
    const { model, dir: baseDir } = buildSaved('bert');
    const peft = tk.applyLora(model, { initLoraWeights: false });
    peft.eval();
    const y = outputs(model, IDS.bert);
    const dir = fresh('bert-names');
    peft.saveAdapter(dir);
    const st = tk.loadSafetensors(join(dir, 'adapter_model.safetensors'));
    const rename = (f: (k: string) => string) => {
      const d = fresh('renamed');
      mkdirSync(d);
      copyFileSync(join(dir, 'adapter_config.json'), join(d, 'adapter_config.json'));
      tk.saveSafetensors(join(d, 'adapter_model.safetensors'), Object.fromEntries(Object.entries(st).map(([k, t]) => [f(k), t])), { format: 'pt' });
      return d;
    };
    const older = rename((k) => k.replace(/\.lora_([AB])\.weight$/, '.lora_$1.default.weight'));
    expect(outputs(tk.loadAdapter(tk.loadModel(baseDir), older), IDS.bert)).toEqual(y);
    const head = rename((k) => k.replace('base_model.model.', 'base_model.model.bert.'));
    expect(outputs(tk.loadAdapter(tk.loadModel(baseDir), head), IDS.bert)).toEqual(y);
  });

  it('loading into an existing adapter name replaces its weights (training resumes)', () => {
    const { model, dir: baseDir } = buildSaved('gpt2');
    const peft = tk.applyLora(model, { initLoraWeights: false });
    peft.eval();
    const y = outputs(model, IDS.gpt2);
    const dir = fresh('resume');
    peft.saveAdapter(dir);
    const other = tk.loadModel(baseDir);
    tk.manualSeed(77);
    tk.applyLora(other, { initLoraWeights: false });
    other.eval();
    expect(relErr(outputs(other, IDS.gpt2), y)).toBeGreaterThan(1e-4);
    tk.loadAdapter(other, dir);
    expect(outputs(other, IDS.gpt2)).toEqual(y);
    // still trainable: the existing adapter keeps its settings
    expect((other as tk.PeftModel).getNbTrainableParameters()[0]).toBe(peft.getNbTrainableParameters()[0]);
    // as another name, on a PeftModel
    (other as tk.PeftModel).loadAdapter(dir, 'copy');
    expect((other as tk.PeftModel).adapterNames).toEqual(['default', 'copy']);
  });

  describe('errors name the file and the field or tensor; the model is left as it was', () => {
    const { model, dir: baseDir } = buildSaved('gpt2');
    const peft = tk.applyLora(model, { r: 4 });
    const good = fresh('good');
    peft.saveAdapter(good);
    const goodCfg = JSON.parse(readFileSync(join(good, 'adapter_config.json'), 'utf8'));
    const goodSt = tk.loadSafetensors(join(good, 'adapter_model.safetensors'));

    function variant(cfg: Record<string, unknown> | null, tensors: Record<string, tk.Tensor> | null = goodSt): string {
      const d = fresh('bad');
      mkdirSync(d);
      if (cfg) writeFileSync(join(d, 'adapter_config.json'), JSON.stringify(cfg));
      if (tensors) tk.saveSafetensors(join(d, 'adapter_model.safetensors'), tensors, { format: 'pt' });
      return d;
    }
    function expectFails(dir: string, re: RegExp) {
      const m = tk.loadModel(baseDir);
      const before = names(m);
      expect(() => tk.loadAdapter(m, dir)).toThrow(re);
      expect(tk.isPeftModel(m)).toBe(false);
      expect(names(m)).toEqual(before);
      expect('saveAdapter' in m).toBe(false);
    }
    const K = 'base_model.model.transformer.h.0.attn.c_attn';

    it('config file problems', () => {
      expectFails(variant(null), /adapter_config\.json: not found/);
      const d = variant(null);
      writeFileSync(join(d, 'adapter_config.json'), '{"r": ');
      expectFails(d, /adapter_config\.json: invalid JSON/);
      expectFails(variant({ ...goodCfg, peft_type: 'IA3' }), /adapter_config\.json: field 'peft_type' is "IA3"; supported PEFT methods: LORA/);
      expectFails(variant({ ...goodCfg, r: 'four' }), /adapter_config\.json: field 'r' must be a positive integer, got "four"/);
      expectFails(variant({ ...goodCfg, lora_alpha: null }), /adapter_config\.json: field 'lora_alpha' must be a finite number/);
      expectFails(variant({ ...goodCfg, use_rslora: 'yes' }), /adapter_config\.json: field 'use_rslora' must be true or false/);
      expectFails(variant({ ...goodCfg, target_modules: null }), /adapter_config\.json: field 'target_modules' is missing or null/);
      expectFails(variant({ ...goodCfg, target_modules: ['q_proj'] }), /adapter_config\.json: field 'target_modules': target modules \["q_proj"\] not found in the base model/);
      expectFails(variant({ ...goodCfg, use_dora: true }), /adapter_config\.json: field 'use_dora' is true: this LoRA variant is not supported/);
      expectFails(variant({ ...goodCfg, bias: 'all' }), /adapter_config\.json: field 'bias' is "all"/);
      expectFails(variant({ ...goodCfg, modules_to_save: ['lm_head'] }), /field 'modules_to_save'/);
      expectFails(variant({ ...goodCfg, some_new_feature: { on: true } }), /unknown field 'some_new_feature'/);
      expectFails(variant({ ...goodCfg, target_modules: ['attn'] }), /adapter_config\.json: field 'target_modules' selects module 'transformer\.h\.0\.attn'/);
      // newer PEFT fields at their defaults are fine
      const m = tk.loadModel(baseDir);
      tk.loadAdapter(m, variant({ ...goodCfg, peft_version: '0.19.1', alora_invocation_tokens: null, arrow_config: null, ensure_weight_tying: false, use_bdlora: null }));
      expect(tk.isPeftModel(m)).toBe(true);
    });

    it('weight file problems', () => {
      expectFails(variant(goodCfg, null), /adapter_model\.safetensors: not found/);
      const bin = variant(goodCfg, null);
      writeFileSync(join(bin, 'adapter_model.bin'), 'x');
      expectFails(bin, /only safetensors adapters are supported/);
      const { [`${K}.lora_B.weight`]: _dropped, ...missing } = goodSt;
      void _dropped;
      expectFails(variant(goodCfg, missing), new RegExp(`adapter_model\\.safetensors: missing 1 tensor\\(s\\).*${K.replace(/\./g, '\\.')}\\.lora_B\\.weight`));
      expectFails(variant({ ...goodCfg, r: 3 }), /adapter_model\.safetensors: tensor 'base_model\.model\.transformer\.h\.\d\.attn\.c_attn\.lora_A\.weight' has shape \[4, 12\], expected \[r, in_features\] = \[3, 12\] \(r = 3 from .*adapter_config\.json/);
      const wrongB = { ...goodSt, [`${K}.lora_B.weight`]: tk.zeros([35, 4]) };
      expectFails(variant(goodCfg, wrongB), /tensor 'base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_B\.weight' has shape \[35, 4\], expected \[out_features, r\] = \[36, 4\]/);
      const extra = { ...goodSt, 'base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight': tk.zeros([4, 12]) };
      expectFails(variant(goodCfg, extra), /tensor 'base_model\.model\.transformer\.h\.0\.mlp\.c_fc\.lora_A\.weight' is for module 'transformer\.h\.0\.mlp\.c_fc', but .*field 'target_modules' \(\["c_attn"\]\) does not select it/);
      const notLora = { ...goodSt, 'base_model.model.transformer.h.0.attn.c_attn.base_layer.bias': tk.zeros([36]) };
      expectFails(variant(goodCfg, notLora), /tensor 'base_model\.model\.transformer\.h\.0\.attn\.c_attn\.base_layer\.bias' is not a LoRA factor/);
      const ints = { ...goodSt, [`${K}.lora_A.weight`]: tk.zeros([4, 12], { dtype: 'i32' }) };
      expectFails(variant(goodCfg, ints), /has dtype I32, expected a float dtype/);
      // the error object carries the file and the tensor
      try {
        tk.loadAdapter(tk.loadModel(baseDir), variant(goodCfg, wrongB));
        expect.fail('no error');
      } catch (e) {
        expect(e).toBeInstanceOf(tk.PeftError);
        expect((e as tk.PeftError).where).toMatch(/adapter_model\.safetensors$/);
        expect((e as tk.PeftError).field).toBe(`${K}.lora_B.weight`);
      }
    });

    it('bf16 adapter files load (converted to f32)', () => {
      const bf = Object.fromEntries(Object.entries(goodSt).map(([k, t]) => [k, t.to('bf16')]));
      const m = tk.loadAdapter(tk.loadModel(baseDir), variant(goodCfg, bf));
      expect(m.peftTuner.loraLayers()[0]![1].loraA('default').dtype).toBe('f32');
    });

    it('a config field the file got wrong is reported even when the tensors are fine', () => {
      const d = variant({ ...goodCfg, lora_dropout: 1.5 });
      expectFails(d, /adapter_config\.json: field 'lora_dropout' must be a number in \[0, 1\), got 1\.5/);
      unlinkSync(join(d, 'adapter_config.json'));
    });
  });
});

describe('bench/peft-compare.mjs (the node half of the PEFT comparison)', () => {
  it('runs end to end on bases made here (selftest: its own adapter stands in for the PEFT one)', () => {
    const work = fresh('peft-compare');
    const r = spawnSync(process.execPath, ['bench/peft-compare.mjs', 'selftest', work], { encoding: 'utf8', timeout: 110_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/gpt2: tunekit-check max relative error \S+ .*ok/);
    expect(r.stdout).toMatch(/llama: tunekit-check max relative error \S+ .*ok/);
    for (const m of ['gpt2', 'llama']) {
      expect(existsSync(join(work, m, 'tk_adapter', 'adapter_model.safetensors'))).toBe(true);
      const j = JSON.parse(readFileSync(join(work, m, 'tk_logits.json'), 'utf8'));
      expect(j.shape.length).toBe(3);
    }
  });
});
