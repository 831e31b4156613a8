/**
 * Register and region access over a vfio-user connection: REGION_READ and
 * REGION_WRITE of 1..8 bytes as a little-endian value, a posted 4-byte
 * write (a doorbell), and reads and writes of any length split by the
 * server's max_data_xfer_size.
 */
import type { VfioUserChannel } from './channel.js';
import { CMD, DEFAULT_MAX_DATA_XFER_SIZE, HEADER_SIZE, REGION_ACCESS_SIZE } from './vfio-user-protocol.js';

/** The request's region access header: `count` bytes at `offset` of region `index`. */
function putAccess(ch: VfioUserChannel, index: number, offset: number, count: number): DataView {
  const s = ch.send;
  s.setBigUint64(HEADER_SIZE, BigInt(offset), true);
  s.setUint32(HEADER_SIZE + 8, index, true);
  s.setUint32(HEADER_SIZE + 12, count, true);
  return s;
}

/** REGION_READ of `size` (1..8) bytes at `offset` of region `index`, as a little-endian value. */
export function regionRead(ch: VfioUserChannel, index: number, offset: number, size: number): bigint {
  if (!Number.isInteger(size) || size < 1 || size > 8)
    throw new RangeError(`regionRead size ${size}: use 1..8 (regionReadBytes for more)`);
  putAccess(ch, index, offset, size);
  const n = ch.transact(CMD.REGION_READ, REGION_ACCESS_SIZE);
  const r = ch.recv;
  const count = r.getUint32(HEADER_SIZE + 12, true);
  if (n < REGION_ACCESS_SIZE + size || count !== size)
    throw new Error(
      `REGION_READ of ${size} bytes at ${index}:0x${offset.toString(16)} answered with ${count} bytes`,
    );
  const d = HEADER_SIZE + REGION_ACCESS_SIZE;
  switch (size) {
    case 1:
      return BigInt(r.getUint8(d));
    case 2:
      return BigInt(r.getUint16(d, true));
    case 4:
      return BigInt(r.getUint32(d, true));
    case 8:
      return r.getBigUint64(d, true);
    default: {
      let v = 0n;
      for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(r.getUint8(d + i));
      return v;
    }
  }
}

/** REGION_WRITE of `value` as `size` (1..8) little-endian bytes at `offset` of region `index`. */
export function regionWrite(
  ch: VfioUserChannel,
  index: number,
  offset: number,
  size: number,
  value: bigint,
): void {
  if (!Number.isInteger(size) || size < 1 || size > 8)
    throw new RangeError(`regionWrite size ${size}: use 1..8 (regionWriteBytes for more)`);
  const s = putAccess(ch, index, offset, size);
  const d = HEADER_SIZE + REGION_ACCESS_SIZE;
  let v = BigInt.asUintN(64, value);
  if (size === 4) s.setUint32(d, Number(v & 0xffff_ffffn), true);
  else if (size === 8) s.setBigUint64(d, v, true);
  else
    for (let i = 0; i < size; i++) {
      s.setUint8(d + i, Number(v & 0xffn));
      v >>= 8n;
    }
  ch.transact(CMD.REGION_WRITE, REGION_ACCESS_SIZE + size);
}

/** A posted REGION_WRITE of a 4-byte `value` (no reply waited for: a doorbell). */
export function regionPost(ch: VfioUserChannel, index: number, offset: number, value: number): void {
  putAccess(ch, index, offset, 4).setUint32(HEADER_SIZE + REGION_ACCESS_SIZE, value >>> 0, true);
  ch.post(CMD.REGION_WRITE, REGION_ACCESS_SIZE + 4);
}

/** REGION_READ of any length, in pieces of at most `maxXfer` (the server's max_data_xfer_size); returns a copy. */
export function regionReadBytes(
  ch: VfioUserChannel,
  maxXfer: number,
  index: number,
  offset: number,
  len: number,
): Uint8Array {
  const out = new Uint8Array(len);
  const max = Math.min(maxXfer, DEFAULT_MAX_DATA_XFER_SIZE);
  for (let done = 0; done < len; ) {
    const n = Math.min(max, len - done);
    putAccess(ch, index, offset + done, n);
    const got = ch.transact(CMD.REGION_READ, REGION_ACCESS_SIZE) - REGION_ACCESS_SIZE;
    if (got !== n)
      throw new Error(
        `REGION_READ of ${n} bytes at ${index}:0x${(offset + done).toString(16)} answered with ${got} bytes`,
      );
    const d = HEADER_SIZE + REGION_ACCESS_SIZE;
    out.set(ch.recvBytes.subarray(d, d + n), done);
    done += n;
  }
  return out;
}

/** REGION_WRITE of any length, in pieces of at most `maxXfer` (the server's max_data_xfer_size). */
export function regionWriteBytes(
  ch: VfioUserChannel,
  maxXfer: number,
  index: number,
  offset: number,
  data: Uint8Array,
): void {
  const max = Math.min(maxXfer, DEFAULT_MAX_DATA_XFER_SIZE);
  for (let done = 0; done < data.length; ) {
    const n = Math.min(max, data.length - done);
    ch.reserve(REGION_ACCESS_SIZE + n);
    putAccess(ch, index, offset + done, n);
    ch.sendBytes.set(data.subarray(done, done + n), HEADER_SIZE + REGION_ACCESS_SIZE);
    ch.transact(CMD.REGION_WRITE, REGION_ACCESS_SIZE + n);
    done += n;
  }
}
