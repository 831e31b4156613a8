/**
 * Every injection point x each action it allows, through the in-memory bus,
 * under the stress workload: each message is delivered once and in order or
 * reported failed; nothing is lost, duplicated or delivered corrupted.
 */
import { describe, expect, it } from 'vitest';
import { SHM } from '../../../emulator/abi/abi.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';
import { deviceCommand } from '../../../emulator/control/commands.js';
import { validatePlan, POINT_NAMES } from '../../../emulator/faults/plan.js';
import { holds, rig, rule, stress } from '../../support/faults-wiring.js';

describe('signal.h2d', () => {
  it('drop: the device waits at the lost slot, the driver writes it again; all delivered', () => {
    const r = rig([rule('signal.h2d', { action: 'drop' }, { every: 13, count: 40 })]);
    const rep = stress(r);
    holds(rep);
    expect(r.dev.faults.injected(4, 'drop')).toBe(40);
    expect(r.drv.recovery.h2dRewrites).toBeGreaterThanOrEqual(40);
    expect(rep.failed).toBe(0);
  });

  it('duplicate: a repeated tail, head or command is ignored and counted', () => {
    const r = rig([rule('signal.h2d', { action: 'duplicate' }, { every: 3 })]);
    const rep = stress(r);
    holds(rep);
    expect(rep.failed).toBe(0);
    expect(r.dev.dp.counters.repeats).toBeGreaterThanOrEqual(r.dev.faults.injected(4, 'duplicate'));
    expect(r.dev.faults.injected(4, 'duplicate')).toBeGreaterThan(100);
  });

  it('corrupt: a poisoned signal is discarded and its socket fails with POISONED (reported, not lost)', () => {
    const r = rig([
      rule('signal.h2d', { action: 'corrupt', offset: 0, xor: 1 }, { after: 200, every: 101, count: 3 }),
    ]);
    const rep = stress(r);
    holds(rep);
    expect(r.dev.faults.injected(4, 'corrupt')).toBe(3);
    expect(rep.pairsFailed).toBeGreaterThan(0);
    expect(r.dev.dp.counters.signalErrors).toBeGreaterThanOrEqual(3); // SOCK_ERROR / DEV_ERROR POISONED, once each
  });

  it('delay: signals are taken late, in order', () => {
    const r = rig([rule('signal.h2d', { action: 'delay', us: 300 }, { every: 50 })]);
    const rep = stress(r);
    holds(rep);
    expect(rep.failed).toBe(0);
    expect(r.dev.faults.injected(4, 'delay')).toBeGreaterThan(5);
  });
});

describe('signal.d2h', () => {
  it('drop: the slot stays empty, the driver asks again (RESYNC), the device writes it again', () => {
    const r = rig([rule('signal.d2h', { action: 'drop' }, { every: 11, count: 50 })]);
    const rep = stress(r);
    holds(rep);
    expect(rep.failed).toBe(0);
    expect(r.dev.dp.counters.resyncs).toBe(50);
    expect(r.drv.recovery.d2hResyncs).toBeGreaterThanOrEqual(50);
  });

  it('duplicate: repeated state signals are no news to the driver', () => {
    const r = rig([rule('signal.d2h', { action: 'duplicate' }, { every: 2 })]);
    const rep = stress(r);
    holds(rep);
    expect(rep.failed).toBe(0);
    expect(r.dev.faults.injected(5, 'duplicate')).toBeGreaterThan(100);
    expect(r.drv.recovery.repeatsIgnored).toBeGreaterThan(0); // RX_TAIL and CMD_DONE repeats (a repeated TX_HEAD is absorbed silently)
  });

  it('corrupt: a poisoned write the host discards, recovered like a lost one', () => {
    const r = rig([
      rule('signal.d2h', { action: 'corrupt', offset: 4, xor: [0x10] }, { every: 17, count: 20 }),
    ]);
    const rep = stress(r);
    holds(rep);
    expect(rep.failed).toBe(0);
    expect(r.dev.dp.counters.resyncs).toBe(20);
  });

  it('delay: the FIFO holds, then goes on in order', () => {
    const r = rig([rule('signal.d2h', { action: 'delay', us: 200 }, { every: 40 })]);
    holds(stress(r));
    expect(r.dev.faults.injected(5, 'delay')).toBeGreaterThan(5);
  });
});

