import { describe, expect, it } from 'vitest';
import { CONSTANTS, ENUMS, reg, SHM } from '../../../emulator/abi/abi.js';
import {
  chainCode,
  SgiovSocketDriver,
  type SgiovError,
  type SgiovSocket,
} from '../../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';

function rig(
  opts: { memBytes?: number; maxSockets?: number; mode?: 'hybrid' | 'poll' | 'kick'; d2hSlots?: number } = {},
) {
  const { bus, dev } = enabledDevice(opts.memBytes, opts.maxSockets);
  const drv = new SgiovSocketDriver(busAccess(bus, dev), {
    mode: opts.mode,
    d2hSlots: opts.d2hSlots ?? 4096,
    timeoutMs: 2000,
  });
  return { bus, dev, drv };
}

function pair(drv: SgiovSocketDriver, port = 7000, size = 4096): [SgiovSocket, SgiovSocket, SgiovSocket] {
  const l = drv.socket({ txSize: 4096, rxSize: 4096 });
  l.listen(port);
  const [c, a] = drv.connectPair(l, { txSize: size, rxSize: size });
  return [l, c, a];
}

const msg = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);

describe('data plane: start and configuration', () => {
  it('refuses to start with a bad configuration and names the register', () => {
    const { bus, dev } = enabledDevice();
    const a = busAccess(bus, dev);
    a.writeReg('D2H_SLOTS', 100); // not a power of two
    a.writeReg('DP_CONTROL', 1);
    expect(a.readReg('DP_STATUS') & 1n).toBe(0n);
    expect(a.readReg('ERROR_CODE')).toBe(BigInt(ENUMS.ERR.DP_BAD_CONFIG));
    expect(a.readReg('ERROR_ADDR')).toBe(BigInt(reg('D2H_SLOTS').offset));
  });

  it('refuses to start when the FIFO is outside guest memory', () => {
    const { bus, dev } = enabledDevice();
    const a = busAccess(bus, dev);
    a.writeReg('D2H_SLOTS', 64);
    a.writeReg('D2H_BASE', 0x10n);
    a.writeReg('DP_CONTROL', 1);
    expect(a.readReg('ERROR_ADDR')).toBe(BigInt(reg('D2H_BASE').offset));
  });

  it('keeps the configuration fixed while running and stops on reset', () => {
    const { dev, drv } = rig();
    const a = drv.dev;
    const before = a.readReg('D2H_SLOTS');
    a.writeReg('D2H_SLOTS', 64);
    expect(a.readReg('D2H_SLOTS')).toBe(before);
    drv.socket({ txSize: 4096, rxSize: 4096 });
    expect(a.readReg('SOCKETS_OPEN')).toBe(1n);
    dev.reset('test');
    expect(a.readReg('DP_STATUS')).toBe(0n);
    expect(a.readReg('SOCKETS_OPEN')).toBe(0n);
  });
});

