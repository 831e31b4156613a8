/**
 * The vfio-user protocol as the client sees it: command numbers, header
 * flags, the fixed payload layouts and the VFIO constants they carry.
 * Written from the specification (libvfio-user's docs/vfio-user.rst) and
 * <linux/vfio.h>; everything is little-endian.
 */
import { constants as osConstants } from 'node:os';

export const VFIO_USER_VERSION_MAJOR = 0;
/** The version this client proposes (libvfio-user speaks 0.1; a server may answer with a lower minor). */
export const VFIO_USER_VERSION_MINOR = 1;

export const CMD = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_REGION_IO_FDS: 6,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  DMA_READ: 11,
  DMA_WRITE: 12,
  DEVICE_RESET: 13,
  DIRTY_PAGES: 14,
} as const;

export function commandName(cmd: number): string {
  const hit = Object.entries(CMD).find(([, v]) => v === cmd);
  return hit ? `VFIO_USER_${hit[0]}` : `vfio-user command ${cmd}`;
}

/** The 16-byte header: msg_id u16, command u16, msg_size u32, flags u32, error u32. */
export const HEADER_SIZE = 16;
export const FLAG_TYPE_MASK = 0xf;
export const FLAG_TYPE_COMMAND = 0x0;
export const FLAG_TYPE_REPLY = 0x1;
export const FLAG_NO_REPLY = 0x10;
export const FLAG_ERROR = 0x20;

// Payload sizes (without the header).
export const DEVICE_INFO_SIZE = 16; // argsz, flags, num_regions, num_irqs
export const REGION_INFO_SIZE = 32; // argsz, flags, index, cap_offset, size u64, offset u64
export const IRQ_INFO_SIZE = 16; // argsz, flags, index, count
export const IRQ_SET_SIZE = 20; // argsz, flags, index, start, count
export const DMA_MAP_SIZE = 32; // argsz, flags, offset u64, address u64, size u64
export const DMA_UNMAP_SIZE = 24; // argsz, flags, address u64, size u64
export const REGION_ACCESS_SIZE = 16; // offset u64, region u32, count u32

/** The payload the client never exceeds in REGION_READ/WRITE unless the server allows more. */
export const DEFAULT_MAX_DATA_XFER_SIZE = 1 << 20;

// <linux/vfio.h>
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;

export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_TYPE = 2;

export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;

export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;

export const VFIO_USER_F_DMA_REGION_READ = 1 << 0;
export const VFIO_USER_F_DMA_REGION_WRITE = 1 << 1;

/** VFIO PCI region indices. */
export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;

/** VFIO PCI IRQ indices. */
export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;

// PCI config space.
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_STATUS = 0x06;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_MSIX_FLAGS = 2; // offset of Message Control in the MSI-X capability
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;

/** The name of an errno value (EINVAL), or its number when unknown. */
export function errnoName(errno: number): string {
  const hit = Object.entries(osConstants.errno).find(([, v]) => v === errno);
  return hit ? hit[0] : String(errno);
}

/** A command the server answered with the error flag. */
export class VfioUserError extends Error {
  constructor(
    readonly command: number,
    readonly errno: number,
    detail = '',
  ) {
    super(
      `${commandName(command)} failed: errno ${errno} (${errnoName(errno)})${detail ? `: ${detail}` : ''}`,
    );
    this.name = 'VfioUserError';
  }
}

/** The JSON capabilities the client sends with VERSION (NUL-terminated). */
export function clientCapabilities(maxMsgFds: number, maxDataXferSize: number): Buffer {
  const json = JSON.stringify({
    capabilities: { max_msg_fds: maxMsgFds, max_data_xfer_size: maxDataXferSize },
  });
  return Buffer.from(json + '\0');
}

export interface ServerCapabilities {
  maxMsgFds: number;
  maxDataXferSize: number;
  migration: { pgsize?: number } | null;
  raw: unknown;
}

