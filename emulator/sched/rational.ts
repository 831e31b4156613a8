/**
 * Exact rational numbers over BigInt, for the DRF allocation.
 *
 * Every finite double is a dyadic rational, so `Q.from(x)` is exact: the
 * allocation is computed exactly for the numbers the caller gave, and
 * rounded once, at the end, by `toNumber`. Ties (two resources saturating
 * at the same level, a cap reached exactly when a resource saturates) are
 * then exact comparisons, never epsilon guesses.
 */

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** An immutable fraction num/den in lowest terms, den > 0. */
export class Q {
  static readonly ZERO = new Q(0n, 1n);
  static readonly ONE = new Q(1n, 1n);

  private constructor(
    readonly num: bigint,
    readonly den: bigint,
  ) {}

  /** num/den reduced; den must not be 0. */
  static of(num: bigint, den: bigint = 1n): Q {
    if (den === 0n) throw new RangeError('rational with denominator 0');
    if (den < 0n) {
      num = -num;
      den = -den;
    }
    const g = gcd(num, den);
    return g === 1n || g === 0n ? new Q(num, den) : new Q(num / g, den / g);
  }

  /** The exact value of a finite double. */
  static from(x: number): Q {
    if (!Number.isFinite(x)) throw new RangeError(`not a finite number: ${x}`);
    if (Number.isInteger(x) && Number.isSafeInteger(x)) return new Q(BigInt(x), 1n);
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, x);
    const hi = view.getUint32(0);
    const lo = view.getUint32(4);
    const sign = hi >>> 31 ? -1n : 1n;
    const exp = (hi >>> 20) & 0x7ff;
    let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
    let e: number;
    if (exp === 0) {
      e = -1074; // subnormal
    } else {
      mant |= 1n << 52n;
      e = exp - 1075;
    }
    return e >= 0 ? Q.of(sign * (mant << BigInt(e))) : Q.of(sign * mant, 1n << BigInt(-e));
  }

  add(o: Q): Q {
    return this.den === o.den
      ? Q.of(this.num + o.num, this.den)
      : Q.of(this.num * o.den + o.num * this.den, this.den * o.den);
  }
  sub(o: Q): Q {
    return this.den === o.den
      ? Q.of(this.num - o.num, this.den)
      : Q.of(this.num * o.den - o.num * this.den, this.den * o.den);
  }
  mul(o: Q): Q {
    return Q.of(this.num * o.num, this.den * o.den);
  }
  div(o: Q): Q {
    if (o.num === 0n) throw new RangeError('rational division by 0');
    return Q.of(this.num * o.den, this.den * o.num);
  }
  cmp(o: Q): number {
    const l = this.num * o.den;
    const r = o.num * this.den;
    return l < r ? -1 : l > r ? 1 : 0;
  }
  eq(o: Q): boolean {
    return this.num === o.num && this.den === o.den;
  }
  lt(o: Q): boolean {
    return this.cmp(o) < 0;
  }
  le(o: Q): boolean {
    return this.cmp(o) <= 0;
  }
  gt(o: Q): boolean {
    return this.cmp(o) > 0;
  }
  ge(o: Q): boolean {
    return this.cmp(o) >= 0;
  }
  isZero(): boolean {
    return this.num === 0n;
  }
  sign(): number {
    return this.num < 0n ? -1 : this.num > 0n ? 1 : 0;
  }
  static min(a: Q, b: Q): Q {
    return a.le(b) ? a : b;
  }
  static max(a: Q, b: Q): Q {
    return a.ge(b) ? a : b;
  }

  /** The nearest double (correctly rounded unless the value is subnormal or beyond 2^-1000). */
  toNumber(): number {
    if (this.den === 1n) return Number(this.num);
    // Scale so that the integer quotient carries >= 64 significant bits, keep
    // a sticky bit for a non-zero remainder (so Number() rounds as the exact
    // value would), then scale back by a power of two (exact).
    const neg = this.num < 0n;
    const n = neg ? -this.num : this.num;
    const shift = Math.max(0, this.den.toString(2).length - n.toString(2).length + 64);
    const scaled = n << BigInt(shift);
    let q = scaled / this.den;
    if (q * this.den !== scaled) q |= 1n;
    const v = shift > 1000 ? Number(q) / 2 ** 1000 / 2 ** (shift - 1000) : Number(q) / 2 ** shift;
    return neg ? -v : v;
  }

  toString(): string {
    return this.den === 1n ? this.num.toString() : `${this.num}/${this.den}`;
  }
}