describe('data plane: sockets and warp pipes', () => {
  it('loops a message back to its sender (executor L)', () => {
    const { drv } = rig();
    const s = drv.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    s.send(msg(1000, 1));
    expect(s.recv()).toEqual(msg(1000, 1));
  });

  it('connects through listen/accept and carries messages both ways, whole, once and in order (executor Z)', () => {
    const { drv } = rig();
    const [, c, a] = pair(drv);
    for (let i = 1; i <= 20; i++) c.send(msg(i * 37, i));
    for (let i = 1; i <= 20; i++) expect(a.recv()).toEqual(msg(i * 37, i));
    a.send(msg(5, 99));
    expect(c.recv()).toEqual(msg(5, 99));
    expect(a.tryRecv()).toBeNull();
  });

  it('delivers messages that wrap both rings, and lets the receiver read one in parts', () => {
    const { drv } = rig();
    const [, c, a] = pair(drv, 7001, 4096);
    c.send(msg(3000, 1));
    expect(a.recv()).toEqual(msg(3000, 1)); // both rings now at 3000
    c.send(msg(4096, 2)); // a full-ring message that wraps both
    drv.waitUntil(() => a.available() > 0, 'delivery');
    const p1 = a.tryRecv(1000)!;
    const p2 = a.tryRecv(1000)!;
    const p3 = a.tryRecv()!;
    expect(Uint8Array.from([...p1, ...p2, ...p3])).toEqual(msg(4096, 2));
  });

  it('applies back-pressure when the sink ring is full and drops nothing', () => {
    const { drv } = rig();
    const [, c, a] = pair(drv, 7002, 4096);
    let sent = 0;
    while (c.trySend(msg(1024, sent))) {
      sent++;
      drv.dev.wait();
      drv.process();
      if (sent > 100) break;
    }
    expect(sent).toBeGreaterThanOrEqual(4); // the receiver's ring filled, then the sender's
    expect(sent).toBeLessThanOrEqual(8);
    expect(c.trySend(msg(1024, 999))).toBe(false); // EAGAIN
    for (let i = 0; i < sent; i++) expect(a.recv()).toEqual(msg(1024, i));
    expect(a.tryRecv()).toBeNull();
  });

  it("executor Z holds the sender's space until delivery; F stages in device memory and frees it at once", () => {
    const { dev, drv } = rig();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(7010);
    const [zc, za] = drv.connectPair(l, { txSize: 4096, rxSize: 4096 });
    const [fc, fa] = drv.connectPair(l, { txSize: 4096, rxSize: 4096, chain: chainCode('FULL_COPY') });
    const fill = (c: SgiovSocket): number => {
      let n = 0;
      while (c.trySend(msg(1024, n))) {
        n++;
        for (let i = 0; i < 4; i++) {
          drv.dev.wait();
          drv.process();
        }
        if (n > 64) break;
      }
      return n;
    };
    // Z: the receiver's ring (4 KiB) fills, then the sender's: 8 messages, then EAGAIN.
    expect(fill(zc)).toBe(8);
    // F: the sender's ring drains into staging while the receiver reads nothing.
    expect(fill(fc)).toBe(65);
    expect(dev.dp.stagingUsed).toBe((65 - 4) * 1024);
    for (let i = 0; i < 8; i++) expect(za.recv()).toEqual(msg(1024, i));
    for (let i = 0; i < 65; i++) expect(fa.recv()).toEqual(msg(1024, i));
    expect(dev.dp.stagingUsed).toBe(0);
    expect(fa.tryRecv()).toBeNull();
  });

  it('executor F: staging memory is bounded; a full one back-pressures, and a socket failing frees its share', () => {
    const { dev, drv } = rig();
    dev.dp.stagingBytes = 8192;
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(7011);
    const [c, a] = drv.connectPair(l, { txSize: 4096, rxSize: 4096, chain: chainCode('FULL_COPY') });
    let n = 0;
    while (c.trySend(msg(1024, n))) {
      n++;
      for (let i = 0; i < 4; i++) {
        drv.dev.wait();
        drv.process();
      }
      if (n > 64) break;
    }
    expect(n).toBe(16); // 4 KiB in the sink, 8 KiB staged, 4 KiB in the sender's ring
    expect(dev.dp.stagingUsed).toBe(8192);
    for (let i = 0; i < 16; i++) expect(a.recv()).toEqual(msg(1024, i));
    // A message larger than all staging memory moves as Z does.
    const [c2, a2] = drv.connectPair(l, {
      txSize: 16384,
      rxSize: 16384,
      chain: chainCode('FULL_COPY', 'ENCRYPT', 'DECRYPT'),
    });
    c2.send(msg(12000, 5));
    expect(a2.recv()).toEqual(msg(12000, 5));
    // Staged messages of a socket whose peer goes away are freed, and the sender is told.
    c.send(msg(1024, 1));
    c.send(msg(1024, 2));
    c.send(msg(1024, 3));
    c.send(msg(1024, 4));
    c.send(msg(1024, 5));
    drv.waitUntil(() => dev.dp.stagingUsed > 0, 'staging');
    a.close();
    drv.waitUntil(() => dev.dp.stagingUsed === 0, 'staging freed');
    expect(c.error).not.toBeNull();
  });

  it('delivers what was sent before close, then reports the peer closed', () => {
    const { drv } = rig();
    const [, c, a] = pair(drv, 7003);
    c.send(msg(100, 1));
    c.send(msg(200, 2));
    c.close();
    expect(a.recv()).toEqual(msg(100, 1));
    expect(a.recv()).toEqual(msg(200, 2));
    drv.waitUntil(() => a.peerClosed, 'EOF');
    expect(a.tryRecv()).toBeNull();
    expect(() => a.send(msg(1, 1))).toThrow(/peer closed/); // EPIPE, not a silent drop
  });

  it('answers bad commands with errnos', () => {
    const { drv } = rig({ memBytes: 8 << 20 });
    const errno = (f: () => unknown): string => {
      try {
        f();
        return 'ok';
      } catch (e) {
        return (e as SgiovError).errno;
      }
    };
    expect(errno(() => drv.socket({ txSize: 4096 }).connect(4242))).toBe('ECONNREFUSED');
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(80);
    expect(errno(() => drv.socket({ txSize: 4096, rxSize: 4096 }).listen(80))).toBe('EADDRINUSE');
    expect(errno(() => drv.socket({ txSize: 3000 }))).toBe('EINVAL');
    expect(
      errno(() =>
        drv.command(ENUMS.CMD_OP.CREATE, {
          sid: 5003,
          txAddr: drv.addr(0),
          rxAddr: drv.addr(0x400000),
          txSize: 1 << 29,
          rxSize: 4096,
        }),
      ),
    ).toBe('EINVAL');
    expect(errno(() => l.accept())).toBe('EAGAIN');
    expect(
      errno(() =>
        drv.command(ENUMS.CMD_OP.CREATE, {
          sid: l.sid,
          txAddr: drv.addr(0x100000),
          rxAddr: drv.addr(0x200000),
          txSize: 4096,
          rxSize: 4096,
        }),
      ),
    ).toBe('EEXIST');
    expect(
      errno(() =>
        drv.command(ENUMS.CMD_OP.CREATE, {
          sid: 5000,
          txAddr: 0x7f00_0000_0000n,
          rxAddr: drv.addr(0x200000),
          txSize: 4096,
          rxSize: 4096,
        }),
      ),
    ).toBe('EFAULT');
    expect(
      errno(() =>
        drv.command(ENUMS.CMD_OP.CREATE, {
          sid: 5001,
          txAddr: drv.addr(l.txOff),
          rxAddr: drv.addr(0x300000),
          txSize: 4096,
          rxSize: 4096,
        }),
      ),
    ).toBe('EBUSY');
    expect(
      errno(() =>
        drv.command(ENUMS.CMD_OP.CREATE, {
          sid: 5002,
          txAddr: drv.addr(0x400000),
          rxAddr: drv.addr(0x400000),
          txSize: 4096,
          rxSize: 4096,
        }),
      ),
    ).toBe('EBUSY');
    expect(errno(() => drv.command(ENUMS.CMD_OP.CLOSE, { sid: 4000 }))).toBe('ENOENT');
    expect(errno(() => drv.command(9, { sid: 1 }))).toBe('EINVAL');
  });
});

