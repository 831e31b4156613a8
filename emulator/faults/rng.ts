/**
 * Seeded random streams for probabilistic fault rules. A run must be
 * repeatable from the plan's seed, and one rule's draws must not depend on
 * which other rules exist, so every rule gets its own stream whose state is
 * derived from (plan seed, rule id) alone. The generator is xoshiro128**
 * (32-bit arithmetic throughout, so no BigInt on the hot path), seeded
 * through a splitmix32-style mixer so that neighbouring seeds and ids
 * give unrelated streams.
 */

/** Bijective 32-bit finaliser: every input bit affects every output bit. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** FNV-1a over the id's UTF-16 units: a cheap, stable hash of a short string. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

export class RuleStream {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, id: string) {
    // The seed is a safe integer: fold its high bits in so that seeds 2^32 apart differ.
    let s = mix32((seed >>> 0) ^ mix32(Math.floor(seed / 2 ** 32) >>> 0) ^ mix32(hash(id) + 0x9e3779b9));
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      return mix32(s);
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // the one state xoshiro never leaves
  }

  /** The next 32 random bits, as an unsigned number. */
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.nextU32() / 4294967296;
  }
}
