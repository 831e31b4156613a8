/**
 * Isolation, as in the paper: a latency-sensitive tenant's 4 KiB ping-pong
 * while 8 other tenants saturate the shared RDMA engine with 128 KiB
 * messages, under the `sriov` baseline and under `drf`. It runs the real
 * data plane and schedulers on the in-memory bus in device (virtual) time,
 * so the figures are the model's, reproducible and independent of the
 * host's speed.
 */
import { SgiovSocketDriver, type SgiovSocket } from '../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../emulator/host/bus-access.js';
import { deviceCommand } from '../../emulator/control/commands.js';
import { stat, type Stat } from './dataplane.js';

export interface IsolationResult {
  policy: string;
  /** sriov: the virtual functions the accelerators are split into (each VF gets capacity / vfs). */
  vfs: number | null;
  rdmaGbps: number;
  busyTenants: number;
  rttUs: Stat;
  busyGbps: number;
}

function pair(
  drv: SgiovSocketDriver,
  port: number,
  tenant: number,
  ring: number,
): [SgiovSocket, SgiovSocket] {
  const l = drv.socket({ txSize: 4096, rxSize: 4096, tenant });
  l.listen(port);
  return drv.connectPair(l, { txSize: ring, rxSize: ring, tenant });
}

export function benchIsolation(
  policy: 'sriov' | 'drf' | 'rr',
  opts: { busy?: number; rounds?: number; rdmaGbps?: number; vfs?: number } = {},
): IsolationResult {
  const busy = opts.busy ?? 8;
  const vfs = policy === 'sriov' ? (opts.vfs ?? busy + 1) : null;
  const rounds = opts.rounds ?? 2000;
  const rdma = opts.rdmaGbps ?? 100;
  const { bus, dev } = enabledDevice(256 << 20);
  const a = busAccess(bus, dev);
  const drv = new SgiovSocketDriver(a, { d2hSlots: 65536, timeoutMs: 60_000 });
  const tenants = Array.from({ length: busy + 1 }, (_, i) => ({ name: i === 0 ? 'latency' : `bulk${i}` }));
  deviceCommand(dev, 'schedule', {
    accelerators: { rdma },
    tenants,
    policy,
    ...(vfs !== null ? { vfs } : {}),
  });
  const [pc, ps] = pair(drv, 2000, 0, 65536);
  const bulk = Array.from({ length: busy }, (_, i) => pair(drv, 2001 + i, i + 1, 2 << 20));
  const ping = new Uint8Array(4096);
  const big = 128 << 10;
  let bulkBytes = 0;
  const step = (): void => {
    for (const [c, s] of bulk) {
      while (c.trySendPrepared(big)) {
        /* keep them saturated */
      }
      for (let n = s.tryRecvInPlace(); n >= 0; n = s.tryRecvInPlace()) bulkBytes += n;
    }
    dev.poll();
    bus.advance(200);
  };
  for (let i = 0; i < 2000; i++) step(); // reach steady state
  const rtt: number[] = [];
  const t0 = bus.nowNs();
  const bulk0 = bulkBytes;
  for (let r = 0; r < rounds; r++) {
    const start = bus.nowNs();
    pc.send(ping);
    while (ps.tryRecvInPlace() < 0) step();
    ps.send(ping);
    while (pc.tryRecvInPlace() < 0) step();
    rtt.push((bus.nowNs() - start) / 1000);
  }
  const busyGbps = ((bulkBytes - bulk0) * 8) / (bus.nowNs() - t0);
  return { policy, vfs, rdmaGbps: rdma, busyTenants: busy, rttUs: stat(rtt), busyGbps };
}
