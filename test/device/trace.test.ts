/**
 * --trace PATTERN: one log line per event of each kind (MMIO, commands,
 * signals, DMA-engine jobs, accelerator jobs, faults) with its ids; the
 * rate limit counts what it suppressed; `ctl trace` changes the pattern at
 * run time; a bad pattern is refused. --log-format pretty; fault lines carry
 * one "sub" key.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reg } from '../../emulator/abi/abi.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { ControlClient } from '../../emulator/control/client.js';
import { until, type EmulatorProcess, type RunDir } from '../../qemu/vm.js';
import { cliPath, sgiovCli, startControlled } from '../support/device.js';

let dir: RunDir;
let emu: EmulatorProcess;

beforeAll(async () => {
  ({ dir, emu } = await startControlled('trace', [
    '--trace',
    'mmio_*,cmd_*,signal_*,dma_*,job_*,fault_*',
    '--trace-rate',
    '100000',
  ]));
});

afterAll(async () => {
  await emu?.stop();
  dir?.remove();
});

type Rec = Record<string, unknown>;
const events = (ev: string): Rec[] => emu.records().filter((r) => r.ev === ev && r.suppressed === undefined);

describe('trace events', () => {
  it('logs a line per event of each kind with its ids', async () => {
    const ctl = await ControlClient.connect(dir.file('ctl.sock'));
    const client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 16 << 20 });
    try {
      await ctl.call('schedule', { accelerators: { rdma: 100 }, tenants: [{ name: 'A' }, { name: 'B' }] });
      await ctl.call('faults', {
        op: 'add',
        rule: { name: 'look', point: 'dma.read', do: { action: 'none' } },
      });
      const drv = new SgiovDriver(client);
      drv.bringUp();
      drv.write('SCRATCH', 0x5eed);
      expect(drv.read('SCRATCH')).toBe(0x5eedn);
      const sd = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 1024 });
      const l = sd.socket({ txSize: 4096, rxSize: 4096, tenant: 1 });
      l.listen(7000);
      const [c, s] = sd.connectPair(l, { txSize: 65536, rxSize: 65536, tenant: 1 });
      c.send(new Uint8Array(3000).fill(1));
      expect(s.recv()).toHaveLength(3000);
      expect(
        drv.dmaJob({ src: client.addr(0), dst: client.addr(8192), len: 512, op: 'copy' }).statusName,
      ).toBe('DONE');
      expect(drv.dmaJob({ src: client.addr(0), dst: client.addr(8192), len: 0, op: 'copy' }).errorName).toBe(
        'DMA_BAD_LENGTH',
      );
      const scratch = `0x${reg('SCRATCH').offset.toString(16)}`;
      expect(
        await until(() => events('dma_error').length > 0 && events('fault_inject').length > 0, 5000),
      ).toBe(true);
      expect(events('mmio_write')).toContainEqual(
        expect.objectContaining({
          sub: 'trace',
          bar: 0,
          offset: scratch,
          size: 4,
          value: '0x5eed',
          msg: 'mmio_write',
        }),
      );
      expect(events('mmio_read')).toContainEqual(
        expect.objectContaining({ offset: scratch, value: '0x5eed' }),
      );
      expect(events('cmd_submit')).toContainEqual(expect.objectContaining({ op: 'listen', sid: l.sid }));
      expect(events('cmd_done')).toContainEqual(expect.objectContaining({ op: 'listen', status: 'OK' }));
      expect(events('cmd_done')).toContainEqual(
        expect.objectContaining({ op: 'connect', status: 'OK', result: s.sid }),
      );
      expect(events('signal_h2d')).toContainEqual(
        expect.objectContaining({ type: 'tx_tail', sid: c.sid, ring: 'tx', value: 3000 }),
      );
      expect(events('signal_d2h')).toContainEqual(
        expect.objectContaining({ type: 'rx_tail', sid: s.sid, ring: 'rx' }),
      );
      expect(events('job_submit')).toContainEqual(
        expect.objectContaining({ tenant: 'B', bytes: 3000, jobs: 1, accels: ['rdma'] }),
      );
      expect(events('job_start')).toContainEqual(
        expect.objectContaining({ accel: 'rdma', tenant: 'B', bytes: 3000 }),
      );
      expect(events('job_done')).toContainEqual(
        expect.objectContaining({ accel: 'rdma', tenant: 'B', bytes: 3000 }),
      );
      expect(events('dma_done')).toContainEqual(expect.objectContaining({ len: 512, op: 'copy' }));
      expect(events('dma_error')).toContainEqual(expect.objectContaining({ code: 'DMA_BAD_LENGTH' }));
      expect(events('fault_inject')).toContainEqual(
        expect.objectContaining({ rule: 'look', point: 'dma.read', action: 'none', len: 3000 }),
      );
      // A fault line has one "sub" key (it had "sub":"model" and "sub":"faults").
      const raw = emu.log.split('\n').filter((x) => x.includes('"fault rule added"'));
      expect(raw.length).toBeGreaterThan(0);
      for (const line of raw) expect(line.match(/"sub":/g)).toHaveLength(1);
      expect(JSON.parse(raw[0]!)).toMatchObject({ sub: 'faults' });
    } finally {
      client.close();
      ctl.close();
    }
  });

  it('rate-limits each event and counts what it suppressed; ctl trace changes the pattern', async () => {
    const ctl = await ControlClient.connect(dir.file('ctl.sock'));
    const client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 4 << 20 });
    try {
      const drv = new SgiovDriver(client);
      drv.bringUp();
      expect(await ctl.call('trace', { pattern: 'mmio_write', perSecond: 5 })).toEqual({
        pattern: 'mmio_write',
        events: ['mmio_write'],
        perSecond: 5,
      });
      const N = 200;
      for (let i = 0; i < N; i++) drv.write('SCRATCH', 0xabc000 + i);
      // A new pattern reports what the old one suppressed.
      expect(await ctl.call('trace', { pattern: '' })).toMatchObject({ pattern: '', events: [] });
      for (let i = 0; i < 10; i++) drv.write('SCRATCH', 0xdef000 + i);
      const count = () => {
        const recs = emu.records();
        const shown = recs.filter((r) => r.ev === 'mmio_write' && String(r.value).startsWith('0xabc'));
        const suppressed = recs
          .filter((r) => r.ev === 'mmio_write' && typeof r.suppressed === 'number')
          .reduce((a, r) => a + (r.suppressed as number), 0);
        return { recs, shown, suppressed };
      };
      // The lines reach this process through a pipe: wait for the count to settle.
      await until(() => count().shown.length + count().suppressed >= N, 5000);
      const { recs, shown, suppressed } = count();
      expect(shown.length).toBeGreaterThanOrEqual(5);
      expect(suppressed).toBeGreaterThan(0);
      expect(shown.length + suppressed).toBe(N);
      // Off: nothing more is traced.
      expect(recs.filter((r) => String(r.value).startsWith('0xdef'))).toHaveLength(0);
      const bad = await ctl.request('trace', { pattern: 'dma_*,nope_*' });
      expect(bad).toMatchObject({
        ok: false,
        error: expect.stringMatching(/trace pattern 'nope_\*' matches no event/),
      });
      expect(await ctl.call('trace', {})).toMatchObject({ pattern: '', events: [] });
    } finally {
      client.close();
      ctl.close();
    }
  });

  it('refuses a bad --trace or --log-format at start', () => {
    const r = sgiovCli('serve', '--socket', dir.file('x.sock'), '--trace', 'mmio');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--trace: trace pattern 'mmio' matches no event \(events: mmio_read, /);
    const f = sgiovCli('serve', '--socket', dir.file('x.sock'), '--log-format', 'xml');
    expect(f.status).toBe(2);
    expect(f.stderr).toMatch(/--log-format: 'xml' is not one of json, pretty/);
  });

  it('--log-format pretty writes readable lines, not JSON', async () => {
    const p = spawn(
      process.execPath,
      [cliPath(), 'serve', '--socket', dir.file('p.sock'), '--log-format', 'pretty'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise((r) => p.once('close', r));
    try {
      expect(await until(() => out.includes('listening for a vfio-user client'), 10_000)).toBe(true);
    } finally {
      p.kill('SIGTERM');
      await closed;
    }
    const line = out.split('\n').find((x) => x.includes('listening for a vfio-user client'))!;
    expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[vfu\] listening for a vfio-user client/);
    expect(line).toMatch(/ \{"socket":".*p\.sock",/);
    expect(out.split('\n').some((x) => x.startsWith('{'))).toBe(false);
  });
});
