#!/usr/bin/env node
// The tunekit command line:
//   tunekit generate --model DIR --prompt "..."
//   tunekit train --config run.yaml [--resume] [--<field> VALUE ...]   (every config field is a flag)
//   tunekit eval --model DIR [--adapter DIR] --data FILE
//   tunekit merge --model DIR --adapter DIR --out DIR
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { backend } from '../backend.js';
import { loadModel, type PreTrainedModel } from '../models/index.js';
import { FIELDS, flagName, readConfigFile, resolveConfig } from '../train/config.js';
import { evaluateModelOnFile, mergeAdapterToDir } from '../train/tools.js';
import { train } from '../train/trainer.js';
import { quickstart } from '../train/quickstart.js';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
    return n;
  };
}

export function buildCli(): Command {
  const program = new Command();
  program.name('tunekit').description('Fine-tuning of large language models on a native C++/CUDA engine');

  program
    .command('generate')
    .description('generate text from a Hugging Face model directory')
    .requiredOption('--model <dir>', 'model directory (config.json, model.safetensors, tokenizer.json)')
    .requiredOption('--prompt <text...>', 'one or more prompts')
    .option('--max-new-tokens <n>', 'tokens to generate', int('--max-new-tokens'), 64)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', num('--temperature'), 0)
    .option('--top-k <k>', 'keep the k most likely tokens', int('--top-k'))
    .option('--top-p <p>', 'nucleus sampling threshold', num('--top-p'))
    .option('--repetition-penalty <r>', 'penalty for repeated tokens', num('--repetition-penalty'))
    .option('--stop <s...>', 'stop strings')
    .option('--seed <n>', 'sampling seed', int('--seed'), 0)
    .option('--no-stream', 'print each completion when done instead of token by token')
    .action(async (o) => {
      const model = loadModel(o.model);
      if (!('generate' in model)) throw new Error(`${o.model}: model_type '${model.config.model_type}' cannot generate text`);
      const lm = model as PreTrainedModel;
      if (!lm.tokenizer) throw new Error(`${o.model}: no tokenizer.json in the model directory`);
      const opts = {
        maxNewTokens: o.maxNewTokens,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        repetitionPenalty: o.repetitionPenalty,
        stop: o.stop,
        seed: o.seed,
      };
      const prompts: string[] = o.prompt;
      if (o.stream && prompts.length === 1) {
        process.stdout.write(prompts[0]!);
        const it = lm.stream(prompts, opts);
        let r = await it.next();
        while (!r.done) {
          process.stdout.write(r.value.text ?? '');
          r = await it.next();
        }
        process.stdout.write('\n');
      } else {
        const outs = lm.generate(prompts, opts);
        outs.forEach((out, i) => console.log(prompts[i] + (out.text ?? '')));
      }
    });

  const trainCmd = program
    .command('train')
    .description('fine-tune a model on a JSONL file (full or LoRA); every config field is also a flag')
    .option('--config <file>', 'run configuration (YAML or JSON)')
    .option('--resume', 'continue from the newest checkpoint in outDir')
    .option('--overwrite', "start afresh in an outDir that holds an earlier run's checkpoints (they are removed)")
    .option('--quiet', 'no progress output')
    .option('--stop-after-step <n>', 'stop after step N with a checkpoint, as if interrupted (continue with --resume)', int('--stop-after-step'));
  // booleans take an optional value: --packing is --packing true
  for (const [field, spec] of Object.entries(FIELDS)) trainCmd.option(`${flagName(field)} ${spec.kind === 'bool' ? '[value]' : '<value>'}`, spec.help);
  trainCmd.action(async (o: Record<string, unknown>) => {
    const fileValues = o.config ? readConfigFile(String(o.config)) : {};
    const flags: Record<string, string> = {};
    for (const field of Object.keys(FIELDS)) {
      const key = flagName(field).slice(2).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      if (o[key] !== undefined) flags[field] = String(o[key]);
    }
    const cfg = resolveConfig(fileValues, flags, o.config ? String(o.config) : undefined);
    const stopAfterStep = o.stopAfterStep as number | undefined;
    const r = await train(cfg, { resume: Boolean(o.resume), overwrite: Boolean(o.overwrite), quiet: Boolean(o.quiet), ...(stopAfterStep !== undefined ? { stopAfterStep } : {}) });
    const last = r.evals[r.evals.length - 1];
    console.log(
      `${r.interrupted ? 'interrupted' : r.stoppedEarly ? 'stopped early' : 'done'} at step ${r.step}/${r.totalSteps}: loss ${r.lastLoss.toFixed(4)}` +
        (last ? `, eval loss ${last.eval_loss.toFixed(4)} (ppl ${last.eval_ppl.toFixed(2)})` : '') +
        (r.skippedSteps ? `, ${r.skippedSteps} non-finite step(s) skipped` : '') +
        (r.skippedLines ? `, ${r.skippedLines} bad data line(s) skipped` : '') +
        `; outputs in ${r.outDir}` +
        (r.interrupted ? ' (continue with --resume)' : ''),
    );
  });

  program
    .command('eval')
    .description('loss and perplexity of a model (optionally with a LoRA adapter) on a JSONL file')
    .requiredOption('--model <dir>', 'model directory')
    .requiredOption('--data <file>', 'JSONL data')
    .option('--adapter <dir>', 'LoRA adapter directory (PEFT format)')
    .option('--tokenizer <dir>', "tokenizer directory or 'byte'")
    .option('--seq-len <n>', 'truncation length', int('--seq-len'), 512)
    .option('--batch-size <n>', 'batch size', int('--batch-size'), 8)
    .action((o) => {
      const r = evaluateModelOnFile({ model: o.model, data: o.data, adapter: o.adapter, tokenizer: o.tokenizer, seqLen: o.seqLen, batchSize: o.batchSize });
      console.log(JSON.stringify({ eval_loss: r.loss, eval_ppl: r.ppl, eval_tokens: r.tokens }));
    });

  program
    .command('merge')
    .description('fold a LoRA adapter into the base weights and save a plain model directory')
    .requiredOption('--model <dir>', 'base model directory')
    .requiredOption('--adapter <dir>', 'LoRA adapter directory (PEFT format)')
    .requiredOption('--out <dir>', 'output model directory')
    .action((o) => {
      mergeAdapterToDir(o.model, o.adapter, o.out);
      console.log(`merged model written to ${o.out}`);
    });

  program
    .command('quickstart')
    .description('fine-tune the embedded base model with LoRA on the bundled sentiment task; loss and accuracy before and after')
    .option('--out <dir>', 'run directory', 'runs/quickstart')
    .option('--steps <n>', 'optimizer steps', int('--steps'), 150)
    .option('--base-model <dir>', 'base model directory (default: the embedded one)')
    .action(async (o) => {
      await quickstart({ outDir: o.out, steps: o.steps, baseModel: o.baseModel });
    });

  program
    .command('info')
    .description('print the CPU and CUDA backends this process would use')
    .action(() => console.log(JSON.stringify(backend(), null, 2)));

  return program;
}

// run when executed directly (not when imported by tests)
function isMain(): boolean {
  try {
    return realpathSync(process.argv[1] ?? '') === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (isMain()) {
  buildCli()
    .parseAsync(process.argv)
    .catch((e: unknown) => {
      console.error(`tunekit: ${(e as Error).message}`);
      process.exit(1);
    });
}
