// Seeded shuffling. The generator is mulberry32 (a 32-bit counter-based generator by Tommy
// Ettinger: state += 0x6D2B79F5, then a multiply-xorshift output mix), with its state started at
// fmix32(seed) (MurmurHash3's finalizer) so that neighbouring seeds (seed, seed + 1, ...) start far
// apart. Shuffles are Fisher–Yates from the last index down, drawing each index by rejection
// sampling (exactly uniform). Same seed, same length: same permutation, on every platform.

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Reduces any integer seed (negative or above 2^32 included) to 32 bits. */
export function seed32(seed: number): number {
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new TypeError(`seed must be a safe integer, got ${String(seed)}`);
  return seed >>> 0;
}

/** A deterministic 32-bit generator (mulberry32 started at fmix32(seed)). */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = fmix32(seed32(seed));
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), exactly (rejection sampling); 1 <= n <= 2^32. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new RangeError(`nextInt: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }
}

/** A permutation of 0..n-1 (Fisher–Yates driven by Rng(seed)). */
export function shuffledIndices(n: number, seed: number): number[] {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`shuffledIndices: n must be a non-negative integer, got ${n}`);
  const out = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    const t = out[i]!;
    out[i] = out[j]!;
    out[j] = t;
  }
  return out;
}

/** A shuffled copy of items (the permutation of shuffledIndices(items.length, seed)). */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  return shuffledIndices(items.length, seed).map((i) => items[i]!);
}

/** The order a loader visits n items in a given epoch: shuffledIndices(n, seed + epoch). */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
  return shuffledIndices(n, seed32(seed) + epoch);
}
