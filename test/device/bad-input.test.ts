/**
 * Bad input through the vfio-user client, as the README's "Bad input"
 * table promises: each is reported to the driver and counted, never fatal,
 * and a good DMA job works right after. No VM.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BITS, DOORBELLS, ENUMS, reg } from '../../emulator/abi/abi.js';
import { VEC_DMA, VEC_ERR, type SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { startRig, TEST_MEM, type Rig } from '../support/device.js';

const bit = (n: number): number => (1 << n) >>> 0;
let rig: Rig;

beforeAll(async () => {
  rig = await startRig('badinput');
});
afterEach(() => rig.closeAll());
afterAll(async () => {
  await rig?.stop();
});

/** A 4 KiB invert job that must pass: the device still works. */
function goodJob(drv: SgiovDriver): void {
  const c = drv.client;
  c.mem.fill(0x5a, 0, 4096);
  c.mem.fill(0, 0x10000, 0x10000 + 4096);
  const r = drv.dmaJob({ src: c.addr(0), dst: c.addr(0x10000), len: 4096, op: 'invert' });
  expect(r.irqVector, 'good job: completion interrupt').toBe(VEC_DMA);
  expect(r.status, 'good job: DMA_STATUS').toBe(ENUMS.DMA_STATE.DONE);
  expect(
    c.mem.subarray(0x10000, 0x10000 + 4096).every((b) => b === 0xa5),
    'good job: data',
  ).toBe(true);
}

describe('vfio-user client: bad input', () => {
  it('DMA outside the mapped memory: DMA_UNMAPPED with the address, error interrupt, nothing written', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    const outside = c.iova + BigInt(TEST_MEM) + 0x100000n;
    c.mem.fill(0x77, 0, 4096);
    // source outside
    let r = drv.dmaJob({ src: outside, dst: c.addr(0x8000), len: 4096, op: 'copy' });
    expect(r.irqVector).toBe(VEC_ERR);
    expect(r.status).toBe(ENUMS.DMA_STATE.ERROR);
    expect(r.errorCode).toBe(ENUMS.ERR.DMA_UNMAPPED);
    expect(r.errorAddr).toBe(outside);
    expect(drv.read32('STATUS') & bit(BITS.STATUS.ERROR)).toBe(bit(BITS.STATUS.ERROR));
    expect(c.irqCount(VEC_ERR)).toBe(1);
    drv.clearError();
    expect(drv.read32('STATUS') & bit(BITS.STATUS.ERROR)).toBe(0);
    goodJob(drv);
    // destination running past the end of the memory
    c.mem.fill(0, TEST_MEM - 2048, TEST_MEM);
    r = drv.dmaJob({ src: c.addr(0), dst: c.addr(TEST_MEM - 2048), len: 4096, op: 'copy' });
    expect(r.errorCode).toBe(ENUMS.ERR.DMA_UNMAPPED);
    expect(r.errorAddr).toBe(c.addr(TEST_MEM - 2048));
    expect(
      c.mem.subarray(TEST_MEM - 2048).every((b) => b === 0),
      'no partial write',
    ).toBe(true);
    expect(c.irqCount(VEC_ERR)).toBe(2);
    drv.clearError();
    goodJob(drv);
  });

  it('DMA with bus mastering off: DMA_BUS_MASTER_OFF, memory untouched; works again once re-enabled', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    c.disableBusMaster();
    expect(drv.read32('STATUS') & bit(BITS.STATUS.BUS_MASTER)).toBe(0);
    c.mem.fill(0x42, 0, 4096);
    c.mem.fill(0, 0x8000, 0x9000);
    const r = drv.dmaJob({ src: c.addr(0), dst: c.addr(0x8000), len: 4096, op: 'copy' });
    expect(r.status).toBe(ENUMS.DMA_STATE.ERROR);
    expect(r.errorCode).toBe(ENUMS.ERR.DMA_BUS_MASTER_OFF);
    expect(c.mem.subarray(0x8000, 0x9000).every((b) => b === 0)).toBe(true);
    drv.clearError();
    c.enableBusMaster();
    goodJob(drv);
  });

  it('bad doorbell arguments: bad length, unknown op, vector out of range, undefined doorbell', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    const cases: [string, () => void, number][] = [
      [
        'length 0',
        () => drv.dmaJob({ src: c.addr(0), dst: c.addr(0x8000), len: 0, op: 'copy' }),
        ENUMS.ERR.DMA_BAD_LENGTH,
      ],
      [
        'length > max',
        () => drv.dmaJob({ src: c.addr(0), dst: c.addr(0x8000), len: (1 << 20) + 1, op: 'copy' }),
        ENUMS.ERR.DMA_BAD_LENGTH,
      ],
      [
        'unknown op',
        () => drv.dmaJob({ src: c.addr(0), dst: c.addr(0x8000), len: 16, op: 99 }),
        ENUMS.ERR.BAD_OPCODE,
      ],
      [
        'vector out of range',
        () =>
          drv.dmaJob({
            src: c.addr(0),
            dst: c.addr(0x8000),
            len: 16,
            op: 'copy',
            vector: 4096,
            wait: 'poll',
          }),
        ENUMS.ERR.BAD_VECTOR,
      ],
      [
        'undefined doorbell',
        () => {
          c.clearIrq(VEC_ERR);
          drv.doorbell(1, DOORBELLS.BASE + 0x40);
          expect(c.waitIrq(VEC_ERR, 2000)).toBe(true);
        },
        ENUMS.ERR.BAD_DOORBELL,
      ],
    ];
    for (const [what, run, code] of cases) {
      run();
      expect(drv.error().name, what).toBe(Object.entries(ENUMS.ERR).find(([, v]) => v === code)![0]);
      drv.clearError();
      goodJob(drv);
    }
  });

  it('odd access sizes and undefined offsets: counted in BAD_ACCESS_COUNT, ignored, device keeps working', () => {
    rig.keepOnFailure();
    const drv = rig.driver();
    const c = drv.client;
    const scratch = reg('SCRATCH').offset;
    c.bar0Write(scratch, 0x01020304n);
    const before = drv.read32('BAD_ACCESS_COUNT');
    expect(c.bar0Read(scratch, 1)).toBe(0xffn); // 1-byte read: all ones
    expect(c.bar0Read(scratch, 2)).toBe(0xffffn); // 2-byte read
    expect(c.bar0Read(scratch + 2, 4)).toBe(0xffffffffn); // misaligned
    expect(c.bar0Read(scratch, 8)).toBe(0xffffffffffffffffn); // 8 bytes at a 32-bit register
    expect(c.bar0Read(0x0f0)).toBe(0n); // undefined register reads 0
    c.bar0Write(0x0f0, 0x1234n); // write to an undefined register
    c.bar0Write(reg('ID').offset, 0n); // write to a read-only register
    c.bar0Write(scratch, 0xffn, 1); // 1-byte write: ignored
    c.bar0Write(scratch, 0xffffn, 2); // 2-byte write: ignored
    expect(drv.read32('BAD_ACCESS_COUNT')).toBe(before + 9);
    expect(c.bar0Read(scratch)).toBe(0x01020304n); // the odd writes changed nothing
    expect(drv.read32('ID')).not.toBe(0);
    expect(drv.read32('ERROR_CODE')).toBe(ENUMS.ERR.NONE); // odd accesses are counted, not errors
    goodJob(drv);
  });
});
