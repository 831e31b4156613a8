/**
 * The control interface's table (methods, unknown fields refused, reply
 * stamps), `sgiov ctl` against a missing socket, `sgiov --version`, and two
 * `serve` on one path (refused) and on a dead one's socket file (replaced).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient } from '../../emulator/control/client.js';
import { repoRoot } from '../../emulator/util/paths.js';
import { EmulatorProcess, RunDir, until } from '../../qemu/vm.js';

const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
const sgiov = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 15_000 });

let dir: RunDir;
let emu: EmulatorProcess;

beforeAll(async () => {
  dir = new RunDir('sgiov-methods-');
  emu = new EmulatorProcess({
    socketPath: dir.file('s.sock'),
    logPath: dir.file('e.log'),
    logLevel: 'info',
    extraArgs: ['--control', dir.file('ctl.sock')],
  });
  await emu.ready();
});

afterAll(async () => {
  await emu?.stop();
  dir?.remove();
});

describe('control methods', () => {
  it('lists the commands with their arguments; replies carry time and uptime', async () => {
    const c = await ControlClient.connect(dir.file('ctl.sock'));
    try {
      const r = await c.request('methods');
      expect(r.ok).toBe(true);
      const names = (r.result as { name: string }[]).map((m) => m.name);
      for (const n of ['status', 'sockets', 'schedule', 'tenant', 'faults', 'fabric'])
        expect(names).toContain(n);
      const sockets = (r.result as { name: string; args: { name: string; default?: unknown }[] }[]).find(
        (m) => m.name === 'sockets',
      )!;
      expect(sockets.args).toContainEqual(expect.objectContaining({ name: 'limit', default: 100 }));
      expect(Date.parse(r.time!)).toBeGreaterThan(Date.now() - 60_000);
      const a = (await c.request('status')).uptimeS!;
      await new Promise((res) => setTimeout(res, 50));
      expect((await c.request('status')).uptimeS!).toBeGreaterThan(a);
    } finally {
      c.close();
    }
  });

  it('refuses unknown fields and wrong types, naming the field; the emulator keeps serving', async () => {
    const c = await ControlClient.connect(dir.file('ctl.sock'));
    try {
      expect(await c.request('sockets', { limt: 2 })).toMatchObject({
        ok: false,
        error: expect.stringMatching(/unknown field "limt"/),
      });
      expect(await c.request('status', { x: 1 })).toMatchObject({ ok: false, error: /takes no fields/ });
      expect(await c.request('sockets', { limit: 'many' })).toMatchObject({
        ok: false,
        error: expect.stringMatching(/"limit" must be an integer/),
      });
      expect(await c.request('faults', { op: 'frob' })).toMatchObject({
        ok: false,
        error: /not one of list/,
      });
      expect(await c.request('tenant', {})).toMatchObject({ ok: false, error: /"tenant" is required/ });
      expect((await c.request('sockets', { limit: 2 })).ok).toBe(true);
    } finally {
      c.close();
    }
  });

  it('sgiov ctl methods prints the table; a missing socket is one line', () => {
    const r = sgiov('ctl', '--control', dir.file('ctl.sock'), 'methods');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toContainEqual(expect.objectContaining({ name: 'sockets' }));
    const gone = sgiov('ctl', '--control', dir.file('nope.sock'), 'status');
    expect(gone.status).toBe(1);
    expect(gone.stderr.trim().split('\n')).toHaveLength(1);
    expect(gone.stderr).toMatch(/cannot reach the control socket .*nope\.sock: no such socket/);
  });

  it('ctl --help lists its options; a mistyped flag gets a suggestion; --version', () => {
    const h = sgiov('ctl', '--help');
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/--control PATH/);
    const typo = sgiov('ctl', '--contrl', 'x', 'status');
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(/unknown option '--contrl' \(did you mean --control\?\)/);
    const st = sgiov('serve', '--sokcet', 'x');
    expect(st.status).toBe(2);
    expect(st.stderr).toMatch(/did you mean --socket\?/);
    const v = sgiov('--version');
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(/^sgiov \d+\.\d+\.\d+\n$/);
  });

  it('a second serve on a live emulator path is refused and the first stays reachable', async () => {
    const r = sgiov('serve', '--socket', dir.file('s.sock'), '--control', dir.file('other.sock'));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/vfio-user socket .*s\.sock: another process .* is listening there/);
    const r2 = sgiov('serve', '--socket', dir.file('other.sock'), '--control', dir.file('ctl.sock'));
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/control socket .*ctl\.sock: another process/);
    expect(emu.alive).toBe(true);
    const c = await ControlClient.connect(dir.file('ctl.sock'));
    expect((await c.request('status')).ok).toBe(true);
    c.close();
  });

  it('replaces the socket file a dead emulator left', async () => {
    const d = new RunDir('sgiov-stale-');
    const a = new EmulatorProcess({
      socketPath: d.file('s.sock'),
      logPath: d.file('a.log'),
      logLevel: 'info',
    });
    let b: EmulatorProcess | undefined;
    try {
      await a.ready();
      a.proc.kill('SIGKILL');
      await until(() => !a.alive, 5000);
      expect(existsSync(d.file('s.sock'))).toBe(true);
      b = new EmulatorProcess({ socketPath: d.file('s.sock'), logPath: d.file('b.log'), logLevel: 'info' });
      expect(await until(() => b!.log.includes('listening for a vfio-user client'), 10_000)).toBe(true);
      expect(b.log).toMatch(/replaced a stale socket file/);
    } finally {
      await a.stop();
      await b?.stop();
      d.remove();
    }
  });
});
