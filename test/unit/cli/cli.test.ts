import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmulatorProcess, RunDir, until } from '../../../qemu/vm.js';
import { repoRoot } from '../../../emulator/util/paths.js';
import { FabricCredentials, freePorts } from '../../support/fabric.js';

const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
const sgiov = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 10_000 });

describe('sgiov CLI', () => {
  it('prints help naming every serve option', () => {
    const r = sgiov('--help');
    expect(r.status).toBe(0);
    for (const opt of [
      '--socket',
      '--vendor-id',
      '--device-id',
      '--subsys-vendor-id',
      '--subsys-id',
      '--msix-vectors',
      '--max-sockets',
      '--log-level',
      '--fabric-secret',
      '--fabric-tls',
      '--fabric-ca',
      '--fabric-cert',
      '--fabric-key',
    ])
      expect(r.stdout).toContain(opt);
  });

  it.each([
    [['serve'], /--socket/],
    [['serve', '-s', '/tmp/x.sock', '--vendor-id', 'zz'], /--vendor-id: 'zz'/],
    [['serve', '-s', '/tmp/x.sock', '--msix-vectors', '1'], /--msix-vectors/],
    [['serve', '-s', '/tmp/x.sock', '--max-sockets', '0'], /--max-sockets/],
    [['serve', '-s', '/tmp/x.sock', '--log-level', 'loud'], /--log-level: 'loud'/],
    [['serve', '-s', '/tmp/x.sock', '--bogus'], /bogus/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [
      ['serve', '-s', '/tmp/x.sock', '--fabric-secret', '/etc/hostname'],
      /--fabric-secret: only with --cluster or --node/,
    ],
    [
      ['serve', '-s', '/tmp/x.sock', '--node', 'a=h:1', '--self', 'a', '--fabric-secret', '/etc/hostname'],
      /--fabric-secret: \/etc\/hostname has mode [0-7]+: group or others may read/,
    ],
    [
      ['serve', '-s', '/tmp/x.sock', '--node', 'a=h:1', '--self', 'a', '--fabric-tls'],
      /--fabric-tls: needs --fabric-ca FILE/,
    ],
  ])('rejects bad arguments %j with exit 2 and a message naming them', (args, msg) => {
    const r = sgiov(...args);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(msg);
  });

  it('serves with custom ids, stops on SIGTERM with exit 0 and removes its socket', async () => {
    const dir = new RunDir();
    const emu = new EmulatorProcess({
      socketPath: dir.file('s.sock'),
      logPath: dir.file('e.log'),
      extraArgs: ['--vendor-id', '0x1af4', '--device-id', '0x10ff'],
    });
    try {
      await emu.ready();
      expect(existsSync(dir.file('s.sock'))).toBe(true);
      await until(() => emu.log.includes('listening for a vfio-user client'), 5000);
      expect(emu.records().find((r) => r.msg === 'listening for a vfio-user client')).toMatchObject({
        ids: { vendorId: 0x1af4, deviceId: 0x10ff },
      });
      await emu.stop();
      expect(emu.proc.exitCode).toBe(0);
      expect(existsSync(dir.file('s.sock'))).toBe(false);
    } finally {
      await emu.stop(); // by PID, also when an assertion failed
      dir.remove();
    }
  });

  it('warns at start when the fabric has no secret, and not when it has one', async () => {
    const dir = new RunDir();
    const [port] = await freePorts(1);
    const creds = FabricCredentials.make(dir.file('creds'), ['a']);
    const start = (name: string, extra: string[]): EmulatorProcess =>
      new EmulatorProcess({
        socketPath: dir.file(`${name}.sock`),
        logPath: dir.file(`${name}.log`),
        logLevel: 'info',
        extraArgs: ['--node', `a=127.0.0.1:${port}`, '--self', 'a', ...extra],
      });
    const open = start('open', []);
    try {
      await open.ready();
      expect(await until(() => open.log.includes('fabric listening'), 10_000)).toBe(true);
      const warn = open.records().find((r) => String(r.msg).startsWith('fabric is unauthenticated'));
      expect(warn).toMatchObject({ level: 40, msg: expect.stringContaining('--fabric-secret FILE') });
      await open.stop();
      const closed = start('closed', creds.flags('a', false));
      try {
        await closed.ready();
        expect(await until(() => closed.log.includes('fabric listening'), 10_000)).toBe(true);
        expect(closed.records().find((r) => r.msg === 'fabric listening')).toMatchObject({
          auth: 'hmac-sha256',
          tls: false,
        });
        expect(closed.log).not.toContain('fabric is unauthenticated');
      } finally {
        await closed.stop();
      }
    } finally {
      await open.stop();
      dir.remove();
    }
  });
});
