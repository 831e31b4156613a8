import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENUMS, reg } from '../../emulator/abi/abi.js';
import { startRig, type Rig } from '../support/device.js';

let rig: Rig;
beforeAll(async () => {
  rig = await startRig('cfgreset');
});
afterAll(async () => {
  await rig?.stop();
});

const PCI_COMMAND = 0x04;

describe('PCI config state across clients, and interrupt delivery rules', () => {
  it('a new client finds bus mastering and MSI-X off, as after a reset', async () => {
    rig.keepOnFailure();
    const first = rig.driver();
    expect(Number(first.client.configRead(PCI_COMMAND, 2)) & 0x4).toBe(0x4);
    rig.closeAll();
    expect(await rig.disconnects(1)).toBe(true);
    const c = rig.connect();
    expect(Number(c.configRead(PCI_COMMAND, 2)) & 0x6).toBe(0);
    const msix = c.findCapability(0x11)!;
    expect(Number(c.configRead(msix + 2, 2)) & 0x8000).toBe(0);
    // DMA without enabling bus mastering again fails, as on hardware
    c.bar0Write(reg('CONTROL').offset, 1n);
    c.bar0Write(reg('DMA_SRC').offset, c.addr(0), 8);
    c.bar0Write(reg('DMA_DST').offset, c.addr(8192), 8);
    c.bar0Write(reg('DMA_LEN').offset, 64n);
    c.bar0Write(reg('DMA_OP').offset, 0n);
    c.bar0Write(0x1000, 1n);
    let code = 0n;
    for (let i = 0; i < 1000 && code === 0n; i++) code = c.bar0Read(reg('ERROR_CODE').offset);
    expect(code).toBe(BigInt(ENUMS.ERR.DMA_BUS_MASTER_OFF));
  });

  it('no MSI-X message while MSI-X is disabled in config space', () => {
    rig.keepOnFailure();
    rig.closeAll();
    const d = rig.driver();
    const c = d.client;
    const ok = d.dmaJob({ src: c.addr(0), dst: c.addr(65536), len: 4096, op: 'copy' });
    expect(ok.irqVector).toBe(0);
    const msix = c.findCapability(0x11)!;
    c.configWrite(msix + 2, 2, Number(c.configRead(msix + 2, 2)) & ~0x8000);
    const before = c.irqCount(0);
    const r = d.dmaJob({ src: c.addr(0), dst: c.addr(65536), len: 4096, op: 'copy', wait: 'poll' });
    expect(r.status).toBe(ENUMS.DMA_STATE.DONE);
    expect(c.waitIrq(0, 200)).toBe(false);
    expect(c.irqCount(0)).toBe(before);
  });
});
