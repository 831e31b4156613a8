import { describe, expect, it } from 'vitest';
import { ABI_VERSION, BITS, CONSTANTS, DOORBELLS, ENUMS, reg } from '../../../emulator/abi/abi.js';
import { rig } from '../../support/unit.js';

const ERR = ENUMS.ERR;
const b = (n: number): number => 1 << n;

/** Programs a DMA job and rings the doorbell; returns the source and destination offsets. */
function dmaJob(
  t: ReturnType<typeof rig>,
  o: { src?: bigint; dst?: bigint; len?: number; op?: number; vector?: number; tag?: number } = {},
) {
  t.w('DMA_SRC', o.src ?? t.bus.addr(0));
  t.w('DMA_DST', o.dst ?? t.bus.addr(0x20000));
  t.w('DMA_LEN', o.len ?? 4096);
  t.w('DMA_OP', o.op ?? ENUMS.DMA_OP.INVERT);
  t.w('DMA_VECTOR', o.vector ?? 0);
  t.dev.barWrite(0, DOORBELLS.DMA, 4, BigInt(o.tag ?? 7));
  t.bus.runAll();
}

function enabled() {
  const t = rig();
  t.w('CONTROL', b(BITS.CONTROL.ENABLE));
  t.w('IRQ_MASK', b(BITS.IRQ.DMA_DONE) | b(BITS.IRQ.ERROR));
  t.w('ERR_VECTOR', 1);
  return t;
}

describe('register file', () => {
  it('identifies the device', () => {
    const t = rig();
    expect(t.r('ID')).toBe(BigInt(CONSTANTS.ID_MAGIC));
    expect(t.r('VERSION')).toBe(BigInt((ABI_VERSION.major << 16) | ABI_VERSION.minor));
    expect(Number(t.r('CAPS')) & b(BITS.CAP.DMA_ENGINE)).not.toBe(0);
    expect(t.r('NUM_VECTORS')).toBe(16n);
    expect(Number(t.r('STATUS')) & b(BITS.STATUS.READY)).not.toBe(0);
  });

  it('reads back SCRATCH and both halves of 64-bit registers', () => {
    const t = rig();
    t.w('SCRATCH', 0xdeadbeef);
    expect(t.r('SCRATCH')).toBe(0xdeadbeefn);
    t.w('DMA_SRC', 0x1122334455667788n);
    expect(t.r('DMA_SRC')).toBe(0x1122334455667788n);
    const off = reg('DMA_SRC').offset;
    expect(t.dev.barRead(0, off, 4)).toBe(0x55667788n);
    expect(t.dev.barRead(0, off + 4, 4)).toBe(0x11223344n);
    t.dev.barWrite(0, off + 4, 4, 0xaabbccddn);
    expect(t.r('DMA_SRC')).toBe(0xaabbccdd55667788n);
    t.dev.barWrite(0, off, 4, 0x01020304n);
    expect(t.r('DMA_SRC')).toBe(0xaabbccdd01020304n);
  });

  it('enables, reports bus mastering, and resets through CONTROL', () => {
    const t = rig();
    t.w('CONTROL', b(BITS.CONTROL.ENABLE));
    t.w('SCRATCH', 5);
    expect(Number(t.r('STATUS')) & b(BITS.STATUS.ENABLED)).not.toBe(0);
    expect(Number(t.r('STATUS')) & b(BITS.STATUS.BUS_MASTER)).not.toBe(0);
    t.bus.busMaster = false;
    expect(Number(t.r('STATUS')) & b(BITS.STATUS.BUS_MASTER)).toBe(0);
    t.w('CONTROL', b(BITS.CONTROL.RESET) >>> 0);
    expect(t.r('CONTROL')).toBe(0n);
    expect(t.r('SCRATCH')).toBe(0n);
  });

  it('clears IRQ_STATUS bits written as 1 only', () => {
    const t = enabled();
    dmaJob(t);
    t.dev.barWrite(0, DOORBELLS.BASE + 0x10, 4, 1n); // a bad doorbell sets ERROR too
    expect(Number(t.r('IRQ_STATUS'))).toBe(b(BITS.IRQ.DMA_DONE) | b(BITS.IRQ.ERROR));
    t.w('IRQ_STATUS', b(BITS.IRQ.ERROR));
    expect(Number(t.r('IRQ_STATUS'))).toBe(b(BITS.IRQ.DMA_DONE));
  });
});