/** Parses the server's VERSION data (JSON, NUL-terminated, optional). */
export function parseServerCapabilities(data: Uint8Array): ServerCapabilities {
  const caps: ServerCapabilities = {
    maxMsgFds: 1,
    maxDataXferSize: DEFAULT_MAX_DATA_XFER_SIZE,
    migration: null,
    raw: null,
  };
  let end = data.indexOf(0);
  if (end < 0) end = data.length;
  if (end === 0) return caps;
  const text = Buffer.from(data.buffer, data.byteOffset, end).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`the server's VERSION reply carries invalid JSON: ${text.slice(0, 200)}`);
  }
  caps.raw = parsed;
  const c = (parsed as { capabilities?: Record<string, unknown> }).capabilities;
  if (c && typeof c === 'object') {
    if (typeof c.max_msg_fds === 'number') caps.maxMsgFds = c.max_msg_fds;
    if (typeof c.max_data_xfer_size === 'number') caps.maxDataXferSize = c.max_data_xfer_size;
    if (c.migration && typeof c.migration === 'object') caps.migration = c.migration as { pgsize?: number };
  }
  return caps;
}

/** One mmap-able area of a region (offset relative to the region). */
export interface SparseArea {
  offset: number;
  size: number;
}

export interface RegionInfo {
  index: number;
  flags: number;
  size: number;
  /** The offset to give mmap() for the region's fd (base of the sparse areas). */
  offset: bigint;
  readable: boolean;
  writable: boolean;
  mmappable: boolean;
  /** From VFIO_REGION_INFO_CAP_SPARSE_MMAP; null when the cap is absent. */
  sparseAreas: SparseArea[] | null;
  /** VFIO_REGION_INFO_CAP_TYPE (type, subtype), if present. */
  type: { type: number; subtype: number } | null;
}

/**
 * Decodes a REGION_INFO reply payload (struct vfio_region_info and its
 * capability chain; cap offsets count from the start of the struct).
 */
export function parseRegionInfo(p: DataView): RegionInfo & { argsz: number } {
  if (p.byteLength < REGION_INFO_SIZE)
    throw new Error(`REGION_INFO reply of ${p.byteLength} bytes, expected at least ${REGION_INFO_SIZE}`);
  const argsz = p.getUint32(0, true);
  const flags = p.getUint32(4, true);
  const info: RegionInfo & { argsz: number } = {
    argsz,
    index: p.getUint32(8, true),
    flags,
    size: Number(p.getBigUint64(16, true)),
    offset: p.getBigUint64(24, true),
    readable: (flags & VFIO_REGION_INFO_FLAG_READ) !== 0,
    writable: (flags & VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mmappable: (flags & VFIO_REGION_INFO_FLAG_MMAP) !== 0,
    sparseAreas: null,
    type: null,
  };
  let capOff = p.getUint32(12, true);
  if (!(flags & VFIO_REGION_INFO_FLAG_CAPS)) return info;
  for (let hops = 0; capOff !== 0; hops++) {
    if (hops > 16 || capOff < REGION_INFO_SIZE || capOff + 8 > p.byteLength) {
      throw new Error(`REGION_INFO for region ${info.index}: bad capability offset ${capOff}`);
    }
    const id = p.getUint16(capOff, true);
    const next = p.getUint32(capOff + 4, true);
    if (id === VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
      const nr = p.getUint32(capOff + 8, true);
      const areas: SparseArea[] = [];
      for (let i = 0; i < nr; i++) {
        const a = capOff + 16 + i * 16;
        if (a + 16 > p.byteLength)
          throw new Error(`REGION_INFO for region ${info.index}: sparse mmap area ${i} past the reply`);
        areas.push({ offset: Number(p.getBigUint64(a, true)), size: Number(p.getBigUint64(a + 8, true)) });
      }
      info.sparseAreas = areas;
    } else if (id === VFIO_REGION_INFO_CAP_TYPE) {
      info.type = { type: p.getUint32(capOff + 8, true), subtype: p.getUint32(capOff + 12, true) };
    }
    capOff = next;
  }
  return info;
}
