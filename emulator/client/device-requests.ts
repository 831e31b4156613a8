/**
 * The vfio-user requests that describe and set up the device, each one
 * request and its reply over a connection: VERSION (with the
 * capabilities), DEVICE_GET_INFO, DEVICE_GET_REGION_INFO, DEVICE_GET_IRQ_INFO,
 * DEVICE_SET_IRQS and DEVICE_GET_REGION_IO_FDS.
 */
import type { Libc } from '../native/libc.js';
import type { VfioUserChannel } from './channel.js';
import {
  CMD,
  clientCapabilities,
  DEFAULT_MAX_DATA_XFER_SIZE,
  DEVICE_INFO_SIZE,
  HEADER_SIZE,
  IRQ_INFO_SIZE,
  IRQ_SET_SIZE,
  parseRegionInfo,
  parseServerCapabilities,
  REGION_INFO_SIZE,
  type RegionInfo,
  type ServerCapabilities,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_USER_VERSION_MAJOR,
  VFIO_USER_VERSION_MINOR,
  VfioUserError,
} from './vfio-user-protocol.js';

/** The server's version and capabilities, from the VERSION reply. */
export type ServerInfo = ServerCapabilities & { major: number; minor: number };

export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
}

/** An ioeventfd of a region (VFIO_USER_DEVICE_GET_REGION_IO_FDS): writing its eventfd stands for a write at `offset`. */
export interface IoEventFd {
  offset: number;
  size: number;
  /** The eventfd (the client owns it; closed by close()). */
  fd: number;
  flags: number;
  datamatch: bigint;
}

/** VERSION: proposes this client's version and capabilities (`maxMsgFds` fds accepted in one reply); the server's answer. */
export function negotiate(ch: VfioUserChannel, maxMsgFds: number): ServerInfo {
  const caps = clientCapabilities(maxMsgFds, DEFAULT_MAX_DATA_XFER_SIZE);
  ch.reserve(4 + caps.length);
  const s = ch.send;
  s.setUint16(HEADER_SIZE, VFIO_USER_VERSION_MAJOR, true);
  s.setUint16(HEADER_SIZE + 2, VFIO_USER_VERSION_MINOR, true);
  ch.sendBytes.set(caps, HEADER_SIZE + 4);
  const n = ch.transact(CMD.VERSION, 4 + caps.length);
  if (n < 4) throw new Error(`VFIO_USER_VERSION reply of ${n} bytes`);
  const r = ch.recv;
  const major = r.getUint16(HEADER_SIZE, true);
  const minor = r.getUint16(HEADER_SIZE + 2, true);
  if (major !== VFIO_USER_VERSION_MAJOR)
    throw new Error(
      `the server speaks vfio-user ${major}.${minor}; this client speaks ${VFIO_USER_VERSION_MAJOR}.x`,
    );
  if (minor > VFIO_USER_VERSION_MINOR)
    throw new Error(
      `the server answered minor version ${minor}, above the ${VFIO_USER_VERSION_MINOR} proposed`,
    );
  const data = ch.recvBytes.slice(HEADER_SIZE + 4, HEADER_SIZE + n);
  return { major, minor, ...parseServerCapabilities(data) };
}

/** DEVICE_GET_INFO; refuses a device that is not PCI. */
export function getDeviceInfo(ch: VfioUserChannel): DeviceInfo {
  const s = ch.send;
  s.setUint32(HEADER_SIZE, DEVICE_INFO_SIZE, true);
  for (let i = 4; i < DEVICE_INFO_SIZE; i += 4) s.setUint32(HEADER_SIZE + i, 0, true);
  const n = ch.transact(CMD.DEVICE_GET_INFO, DEVICE_INFO_SIZE);
  if (n < DEVICE_INFO_SIZE) throw new Error(`VFIO_USER_DEVICE_GET_INFO reply of ${n} bytes`);
  const r = ch.recv;
  const info = {
    flags: r.getUint32(HEADER_SIZE + 4, true),
    numRegions: r.getUint32(HEADER_SIZE + 8, true),
    numIrqs: r.getUint32(HEADER_SIZE + 12, true),
  };
  if (!(info.flags & VFIO_DEVICE_FLAGS_PCI))
    throw new Error(`the device is not a PCI device (flags 0x${info.flags.toString(16)})`);
  return info;
}

/**
 * DEVICE_GET_REGION_INFO, asking again with a larger argsz when the
 * capabilities did not fit: the region and the fds its reply carried (the
 * caller's to close; those of a reply asked again, or refused, are closed
 * here).
 */
