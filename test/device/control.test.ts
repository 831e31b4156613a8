import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSTANTS } from '../../emulator/abi/abi.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { repoRoot } from '../../emulator/util/paths.js';
import { EmulatorProcess, RunDir, until } from '../../qemu/vm.js';

let dir: RunDir;
let emu: EmulatorProcess;
const ctlPath = (): string => dir.file('ctl.sock');

beforeAll(async () => {
  dir = new RunDir('sgiov-ctl-');
  emu = new EmulatorProcess({
    socketPath: dir.file('s.sock'),
    logPath: dir.file('e.log'),
    logLevel: 'info',
    extraArgs: ['--control', dir.file('ctl.sock')],
  });
  await emu.ready();
  expect(await until(() => existsSync(ctlPath()), 5000)).toBe(true);
});

afterAll(async () => {
  await emu?.stop();
  expect(existsSync(ctlPath())).toBe(false);
  dir?.remove();
});

/** A control connection: send lines, read reply lines. */
function session(): { send: (line: string) => Promise<Record<string, unknown>>; close: () => void } {
  const c = connect(ctlPath());
  c.setEncoding('utf8');
  let buf = '';
  const waiting: ((l: string) => void)[] = [];
  c.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const l = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      waiting.shift()?.(l);
    }
  });
  return {
    send: (line) =>
      new Promise((r) => {
        waiting.push((l) => r(JSON.parse(l) as Record<string, unknown>));
        c.write(line + '\n');
      }),
    close: () => c.destroy(),
  };
}

describe('control interface', () => {
  it('reports status and lists sockets while a client drives the device', async () => {
    const client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 16 << 20 });
    try {
      new SgiovDriver(client).bringUp();
      const drv = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 1024 });
      for (let i = 0; i < 3; i++) drv.socket({ txSize: 4096, rxSize: 4096 }).connect(CONSTANTS.PORT_LOOPBACK);
      const s = session();
      const st = await s.send(JSON.stringify({ id: 7, cmd: 'status' }));
      expect(st).toMatchObject({
        id: 7,
        ok: true,
        result: { device: { enabled: true, dataPlane: { running: true, socketsOpen: 3 } } },
      });
      const list = await s.send(JSON.stringify({ id: 8, cmd: 'sockets', args: { limit: 2 } }));
      expect(list).toMatchObject({ ok: true, result: { total: 3, next: 2 } });
      expect((list.result as { sockets: { state: string }[] }).sockets.map((x) => x.state)).toEqual([
        'connected',
        'connected',
      ]);
      s.close();
    } finally {
      client.close();
    }
  });

  it('answers bad requests with errors and keeps the connection', async () => {
    const s = session();
    expect(await s.send('{not json')).toMatchObject({ ok: false, error: expect.stringMatching(/not JSON/) });
    expect(await s.send('[1,2]')).toMatchObject({ ok: false, error: expect.stringMatching(/object/) });
    expect(await s.send(JSON.stringify({ id: 1, cmd: 'frobnicate' }))).toMatchObject({
      id: 1,
      ok: false,
      error: expect.stringMatching(/unknown command 'frobnicate'/),
    });
    expect(await s.send(JSON.stringify({ id: 2, cmd: 'sockets', args: { limit: 0 } }))).toMatchObject({
      ok: false,
      error: expect.stringMatching(/limit/),
    });
    expect(await s.send(JSON.stringify({ id: 3, cmd: 'status' }))).toMatchObject({ id: 3, ok: true });
    s.close();
    expect(emu.alive).toBe(true);
  });

  it('sgiov ctl sends one command and prints the result', () => {
    const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'ctl', '--control', ctlPath(), 'status'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toHaveProperty('device.dataPlane');
    const bad = spawnSync(process.execPath, [cli, 'ctl', '--control', ctlPath(), 'nope'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/unknown command 'nope'/);
    const usage = spawnSync(process.execPath, [cli, 'ctl', '--control', ctlPath(), 'sockets', '{bad'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/ARGS-JSON/);
  });
});
