/**
 * An 8-byte slot read or written in one access (Atomics on a BigUint64Array:
 * little-endian on the x86 hosts this runs on), for slots the other side may
 * read or write at the same time (a lost signal being written again). An
 * unaligned view falls back to DataView.
 */
export function atomicLoad64(v: DataView, at: number): bigint {
  const abs = v.byteOffset + at;
  return abs % 8 === 0 ? Atomics.load(new BigUint64Array(v.buffer, abs, 1), 0) : v.getBigUint64(at, true);
}

export function atomicStore64(v: DataView, at: number, value: bigint): void {
  const abs = v.byteOffset + at;
  if (abs % 8 === 0) Atomics.store(new BigUint64Array(v.buffer, abs, 1), 0, value);
  else v.setBigUint64(at, value, true);
}
