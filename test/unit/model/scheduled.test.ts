/**
 * The data plane with scheduled accelerators: capacities enforced against
 * the device clock (virtual on the in-memory bus), per-tenant queues, and
 * the policies dividing real work.
 */
import { describe, expect, it } from 'vitest';
import { CONSTANTS } from '../../../emulator/abi/abi.js';
import { chainCode, SgiovSocketDriver, type SgiovSocket } from '../../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';
import { deviceCommand } from '../../../emulator/control/commands.js';

function rig(schedule: Record<string, unknown>) {
  const { bus, dev } = enabledDevice(64 << 20);
  const a = busAccess(bus, dev);
  a.wait = () => {
    dev.poll();
    bus.advance(1000);
  };
  const drv = new SgiovSocketDriver(a, { d2hSlots: 65536, timeoutMs: 5000 });
  deviceCommand(dev, 'schedule', schedule);
  return { bus, dev, drv };
}

/** A connected pair of one tenant; `chain` on both directions. */
function pair(drv: SgiovSocketDriver, port: number, tenant: number, chain = 0): [SgiovSocket, SgiovSocket] {
  const l = drv.socket({ txSize: 4096, rxSize: 4096, tenant });
  l.listen(port);
  return drv.connectPair(l, { txSize: 1 << 20, rxSize: 1 << 20, tenant, chain });
}

/** Saturating load for `virtualMs` of device time; returns bytes delivered per pair. */
function saturate(
  bus: ReturnType<typeof rig>['bus'],
  dev: ReturnType<typeof rig>['dev'],
  pairs: [SgiovSocket, SgiovSocket][],
  virtualMs: number,
  msg = 65536,
): number[] {
  const got = pairs.map(() => 0);
  const end = bus.nowNs() + virtualMs * 1e6;
  while (bus.nowNs() < end) {
    pairs.forEach(([c, s], i) => {
      while (c.trySendPrepared(msg)) {
        /* fill the tx ring */
      }
      for (let n = s.tryRecvInPlace(); n >= 0; n = s.tryRecvInPlace()) got[i]! += n;
    });
    dev.poll();
    bus.advance(2000);
  }
  return got;
}

