/**
 * IP addresses as the device sees them (ABI 1.2): 16 bytes, IPv6, with IPv4
 * as the v4-mapped ::ffff:a.b.c.d, in network order, the way the driver
 * puts them in a command slot's tx_addr/rx_addr bytes. Pure functions,
 * shared by the model, the client and the harness.
 *
 * The cluster's address plan: node n (0-based, in the cluster's sorted
 * names) owns 10.77.n.0/24; VM v on it has 10.77.n.(v+1) (PLAN_*).
 */

export type Addr = Uint8Array; // 16 bytes

export const PLAN_PREFIX = '10.77';
export const PLAN_PREFIX_LEN = 16;

export const ADDR_ANY6: Addr = new Uint8Array(16);
export const ADDR_ANY4: Addr = v4(0, 0, 0, 0);

/** ::ffff:a.b.c.d */
export function v4(a: number, b: number, c: number, d: number): Addr {
  const x = new Uint8Array(16);
  x[10] = 0xff;
  x[11] = 0xff;
  x.set([a, b, c, d], 12);
  return x;
}

export function isV4Mapped(a: Addr): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

export function isAny6(a: Addr): boolean {
  return a.every((x) => x === 0);
}

export function isAny4(a: Addr): boolean {
  return isV4Mapped(a) && a[12] === 0 && a[13] === 0 && a[14] === 0 && a[15] === 0;
}

export function isWildcard(a: Addr): boolean {
  return isAny6(a) || isAny4(a);
}

/** 127.0.0.0/8 or ::1: stays inside the VM. */
export function isLoopback(a: Addr): boolean {
  if (isV4Mapped(a)) return a[12] === 127;
  for (let i = 0; i < 15; i++) if (a[i] !== 0) return false;
  return a[15] === 1;
}

export function addrEqual(a: Addr, b: Addr): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A hashable key of an address. */
export function addrKey(a: Addr): string {
  let k = '';
  for (let i = 0; i < 16; i++) k += (a[i]! | 0x100).toString(16).slice(1);
  return k;
}

/**
 * The 0-based plan node an address belongs to (10.77.n.x: n), or -1 for an
 * address outside the plan.
 */
export function planNode(a: Addr): number {
  const [p1, p2] = PLAN_PREFIX.split('.').map(Number);
  if (!isV4Mapped(a) || a[12] !== p1 || a[13] !== p2) return -1;
  return a[14]!;
}

/** Parses a dotted IPv4 address or an IPv6 address (with :: and a dotted tail); throws RangeError. */
export function parseAddr(s: string): Addr {
  const m4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m4) {
    const p = m4.slice(1, 5).map(Number);
    if (p.some((x) => x > 255)) throw new RangeError(`'${s}' is not an IPv4 address`);
    return v4(p[0]!, p[1]!, p[2]!, p[3]!);
  }
  const bad = (): never => {
    throw new RangeError(`'${s}' is not an IPv4 or IPv6 address`);
  };
  if (!/^[0-9a-fA-F:.]+$/.test(s) || s.split('::').length > 2) bad();
  const words = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const w of part.split(':')) {
      if (w.includes('.')) {
        const t = parseAddr(w);
        if (!isV4Mapped(t)) bad();
        out.push((t[12]! << 8) | t[13]!, (t[14]! << 8) | t[15]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(w)) out.push(parseInt(w, 16));
      else bad();
    }
    return out;
  };
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  if (tail === undefined ? h.length !== 8 : h.length + t.length > 7) bad();
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const x = new Uint8Array(16);
  all.forEach((w, i) => {
    x[2 * i] = w >> 8;
    x[2 * i + 1] = w & 0xff;
  });
  return x;
}

/** The usual text form: dotted for v4-mapped, else IPv6 with the longest run of zero words as ::. */
export function formatAddr(a: Addr): string {
  if (isV4Mapped(a)) return `${a[12]}.${a[13]}.${a[14]}.${a[15]}`;
  const w = Array.from({ length: 8 }, (_, i) => (a[2 * i]! << 8) | a[2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(':');
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** The two u64 halves a command slot carries (tx_addr: bytes 0..7, rx_addr: 8..15, both little-endian words of network-order bytes). */
export function addrToWords(a: Addr): [bigint, bigint] {
  const d = new DataView(a.buffer, a.byteOffset, 16);
  return [d.getBigUint64(0, true), d.getBigUint64(8, true)];
}

export function addrFromWords(lo: bigint, hi: bigint): Addr {
  const x = new Uint8Array(16);
  const d = new DataView(x.buffer);
  d.setBigUint64(0, lo, true);
  d.setBigUint64(8, hi, true);
  return x;
}
