import { describe, expect, it } from 'vitest';
import { BARS } from '../../../emulator/abi/abi.js';
import {
  msixCapability,
  parseId,
  pcieCapability,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
} from '../../../emulator/pci/config.js';

describe('PCI configuration', () => {
  it('encodes the MSI-X capability with table and PBA in the MSI-X BAR', () => {
    const c = msixCapability(16);
    expect(c[0]).toBe(PCI_CAP_ID_MSIX);
    expect(c.readUInt16LE(2) & 0x7ff).toBe(15);
    expect(c.readUInt32LE(4)).toBe(BARS.MSIX_TABLE_OFFSET | BARS.MSIX_BAR);
    expect(c.readUInt32LE(8)).toBe(BARS.MSIX_PBA_OFFSET | BARS.MSIX_BAR);
    expect(() => msixCapability(0)).toThrow(RangeError);
  });

  it('encodes a PCI Express v2 endpoint capability', () => {
    const c = pcieCapability();
    expect(c.length).toBe(0x3c);
    expect(c[0]).toBe(PCI_CAP_ID_EXP);
    expect(c.readUInt16LE(2) & 0xf).toBe(2);
    expect((c.readUInt16LE(2) >> 4) & 0xf).toBe(0);
  });

  it('parses ids in hex and decimal and names the bad one', () => {
    expect(parseId('0x1af4', 16, '--vendor-id')).toBe(0x1af4);
    expect(parseId('4660', 16, '--vendor-id')).toBe(0x1234);
    expect(() => parseId('0x10000', 16, '--vendor-id')).toThrow(/--vendor-id/);
    expect(() => parseId('abc', 16, '--device-id')).toThrow(/--device-id/);
  });
});
