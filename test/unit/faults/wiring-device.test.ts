/**
 * The device's own points (mmio.*, the DMA engine's dma.*, device.reset) and
 * the two faults that hit the whole device: reset and surprise removal.
 */
import { describe, expect, it } from 'vitest';
import { BITS, ENUMS, reg } from '../../../emulator/abi/abi.js';
import { SgiovSocketDriver } from '../../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';
import { deviceCommand } from '../../../emulator/control/commands.js';
import { validatePlan } from '../../../emulator/faults/plan.js';
import { holds, rig, rule, stress } from '../../support/faults-wiring.js';

const ERR = ENUMS.ERR;

function device(rules: unknown[]) {
  const { bus, dev } = enabledDevice();
  dev.faults.load(validatePlan({ rules }));
  const a = busAccess(bus, dev);
  return { bus, dev, a };
}

describe('mmio.read / mmio.write', () => {
  it('read error: all-ones, ACCESS_FAILED latched with the offset, the error interrupt', () => {
    const { a, bus } = device([
      rule('mmio.read', { action: 'error', status: 'EIO' }, { once: true }, { reg: 'SCRATCH' }),
    ]);
    a.writeReg('IRQ_MASK', 1 << BITS.IRQ.ERROR);
    a.writeReg('SCRATCH', 0x1234);
    expect(a.readReg('SCRATCH')).toBe(0xffff_ffffn);
    expect(a.readReg('ERROR_CODE')).toBe(BigInt(ERR.ACCESS_FAILED));
    expect(a.readReg('ERROR_ADDR')).toBe(BigInt(reg('SCRATCH').offset));
    expect(bus.interrupts).toEqual([0]);
    expect(a.readReg('SCRATCH')).toBe(0x1234n); // once
  });

  it('read all_ones: the value reads all-ones, nothing latched', () => {
    const { a } = device([rule('mmio.read', { action: 'all_ones' }, { once: true }, { reg: 'ID' })]);
    expect(a.readReg('ID')).toBe(0xffff_ffffn);
    expect(a.readReg('ERROR_CODE')).toBe(0n);
    expect(a.readReg('ID')).toBe(0x53474956n);
  });

  it('read corrupt: a poisoned completion: all-ones and POISONED, never the wrong value', () => {
    const { a } = device([
      rule('mmio.read', { action: 'corrupt', offset: 0, xor: 0x01 }, { once: true }, { reg: 'SCRATCH' }),
    ]);
    a.writeReg('SCRATCH', 0x10);
    expect(a.readReg('SCRATCH')).toBe(0xffff_ffffn);
    expect(a.readReg('ERROR_CODE')).toBe(BigInt(ERR.POISONED));
  });

  it('write drop: lost silently (a read-back shows it); write error: dropped and ACCESS_FAILED; write corrupt: discarded and POISONED', () => {
    const d = device([rule('mmio.write', { action: 'drop' }, { once: true }, { reg: 'SCRATCH' })]);
    d.a.writeReg('SCRATCH', 5);
    expect(d.a.readReg('SCRATCH')).toBe(0n);
    expect(d.a.readReg('ERROR_CODE')).toBe(0n);
    const e = device([
      rule('mmio.write', { action: 'error', status: 'EIO' }, { once: true }, { reg: 'SCRATCH' }),
    ]);
    e.a.writeReg('SCRATCH', 5);
    expect(e.a.readReg('SCRATCH')).toBe(0n);
    expect(e.a.readReg('ERROR_CODE')).toBe(BigInt(ERR.ACCESS_FAILED));
    const c = device([
      rule('mmio.write', { action: 'corrupt', offset: 1, xor: 0x80 }, { once: true }, { reg: 'SCRATCH' }),
    ]);
    c.a.writeReg('SCRATCH', 5);
    expect(c.a.readReg('SCRATCH')).toBe(0n);
    expect(c.a.readReg('ERROR_CODE')).toBe(BigInt(ERR.POISONED));
  });
});

