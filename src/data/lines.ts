// Line readers for JSONL files: fixed-size chunks (1 MiB by default) split at '\n' bytes, so a
// file of any size streams through with one chunk and one partial line in memory. Lines are
// numbered from 1 (every line counts, empty ones too); a trailing '\r' is dropped ('\r\n' files),
// and so is a UTF-8 byte order mark at the start of the file.
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

export interface Line {
  /** 1-based line number in the file. */
  lineNumber: number;
  text: string;
}

const NEWLINE = 0x0a;
const DEFAULT_CHUNK = 1 << 20;
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/** Splits a byte stream into lines; feed chunks in order, then call end(). */
class LineSplitter {
  private carry: Uint8Array[] = [];
  private carryBytes = 0;
  private lineNumber = 0;
  private first = true;

  push(chunk: Uint8Array, out: Line[]): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl < 0) break;
      this.emit(this.join(chunk.subarray(start, nl)), out);
      start = nl + 1;
    }
    if (start < chunk.length) {
      // copy: the caller reuses its chunk buffer
      this.carry.push(chunk.slice(start));
      this.carryBytes += chunk.length - start;
    }
  }

  end(out: Line[]): void {
    if (this.carryBytes > 0) this.emit(this.join(new Uint8Array(0)), out);
  }

  private join(tail: Uint8Array): Uint8Array {
    if (this.carryBytes === 0) return tail;
    const all = new Uint8Array(this.carryBytes + tail.length);
    let o = 0;
    for (const c of this.carry) {
      all.set(c, o);
      o += c.length;
    }
    all.set(tail, o);
    this.carry = [];
    this.carryBytes = 0;
    return all;
  }

  private emit(bytes: Uint8Array, out: Line[]): void {
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 0x0d) end--;
    let begin = 0;
    if (this.first && end >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) begin = 3;
    this.first = false;
    out.push({ lineNumber: ++this.lineNumber, text: decoder.decode(bytes.subarray(begin, end)) });
  }
}

/** Lines of a file, read synchronously in chunks. */
export function* readLinesSync(path: string, chunkSize = DEFAULT_CHUNK): Generator<Line> {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(chunkSize);
    const splitter = new LineSplitter();
    const out: Line[] = [];
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      splitter.push(buf.subarray(0, n), out);
      yield* out;
      out.length = 0;
    }
    splitter.end(out);
    yield* out;
  } finally {
    closeSync(fd);
  }
}

/** Lines of a file, read asynchronously in chunks. */
export async function* readLines(path: string, chunkSize = DEFAULT_CHUNK): AsyncGenerator<Line> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(chunkSize);
    const splitter = new LineSplitter();
    const out: Line[] = [];
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      splitter.push(buf.subarray(0, bytesRead), out);
      yield* out;
      out.length = 0;
    }
    splitter.end(out);
    yield* out;
  } finally {
    await fh.close();
  }
}

/** Lines of an in-memory string, numbered as in a file. */
export function* stringLines(text: string): Generator<Line> {
  let start = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let lineNumber = 0;
  while (start <= text.length) {
    let nl = text.indexOf('\n', start);
    if (nl < 0) {
      if (start === text.length) break;
      nl = text.length;
    }
    let end = nl;
    if (end > start && text.charCodeAt(end - 1) === 0x0d) end--;
    yield { lineNumber: ++lineNumber, text: text.slice(start, end) };
    start = nl + 1;
  }
}
