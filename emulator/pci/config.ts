/**
 * What the device looks like on the PCI bus: ids, class, BARs and the
 * capabilities (PCI Express endpoint, MSI-X). Pure data, no transport.
 */
import { BARS, PCI_IDS } from '../abi/abi.js';

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  subsysVendorId: number;
  subsysId: number;
  classBase: number;
  classSub: number;
  classProgIf: number;
  revision: number;
}

export const DEFAULT_IDENTITY: PciIdentity = {
  vendorId: PCI_IDS.VENDOR_ID,
  deviceId: PCI_IDS.DEVICE_ID,
  subsysVendorId: PCI_IDS.SUBSYS_VENDOR_ID,
  subsysId: PCI_IDS.SUBSYS_ID,
  classBase: PCI_IDS.CLASS_BASE,
  classSub: PCI_IDS.CLASS_SUB,
  classProgIf: PCI_IDS.CLASS_PROG_IF,
  revision: PCI_IDS.REVISION,
};

export const PCI_CAP_ID_EXP = 0x10;
export const PCI_CAP_ID_MSIX = 0x11;
const PCI_CAP_EXP_SIZEOF = 0x3c; // PCIe capability structure v2, endpoint

/** PCI Express capability: version 2, endpoint, a 2.5 GT/s x1 link. */
export function pcieCapability(): Buffer {
  const b = Buffer.alloc(PCI_CAP_EXP_SIZEOF);
  b[0] = PCI_CAP_ID_EXP;
  b.writeUInt16LE(0x0002, 2); // capability version 2, device/port type 0 = endpoint
  b.writeUInt32LE(0, 4); // device capabilities: 128-byte max payload, no FLR
  b.writeUInt32LE(0x11, 12); // link capabilities: max speed 2.5 GT/s, max width x1
  b.writeUInt16LE(0x11, 18); // link status: current speed 2.5 GT/s, width x1
  return b;
}

/** MSI-X capability: `vectors` entries, table and PBA in BARS.MSIX_BAR. */
export function msixCapability(vectors: number): Buffer {
  if (vectors < 1 || vectors > 2048) throw new RangeError(`MSI-X vector count ${vectors} not in 1..2048`);
  const b = Buffer.alloc(12);
  b[0] = PCI_CAP_ID_MSIX;
  b.writeUInt16LE(vectors - 1, 2); // table size N-1; enable and function mask start clear
  b.writeUInt32LE((BARS.MSIX_TABLE_OFFSET | BARS.MSIX_BAR) >>> 0, 4);
  b.writeUInt32LE((BARS.MSIX_PBA_OFFSET | BARS.MSIX_BAR) >>> 0, 8);
  return b;
}

export function parseId(s: string, bits: 8 | 16, name: string): number {
  const v = /^0x[0-9a-f]+$/i.test(s) ? parseInt(s, 16) : /^[0-9]+$/.test(s) ? parseInt(s, 10) : NaN;
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits)
    throw new RangeError(`${name}: '${s}' is not a ${bits}-bit number`);
  return v;
}
