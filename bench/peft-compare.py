#!/usr/bin/env python3
"""Cross-check tunekit's LoRA against Hugging Face PEFT, in both directions.

How to run (on a machine with torch, transformers and peft, e.g. the GPU hosts;
CPU is enough), from the repository root, after building tunekit there
(`npx tsc -p tsconfig.json`, and the native addon: `npx node-gyp rebuild` or a
carried build/):

    python3 bench/peft-compare.py                 # work dir in /tmp, tolerance 1e-4
    python3 bench/peft-compare.py --work DIR --tol 1e-4 --node node

What it does, for a tiny GPT-2 (Conv1D layers, fan_in_fan_out) and a tiny
Llama (grouped-query attention, untied head), both built with transformers'
from_config under a fixed seed and saved as safetensors checkpoints:

  1. tunekit -> PEFT: `node bench/peft-compare.mjs tunekit-save WORK` loads each
     base with tk.loadModel, applies LoRA with a random non-zero B (list and
     regex target modules, rsLoRA, a rank pattern), saves the adapter
     (WORK/<model>/tk_adapter) and the logits of fixed input ids
     (WORK/<model>/tk_logits.json). Here PEFT loads that adapter onto the base
     (PeftModel.from_pretrained) and its logits are compared with tunekit's,
     unmerged and after merge_and_unload.
  2. PEFT -> tunekit: PEFT applies its own LoRA (init_lora_weights=False, so B
     is random too; suffix targets that match attention and MLP layers, rsLoRA,
     rank and alpha patterns), saves it (WORK/<model>/peft_adapter) and its
     logits (WORK/<model>/peft_logits.json, with the base model's logits);
     `node bench/peft-compare.mjs tunekit-check WORK` loads it with
     tk.loadAdapter and compares (also merged, and the base model alone).

Every comparison prints the max relative error max|a - b| / max|b|; the exit
status is 0 when all are within --tol. The node half alone (no Python):
`node bench/peft-compare.mjs selftest DIR`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# the same ids as IDS in peft-compare.mjs (vocab_size 97)
IDS = [
    [3, 17, 42, 5, 88, 1, 64, 23, 96, 0],
    [9, 9, 31, 77, 2, 50, 12, 45, 8, 70],
]

# the same configs as CONFIGS in peft-compare.mjs
MODELS = {
    "gpt2": (
        lambda: GPT2LMHeadModel(GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4)),
        GPT2LMHeadModel,
        # "c_proj" matches attn.c_proj and mlp.c_proj (dotted-suffix matching)
        dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True, task_type="CAUSAL_LM"),
    ),
    "llama": (
        lambda: LlamaForCausalLM(
            LlamaConfig(
                vocab_size=97,
                hidden_size=32,
                intermediate_size=48,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=64,
                rms_norm_eps=1e-6,
                tie_word_embeddings=False,
            )
        ),
        LlamaForCausalLM,
        dict(
            r=4,
            lora_alpha=16,
            use_rslora=True,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            rank_pattern={"o_proj": 2},
            alpha_pattern={"gate_proj": 4},
            task_type="CAUSAL_LM",
        ),
    ),
}


def logits(model):
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS)).logits.float()


def max_rel(a, b):
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.numel() != b.numel():
        raise ValueError(f"logits have {a.numel()} values, the reference {b.numel()}")
    return ((a - b).abs().max() / b.abs().max()).item()


def node(args, cmd, work):
    line = [args.node, os.path.join(HERE, "peft-compare.mjs"), cmd, work, "--tol", str(args.tol)]
    print("$", " ".join(line), flush=True)
    return subprocess.run(line, cwd=REPO).returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None, help="working directory (default: a new one in /tmp)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max relative error allowed")
    ap.add_argument("--node", default="node", help="the node executable")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="peft-compare-")
    os.makedirs(work, exist_ok=True)
    print(f"work dir {work}; torch {torch.__version__}")
    ok = True

    # the bases
    for i, (name, (make, _, _)) in enumerate(MODELS.items()):
        torch.manual_seed(1000 + i)
        model = make().eval()
        model.save_pretrained(os.path.join(work, name, "base"), safe_serialization=True)

    # 1. tunekit -> PEFT
    if node(args, "tunekit-save", work) != 0:
        print("tunekit-save failed")
        return 1
    for name, (_, cls, _) in MODELS.items():
        tk = json.load(open(os.path.join(work, name, "tk_logits.json")))
        base = cls.from_pretrained(os.path.join(work, name, "base"))
        base_err = max_rel(logits(base), tk["base"])
        peft = PeftModel.from_pretrained(base, os.path.join(work, name, "tk_adapter"))
        err = max_rel(logits(peft), tk["data"])
        merged_err = max_rel(logits(peft.merge_and_unload()), tk["data"])
        good = max(err, merged_err, base_err) <= args.tol
        ok &= good
        print(
            f"{name}: tunekit adapter in PEFT: max relative error {err:.2e} (merged {merged_err:.2e}, "
            f"base model {base_err:.2e}; tol {args.tol}) {'ok' if good else 'FAIL'}"
        )

    # 2. PEFT -> tunekit
    for i, (name, (_, cls, lora)) in enumerate(MODELS.items()):
        base = cls.from_pretrained(os.path.join(work, name, "base"))
        base_logits = logits(base)
        torch.manual_seed(2000 + i)
        peft = get_peft_model(base, LoraConfig(init_lora_weights=False, **lora))
        out = os.path.join(work, name, "peft_adapter")
        peft.save_pretrained(out, safe_serialization=True)
        y = logits(peft)
        if max_rel(y, base_logits) < 1e-3:
            print(f"{name}: the PEFT adapter barely changes the logits")
            ok = False
        with open(os.path.join(work, name, "peft_logits.json"), "w") as f:
            json.dump({"ids": IDS, "shape": list(y.shape), "data": y.flatten().tolist(), "base": base_logits.flatten().tolist()}, f)
        print(f"{name}: PEFT adapter saved to {out}")
        peft.print_trainable_parameters()
    if node(args, "tunekit-check", work) != 0:
        ok = False

    print("all comparisons within tolerance" if ok else "SOME COMPARISONS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
