// Progress output: a live bar on a TTY (cli-progress), plain periodic lines
// otherwise; every step's metrics also go to metrics.jsonl.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import cliProgress from 'cli-progress';

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  tokens_per_s: number;
  grad_norm?: number;
  epoch: number;
  [k: string]: number | undefined;
}

export class MetricsLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }
  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }
}

function fmtEta(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds), m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, '0')}m` : m ? `${m}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly started = Date.now();
  constructor(
    private readonly total: number,
    private readonly logEvery: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {
    if (!quiet && out.isTTY) {
      this.bar = new cliProgress.SingleBar(
        { format: 'train |{bar}| {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {eta_formatted}', stream: out, hideCursor: true, etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, 0, { loss: '-', lr: '-', tps: '-' });
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
      const eta = (elapsed / Math.max(1, m.step)) * (this.total - m.step);
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
