/**
 * DMA through guest memory the client shares with the device (a memfd,
 * DMA_MAP'd): the device reads and writes this process's memory, and its
 * MSI-X interrupts arrive on the client's eventfds. No VM.
 */
import { randomFillSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENUMS } from '../../emulator/abi/abi.js';
import { VEC_DMA, VEC_ERR } from '../../emulator/client/sgiov-driver.js';
import { startRig, type Rig } from '../support/device.js';

let rig: Rig;

beforeAll(async () => {
  rig = await startRig('dma');
});
afterEach(() => rig.closeAll());
afterAll(async () => {
  await rig?.stop();
});

/** Index of the first byte where dst differs from f(src), or -1. */
function firstMismatch(src: Uint8Array, dst: Uint8Array, f: (b: number) => number): number {
  for (let i = 0; i < src.length; i++) if (dst[i] !== f(src[i]!)) return i;
  return -1;
}

describe('vfio-user client: DMA into shared guest memory', () => {
  it('runs the invert job: every byte inverted, MSI-X on the eventfd, IRQ_COUNT and DMA_COMPLETED rise', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    const len = 64 * 1024;
    const srcOff = 0x1000;
    const dstOff = 0x20000;
    for (let run = 1; run <= 3; run++) {
      const src = c.mem.subarray(srcOff, srcOff + len);
      const dst = c.mem.subarray(dstOff, dstOff + len);
      randomFillSync(src);
      dst.fill(0);
      const irqsBefore = drv.read32('IRQ_COUNT');
      const doneBefore = drv.read32('DMA_COMPLETED');
      const eventsBefore = c.irqCount(VEC_DMA);
      const r = drv.dmaJob({
        src: c.addr(srcOff),
        dst: c.addr(dstOff),
        len,
        op: 'invert',
        tag: 0x1000 + run,
      });
      expect(r.irqVector, `run ${run}: the completion interrupt`).toBe(VEC_DMA);
      expect(r.finished).toBe(true);
      expect(r.status).toBe(ENUMS.DMA_STATE.DONE);
      expect(r.tag).toBe(0x1000 + run);
      expect(r.errorCode).toBe(ENUMS.ERR.NONE);
      expect(
        firstMismatch(src, dst, (b) => ~b & 0xff),
        `run ${run}: first wrong byte`,
      ).toBe(-1);
      // the bytes around the destination are untouched
      expect(c.mem[dstOff - 1]).toBe(0);
      expect(c.mem[dstOff + len]).toBe(0);
      expect(drv.read32('IRQ_COUNT')).toBe(irqsBefore + 1);
      expect(drv.read32('DMA_COMPLETED')).toBe(doneBefore + 1);
      expect(c.irqCount(VEC_DMA)).toBe(eventsBefore + 1);
      expect(c.irqCount(VEC_ERR)).toBe(0);
    }
  });

  it('copies 1 MiB (the longest job) and short odd lengths', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    for (const len of [1, 3, 4097, 1 << 20]) {
      const src = c.mem.subarray(0, len);
      const dst = c.mem.subarray(2 << 20, (2 << 20) + len);
      randomFillSync(src);
      dst.fill(0xa5);
      const r = drv.dmaJob({ src: c.addr(0), dst: c.addr(2 << 20), len, op: 'copy' });
      expect(r.status, `len ${len}`).toBe(ENUMS.DMA_STATE.DONE);
      expect(
        firstMismatch(src, dst, (b) => b),
        `len ${len}: first wrong byte`,
      ).toBe(-1);
    }
  });

  it('completes a job by polling DMA_STATUS when it does not wait for the interrupt', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    c.mem.fill(0x3c, 0, 4096);
    const r = drv.dmaJob({ src: c.addr(0), dst: c.addr(8192), len: 4096, op: 'invert', wait: 'poll' });
    expect(r.finished).toBe(true);
    expect(r.status).toBe(ENUMS.DMA_STATE.DONE);
    expect(c.mem[8192]).toBe(0xc3);
    expect(c.mem[8192 + 4095]).toBe(0xc3);
    // the interrupt was sent all the same
    expect(c.waitIrq(VEC_DMA, 2000)).toBe(true);
  });

  it('loses the device view of the memory after DMA_UNMAP: the next DMA fails with DMA_UNMAPPED', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    c.mem.fill(0x11, 0, 4096);
    c.mem.fill(0, 4096, 8192);
    expect(drv.dmaJob({ src: c.addr(0), dst: c.addr(4096), len: 4096, op: 'copy' }).status).toBe(
      ENUMS.DMA_STATE.DONE,
    );
    c.mem.fill(0, 4096, 8192);
    c.unmap();
    expect(c.mapped).toBe(false);
    const r = drv.dmaJob({ src: c.addr(0), dst: c.addr(4096), len: 4096, op: 'copy' });
    expect(r.status).toBe(ENUMS.DMA_STATE.ERROR);
    expect(r.errorCode).toBe(ENUMS.ERR.DMA_UNMAPPED);
    expect(r.errorAddr).toBe(c.addr(0));
    expect(r.irqVector).toBe(VEC_ERR);
    expect(c.mem.subarray(4096, 8192).every((b) => b === 0)).toBe(true); // nothing written
    // map it again: DMA works again
    drv.clearError();
    c.map();
    expect(drv.dmaJob({ src: c.addr(0), dst: c.addr(4096), len: 4096, op: 'copy' }).status).toBe(
      ENUMS.DMA_STATE.DONE,
    );
    expect(c.mem[4096]).toBe(0x11);
  });
});