describe('dma.read / dma.write of messages', () => {
  for (const point of ['dma.read', 'dma.write']) {
    it(`${point} error: the message fails (MSG_ERROR DMA_ERROR: EBADMSG at the receiver), the next ones arrive`, () => {
      const r = rig([rule(point, { action: 'error', status: 'EIO' }, { every: 9 })]);
      const rep = stress(r);
      holds(rep);
      const n = r.dev.faults.injected(POINT_NAMES.indexOf(point as never) as never, 'error');
      expect(n).toBeGreaterThan(10);
      expect(rep.failed).toBe(n);
      expect(rep.pairsFailed).toBe(0);
    });

    it(`${point} corrupt: caught by the data-path CRC (MSG_ERROR CORRUPTED), never delivered`, () => {
      const r = rig([rule(point, { action: 'corrupt', offset: 5, xor: [0xff, 1] }, { every: 5 })]);
      const rep = stress(r);
      holds(rep);
      const n = r.dev.faults.injected(POINT_NAMES.indexOf(point as never) as never, 'corrupt');
      expect(n).toBeGreaterThan(10);
      expect(rep.failed).toBe(n); // every message is >= 16 bytes, so every corruption lands in one and is caught
    });

    it(`${point} delay: the engines hold, everything arrives`, () => {
      const r = rig([rule(point, { action: 'delay', us: 100 }, { every: 10 })]);
      const rep = stress(r);
      holds(rep);
      expect(rep.failed).toBe(0);
    });
  }

  it('a corrupt rule whose bytes fall outside the message changes nothing and fails nothing', () => {
    const r = rig([rule('dma.write', { action: 'corrupt', offset: 5000, xor: 1 }, { every: 2 })]);
    const rep = stress(r);
    holds(rep);
    expect(rep.failed).toBe(0);
  });
});

describe('job.start / job.complete', () => {
  for (const sched of [false, true]) {
    const name = sched ? 'scheduled accelerators' : 'unscheduled';
    const setup = (rules: unknown[]) => {
      const r = rig(rules);
      if (sched)
        deviceCommand(r.dev, 'schedule', {
          accelerators: { rdma: 100 },
          tenants: [{ name: 'A' }],
          policy: 'drf',
        });
      return r;
    };
    for (const point of ['job.start', 'job.complete']) {
      it(`${name}: ${point} error fails the message (MSG_ERROR to the receiver), in its place`, () => {
        const r = setup([
          rule(
            point,
            { action: 'error', status: 'DEVICE_FAULT' },
            { every: 8 },
            { accel: 'rdma', executor: 'Z' },
          ),
        ]);
        const rep = stress(r);
        holds(rep);
        const n = r.dev.faults.injected(POINT_NAMES.indexOf(point as never) as never, 'error');
        expect(n).toBeGreaterThan(10);
        expect(rep.failed).toBe(n);
      });

      it(`${name}: ${point} corrupt is caught by CRC`, () => {
        const r = setup([rule(point, { action: 'corrupt', offset: 3, xor: 0x40 }, { every: 6 })]);
        const rep = stress(r);
        holds(rep);
        expect(rep.failed).toBe(
          r.dev.faults.injected(POINT_NAMES.indexOf(point as never) as never, 'corrupt'),
        );
        expect(rep.failed).toBeGreaterThan(10);
      });

      it(`${name}: ${point} delay and stall hold the work, nothing fails`, () => {
        const r = setup([
          rule(point, { action: 'delay', us: 50 }, { every: 10 }),
          rule(point, { action: 'stall', us: 200 }, { every: 25 }),
        ]);
        const t0 = r.bus.nowNs();
        const rep = stress(r);
        holds(rep);
        expect(rep.failed).toBe(0);
        expect(r.dev.faults.injected(POINT_NAMES.indexOf(point as never) as never, 'stall')).toBeGreaterThan(
          0,
        );
        expect(r.bus.nowNs() - t0).toBeGreaterThan(200_000);
      });
    }
  }

  it('scheduled: a stall holds the named accelerator for its time (device time)', () => {
    const r = rig([rule('job.start', { action: 'stall', accel: 'rdma', ms: 2 }, { once: true })]);
    deviceCommand(r.dev, 'schedule', { accelerators: { rdma: 100 }, tenants: [{ name: 'A' }] });
    const l = r.drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(9100);
    const [c, s] = r.drv.connectPair(l, { txSize: 4096, rxSize: 4096 });
    const t0 = r.bus.nowNs();
    c.send(new Uint8Array(100).fill(7));
    expect(s.recv()).toEqual(new Uint8Array(100).fill(7));
    expect(r.bus.nowNs() - t0).toBeGreaterThanOrEqual(2_000_000);
  });
});