describe('data plane: bad signals fail one socket, the rest keep working', () => {
  function withBystander() {
    const r = rig();
    const [, c, a] = pair(r.drv, 7100);
    const victim = r.drv.socket({ txSize: 4096, rxSize: 4096 });
    victim.connect(CONSTANTS.PORT_LOOPBACK);
    const bystanderWorks = (): void => {
      c.send(msg(64, 5));
      expect(a.recv()).toEqual(msg(64, 5));
    };
    return { ...r, victim, bystanderWorks };
  }
  const sig = (type: number, id: number, value: number): bigint =>
    (BigInt(type) << 56n) | (BigInt(id) << 32n) | BigInt(value);

  it('a signal for a ring that does not exist: DEV_ERROR naming it', () => {
    const { drv, bystanderWorks } = withBystander();
    drv.signalRaw(sig(ENUMS.SIG_H2D.TX_TAIL, 5000 * 2, 10));
    drv.waitUntil(() => drv.devErrors.length > 0, 'DEV_ERROR');
    expect(drv.devErrors[0]).toEqual({ id: 10000, code: 'NO_SUCH_RING' });
    bystanderWorks();
  });

  it('a signal for a closed socket: DEV_ERROR, nothing delivered anywhere', () => {
    const { drv, victim, bystanderWorks } = withBystander();
    const sid = victim.sid;
    victim.close();
    drv.signalRaw(sig(ENUMS.SIG_H2D.TX_TAIL, sid * 2, 64));
    drv.waitUntil(() => drv.devErrors.length > 0, 'DEV_ERROR');
    expect(drv.devErrors[0]?.code).toBe('NO_SUCH_RING');
    bystanderWorks();
  });

  it.each([
    ['a tail beyond the ring', ENUMS.SIG_H2D.TX_TAIL, 0, 4097, 'BAD_TAIL'],
    ['a head beyond what was delivered', ENUMS.SIG_H2D.RX_HEAD, 1, 10, 'BAD_HEAD'],
    ['an unknown signal type', 0x3f, 0, 0, 'UNKNOWN_SIGNAL'],
  ])('%s puts only that socket in the error state', (_n, type, dir, value, code) => {
    const { drv, victim, bystanderWorks, dev } = withBystander();
    drv.signalRaw(sig(type, victim.sid * 2 + dir, value));
    drv.waitUntil(() => victim.error !== null, 'SOCK_ERROR');
    expect(victim.error).toBe(code);
    expect(() => victim.send(msg(1, 1))).toThrow(/failed/);
    expect(dev.dp.counters.signalErrors).toBeGreaterThan(0);
    bystanderWorks();
  });

  it('a message larger than the peer ring: MSG_TOO_LARGE for the sender', () => {
    const { drv, bystanderWorks } = withBystander();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(7200);
    const big = drv.socket({ txSize: 16384, rxSize: 4096 });
    drv.connectPair(l, { client: big, txSize: 4096, rxSize: 4096 });
    big.trySend(msg(8192, 1));
    drv.waitUntil(() => big.error !== null, 'SOCK_ERROR');
    expect(big.error).toBe('MSG_TOO_LARGE');
    bystanderWorks();
  });
});

