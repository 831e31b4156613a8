/**
 * `sgiov serve --metrics`: /metrics in the Prometheus text format, read by
 * a text-format parser; the counters rise by what the VM-less client sent
 * (messages, bytes, commands, signals, DMA jobs and errors, a tenant's bytes
 * on a scheduled accelerator, a fault rule's injections); a bad --metrics
 * is refused naming it; the port is closed when the emulator stops.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { ControlClient } from '../../emulator/control/client.js';
import { until, type EmulatorProcess, type RunDir } from '../../qemu/vm.js';
import { sgiovCli, startControlled } from '../support/device.js';
import { sample, scrape } from '../support/prom.js';

const sgiov = sgiovCli;

let dir: RunDir;
let emu: EmulatorProcess;
let url = '';
let port = 0;

beforeAll(async () => {
  ({ dir, emu } = await startControlled('metrics', ['--metrics', '127.0.0.1:0']));
  const line = emu.records().find((r) => r.msg === 'metrics endpoint listening');
  url = String(line?.metrics);
  port = Number(/:(\d+)\/metrics$/.exec(url)?.[1]);
  expect(port).toBeGreaterThan(0);
});

afterAll(async () => {
  await emu?.stop();
  dir?.remove();
});

const msg = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i + seed) & 0xff);

describe('the metrics endpoint', () => {
  it('every family has HELP and TYPE; the counters rise by what was sent', async () => {
    const ctl = await ControlClient.connect(dir.file('ctl.sock'));
    const client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 16 << 20 });
    try {
      await ctl.call('schedule', {
        accelerators: { rdma: 100 },
        tenants: [{ name: 'A' }, { name: 'B', weight: 2 }],
      });
      await ctl.call('faults', {
        op: 'add',
        rule: { name: 'watch-dma', point: 'dma.read', do: { action: 'none' } },
      });
      const a = await scrape(url);
      for (const f of a.families.values()) {
        expect(f.name).toMatch(/^sgiov_[a-z0-9_]+$/);
        expect(a.text).toContain(`# HELP ${f.name} `);
        expect(a.text).toContain(`# TYPE ${f.name} ${f.type.toLowerCase()}`);
        if (f.type === 'COUNTER') expect(f.name).toMatch(/_total$/);
      }
      expect(sample(a.families, 'sgiov_tenant_bytes_total', { tenant: 'B' })).toBe(0);

      const drv = new SgiovDriver(client);
      drv.bringUp();
      const sd = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 1024 });
      const l = sd.socket({ txSize: 4096, rxSize: 4096, tenant: 1 });
      l.listen(5000);
      const [c, s] = sd.connectPair(l, { txSize: 65536, rxSize: 65536, tenant: 1 });
      const N = 40;
      const SIZE = 1500;
      for (let i = 0; i < N; i++) {
        c.send(msg(SIZE, i));
        expect(s.recv()).toEqual(msg(SIZE, i));
      }
      const good = drv.dmaJob({ src: client.addr(0), dst: client.addr(8192), len: 4096, op: 'copy' });
      expect(good.statusName).toBe('DONE');
      const bad = drv.dmaJob({ src: client.addr(0), dst: client.addr(8192), len: 0, op: 'copy' });
      expect(bad.errorName).toBe('DMA_BAD_LENGTH');
      drv.clearError();

      const b = await scrape(url);
      const d = (name: string, labels: Record<string, string> = {}): number =>
        sample(b.families, name, labels) - (sample(a.families, name, labels) || 0);
      expect(d('sgiov_messages_moved_total')).toBe(N);
      expect(d('sgiov_moved_bytes_total')).toBe(N * SIZE);
      expect(d('sgiov_tenant_bytes_total', { tenant: 'B' })).toBe(N * SIZE);
      expect(d('sgiov_tenant_messages_total', { tenant: 'B' })).toBe(N);
      expect(d('sgiov_tenant_jobs_total', { tenant: 'B' })).toBe(N);
      expect(d('sgiov_tenant_bytes_total', { tenant: 'A' })).toBe(0);
      expect(sample(b.families, 'sgiov_tenant_weight', { tenant: 'B' })).toBe(2);
      expect(sample(b.families, 'sgiov_tenant_drf_allocation_gbps', { tenant: 'B' })).toBe(100);
      expect(sample(b.families, 'sgiov_tenant_queued_jobs', { tenant: 'B' })).toBe(0);
      expect(d('sgiov_accel_bytes_total', { accel: 'rdma' })).toBe(N * SIZE);
      expect(d('sgiov_accel_jobs_total', { accel: 'rdma' })).toBe(N);
      // Each job holds rdma for bytes * 8 / 100 Gbps.
      expect(d('sgiov_accel_busy_seconds_total', { accel: 'rdma' })).toBeCloseTo((N * SIZE * 8) / 100e9, 12);
      expect(d('sgiov_commands_total', { op: 'create', status: 'OK' })).toBe(3);
      expect(d('sgiov_commands_total', { op: 'listen', status: 'OK' })).toBe(1);
      expect(d('sgiov_commands_total', { op: 'connect', status: 'OK' })).toBe(1);
      expect(d('sgiov_commands_total', { op: 'accept', status: 'OK' })).toBe(1);
      expect(sample(b.families, 'sgiov_sockets', { state: 'connected' })).toBe(2);
      expect(sample(b.families, 'sgiov_sockets', { state: 'listening' })).toBe(1);
      // A message: TX_TAIL and RX_HEAD one way, RX_TAIL and TX_HEAD the other; commands add more.
      expect(d('sgiov_signals_total', { direction: 'h2d' })).toBeGreaterThanOrEqual(2 * N + 4);
      expect(d('sgiov_signals_total', { direction: 'd2h' })).toBeGreaterThanOrEqual(2 * N + 4);
      expect(d('sgiov_dma_jobs_total')).toBe(1);
      expect(d('sgiov_dma_bytes_total')).toBe(4096);
      expect(d('sgiov_dma_errors_total')).toBe(1);
      expect(d('sgiov_interrupts_total', { source: 'dma_engine' })).toBeGreaterThanOrEqual(1);
      expect(d('sgiov_bar_accesses_total')).toBeGreaterThan(0);
      expect(sample(b.families, 'sgiov_device_enabled')).toBe(1);
      const rule = { rule: 'watch-dma', point: 'dma.read', action: 'none' };
      // dma.read sees each message read from its tx ring and the engine's job.
      expect(d('sgiov_fault_rule_matches_total', rule)).toBe(N + 1);
      expect(d('sgiov_fault_rule_injections_total', rule)).toBe(N + 1);
      expect(sample(b.families, 'sgiov_uptime_seconds')).toBeGreaterThan(
        sample(a.families, 'sgiov_uptime_seconds'),
      );
      // No cluster: no link samples, but the families are described.
      expect(b.families.get('sgiov_link_rtt_seconds')?.metrics ?? []).toHaveLength(0);

      const other = await fetch(url.replace('/metrics', '/nope'));
      expect(other.status).toBe(404);
    } finally {
      client.close();
      ctl.close();
    }
  });

  it('a bad --metrics is refused naming it; a port in use too', () => {
    for (const v of ['nope:', 'localhost:99999', 'a:b']) {
      const r = sgiov('serve', '--socket', dir.file('x.sock'), '--metrics', v);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`--metrics: '${v}' is not HOST:PORT or PORT`));
    }
    const busy = sgiov('serve', '--socket', dir.file('y.sock'), '--metrics', `127.0.0.1:${port}`);
    expect(busy.status).toBe(1);
    expect(busy.stderr).toMatch(/--metrics 127\.0\.0\.1:\d+: cannot listen: the port is in use/);
    expect(emu.alive).toBe(true);
  });

  it('the port is closed when the emulator stops', async () => {
    await emu.stop();
    const refused = await new Promise<string>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve('connected');
      });
      c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    expect(await until(() => !emu.alive, 5000)).toBe(true);
  });
});