describe('irq', () => {
  /** Arms the D2H interrupt before each signal the test waits for. */
  function armedLoopback(rules: unknown[]) {
    const r = rig(rules);
    const s = r.drv.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(0);
    const arm = () => new DataView(r.bus.shm.buffer).setUint32(SHM.D2H_ARM, 1, true);
    return { ...r, s, arm };
  }

  it('drop: no interrupt, the driver still gets everything by polling', () => {
    const { s, arm, bus, dev } = armedLoopback([rule('irq', { action: 'drop' }, {})]);
    bus.interrupts.length = 0;
    for (let i = 0; i < 20; i++) {
      arm();
      s.send(Uint8Array.of(i));
      expect(s.recv()).toEqual(Uint8Array.of(i));
    }
    expect(bus.interrupts).toEqual([]);
    expect(dev.faults.injected(6, 'drop')).toBeGreaterThanOrEqual(20);
  });

  it('duplicate: two interrupts for one; delay: the interrupt comes later', () => {
    const d = armedLoopback([rule('irq', { action: 'duplicate' }, { once: true })]);
    d.bus.interrupts.length = 0;
    d.arm();
    d.s.send(Uint8Array.of(1));
    d.s.recv();
    expect(d.bus.interrupts).toEqual([0, 0]);
    const l = armedLoopback([rule('irq', { action: 'delay', ms: 1 }, { once: true })]);
    l.bus.interrupts.length = 0;
    l.arm();
    l.s.send(Uint8Array.of(1));
    l.s.recv();
    expect(l.bus.interrupts).toEqual([]);
    l.bus.advance(1_000_000);
    expect(l.bus.interrupts).toEqual([0]);
  });

  it("the device's own interrupts (DMA done) go through the point too", () => {
    const { bus, dev } = enabledDevice();
    dev.faults.load(validatePlan({ rules: [rule('irq', { action: 'drop' }, { once: true })] }));
    const w = (n: string, v: number | bigint) => busAccess(bus, dev).writeReg(n, v);
    w('IRQ_MASK', 1);
    w('DMA_SRC', bus.addr(0));
    w('DMA_DST', bus.addr(4096));
    w('DMA_LEN', 64);
    w('DMA_VECTOR', 1);
    dev.barWrite(0, 0x1000, 4, 1n);
    bus.runAll();
    dev.barWrite(0, 0x1000, 4, 2n);
    bus.runAll();
    expect(bus.interrupts).toEqual([1]); // the first was dropped
    expect(busAccess(bus, dev).readReg('DMA_COMPLETED')).toBe(2n); // the driver finds both by reading DMA_STATUS / DMA_COMPLETED
  });
});