describe('scheduled accelerators on the data plane', () => {
  it('drf divides RDMA 100 / crypto 60 as the paper: A (crypto+RDMA) 37.5, B (RDMA) 62.5 Gbps', () => {
    const { bus, dev, drv } = rig({
      accelerators: { rdma: 100, crypto: 60 },
      tenants: [{ name: 'A' }, { name: 'B' }],
      policy: 'drf',
    });
    const a = pair(drv, 1000, 0, chainCode('ENCRYPT', 'DECRYPT'));
    const b = pair(drv, 1001, 1);
    saturate(bus, dev, [a, b], 5); // warm up
    const r = deviceCommand(dev, 'tenants', {}) as {
      tenants: { tenant: string; measuredGbps: number; drfGbps: number; uses: string[] }[];
    };
    expect(r.tenants.map((t) => t.drfGbps)).toEqual([37.5, 62.5]);
    expect(r.tenants[0]!.uses.sort()).toEqual(['crypto', 'rdma']);
    const got = saturate(bus, dev, [a, b], 40);
    const gbps = got.map((bytes) => (bytes * 8) / (40 * 1e6));
    expect(gbps[0]).toBeGreaterThan(37.5 * 0.97);
    expect(gbps[0]).toBeLessThan(37.5 * 1.03);
    expect(gbps[1]).toBeGreaterThan(62.5 * 0.97);
    expect(gbps[1]).toBeLessThan(62.5 * 1.03);
  }, 60_000);

  it('rr and sriov divide the same load differently; the policy switches at run time', () => {
    const { bus, dev, drv } = rig({
      accelerators: { rdma: 100, crypto: 60 },
      tenants: [{ name: 'A' }, { name: 'B' }],
      policy: 'rr',
    });
    const a = pair(drv, 1000, 0, chainCode('ENCRYPT', 'DECRYPT'));
    const b = pair(drv, 1001, 1);
    saturate(bus, dev, [a, b], 5);
    const rr = saturate(bus, dev, [a, b], 20).map((x) => (x * 8) / 20e6);
    expect(rr[0]).toBeGreaterThan(50 * 0.95); // round-robin on RDMA: 50 / 50
    expect(rr[1]).toBeGreaterThan(50 * 0.95);
    deviceCommand(dev, 'schedule', { policy: 'sriov' });
    // The configuration reported (and kept when the data plane restarts) is the one in force.
    expect((deviceCommand(dev, 'schedule', {}) as { policy: { kind: string } }).policy.kind).toBe('sriov');
    saturate(bus, dev, [a, b], 5);
    const vf = saturate(bus, dev, [a, b], 20).map((x) => (x * 8) / 20e6);
    expect(vf[0]).toBeLessThan(30 * 1.05); // a VF gets half of each accelerator: crypto 30 binds A
    expect(vf[1]).toBeLessThan(50 * 1.05); // B is held at 50 while RDMA has room: not work-conserving
    expect(vf[0]! + vf[1]!).toBeLessThan(85);
  }, 60_000);

  it('a demand cap holds its tenant to the cap and drf gives the rest to the others (work-conserving)', () => {
    const { bus, dev, drv } = rig({
      accelerators: { rdma: 100 },
      tenants: [{ name: 'A' }, { name: 'B', cap: 30 }],
      policy: 'drf',
    });
    const a = pair(drv, 1000, 0);
    const b = pair(drv, 1001, 1);
    saturate(bus, dev, [a, b], 5);
    const r = deviceCommand(dev, 'tenants', {}) as { tenants: { capGbps: number | null; drfGbps: number }[] };
    expect(r.tenants.map((t) => t.drfGbps)).toEqual([70, 30]);
    expect(r.tenants[1]!.capGbps).toBe(30);
    const g = saturate(bus, dev, [a, b], 20).map((x) => (x * 8) / 20e6);
    expect(g[1]).toBeGreaterThan(30 * 0.97);
    expect(g[1]).toBeLessThan(30 * 1.03);
    expect(g[0]).toBeGreaterThan(70 * 0.97);
    // Lifted at run time through the control interface: back to 50 / 50.
    deviceCommand(dev, 'tenant', { tenant: 'B', cap: null });
    saturate(bus, dev, [a, b], 5);
    const h = saturate(bus, dev, [a, b], 20).map((x) => (x * 8) / 20e6);
    expect(h[0]).toBeGreaterThan(50 * 0.97);
    expect(h[1]).toBeGreaterThan(50 * 0.97);
  }, 60_000);

  it('the driver sets weights and caps with the TENANT command; bad ones get an errno and nothing changes', () => {
    const { bus, dev, drv } = rig({
      accelerators: { rdma: 90 },
      tenants: [{ name: 'A' }, { name: 'B' }],
      policy: 'drf',
    });
    const a = pair(drv, 1000, 0);
    const b = pair(drv, 1001, 1);
    drv.setTenant(0, 2);
    saturate(bus, dev, [a, b], 5);
    const g = saturate(bus, dev, [a, b], 20).map((x) => (x * 8) / 20e6);
    expect(g[0]).toBeGreaterThan(60 * 0.97); // weight 2 : 1 of 90 Gbps
    expect(g[1]).toBeGreaterThan(30 * 0.97);
    expect(g[1]).toBeLessThan(30 * 1.03);
    expect(() => drv.setTenant(7, 1)).toThrow(/ENOENT/);
    expect(() => drv.setTenant(1, 0)).toThrow(/EINVAL/);
    expect(() => drv.setTenant(1, 1, 500)).toThrow(/EINVAL/); // cap above every capacity
    const t = deviceCommand(dev, 'tenants', {}) as { tenants: { weight: number; capGbps: number | null }[] };
    expect(t.tenants.map((x) => [x.weight, x.capGbps])).toEqual([
      [2, null],
      [1, null],
    ]);
    drv.setTenant(1, 1, 10);
    expect(
      (deviceCommand(dev, 'tenants', {}) as { tenants: { capGbps: number | null }[] }).tenants[1]!.capGbps,
    ).toBe(10);
    expect(
      (deviceCommand(dev, 'schedule', {}) as { tenants: { weight: number; capGbps?: number }[] }).tenants.map(
        (x) => [x.weight, x.capGbps],
      ),
    ).toEqual([
      [2, undefined],
      [1, 10],
    ]);
    expect(() => deviceCommand(dev, 'tenant', { tenant: 'C' })).toThrow(/unknown tenant 'C'/);
    expect(() => deviceCommand(dev, 'tenant', { tenant: 'A', weight: -1 })).toThrow(/weight must be > 0/);
    // Finite but beyond what the schedulers' sums hold: refused naming the field.
    expect(() => deviceCommand(dev, 'tenant', { tenant: 'A', weight: 1e308 })).toThrow(
      /weight must be > 0 \(in \[0\.000001, 1000000\]\)/,
    );
    expect(() => deviceCommand(dev, 'tenant', { tenant: 'A', cap: 5e-324 })).toThrow(
      /cap must be a number of Gbps > 0 \(in/,
    );
    expect(() => deviceCommand(dev, 'schedule', { accelerators: { rdma: 1e308 } })).toThrow(
      /rdma' needs a capacity in Gbps > 0 \(in/,
    );
    expect(() => deviceCommand(dev, 'tenant', { tenant: 'A', cap: 91 })).toThrow(/above every accelerator/);
    expect(() =>
      deviceCommand(dev, 'schedule', { accelerators: { rdma: 10 }, tenants: [{ name: 'A', cap: 11 }] }),
    ).toThrow(/cap 11 Gbps is above/);
    // The device still moves data.
    const c = pair(drv, 1002, 1);
    c[0].send(new Uint8Array(1000).fill(7));
    const deadline = bus.nowNs() + 1e9;
    while (c[1].available() === 0 && bus.nowNs() < deadline) {
      dev.poll();
      bus.advance(1000);
    }
    expect(c[1].recv()).toEqual(new Uint8Array(1000).fill(7));
  }, 60_000);

  it('messages are cut into jobs: a small message waits behind at most one job of each busy tenant', () => {
    const jobBytes = 16384;
    const { bus, dev, drv } = rig({
      accelerators: { rdma: 100 },
      tenants: [{ name: 'lat' }, ...Array.from({ length: 4 }, (_, i) => ({ name: `bulk${i}` }))],
      policy: 'drf',
      jobBytes,
    });
    const lat = pair(drv, 999, 0);
    const bulk = Array.from({ length: 4 }, (_, i) => pair(drv, 1000 + i, i + 1));
    saturate(bus, dev, bulk, 2, 128 << 10);
    let worst = 0;
    for (let r = 0; r < 50; r++) {
      const t0 = bus.nowNs();
      lat[0].send(new Uint8Array(4096).fill(r));
      while (lat[1].available() === 0) saturate(bus, dev, bulk, 0.002, 128 << 10);
      expect(lat[1].recv()[0]).toBe(r);
      worst = Math.max(worst, bus.nowNs() - t0);
    }
    // One 16 KiB job per busy tenant ahead of it, its own job, and the poll granularity (2 us per step).
    const jobNs = (jobBytes * 8) / 100;
    expect(worst).toBeLessThan(4 * jobNs + (4096 * 8) / 100 + 3 * 2000 + 1);
    // Whole 128 KiB messages as single jobs would have taken more than this.
    expect(worst).toBeLessThan(((128 << 10) * 8) / 100);
  }, 60_000);

  it('refuses bad schedule arguments and a socket of an unknown tenant', () => {
    const { dev, drv } = rig({ accelerators: { rdma: 10 }, tenants: [{ name: 'A' }] });
    expect(() => deviceCommand(dev, 'schedule', { accelerators: { warp: 1 } })).toThrow(
      /unknown accelerator 'warp'/,
    );
    expect(() => deviceCommand(dev, 'schedule', { accelerators: { rdma: 0 } })).toThrow(/Gbps > 0/);
    expect(() =>
      deviceCommand(dev, 'schedule', { accelerators: { rdma: 1 }, tenants: [{ name: 'A', weight: 0 }] }),
    ).toThrow(/weight/);
    expect(() => deviceCommand(dev, 'schedule', { policy: 'fifo' })).toThrow(/policy 'fifo'/);
    expect(() => deviceCommand(dev, 'tenants', {})).not.toThrow();
    expect(() => drv.socket({ txSize: 4096, rxSize: 4096, tenant: 5 })).toThrow(/EINVAL/);
    const s = drv.socket({ txSize: 4096, rxSize: 4096, tenant: 0 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    s.send(new Uint8Array(100).fill(1));
    expect(s.recv().length).toBe(100); // loopback uses no modelled engine: moves at once
    // a chain naming an engine the scheduled device does not have (no crypto here)
    expect(() =>
      drv.socket({ txSize: 4096, rxSize: 4096 }).connect(CONSTANTS.PORT_LOOPBACK, chainCode('ENCRYPT')),
    ).toThrow(/EINVAL/);
    deviceCommand(dev, 'schedule', { off: true });
    expect(() => deviceCommand(dev, 'tenants', {})).toThrow(/not scheduled/);
    expect(() => drv.setTenant(0, 1)).toThrow(/ENOENT/); // TENANT with no scheduled accelerators
  });
});
