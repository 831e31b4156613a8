/**
 * Seeded random MMIO and signals against the model on the in-memory bus:
 * the device never throws, stays within bounded memory, and still carries
 * a socket's traffic intact afterwards. (A longer run: SGIOV_FUZZ_ACCESSES.)
 */
import { describe, expect, it } from 'vitest';
import { BARS, CONSTANTS, reg } from '../../../emulator/abi/abi.js';
import { rng } from '../../../emulator/client/stress.js';
import { SgiovSocketDriver } from '../../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';

const ACCESSES = Number(process.env.SGIOV_FUZZ_ACCESSES ?? 100_000);

describe('fuzzing the register file and the signal channel', () => {
  it(`survives ${ACCESSES} random accesses over every BAR and size, then still works`, () => {
    const { bus, dev } = enabledDevice(16 << 20);
    const a = busAccess(bus, dev);
    const drv = new SgiovSocketDriver(a, { d2hSlots: 1024, timeoutMs: 2000 });
    const good = drv.socket({ txSize: 4096, rxSize: 4096 });
    good.connect(CONSTANTS.PORT_LOOPBACK);
    const r = rng(0x5eed);
    const sizes = [1, 2, 4, 8];
    const bars = [0, 1, 2, 3, 4, 5];
    // Registers that would end the run rather than test it: reset, data-plane stop, FIFO reconfiguration.
    const spare = new Set([
      'CONTROL',
      'DP_CONTROL',
      'D2H_BASE',
      'D2H_SLOTS',
      'D2H_PROD_ADDR',
      'CMD_BASE',
      'CMD_SLOTS',
      'H2D_MODE',
    ]);
    const protectedRanges = [...spare].map((n) => [reg(n).offset, reg(n).offset + reg(n).width] as const);
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < ACCESSES; i++) {
      const bar = bars[Math.floor(r() * bars.length)]!;
      const size = sizes[Math.floor(r() * sizes.length)]!;
      let off = Math.floor(r() * (bar === 0 ? 0x2000 : bar === BARS.SHM_BAR ? 0x1100 : 0x1000));
      if (bar === 0 && protectedRanges.some(([lo, hi]) => off >= lo && off < hi)) off = 0x800;
      if (bar === BARS.SHM_BAR && off < 0x1000) off = 0x1000 + (off & 0xff8); // leave the FIFO indexes to the driver
      const value = BigInt(Math.floor(r() * 2 ** 32)) | (BigInt(Math.floor(r() * 2 ** 32)) << 32n);
      if (r() < 0.5) dev.barRead(bar, off, size);
      else dev.barWrite(bar, off, size, value & ((1n << BigInt(size * 8)) - 1n));
      if (i % 64 === 0) {
        // and random signals, some naming real rings
        const type = [1, 2, 3, 4, 0x3f, 0x81][Math.floor(r() * 6)]!;
        const id = r() < 0.3 ? good.sid * 2 + 1 + 2 * Math.floor(r() * 3) : Math.floor(r() * 0xffffff);
        if (!(id >>> 1 === good.sid)) drv.signal(type, id, Math.floor(r() * 2 ** 32));
        dev.poll();
        drv.process();
      }
    }
    bus.runAll();
    for (let i = 0; i < 50; i++) {
      dev.poll();
      drv.process();
    }
    expect(Number(a.readReg('BAD_ACCESS_COUNT'))).toBeGreaterThan(0);
    // the socket the fuzzer spared still carries data intact
    const m = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);
    for (let i = 0; i < 5; i++) {
      good.send(m);
      expect(good.recv()).toEqual(m);
    }
    expect(good.error).toBeNull();
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 << 20);
    expect(dev.dp.counters.signalErrors).toBeGreaterThan(0);
  }, 120_000);
});