describe('data plane: Cross-FIFO signalling', () => {
  it('raises the D2H vector only when armed, and moderates by count', () => {
    const { bus, drv, dev } = rig();
    const a = drv.dev;
    a.writeReg('DP_CONTROL', 0); // reconfigure: vector 3, one interrupt per 4 signals
    const drv2 = (() => {
      a.writeReg('D2H_VECTOR', 3);
      a.writeReg('IRQ_MOD_COUNT', 4);
      return new SgiovSocketDriver(a, { d2hSlots: 1024 });
    })();
    const s = drv2.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    bus.interrupts.length = 0;
    s.send(msg(10, 1));
    s.recv(); // not armed: polled mode, no interrupt
    expect(bus.interrupts).toEqual([]);
    new DataView(bus.shm.buffer).setUint32(SHM.D2H_ARM, 1, true);
    s.send(msg(10, 2)); // two D2H signals: below the moderation count
    drv2.waitUntil(() => s.available() > 0, 'delivery');
    expect(bus.interrupts).toEqual([]);
    s.recv();
    s.send(msg(10, 3));
    drv2.waitUntil(() => s.available() > 0, 'delivery');
    expect(bus.interrupts).toEqual([3]); // 4 pending: one interrupt, and ARM cleared
    expect(new DataView(bus.shm.buffer).getUint32(SHM.D2H_ARM, true)).toBe(0);
    expect(dev.dp.counters.interrupts).toBe(1);
  });

  it('hybrid mode: sleeps after idling, asks for a kick, and wakes on it', () => {
    const { bus, drv, dev } = rig({ mode: 'hybrid' });
    const s = drv.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    for (let i = 0; i < 1000 && dev.poll(); i++) bus.advance(10_000);
    expect(dev.poll()).toBe(false);
    expect(new DataView(bus.shm.buffer).getUint32(SHM.H2D_FLAGS, true) & 1).toBe(1);
    const kicks = dev.dp.counters.kicks;
    s.send(msg(8, 1)); // sees NEED_KICK and rings the doorbell
    expect(dev.dp.counters.kicks).toBe(kicks + 1);
    expect(s.recv()).toEqual(msg(8, 1));
  });

  it('kick mode: the device never polls; every publication is kicked', () => {
    const { drv, dev } = rig({ mode: 'kick' });
    const s = drv.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    const k = dev.dp.counters.kicks;
    s.send(msg(8, 1));
    expect(s.recv()).toEqual(msg(8, 1));
    expect(dev.dp.counters.kicks).toBeGreaterThan(k);
  });

  it("holds D2H signals while the host's FIFO is full and delivers them later", () => {
    const { drv } = rig({ d2hSlots: 64 });
    const s = drv.socket({ txSize: 65536, rxSize: 65536 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    for (let i = 0; i < 100; i++) s.trySend(msg(16, i)); // 200 D2H signals for a 64-slot FIFO
    for (let i = 0; i < 100; i++) expect(s.recv()).toEqual(msg(16, i));
  });
});

describe('data plane: scale', () => {
  it('holds 4096 sockets with small per-socket state and moves a message on each', () => {
    const { drv, dev } = rig({ memBytes: 4096 * 8192 + (8 << 20) });
    const socks: SgiovSocket[] = [];
    for (let i = 0; i < 4096; i++) {
      const s = drv.socket({ txSize: 4096, rxSize: 4096 });
      s.connect(CONSTANTS.PORT_LOOPBACK);
      socks.push(s);
    }
    expect(drv.dev.readReg('SOCKETS_OPEN')).toBe(4096n);
    for (const s of socks) s.trySend(msg(32, s.sid));
    for (const s of socks) expect(s.recv()).toEqual(msg(32, s.sid));
    expect(dev.dp.counters.msgsMoved).toBe(4096);
  });
});

describe('signal queue', () => {
  it('keeps order across wrap-around and growth', async () => {
    const { SignalQueue } = await import('../../../emulator/model/dataplane/dataplane.js');
    const q = new SignalQueue();
    let pushed = 0;
    let popped = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 1500 + round * 37; i++) {
        q.push(pushed >>> 0, (pushed * 7) >>> 0);
        pushed++;
      }
      const take = Math.min(q.length, 1400 + round * 11);
      for (let i = 0; i < take; i++) {
        expect(q.hi(i)).toBe(popped + i);
        expect(q.lo(i)).toBe(((popped + i) * 7) >>> 0);
      }
      q.drop(take);
      popped += take;
      expect(q.length).toBe(pushed - popped);
    }
  });
});