describe('the DMA engine at dma.read / dma.write', () => {
  function job(
    bus: ReturnType<typeof device>['bus'],
    a: ReturnType<typeof device>['a'],
    dev: ReturnType<typeof device>['dev'],
  ) {
    bus.mem.fill(0x5a, 0, 256);
    bus.mem.fill(0, 4096, 4096 + 256);
    a.writeReg('DMA_SRC', bus.addr(0));
    a.writeReg('DMA_DST', bus.addr(4096));
    a.writeReg('DMA_LEN', 256);
    a.writeReg('DMA_OP', 0);
    dev.barWrite(0, 0x1000, 4, 9n);
  }
  it('error: DMA_STATUS error, DMA_UNMAPPED (or the named device error) at the address, nothing written', () => {
    const { bus, a, dev } = device([rule('dma.write', { action: 'error', status: 'EIO' }, { once: true })]);
    job(bus, a, dev);
    bus.runAll();
    expect(a.readReg('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.ERROR));
    expect(a.readReg('ERROR_CODE')).toBe(BigInt(ERR.DMA_UNMAPPED));
    expect(a.readReg('ERROR_ADDR')).toBe(bus.addr(4096));
    expect(bus.mem[4096]).toBe(0);
  });

  it('corrupt on the read: DMA_CORRUPTED, nothing written; on the write: DMA_CORRUPTED at the destination', () => {
    const r = device([rule('dma.read', { action: 'corrupt', offset: 10, xor: 1 }, { once: true })]);
    job(r.bus, r.a, r.dev);
    r.bus.runAll();
    expect(r.a.readReg('ERROR_CODE')).toBe(BigInt(ERR.DMA_CORRUPTED));
    expect(r.a.readReg('ERROR_ADDR')).toBe(r.bus.addr(0));
    expect(r.bus.mem[4096 + 10]).toBe(0);
    const w = device([rule('dma.write', { action: 'corrupt', offset: 10, xor: 1 }, { once: true })]);
    job(w.bus, w.a, w.dev);
    w.bus.runAll();
    expect(w.a.readReg('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.ERROR));
    expect(w.a.readReg('ERROR_CODE')).toBe(BigInt(ERR.DMA_CORRUPTED));
    expect(w.a.readReg('ERROR_ADDR')).toBe(w.bus.addr(4096));
  });

  it('delay: the job finishes that much later (device time)', () => {
    const { bus, a, dev } = device([rule('dma.read', { action: 'delay', ms: 3 }, { once: true })]);
    job(bus, a, dev);
    bus.advance(1000);
    expect(a.readReg('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.IDLE));
    bus.advance(3_000_000);
    expect(a.readReg('DMA_STATUS')).toBe(BigInt(ENUMS.DMA_STATE.DONE));
    expect(bus.mem[4096]).toBe(0x5a);
  });
});

describe('reset (a device reset as if the guest had reset it)', () => {
  it('mid-traffic: the driver learns (DEV_ERROR DEVICE_RESET), every pair fails reported, nothing lost; ERROR_CODE DEVICE_RESET; a new driver works', () => {
    const r = rig([rule('signal.h2d', { action: 'reset' }, { nth: 400 })]);
    const rep = stress(r);
    holds(rep);
    expect(rep.deviceLost).toBe('DEVICE_RESET');
    expect(rep.pairsFailed).toBe(rep.pairs);
    expect(rep.delivered).toBeGreaterThan(0);
    expect(rep.failed).toBeGreaterThan(0);
    expect(r.dev.faultResets).toBe(1);
    expect(r.drv.devErrors.some((e) => e.code === 'DEVICE_RESET' && e.id === 0xffffff)).toBe(true);
    const a = busAccess(r.bus, r.dev);
    expect(a.readReg('DP_STATUS')).toBe(0n);
    expect(a.readReg('ERROR_CODE')).toBe(BigInt(ERR.DEVICE_RESET));
    a.writeReg('ERROR_CODE', 1);
    a.writeReg('CONTROL', 1);
    const drv2 = new SgiovSocketDriver(a, { d2hSlots: 1024, timeoutMs: 5000 });
    const s = drv2.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(0);
    s.send(Uint8Array.of(1, 2, 3));
    expect(s.recv()).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('from an MMIO write (any point may reset)', () => {
    const { bus, dev, a } = device([
      rule('mmio.write', { action: 'reset' }, { once: true }, { reg: 'SCRATCH' }),
    ]);
    a.writeReg('SCRATCH', 7);
    bus.runAll();
    expect(dev.faultResets).toBe(1);
    expect(a.readReg('CONTROL')).toBe(0n);
    expect(a.readReg('ERROR_CODE')).toBe(BigInt(ERR.DEVICE_RESET));
  });
});

describe('surprise removal', () => {
  it('mid-traffic: reads all-ones, writes ignored, no DMA, no interrupts; every call fails (ENODEV), nothing lost; reinsert brings it back', () => {
    const r = rig([rule('dma.write', { action: 'surprise_removal' }, { nth: 300 })]);
    const rep = stress(r);
    holds(rep);
    expect(rep.deviceLost).toBe('DEVICE_REMOVED');
    expect(rep.pairsFailed).toBe(rep.pairs);
    const a = busAccess(r.bus, r.dev);
    expect(a.readReg('ID')).toBe(0xffff_ffffn);
    expect(r.dev.barRead(0, reg('SCRATCH').offset, 4)).toBe(0xffff_ffffn);
    r.dev.barWrite(0, reg('SCRATCH').offset, 4, 3n);
    const irqs = r.bus.interrupts.length;
    const moved = r.dev.dp.counters.msgsMoved;
    for (let i = 0; i < 100; i++) {
      r.dev.poll();
      r.bus.advance(1000);
    }
    expect(r.dev.dp.counters.msgsMoved).toBe(moved);
    expect(r.bus.interrupts.length).toBe(irqs);
    expect(r.dev.status()).toMatchObject({ faults: { removed: true } });
    expect(deviceCommand(r.dev, 'faults', { op: 'reinsert' })).toEqual({
      reinserted: true,
      wasRemoved: true,
    });
    expect(a.readReg('ID')).toBe(0x53474956n);
    expect(a.readReg('SCRATCH')).toBe(0n);
  });

  it('at device.reset: the guest resets the device and it never comes back (until the host resets it)', () => {
    const { dev, a } = device([rule('device.reset', { action: 'surprise_removal' }, { once: true })]);
    a.writeReg('CONTROL', 1 << BITS.CONTROL.RESET);
    expect(a.readReg('ID')).toBe(0xffff_ffffn);
    deviceCommand(dev, 'reset', {});
    expect(a.readReg('ID')).toBe(0x53474956n);
  });

  it('the control faults ops reach the injector: add, list, clear', () => {
    const { dev } = device([]);
    expect(
      deviceCommand(dev, 'faults', { op: 'add', rule: { name: 'x', point: 'irq', do: { action: 'drop' } } }),
    ).toEqual({ id: 'x' });
    expect((deviceCommand(dev, 'faults', {}) as { rules: { id: string }[] }).rules.map((x) => x.id)).toEqual([
      'x',
    ]);
    expect(() =>
      deviceCommand(dev, 'faults', { op: 'add', rule: { point: 'irq', do: { action: 'stall', ms: 1 } } }),
    ).toThrow(/rule\.do\.action: 'stall' is not allowed at irq/);
    expect(deviceCommand(dev, 'faults', { op: 'clear' })).toEqual({ cleared: 1 });
  });
});
