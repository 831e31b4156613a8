/**
 * The vfio-user client against the emulator process: handshake, device and
 * region information, register access, bring-up as the kernel module does
 * it. No VM.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ABI_VERSION, BARS, BITS, CONSTANTS, PCI_IDS, reg } from '../../emulator/abi/abi.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { VfioUserError } from '../../emulator/client/vfio-user-protocol.js';
import { startRig, type Rig } from '../support/device.js';

const bit = (n: number): number => (1 << n) >>> 0;
let rig: Rig;

beforeAll(async () => {
  rig = await startRig('bringup');
});
afterEach(() => rig.closeAll());
afterAll(async () => {
  await rig?.stop();
});

describe('vfio-user client: bring-up', () => {
  it('negotiates version 0.x and reads the device, its regions and its MSI-X vectors', () => {
    rig.keepOnFailure();
    const c = rig.connect();
    expect(c.server.major).toBe(0);
    expect(c.server.maxMsgFds).toBeGreaterThanOrEqual(1);
    expect(c.device.numRegions).toBeGreaterThanOrEqual(8);
    expect(c.regionInfo(BARS.REGS_BAR).size).toBe(BARS.REGS_BAR_SIZE);
    expect(c.regionInfo(BARS.REGS_BAR).readable && c.regionInfo(BARS.REGS_BAR).writable).toBe(true);
    expect(c.regionInfo(BARS.MSIX_BAR).size).toBe(BARS.MSIX_BAR_SIZE);
    expect(c.regionInfo(7).size).toBeGreaterThanOrEqual(256); // config space
    expect(c.msixCount).toBe(BARS.MSIX_VECTORS);
    expect(c.mapped).toBe(true);
    // PCI identity through config space
    expect(Number(c.configRead(0x00, 2))).toBe(PCI_IDS.VENDOR_ID);
    expect(Number(c.configRead(0x02, 2))).toBe(PCI_IDS.DEVICE_ID);
    expect(Number(c.configRead(0x0b, 1))).toBe(PCI_IDS.CLASS_BASE);
    expect(c.findCapability(0x11)).not.toBeNull(); // MSI-X
    // every region the emulator offers for mmap is mapped, whole or area by area
    for (const r of c.regions.values()) {
      const mapped = c.mappedAreas(r.index).reduce((n, a) => n + a.size, 0);
      const offered = r.mmappable
        ? (r.sparseAreas ?? [{ offset: 0, size: r.size }]).reduce((n, a) => n + a.size, 0)
        : 0;
      expect(mapped, `region ${r.index}`).toBe(offered);
    }
  });

  it('reads ID, VERSION and NUM_VECTORS; SCRATCH reads back what was written', () => {
    rig.keepOnFailure();
    const c = rig.connect();
    expect(Number(c.bar0Read(reg('ID').offset))).toBe(CONSTANTS.ID_MAGIC);
    expect(Number(c.bar0Read(reg('VERSION').offset))).toBe((ABI_VERSION.major << 16) | ABI_VERSION.minor);
    expect(Number(c.bar0Read(reg('NUM_VECTORS').offset))).toBe(BARS.MSIX_VECTORS);
    const scratch = reg('SCRATCH').offset;
    expect(c.bar0Read(scratch)).toBe(0n);
    for (const v of [0xdeadbeefn, 0n, 0xffffffffn, 0x12345678n]) {
      c.bar0Write(scratch, v);
      expect(c.bar0Read(scratch)).toBe(v);
    }
  });

  it('reads and writes 64-bit registers whole and by 32-bit halves', () => {
    rig.keepOnFailure();
    const c = rig.connect();
    const src = reg('DMA_SRC');
    expect(src.width).toBe(8);
    c.bar0Write(src.offset, 0x1122334455667788n, 8);
    expect(c.bar0Read(src.offset, 8)).toBe(0x1122334455667788n);
    expect(c.bar0Read(src.offset, 4)).toBe(0x55667788n);
    expect(c.bar0Read(src.offset + 4, 4)).toBe(0x11223344n);
    c.bar0Write(src.offset + 4, 0xa0b0c0d0n); // high half only
    expect(c.bar0Read(src.offset, 8)).toBe(0xa0b0c0d055667788n);
    c.bar0Write(src.offset, 0x01020304n); // low half only
    expect(c.bar0Read(src.offset, 8)).toBe(0xa0b0c0d001020304n);
    // ERROR_ADDR is 64-bit too and reads 0 after reset
    expect(c.bar0Read(reg('ERROR_ADDR').offset, 8)).toBe(0n);
  });

  it('brings the device up as the kernel module does: bus master, MSI-X, enabled, no error', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    expect(Number(c.configRead(0x04, 2)) & 0x6).toBe(0x6); // memory space + bus master
    const msixCap = c.findCapability(0x11)!;
    expect(Number(c.configRead(msixCap + 2, 2)) & 0x8000).toBe(0x8000); // MSI-X Enable
    expect(c.msixVectors).toBe(BARS.MSIX_VECTORS);
    const status = drv.read32('STATUS');
    for (const b of [BITS.STATUS.READY, BITS.STATUS.ENABLED, BITS.STATUS.BUS_MASTER])
      expect(status & bit(b)).toBe(bit(b));
    expect(status & bit(BITS.STATUS.ERROR)).toBe(0);
    expect(drv.read32('IRQ_MASK')).toBe(bit(BITS.IRQ.DMA_DONE) | bit(BITS.IRQ.ERROR));
    expect(drv.read32('ERR_VECTOR')).toBe(1);
    expect(drv.read32('CONTROL') & bit(BITS.CONTROL.ENABLE)).toBe(bit(BITS.CONTROL.ENABLE));
  });

  it('turns a server error reply into an Error naming the command and the errno, and carries on', () => {
    rig.keepOnFailure();
    const c = rig.connect();
    // past the end of BAR0: libvfio-user refuses the access with EINVAL
    const err = (() => {
      try {
        c.regionRead(BARS.REGS_BAR, BARS.REGS_BAR_SIZE, 4);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(VfioUserError);
    expect((err as VfioUserError).errno).toBe(22);
    expect((err as Error).message).toMatch(/VFIO_USER_REGION_READ failed: errno 22 \(EINVAL\)/);
    // a BAR the device does not have (size 0)
    const absent = [0, 1, 2, 3, 4, 5].find((i) => !c.regions.has(i));
    expect(absent).toBeDefined();
    expect(() => c.regionWrite(absent!, 0, 4, 1n)).toThrow(/VFIO_USER_REGION_WRITE failed: errno 22/);
    // the connection is still good
    expect(c.connected).toBe(true);
    expect(Number(c.bar0Read(reg('ID').offset))).toBe(CONSTANTS.ID_MAGIC);
  });

  it('fails to connect to a socket nobody listens on, with the path in the message', () => {
    const path = rig.dir.file('nobody.sock');
    expect(() => VfioUserClient.connect(path)).toThrow(/connect\(.*nobody\.sock\) failed: errno 2\b/);
  });
});
