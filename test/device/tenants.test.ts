/**
 * Tenants made and deleted by the driver through the real transport: the
 * emulator process, the VM-less vfio-user client and the TypeScript socket
 * driver; what the host sees of them through the control interface.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSTANTS } from '../../emulator/abi/abi.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { chainCode, SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { controlCall, EmulatorProcess, RunDir, until } from '../../qemu/vm.js';
import { errnoOf } from '../support/errno.js';

let dir: RunDir;
let emu: EmulatorProcess;
let client: VfioUserClient | null = null;
const ctl = (): string => dir.file('ctl.sock');

beforeAll(async () => {
  dir = new RunDir('sgiov-tenants-');
  emu = new EmulatorProcess({
    socketPath: dir.file('s.sock'),
    logPath: dir.file('e.log'),
    logLevel: 'info',
    extraArgs: ['--control', ctl()],
  });
  await emu.ready();
  expect(await until(() => existsSync(ctl()), 5000)).toBe(true);
});

afterAll(async () => {
  client?.close();
  await emu?.stop();
  dir?.remove();
});

interface Row {
  id: number;
  tenant: string;
  weight: number;
  capGbps: number | null;
}

describe('tenants made by the driver, through vfio-user', () => {
  it('create, use, refuse, delete; the control interface shows each step', async () => {
    await controlCall(ctl(), 'schedule', { accelerators: { rdma: 40, crypto: 20 } });
    client = VfioUserClient.connect(dir.file('s.sock'), { memBytes: 32 << 20 });
    new SgiovDriver(client).bringUp();
    const drv = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 4096, timeoutMs: 20_000 });
    const key = Uint8Array.from({ length: 32 }, (_, i) => i * 3 + 1);
    const id = drv.createTenant({ name: 'ctr-web', weight: 2, capGbps: 5, aesKey: key, vni: 42 });
    expect(id).toBe(1);
    const rows = async () => ((await controlCall(ctl(), 'tenants')) as { tenants: Row[] }).tenants;
    expect((await rows()).map((r) => [r.id, r.tenant, r.weight, r.capGbps])).toEqual([
      [0, 'default', 1, null],
      [1, 'ctr-web', 2, 5],
    ]);
    expect(errnoOf(() => drv.createTenant({ name: 'ctr-web' }))).toBe('EEXIST');
    expect(errnoOf(() => drv.createTenant({ name: 'w0', weight: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => drv.deleteTenant(33))).toBe('ENOENT');
    // Its sockets run its chain with its key, and hold it.
    const s = drv.socket({ txSize: 65536, rxSize: 65536, tenant: id });
    s.connect(CONSTANTS.PORT_LOOPBACK, chainCode('ENCRYPT', 'DECRYPT'));
    s.send(new Uint8Array(5000).fill(7));
    expect(s.recv()).toEqual(new Uint8Array(5000).fill(7));
    expect(errnoOf(() => drv.deleteTenant(id))).toBe('EBUSY');
    s.close();
    drv.deleteTenant(id);
    expect((await rows()).map((r) => r.tenant)).toEqual(['default']);
    expect(errnoOf(() => drv.deleteTenant(id))).toBe('ENOENT');
    expect(emu.log).toMatch(/tenant created by the driver/);
    expect(emu.log).toMatch(/has 1 sockets/); // the refused delete, logged with its reason
  }, 60_000);
});