describe('DMA engine', () => {
  it('inverts a buffer into another and raises the completion vector', () => {
    const t = enabled();
    for (let i = 0; i < 4096; i++) t.bus.mem[i] = (i * 7) & 0xff;
    dmaJob(t, { len: 4096, tag: 0x1234, vector: 3 });
    for (let i = 0; i < 4096; i++) expect(t.bus.mem[0x20000 + i]).toBe(~((i * 7) & 0xff) & 0xff);
    expect(t.bus.mem[0x20000 + 4096]).toBe(0); // nothing beyond the length
    expect(t.r('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.DONE));
    expect(t.r('DMA_TAG')).toBe(0x1234n);
    expect(t.r('DMA_COMPLETED')).toBe(1n);
    expect(t.bus.interrupts).toEqual([3]);
    expect(t.r('IRQ_COUNT')).toBe(1n);
  });

  it('copies, also between overlapping ranges', () => {
    const t = enabled();
    for (let i = 0; i < 100; i++) t.bus.mem[i] = i + 1;
    dmaJob(t, { src: t.bus.addr(0), dst: t.bus.addr(10), len: 100, op: ENUMS.DMA_OP.COPY });
    for (let i = 0; i < 100; i++) expect(t.bus.mem[10 + i]).toBe(i + 1);
  });

  it('runs the job after the doorbell write returns, not inside it', () => {
    const t = enabled();
    t.w('DMA_SRC', t.bus.addr(0));
    t.w('DMA_DST', t.bus.addr(0x1000));
    t.w('DMA_LEN', 16);
    t.w('DMA_OP', 1);
    t.bus.mem.fill(0, 0x1000, 0x1010);
    t.dev.barWrite(0, DOORBELLS.DMA, 4, 1n);
    expect(t.r('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.IDLE));
    expect(t.bus.mem[0x1000]).toBe(0);
    t.bus.runAll();
    expect(t.bus.mem[0x1000]).toBe(0xff);
  });

  it('counts no interrupt when the guest has not set up the vector, but keeps the cause pending', () => {
    const t = enabled();
    t.bus.enabledVectors.delete(0);
    dmaJob(t);
    expect(t.bus.interrupts).toEqual([]);
    expect(t.r('IRQ_COUNT')).toBe(0n);
    expect(Number(t.r('IRQ_STATUS')) & b(BITS.IRQ.DMA_DONE)).not.toBe(0);
  });

  it('raises no interrupt for a masked cause', () => {
    const t = enabled();
    t.w('IRQ_MASK', 0);
    dmaJob(t);
    expect(t.bus.interrupts).toEqual([]);
    expect(t.r('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.DONE));
  });
});

describe('bad input: each gets a defined outcome and the device keeps serving', () => {
  /** After any error: clear it, and a good job must still work. */
  function stillWorks(t: ReturnType<typeof rig>): void {
    t.w('ERROR_CODE', 0);
    expect(t.r('ERROR_CODE')).toBe(0n);
    expect(Number(t.r('STATUS')) & b(BITS.STATUS.ERROR)).toBe(0);
    t.bus.mem.fill(0x0f, 0, 64);
    dmaJob(t, { len: 64, tag: 99 });
    expect(t.r('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.DONE));
    expect(t.bus.mem[0x20000]).toBe(0xf0);
  }

  function expectError(t: ReturnType<typeof rig>, code: number, addr?: bigint): void {
    expect(t.r('ERROR_CODE')).toBe(BigInt(code));
    if (addr !== undefined) expect(t.r('ERROR_ADDR')).toBe(addr);
    expect(Number(t.r('STATUS')) & b(BITS.STATUS.ERROR)).not.toBe(0);
    expect(t.bus.interrupts).toContain(1); // the error vector
  }

  it('undefined register: reads 0, writes ignored, counted', () => {
    const t = enabled();
    expect(t.dev.barRead(0, 0x040, 4)).toBe(0n);
    t.dev.barWrite(0, 0x800, 4, 0x1234n);
    t.dev.barWrite(0, 0xfffc, 4, 0x1234n);
    expect(t.dev.barRead(0, 0x800, 4)).toBe(0n);
    expect(t.r('BAD_ACCESS_COUNT')).toBe(4n);
    stillWorks(t);
  });

  it('unsupported sizes and misaligned accesses: reads all-ones, writes ignored, counted', () => {
    const t = enabled();
    t.w('SCRATCH', 0x55aa55aa);
    expect(t.dev.barRead(0, reg('ID').offset, 1)).toBe(0xffn);
    expect(t.dev.barRead(0, reg('ID').offset, 2)).toBe(0xffffn);
    expect(t.dev.barRead(0, reg('ID').offset, 8)).toBe(0xffffffffffffffffn); // 8 bytes at a 4-byte register
    expect(t.dev.barRead(0, reg('SCRATCH').offset + 1, 4)).toBe(0xffffffffn);
    t.dev.barWrite(0, reg('SCRATCH').offset, 2, 0n);
    t.dev.barWrite(0, reg('SCRATCH').offset, 1, 0n);
    expect(t.r('SCRATCH')).toBe(0x55aa55aan);
    expect(t.r('BAD_ACCESS_COUNT')).toBe(6n);
    expect(t.r('ERROR_CODE')).toBe(0n); // bad accesses are counted, not latched as device errors
    stillWorks(t);
  });

  it('writes to read-only registers are ignored and counted', () => {
    const t = enabled();
    t.w('ID', 0);
    t.w('DMA_COMPLETED', 55);
    expect(t.r('ID')).toBe(BigInt(CONSTANTS.ID_MAGIC));
    expect(t.r('DMA_COMPLETED')).toBe(0n);
    expect(t.r('BAD_ACCESS_COUNT')).toBe(2n);
  });

  it('accesses to a BAR without registers are counted', () => {
    const t = enabled();
    expect(t.dev.barRead(3, 0, 4)).toBe(0xffffffffn);
    t.dev.barWrite(3, 0, 4, 1n);
    expect(t.r('BAD_ACCESS_COUNT')).toBe(2n);
  });

  it('trapped accesses to the shared-memory BAR reach the memory the device polls; odd ones are counted', () => {
    const t = enabled();
    t.dev.barWrite(2, 0x1008, 8, 0x0102030405060708n);
    expect(t.bus.shm[0x1008]).toBe(0x08);
    expect(t.dev.barRead(2, 0x100c, 4)).toBe(0x01020304n);
    expect(t.dev.barRead(2, 0x1001, 4)).toBe(0xffffffffn);
    t.dev.barWrite(2, 0x1ffff, 1, 0n);
    expect(t.r('BAD_ACCESS_COUNT')).toBe(2n);
  });

  it('an undefined doorbell latches BAD_DOORBELL with its offset', () => {
    const t = enabled();
    t.dev.barWrite(0, 0x1ff0, 4, 1n);
    expectError(t, ERR.BAD_DOORBELL, 0x1ff0n);
    stillWorks(t);
  });

  it('a doorbell with a bad access size is ignored and counted', () => {
    const t = enabled();
    t.dev.barWrite(0, DOORBELLS.DMA, 2, 1n);
    t.bus.runAll();
    expect(t.r('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.IDLE));
    expect(t.r('BAD_ACCESS_COUNT')).toBe(1n);
  });

  it('DMA from an address no region covers: DMA_UNMAPPED with the address', () => {
    const t = enabled();
    dmaJob(t, { src: 0x7f00_0000_0000n });
    expectError(t, ERR.DMA_UNMAPPED, 0x7f00_0000_0000n);
    expect(t.r('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.ERROR));
    stillWorks(t);
  });

  it('DMA that runs past the end of guest memory: DMA_UNMAPPED, nothing written', () => {
    const t = enabled();
    const end = t.bus.addr(t.bus.mem.length);
    t.bus.mem.fill(0xee, t.bus.mem.length - 16);
    dmaJob(t, { src: t.bus.addr(0), dst: end - 16n, len: 32 });
    expectError(t, ERR.DMA_UNMAPPED, end - 16n);
    expect(t.bus.mem[t.bus.mem.length - 1]).toBe(0xee);
    stillWorks(t);
  });

  it('DMA into a region the client unmapped: DMA_UNMAPPED', () => {
    const t = enabled();
    t.bus.regions.remove(t.bus.base, t.bus.mem.length);
    dmaJob(t);
    expectError(t, ERR.DMA_UNMAPPED, t.bus.addr(0));
  });

  it.each([
    ['zero length', { len: 0 }, ERR.DMA_BAD_LENGTH],
    ['length over the maximum', { len: CONSTANTS.DMA_MAX_LEN + 1 }, ERR.DMA_BAD_LENGTH],
    ['unknown op', { op: 7 }, ERR.BAD_OPCODE],
    ['vector out of range', { vector: 16 }, ERR.BAD_VECTOR],
  ])('a doorbell with bad arguments (%s) latches the error', (_name, job, code) => {
    const t = enabled();
    dmaJob(t, job);
    expectError(t, code);
    expect(t.r('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.ERROR));
    stillWorks(t);
  });

  it('DMA while not enabled: NOT_ENABLED', () => {
    const t = enabled();
    t.w('CONTROL', 0);
    dmaJob(t);
    expectError(t, ERR.NOT_ENABLED);
  });

  it('DMA with bus mastering off: DMA_BUS_MASTER_OFF, memory untouched', () => {
    const t = enabled();
    t.bus.busMaster = false;
    t.bus.mem[0x20000] = 0x42;
    dmaJob(t);
    expectError(t, ERR.DMA_BUS_MASTER_OFF);
    expect(t.bus.mem[0x20000]).toBe(0x42);
    t.bus.busMaster = true;
    stillWorks(t);
  });

  it('the first error stays latched until the driver clears it', () => {
    const t = enabled();
    dmaJob(t, { len: 0 });
    dmaJob(t, { op: 9 });
    expect(t.r('ERROR_CODE')).toBe(BigInt(ERR.DMA_BAD_LENGTH));
    t.w('ERROR_CODE', 0);
    dmaJob(t, { op: 9 });
    expect(t.r('ERROR_CODE')).toBe(BigInt(ERR.BAD_OPCODE));
  });
});