describe('data plane: moderation by age and logging once', () => {
  it('raises one interrupt when the oldest pending signal reaches IRQ_MOD_USECS', () => {
    const { bus, dev } = enabledDevice();
    const a = busAccess(bus, dev);
    a.writeReg('D2H_VECTOR', 5);
    a.writeReg('IRQ_MOD_COUNT', 1000);
    a.writeReg('IRQ_MOD_USECS', 50);
    const drv = new SgiovSocketDriver(a, { d2hSlots: 1024 });
    const s = drv.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    new DataView(bus.shm.buffer).setUint32(SHM.D2H_ARM, 1, true);
    bus.interrupts.length = 0;
    s.trySend(msg(8, 1));
    dev.poll(); // moved: 2 signals pending, far below the count
    expect(bus.interrupts).toEqual([]);
    bus.advance(49_000);
    expect(bus.interrupts).toEqual([]);
    bus.advance(2_000);
    expect(bus.interrupts).toEqual([5]);
  });

  it('logs a socket error once however many bad signals follow', async () => {
    const { pino } = await import('pino');
    const lines: string[] = [];
    const log = pino(
      { level: 'warn' },
      {
        write: (l: string) => {
          lines.push(l);
        },
      },
    );
    const { MemoryBus } = await import('../../../emulator/host/memory-bus.js');
    const { SgiovDevice } = await import('../../../emulator/model/device.js');
    const bus = new MemoryBus(0x1_0000_0000n, 16 << 20, log);
    const dev = new SgiovDevice(bus, { msixVectors: 16 });
    dev.barWrite(0, reg('CONTROL').offset, 4, 1n);
    const drv = new SgiovSocketDriver(busAccess(bus, dev), { d2hSlots: 1024 });
    const s = drv.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    for (let i = 0; i < 5; i++) drv.signal(ENUMS.SIG_H2D.TX_TAIL, s.sid * 2, 99999);
    drv.waitUntil(() => s.error !== null, 'SOCK_ERROR');
    for (let i = 0; i < 10; i++) dev.poll();
    expect(lines.filter((l) => l.includes('socket error')).length).toBe(1);
    expect(dev.dp.counters.signalErrors).toBe(5);
  });
});
