/**
 * `sgiov top --once` against a running emulator while the VM-less client
 * sends a tenant's messages through a scheduled accelerator: the frame shows
 * the tenant's current rate beside its DRF allocation, the accelerator busy,
 * sockets by state, the fault rule's injections; bad input is refused.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { ControlClient } from '../../emulator/control/client.js';
import type { EmulatorProcess, RunDir } from '../../qemu/vm.js';
import { cliPath, sgiovCli, startControlled } from '../support/device.js';

const cli = cliPath();
const sgiov = sgiovCli;

let dir: RunDir;
let emu: EmulatorProcess;

beforeAll(async () => {
  ({ dir, emu } = await startControlled('top'));
});

afterAll(async () => {
  await emu?.stop();
  dir?.remove();
});

describe('sgiov top', () => {
  it('--once prints one frame with the rates measured over its interval', async () => {
    const ctl = await ControlClient.connect(dir.file('ctl.sock'));
    const client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 16 << 20 });
    try {
      await ctl.call('schedule', {
        accelerators: { rdma: 100 },
        tenants: [{ name: 'alpha' }, { name: 'beta', weight: 2 }],
      });
      await ctl.call('faults', {
        op: 'add',
        rule: { name: 'seen', point: 'dma.read', do: { action: 'none' } },
      });
      new SgiovDriver(client).bringUp();
      const sd = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 1024 });
      const l = sd.socket({ txSize: 4096, rxSize: 4096, tenant: 1 });
      l.listen(6000);
      const [c, s] = sd.connectPair(l, { txSize: 1 << 20, rxSize: 1 << 20, tenant: 1 });

      const top = spawn(
        process.execPath,
        [cli, 'top', '--control', dir.file('ctl.sock'), '--once', '--interval', '0.5'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      top.stdout.on('data', (d: Buffer) => (out += d.toString()));
      top.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((r) => top.once('close', r));
      // Traffic while top samples (bounded: 3 s or 100,000 messages).
      const data = new Uint8Array(16384).fill(7);
      let sent = 0;
      for (const end = Date.now() + 3000; Date.now() < end && sent < 100_000; sent++) {
        c.send(data);
        s.recv();
      }
      const code = await exited;
      expect(err).toBe('');
      expect(code).toBe(0);
      expect(sent).toBeGreaterThan(0);
      const lines = out.split('\n');
      expect(lines[0]).toMatch(
        /^sgiov top - .*ctl\.sock - \d{4}-\d\d-\d\dT.* - up [\d.]+ s - interval 0\.\d+ s$/,
      );
      expect(out).toMatch(/^device: enabled {2}signals\/s h2d [\d.]+ d2h [\d.]+/m);
      expect(out).toMatch(
        /^sockets: created 0 {2}listening 1 {2}connecting 0 {2}connected 2 {2}closing 0 {2}error 0$/m,
      );
      expect(out).toContain('TENANTS (policy drf)');
      // beta: a current rate above 0, DRF allocation 100 Gbps (alone on rdma), uses rdma.
      const beta = lines.find((x) => /^\s+beta\s/.test(x))!;
      const [, weight, cap, now, drf, ofDrf] = beta.trim().split(/\s+/);
      expect(weight).toBe('2');
      expect(cap).toBe('-');
      expect(Number(now)).toBeGreaterThan(0);
      expect(drf).toBe('100.00');
      expect(ofDrf).toMatch(/^[\d.]+%$/);
      expect(beta.trim()).toMatch(/rdma$/);
      const alpha = lines.find((x) => /^\s+alpha\s/.test(x))!;
      expect(alpha.trim().split(/\s+/)[3]).toBe('0.00');
      const rdma = lines.find((x) => /^\s+rdma\s/.test(x))!;
      const [, capacity, busy, , jobsPerS] = rdma.trim().split(/\s+/);
      expect(capacity).toBe('100');
      expect(busy).toMatch(/^[\d.]+%$/);
      expect(Number(jobsPerS)).toBeGreaterThan(0);
      expect(out).toContain('LINKS: no cluster');
      const rule = lines.find((x) => /^\s+seen\s/.test(x))!;
      expect(rule.trim().split(/\s+/).slice(0, 4)).toEqual(['seen', 'dma.read', 'none', 'yes']);
      expect(Number(rule.trim().split(/\s+/)[6])).toBeGreaterThan(0);
      expect(out).toMatch(
        /latest injections:\n\s+\d\d:\d\d:\d\d\.\d{3} {2}seen {2}dma\.read {2}none {2}#\d+/,
      );
    } finally {
      client.close();
      ctl.close();
    }
  });

  it('refuses a bad interval and a missing socket in one line', () => {
    const bad = sgiov('top', '--control', dir.file('ctl.sock'), '--interval', '0');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/^sgiov top: --interval: '0' is not a number of seconds in 0\.1\.\.3600\n/);
    const gone = sgiov('top', '--control', dir.file('nope.sock'), '--once');
    expect(gone.status).toBe(1);
    expect(gone.stderr.trim().split('\n')).toHaveLength(1);
    expect(gone.stderr).toMatch(/cannot reach the control socket .*nope\.sock: no such socket/);
    const typo = sgiov('top', '--contrl', 'x');
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(/did you mean --control\?/);
  });
});