export function getRegionInfo(
  ch: VfioUserChannel,
  libc: Libc,
  index: number,
): { info: RegionInfo; fds: number[] } {
  let argsz = REGION_INFO_SIZE + 256;
  for (let attempt = 0; ; attempt++) {
    const s = ch.send;
    s.setUint32(HEADER_SIZE, argsz, true);
    for (let i = 4; i < REGION_INFO_SIZE; i += 4) s.setUint32(HEADER_SIZE + i, 0, true);
    s.setUint32(HEADER_SIZE + 8, index, true);
    const n = ch.transact(CMD.DEVICE_GET_REGION_INFO, REGION_INFO_SIZE, [], true);
    const fds = ch.replyFds.splice(0);
    let info: ReturnType<typeof parseRegionInfo>;
    try {
      info = parseRegionInfo(new DataView(ch.recv.buffer, ch.recv.byteOffset + HEADER_SIZE, n));
    } catch (e) {
      for (const fd of fds) libc.close(fd);
      throw e;
    }
    if (info.argsz > argsz && attempt === 0) {
      for (const fd of fds) libc.close(fd);
      argsz = info.argsz;
      continue;
    }
    const { argsz: _drop, ...rest } = info;
    return { info: rest, fds };
  }
}

/** DEVICE_GET_IRQ_INFO of interrupt index `index`. */
export function getIrqInfo(ch: VfioUserChannel, index: number): { flags: number; count: number } {
  const s = ch.send;
  s.setUint32(HEADER_SIZE, IRQ_INFO_SIZE, true);
  s.setUint32(HEADER_SIZE + 4, 0, true);
  s.setUint32(HEADER_SIZE + 8, index, true);
  s.setUint32(HEADER_SIZE + 12, 0, true);
  const n = ch.transact(CMD.DEVICE_GET_IRQ_INFO, IRQ_INFO_SIZE);
  if (n < IRQ_INFO_SIZE) throw new Error(`VFIO_USER_DEVICE_GET_IRQ_INFO reply of ${n} bytes`);
  const r = ch.recv;
  return { flags: r.getUint32(HEADER_SIZE + 4, true), count: r.getUint32(HEADER_SIZE + 12, true) };
}

/** DEVICE_SET_IRQS: `count` vectors of interrupt index `index` from `start`, with `fds` (DATA_EVENTFD) or none. */
export function setIrqs(
  ch: VfioUserChannel,
  flags: number,
  index: number,
  start: number,
  count: number,
  fds: readonly number[],
): void {
  const s = ch.send;
  s.setUint32(HEADER_SIZE, IRQ_SET_SIZE, true);
  s.setUint32(HEADER_SIZE + 4, flags, true);
  s.setUint32(HEADER_SIZE + 8, index, true);
  s.setUint32(HEADER_SIZE + 12, start, true);
  s.setUint32(HEADER_SIZE + 16, count, true);
  ch.transact(CMD.DEVICE_SET_IRQS, IRQ_SET_SIZE, fds);
}

/**
 * DEVICE_GET_REGION_IO_FDS: the ioeventfds the server set up in region
 * `index` (none when it set up none, or does not know the command: a
 * VfioUserError is turned into an empty list), and the fds they use, the
 * caller's to close; any other fd of the reply is closed here.
 */
export function getRegionIoFds(
  ch: VfioUserChannel,
  libc: Libc,
  index: number,
): { entries: IoEventFd[]; kept: number[] } {
  const REQ = 16;
  const SUB = 40;
  let argsz = REQ + 8 * SUB;
  for (let attempt = 0; ; attempt++) {
    const s = ch.send;
    s.setUint32(HEADER_SIZE, argsz, true);
    s.setUint32(HEADER_SIZE + 4, 0, true);
    s.setUint32(HEADER_SIZE + 8, index, true);
    s.setUint32(HEADER_SIZE + 12, 0, true);
    let n: number;
    try {
      n = ch.transact(CMD.DEVICE_GET_REGION_IO_FDS, REQ, [], true);
    } catch (e) {
      if (e instanceof VfioUserError) return { entries: [], kept: [] };
      throw e;
    }
    const fds = ch.replyFds.splice(0);
    const r = new DataView(ch.recv.buffer, ch.recv.byteOffset + HEADER_SIZE, n);
    const need = n >= REQ ? r.getUint32(0, true) : 0;
    const count = n >= REQ ? r.getUint32(12, true) : 0;
    if (need > argsz && attempt === 0) {
      for (const fd of fds) libc.close(fd);
      argsz = need;
      continue;
    }
    const entries: IoEventFd[] = [];
    for (let i = 0; i < count && REQ + (i + 1) * SUB <= n; i++) {
      const o = REQ + i * SUB;
      const fd = fds[r.getUint32(o + 16, true)];
      if (fd === undefined || r.getUint32(o + 20, true) !== 0 /* IOEVENTFD */) continue;
      entries.push({
        offset: Number(r.getBigUint64(o, true)),
        size: Number(r.getBigUint64(o + 8, true)),
        fd,
        flags: r.getUint32(o + 24, true),
        datamatch: r.getBigUint64(o + 32, true),
      });
    }
    // Keep the fds an entry uses; close any other.
    const kept: number[] = [];
    for (const fd of fds)
      if (entries.some((x) => x.fd === fd)) kept.push(fd);
      else libc.close(fd);
    return { entries, kept };
  }
}
