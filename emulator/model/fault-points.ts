/**
 * What the injection points in the device model share: applying an action to
 * the bytes or the interrupt a point carries, with the integrity checks a
 * real device has (PCIe ECRC, the data path's CRC), so that an injected
 * corruption is detected and reported, never delivered as good data.
 * The model decides where; these helpers decide nothing about the plan.
 */
import { ENUMS } from '../abi/abi.js';
import { crc32c } from '../util/crc.js';
import type { DeviceHost } from './host.js';
import { split } from './accel/jobgen.js';
import { applyCorrupt, type Fault, type FaultInjector } from '../faults/injector.js';
import { POINT } from '../faults/plan.js';

/** reset / surprise_removal are allowed at every point; the device applies them (true when `f` was one). */
export type GlobalFaultHandler = (f: Fault, where: string) => boolean;

/** The code an `error` reports in a space (socket or device errors); anything else becomes `fallback`. */
export function faultCode(f: Fault, space: 'socket' | 'device', fallback: number): number {
  return f.action === 'error' && f.space === space ? f.code : fallback;
}

/** CRC32C of [pos, pos + len) of a ring (wrapping at its end). */
export function ringCrc(ring: Uint8Array, pos: number, len: number): number {
  let crc = 0;
  for (const seg of split(ring.length, pos, len))
    crc = crc32c(ring.subarray(seg.off, seg.off + seg.len), crc);
  return crc;
}

/** The bytes [pos, pos + len) of a ring as one new array. */
function gatherRing(ring: Uint8Array, pos: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  let at = 0;
  for (const seg of split(ring.length, pos, len)) {
    out.set(ring.subarray(seg.off, seg.off + seg.len), at);
    at += seg.len;
  }
  return out;
}

/**
 * A `corrupt` on data read from a ring (dma.read, job.start): the bytes in
 * flight are corrupted, the ring is not. The sender's CRC (computed over the
 * true bytes) is checked against what arrived: true when the corruption is
 * detected (it changed the bytes), false when it fell outside the message.
 */
export function readCorrupted(
  ring: Uint8Array,
  pos: number,
  len: number,
  f: Fault & { action: 'corrupt' },
): boolean {
  const sent = ringCrc(ring, pos, len);
  const got = gatherRing(ring, pos, len);
  applyCorrupt(got, f);
  return crc32c(got) !== sent;
}

/**
 * A `corrupt` on data the device wrote into a ring (dma.write, job.complete):
 * the bytes land corrupted; the device's data-path CRC of what it meant to
 * write is checked against the ring. True when detected (the caller must not
 * publish the bytes); the ring keeps the corrupted bytes past its tail.
 */
export function writeCorrupted(
  ring: Uint8Array,
  pos: number,
  len: number,
  f: Fault & { action: 'corrupt' },
): boolean {
  const meant = ringCrc(ring, pos, len);
  const landed = gatherRing(ring, pos, len);
  applyCorrupt(landed, f);
  let at = 0;
  for (const seg of split(ring.length, pos, len)) {
    ring.set(landed.subarray(at, at + seg.len), seg.off);
    at += seg.len;
  }
  return ringCrc(ring, pos, len) !== meant;
}

/**
 * Raises MSI-X `vector` through the irq point: drop (not raised: the driver
 * recovers by polling), delay (raised ns later), duplicate (raised twice).
 * Returns how many messages went out now.
 */
export function raiseIrq(
  inj: FaultInjector,
  host: DeviceHost,
  vector: number,
  onGlobal: GlobalFaultHandler,
  alive: () => boolean,
): number {
  let times = 1;
  if (inj.armed[POINT.IRQ]) {
    const f = inj.check(POINT.IRQ, { vector });
    if (f) {
      if (onGlobal(f, 'irq')) return 0;
      if (f.action === 'drop') return 0;
      if (f.action === 'delay') {
        host.schedule(f.ns, () => {
          if (alive()) host.raiseMsix(vector);
        });
        return 0;
      }
      if (f.action === 'duplicate') times = 2;
    }
  }
  let n = 0;
  for (let i = 0; i < times; i++) if (host.raiseMsix(vector)) n++;
  return n;
}

const D2H = ENUMS.SIG_D2H;
/** D2H signals a driver can take twice without harm (ABI: SIG_D2H); the others are never repeated. */
export function d2hRepeatable(type: number, value: number): boolean {
  return (
    type === D2H.TX_HEAD ||
    type === D2H.RX_TAIL ||
    type === D2H.CMD_DONE ||
    type === D2H.SOCK_ERROR ||
    (type === D2H.EVENT && value !== ENUMS.EVENT.CONN_PENDING)
  );
}

/** The socket a D2H signal concerns, or -1 (a command slot, a device error). */
export function d2hSocket(type: number, id: number): number {
  if (type === D2H.TX_HEAD || type === D2H.RX_TAIL || type === D2H.MSG_ERROR || type === D2H.DIGEST)
    return id >>> 1;
  if (type === D2H.EVENT || type === D2H.SOCK_ERROR) return id;
  return -1;
}
