#!/usr/bin/env node
// The tunekit half of bench/peft-compare.py (which runs it): LoRA adapters
// saved by tunekit must load into Hugging Face PEFT, and PEFT's into tunekit,
// with the same logits. See the top of peft-compare.py for the whole procedure.
//
//   node bench/peft-compare.mjs tunekit-save  WORK   for each WORK/<model>/base (a transformers
//        checkpoint): load it, apply LoRA with a random non-zero B, save the adapter to
//        WORK/<model>/tk_adapter and the logits of IDS (with and without the adapter) to
//        WORK/<model>/tk_logits.json
//   node bench/peft-compare.mjs tunekit-check WORK   load WORK/<model>/base with the PEFT-saved
//        adapter WORK/<model>/peft_adapter, compare the logits with WORK/<model>/peft_logits.json
//        (written by PEFT); exit status 1 when one is off by more than --tol (default 1e-4)
//   node bench/peft-compare.mjs make-base WORK       tiny bases written by tunekit itself (the
//        configs peft-compare.py gives transformers), for running this half without Python
//   node bench/peft-compare.mjs selftest  WORK       make-base, tunekit-save, then tunekit-check
//        with tunekit's own adapter standing in for PEFT's (checks that this half runs)
//
// Run from the repository root after building (npx tsc -p tsconfig.json and the native addon).
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tk from 'tunekit';

/** The input ids both sides score (vocab_size 97). */
export const IDS = [
  [3, 17, 42, 5, 88, 1, 64, 23, 96, 0],
  [9, 9, 31, 77, 2, 50, 12, 45, 8, 70],
];

/** The base configs, the same as peft-compare.py gives transformers (from_config). */
const CONFIGS = {
  gpt2: { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'], vocab_size: 97, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 4 },
  llama: {
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: 97,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-6,
    tie_word_embeddings: false,
  },
};

/** What tunekit applies before saving: list and regex targets, rsLoRA, a rank pattern; B random (init false). */
const TK_LORA = {
  gpt2: { r: 4, alpha: 8, targetModules: ['c_attn', 'mlp.c_fc'], initLoraWeights: false },
  llama: { r: 4, alpha: 16, useRslora: true, targetModules: '.*\\.(q_proj|v_proj|down_proj)', rankPattern: { 'layers.1.mlp.down_proj': 2 }, initLoraWeights: false },
};

function logits(model) {
  return tk.noGrad(() =>
    tk.tidy(() => {
      const y = model.forward(IDS);
      return { shape: [...y.shape], data: Array.from(y.toArray()) };
    }),
  );
}

/** max |a - b| / max |b| */
function maxRelErr(a, b) {
  if (a.length !== b.length) throw new Error(`logits have ${a.length} values, the reference ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

function models(work) {
  const names = Object.keys(CONFIGS).filter((m) => existsSync(join(work, m, 'base', 'config.json')));
  if (!names.length) throw new Error(`${work}: no <model>/base/config.json (expected ${Object.keys(CONFIGS).join(', ')})`);
  return names;
}

function makeBase(work) {
  tk.manualSeed(1234);
  for (const [m, cfg] of Object.entries(CONFIGS)) {
    const model = tk.createModel(cfg);
    tk.saveModel(model, join(work, m, 'base'));
    console.log(`${m}: base written to ${join(work, m, 'base')}`);
  }
}

function tunekitSave(work) {
  for (const m of models(work)) {
    const model = tk.loadModel(join(work, m, 'base'));
    const base = logits(model);
    tk.manualSeed(4321);
    const peft = tk.applyLora(model, TK_LORA[m]);
    peft.eval();
    const out = join(work, m, 'tk_adapter');
    peft.saveAdapter(out);
    const y = logits(model);
    const effect = maxRelErr(y.data, base.data);
    writeFileSync(join(work, m, 'tk_logits.json'), JSON.stringify({ ids: IDS, shape: y.shape, data: y.data, base: base.data }));
    process.stdout.write(`${m}: `);
    peft.printTrainableParameters();
    console.log(`${m}: tunekit-save adapter ${out}; the adapter moves the logits by ${effect.toExponential(2)}`);
    if (!(effect > 1e-3)) throw new Error(`${m}: the adapter barely changes the logits (${effect}); B should be random`);
  }
}

function tunekitCheck(work, tol) {
  let ok = true;
  for (const m of models(work)) {
    const dir = join(work, m, 'peft_adapter');
    const ref = JSON.parse(readFileSync(join(work, m, 'peft_logits.json'), 'utf8'));
    const model = tk.loadModel(join(work, m, 'base'));
    const base = logits(model);
    const peft = tk.loadAdapter(model, dir);
    const y = logits(peft);
    const err = maxRelErr(y.data, ref.data);
    const baseErr = ref.base ? maxRelErr(base.data, ref.base) : NaN;
    peft.merge();
    const merged = maxRelErr(logits(peft).data, ref.data);
    const good = err <= tol && merged <= tol && !(baseErr > tol);
    ok &&= good;
    console.log(
      `${m}: tunekit-check max relative error ${err.toExponential(2)} (merged ${merged.toExponential(2)}, base model ${Number.isNaN(baseErr) ? 'n/a' : baseErr.toExponential(2)}; tol ${tol}) ${good ? 'ok' : 'FAIL'}`,
    );
  }
  return ok;
}

function main() {
  const args = process.argv.slice(2);
  const tolAt = args.indexOf('--tol');
  const tol = tolAt >= 0 ? Number(args.splice(tolAt, 2)[1]) : 1e-4;
  const [cmd, work] = args;
  if (!cmd || !work) {
    console.error('usage: node bench/peft-compare.mjs (tunekit-save | tunekit-check | make-base | selftest) WORK [--tol 1e-4]');
    process.exit(2);
  }
  mkdirSync(work, { recursive: true });
  if (cmd === 'make-base') makeBase(work);
  else if (cmd === 'tunekit-save') tunekitSave(work);
  else if (cmd === 'tunekit-check') process.exit(tunekitCheck(work, tol) ? 0 : 1);
  else if (cmd === 'selftest') {
    makeBase(work);
    tunekitSave(work);
    for (const m of models(work)) {
      cpSync(join(work, m, 'tk_adapter'), join(work, m, 'peft_adapter'), { recursive: true });
      writeFileSync(join(work, m, 'peft_logits.json'), readFileSync(join(work, m, 'tk_logits.json')));
    }
    process.exit(tunekitCheck(work, tol) ? 0 : 1);
  } else {
    console.error(`unknown command '${cmd}'`);
    process.exit(2);
  }
}

main();
