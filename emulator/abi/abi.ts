/**
 * The guest/device ABI of the emulated SG-IOV device: the one place where
 * register offsets, bit fields, codes and sizes are defined. The C header
 * the guest driver includes (guest-driver/include/sgiov_abi.h) is generated
 * from this file by gen-header.ts, and a unit test fails when the committed
 * header differs from what this file generates.
 */

export const ABI_VERSION = { major: 1, minor: 0 } as const;

/** PCI identity (defaults; the CLI can override the ids). 0x1234 is the
 *  vendor id that QEMU's own example devices (edu, bochs) use for devices
 *  no vendor owns; the device id spells "SG". */
export const PCI_IDS = {
  VENDOR_ID: 0x1234,
  DEVICE_ID: 0x5347,
  SUBSYS_VENDOR_ID: 0x1234,
  SUBSYS_ID: 0x0001,
  /** Network controller, "other" subclass. */
  CLASS_BASE: 0x02,
  CLASS_SUB: 0x80,
  CLASS_PROG_IF: 0x00,
  REVISION: 0x01,
} as const;

/** BAR layout. */
export const BARS = {
  /** Register file and trapped doorbells. */
  REGS_BAR: 0,
  REGS_BAR_SIZE: 0x10000,
  /** MSI-X table at offset 0, PBA at MSIX_PBA_OFFSET, in one BAR. */
  MSIX_BAR: 4,
  MSIX_BAR_SIZE: 0x1000,
  MSIX_TABLE_OFFSET: 0x0,
  MSIX_PBA_OFFSET: 0x800,
  MSIX_VECTORS: 16,
} as const;

export type Access = 'ro' | 'rw' | 'w1c' | 'wo';

export interface RegisterDef {
  name: string;
  offset: number;
  /** Width in bytes: 4 or 8. 8-byte registers also take 4-byte accesses to
   *  either half. */
  width: 4 | 8;
  access: Access;
  doc: string;
}

/** The register file in BAR0, in offset order. */
export const REGISTERS: readonly RegisterDef[] = [
  { name: 'ID', offset: 0x000, width: 4, access: 'ro', doc: 'Magic SGIOV_ID_MAGIC' },
  { name: 'VERSION', offset: 0x004, width: 4, access: 'ro', doc: 'ABI version: major << 16 | minor' },
  { name: 'CAPS', offset: 0x008, width: 4, access: 'ro', doc: 'Capability bits SGIOV_CAP_*' },
  { name: 'STATUS', offset: 0x00c, width: 4, access: 'ro', doc: 'Device status bits SGIOV_STATUS_*' },
  { name: 'CONTROL', offset: 0x010, width: 4, access: 'rw', doc: 'SGIOV_CONTROL_ENABLE; writing SGIOV_CONTROL_RESET resets the device (self-clearing)' },
  { name: 'ERROR_CODE', offset: 0x014, width: 4, access: 'w1c', doc: 'Latched first error SGIOV_ERR_*; any write clears it and STATUS.ERROR' },
  { name: 'ERROR_ADDR', offset: 0x018, width: 8, access: 'ro', doc: 'Guest address (or register offset) the latched error concerns' },
  { name: 'IRQ_STATUS', offset: 0x020, width: 4, access: 'w1c', doc: 'Pending interrupt causes SGIOV_IRQ_*; write 1 to clear' },
  { name: 'IRQ_MASK', offset: 0x024, width: 4, access: 'rw', doc: 'Enabled interrupt causes SGIOV_IRQ_*' },
  { name: 'ERR_VECTOR', offset: 0x028, width: 4, access: 'rw', doc: 'MSI-X vector raised for SGIOV_IRQ_ERROR' },
  { name: 'NUM_VECTORS', offset: 0x02c, width: 4, access: 'ro', doc: 'Number of MSI-X vectors' },
  { name: 'SCRATCH', offset: 0x030, width: 4, access: 'rw', doc: 'Free for the driver: reads back what was written' },
  { name: 'IRQ_COUNT', offset: 0x034, width: 4, access: 'ro', doc: 'MSI-X messages sent since reset' },
  { name: 'BAD_ACCESS_COUNT', offset: 0x038, width: 4, access: 'ro', doc: 'Accesses to undefined offsets or with unsupported sizes since reset' },
  { name: 'DMA_COMPLETED', offset: 0x03c, width: 4, access: 'ro', doc: 'DMA jobs completed since reset' },
  { name: 'DMA_SRC', offset: 0x100, width: 8, access: 'rw', doc: 'DMA job: guest address to read' },
  { name: 'DMA_DST', offset: 0x108, width: 8, access: 'rw', doc: 'DMA job: guest address to write' },
  { name: 'DMA_LEN', offset: 0x110, width: 4, access: 'rw', doc: 'DMA job: length in bytes, 1..SGIOV_DMA_MAX_LEN' },
  { name: 'DMA_OP', offset: 0x114, width: 4, access: 'rw', doc: 'DMA job: transformation SGIOV_DMA_OP_*' },
  { name: 'DMA_VECTOR', offset: 0x118, width: 4, access: 'rw', doc: 'DMA job: MSI-X vector raised on completion' },
  { name: 'DMA_STATUS', offset: 0x11c, width: 4, access: 'ro', doc: 'DMA engine state SGIOV_DMA_STATE_* of the last job' },
  { name: 'DMA_TAG', offset: 0x120, width: 4, access: 'ro', doc: 'Tag written to the doorbell for the last finished job' },
] as const;

/** Trapped doorbells, also in BAR0. A 4-byte write of a tag starts the job. */
export const DOORBELLS = {
  BASE: 0x1000,
  SIZE: 0x1000,
  DMA: 0x1000,
} as const;

export const CONSTANTS = {
  ID_MAGIC: 0x53474956, // "SGIV"
  DMA_MAX_LEN: 1 << 20,
} as const;

/** Bit fields: name -> bit number. */
export const BITS = {
  CAP: { DMA_ENGINE: 0, MSIX: 1 },
  STATUS: { READY: 0, ENABLED: 1, ERROR: 2, BUS_MASTER: 3 },
  CONTROL: { ENABLE: 0, RESET: 31 },
  IRQ: { DMA_DONE: 0, ERROR: 1 },
} as const;

/** Enumerations: name -> value. */
export const ENUMS = {
  DMA_OP: { COPY: 0, INVERT: 1 },
  DMA_STATE: { IDLE: 0, DONE: 1, ERROR: 2 },
  /** Error codes latched in ERROR_CODE (the first error wins until cleared). */
  ERR: {
    NONE: 0,
    DMA_UNMAPPED: 1,
    DMA_BUS_MASTER_OFF: 2,
    DMA_BAD_LENGTH: 3,
    BAD_OPCODE: 4,
    BAD_VECTOR: 5,
    BAD_DOORBELL: 6,
    NOT_ENABLED: 7,
  },
} as const;

export type RegName = (typeof REGISTERS)[number]['name'];

export function reg(name: string): RegisterDef {
  const r = REGISTERS.find((x) => x.name === name);
  if (!r) throw new Error(`no register ${name} in the ABI`);
  return r;
}
