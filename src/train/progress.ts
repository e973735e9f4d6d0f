// Progress output: a live bar on a TTY (cli-progress), plain periodic lines
// otherwise; every step's metrics also go to metrics.jsonl.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import cliProgress from 'cli-progress';

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  tokens_per_s: number;
  grad_norm?: number;
  epoch: number;
  [k: string]: number | boolean | undefined;
}

export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }
  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }
  /** Starts the file afresh (a new run). */
  reset(): void {
    writeFileSync(this.path, '');
  }
  /**
   * Drops the records of steps after `step` (a resumed run repeats them) and a
   * torn last line (a killed run may stop mid-write).
   */
  truncateAfter(step: number): void {
    if (!existsSync(this.path)) return;
    const kept: string[] = [];
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      let rec: { step?: unknown };
      try {
        rec = JSON.parse(line) as { step?: unknown };
      } catch {
        continue;
      }
      if (typeof rec.step === 'number' && rec.step > step) continue;
      kept.push(line + '\n');
    }
    writeFileSync(this.path, kept.join(''));
  }
}

/** Where progress goes: process.stderr, or anything with write (and isTTY for the live bar). */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

function fmtEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds), m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * Training progress. On a TTY: a live bar with step, loss, learning rate,
 * tokens/s and ETA. Otherwise: one plain line every `logEvery` steps (and at
 * the last step). `startStep` is where a resumed run begins (for the ETA).
 */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly started = Date.now();
  constructor(
    private readonly total: number,
    private readonly logEvery: number,
    private readonly out: ProgressStream = process.stderr,
    private readonly quiet = false,
    private readonly startStep = 0,
  ) {
    if (!quiet && out.isTTY) {
      this.bar = new cliProgress.SingleBar(
        {
          format: 'train |{bar}| step {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}',
          stream: out as NodeJS.WritableStream,
          hideCursor: true,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, startStep, { loss: '-', lr: '-', tps: '-' });
    }
  }
  update(m: StepMetrics): void {
    if (this.quiet) return;
    if (this.bar) {
      this.bar.update(m.step, { loss: m.loss.toFixed(4), lr: m.lr.toExponential(2), tps: m.tokens_per_s.toFixed(0) });
      return;
    }
    if (m.step % this.logEvery === 0 || m.step === this.total) {
      const elapsed = (Date.now() - this.started) / 1000;
      const eta = (elapsed / Math.max(1, m.step - this.startStep)) * (this.total - m.step);
      this.out.write(`step ${m.step}/${this.total} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} ${m.tokens_per_s.toFixed(0)} tok/s eta ${fmtEta(eta)}\n`);
    }
  }
  message(line: string): void {
    if (this.quiet) return;
    if (this.bar) this.out.write('\r\x1b[K' + line + '\n');
    else this.out.write(line + '\n');
  }
  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
