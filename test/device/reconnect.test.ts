/**
 * Clients that go away: one that vanishes mid-run (socket closed while its
 * memory is mapped and a job is in flight) and one that leaves politely.
 * The emulator process stays up, resets the device and serves the next
 * client. No VM.
 */
import { randomFillSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENUMS, reg } from '../../emulator/abi/abi.js';
import { SgiovDriver, VEC_DMA } from '../../emulator/client/sgiov-driver.js';
import { startRig, type Rig } from '../support/device.js';

let rig: Rig;

beforeAll(async () => {
  rig = await startRig('reconnect');
});
afterEach(() => rig.closeAll());
afterAll(async () => {
  await rig?.stop();
});

const gone = (): number => (rig.emu.log.match(/client gone/g) ?? []).length;

describe('vfio-user client: clients that go away', () => {
  it('serves a second client, on a reset device, after the first vanishes mid-run with memory mapped', async () => {
    rig.keepOnFailure();
    const before = gone();
    const first = rig.driver();
    const c1 = first.client;
    first.write('SCRATCH', 0xfeedf00d);
    expect(first.read32('SCRATCH')).toBe(0xfeedf00d);
    // a few good jobs, then one rung and abandoned, and the socket closed under it
    for (let i = 0; i < 3; i++) {
      randomFillSync(c1.mem.subarray(0, 65536));
      expect(first.dmaJob({ src: c1.addr(0), dst: c1.addr(1 << 20), len: 65536, op: 'invert' }).status).toBe(
        ENUMS.DMA_STATE.DONE,
      );
    }
    first.write('DMA_SRC', c1.addr(0), 8);
    first.write('DMA_DST', c1.addr(1 << 20), 8);
    first.write('DMA_LEN', 1 << 20);
    first.write('DMA_OP', ENUMS.DMA_OP.COPY);
    first.doorbell(0xabcd);
    c1.disconnectAbruptly();
    expect(c1.connected).toBe(false);
    expect(() => c1.bar0Read(0)).toThrow(/not connected.*disconnected abruptly/);
    expect(await rig.disconnects(before + 1)).toBe(true);
    expect(rig.emu.alive).toBe(true);

    const second = new SgiovDriver(rig.connect());
    const c2 = second.client;
    expect(second.read32('SCRATCH')).toBe(0); // the device was reset
    expect(second.read32('DMA_COMPLETED')).toBe(0);
    expect(second.read32('IRQ_COUNT')).toBe(0);
    expect(second.read32('CONTROL')).toBe(0);
    expect(second.read32('ERROR_CODE')).toBe(ENUMS.ERR.NONE);
    second.bringUp();
    randomFillSync(c2.mem.subarray(0, 4096));
    const r = second.dmaJob({ src: c2.addr(0), dst: c2.addr(8192), len: 4096, op: 'invert' });
    expect(r.irqVector).toBe(VEC_DMA);
    expect(r.status).toBe(ENUMS.DMA_STATE.DONE);
    for (let i = 0; i < 4096; i++)
      if (c2.mem[8192 + i] !== (~c2.mem[i]! & 0xff)) throw new Error(`byte ${i} wrong`);
    expect(second.read32('DMA_COMPLETED')).toBe(1);
    expect(rig.emu.alive).toBe(true);
  });

  it('serves client after client that close politely (DMA_UNMAP, then hang-up), each on a reset device', async () => {
    rig.keepOnFailure();
    const before = gone();
    for (let i = 1; i <= 3; i++) {
      const c = rig.connect();
      expect(c.bar0Read(reg('SCRATCH').offset), `client ${i}`).toBe(0n);
      c.bar0Write(reg('SCRATCH').offset, BigInt(i));
      c.close();
      expect(() => c.mem).toThrow(/closed/);
      c.close(); // idempotent
    }
    expect(await rig.disconnects(before + 3)).toBe(true);
    expect(rig.emu.alive).toBe(true);
  });

  it('resets the device on VFIO_USER_DEVICE_RESET without dropping the connection', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    drv.write('SCRATCH', 7);
    drv.client.deviceReset();
    expect(drv.client.connected).toBe(true);
    expect(drv.read32('SCRATCH')).toBe(0);
    expect(drv.read32('CONTROL')).toBe(0);
    // bring it up again and it works
    drv.bringUp();
    expect(
      drv.dmaJob({ src: drv.client.addr(0), dst: drv.client.addr(4096), len: 64, op: 'copy' }).status,
    ).toBe(ENUMS.DMA_STATE.DONE);
  });
});
