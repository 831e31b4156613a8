/**
 * Tenants made and deleted by the driver (TENANT_CREATE, TENANT_DELETE,
 * TENANT_KEYS) through the TypeScript socket driver over the in-memory bus:
 * the tenant table, its place in the scheduled accelerators, each bad input
 * with its errno, and per-tenant keys on the crypto and encapsulation
 * stages.
 */
import { createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CONSTANTS, ENUMS } from '../../../emulator/abi/abi.js';
import { chainCode, SgiovSocketDriver } from '../../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';
import { deviceCommand } from '../../../emulator/control/commands.js';
import { TenantTable } from '../../../emulator/model/dataplane/tenants.js';
import { errnoOf, sgiovErrorOf } from '../../support/errno.js';

function rig(schedule?: Record<string, unknown>) {
  const { bus, dev } = enabledDevice(32 << 20);
  const a = busAccess(bus, dev);
  const drv = new SgiovSocketDriver(a, { d2hSlots: 4096, timeoutMs: 2000 });
  if (schedule) deviceCommand(dev, 'schedule', schedule);
  return { bus, dev, drv, a };
}

const keyA = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
const keyB = Uint8Array.from({ length: 32 }, (_, i) => 200 - i);
const msg = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

interface Row {
  id: number;
  tenant: string;
  weight: number;
  capGbps: number | null;
}

describe('tenants made by the driver', () => {
  it('creates a tenant with a name, weight and cap, holds its sockets, and deletes it once they are closed', () => {
    const { dev, drv } = rig();
    const id = drv.createTenant({ name: 'ctr-1', weight: 2, capGbps: 1.5 });
    expect(id).toBe(1); // the lowest free id; 0 is the default tenant
    const t = dev.dp.tenants.get(id)!;
    expect(t).toMatchObject({ name: 'ctr-1', weight: 2, capGbps: 1.5, byGuest: true });
    const s = drv.socket({ txSize: 4096, rxSize: 4096, tenant: id });
    expect(errnoOf(() => drv.deleteTenant(id))).toBe('EBUSY'); // a socket of it exists
    expect(dev.dp.tenants.has(id)).toBe(true);
    s.close();
    drv.deleteTenant(id);
    expect(dev.dp.tenants.has(id)).toBe(false);
    expect(errnoOf(() => drv.deleteTenant(id))).toBe('ENOENT'); // deleted twice
    expect(errnoOf(() => drv.socket({ txSize: 4096, rxSize: 4096, tenant: id }))).toBe('EINVAL');
    expect(drv.createTenant({ name: 'ctr-2' })).toBe(1); // the id is reused
    expect(dev.dp.tenants.get(1)!.name).toBe('ctr-2');
    expect(drv.createTenant({ id: 9 })).toBe(9); // an id asked for
    expect(dev.dp.tenants.get(9)!.name).toBe('tenant9'); // no name given
  });

  it('refuses bad input with an errno and changes nothing', () => {
    const { dev, drv } = rig();
    drv.createTenant({ name: 'web' });
    const before = dev.dp.tenants.list().length;
    expect(errnoOf(() => drv.createTenant({ name: 'x', weight: 0 }))).toBe('EINVAL');
    expect(errnoOf(() => drv.createTenant({ name: 'web' }))).toBe('EEXIST'); // the name is taken
    expect(errnoOf(() => drv.createTenant({ id: 1, name: 'y' }))).toBe('EEXIST'); // the id is taken
    expect(errnoOf(() => drv.createTenant({ id: CONSTANTS.MAX_TENANTS_DEFAULT }))).toBe('EINVAL');
    expect(errnoOf(() => drv.createTenant({ name: 'has space' }))).toBe('EINVAL');
    expect(errnoOf(() => drv.createTenant({ name: 'v', vni: 0x1000000 }))).toBe('EINVAL');
    expect(errnoOf(() => drv.createTenant({ name: 'f', rawFlags: 0x80 }))).toBe('EINVAL');
    expect(errnoOf(() => drv.deleteTenant(77))).toBe('ENOENT');
    expect(errnoOf(() => drv.deleteTenant(0))).toBe('EINVAL'); // the default tenant stays
    expect(errnoOf(() => drv.setTenantKeys(77, { vni: 5 }))).toBe('ENOENT');
    expect(errnoOf(() => drv.setTenantKeys(0, { vni: 5 }))).toBe('EINVAL');
    expect(errnoOf(() => drv.setTenantKeys(1, {}))).toBe('EINVAL'); // neither key nor VNI
    // A config outside guest memory: EFAULT.
    expect(
      errnoOf(() => drv.command(ENUMS.CMD_OP.TENANT_CREATE, { sid: 0, arg: 1000, txAddr: 1n << 40n })),
    ).toBe('EFAULT');
    expect(dev.dp.tenants.list().length).toBe(before);
    // The device still works.
    const s = drv.socket({ txSize: 4096, rxSize: 4096, tenant: 1 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    s.send(msg(100, 1));
    expect(s.recv()).toEqual(msg(100, 1));
  });

  it('a full table refuses the next tenant with ENOSPC; a delete makes room', () => {
    const { drv } = rig();
    for (let i = 1; i < CONSTANTS.MAX_TENANTS_DEFAULT; i++) expect(drv.createTenant()).toBe(i);
    expect(errnoOf(() => drv.createTenant({ name: 'one-more' }))).toBe('ENOSPC');
    drv.deleteTenant(100);
    expect(drv.createTenant({ name: 'one-more' })).toBe(100);
  });

  it('the table checks its own bounds', () => {
    const t = new TenantTable({ aesKey: new Uint8Array(32), vni: 0 }, 2);
    const req = { id: 0, name: '', weightMilli: 1000, capMbps: 0, aesKey: null, vni: null };
    expect(t.check(req)).toEqual({ id: 1 });
    t.add(1, req);
    expect(t.check(req)).toMatchObject({ errno: ENUMS.STATUS.ENOSPC });
    expect(() => new TenantTable({ aesKey: new Uint8Array(32), vni: 0 }, 0)).toThrow(/1\.\.1024/);
  });

  it('scheduled: a new tenant joins the accelerators with its weight and cap, and leaves them when deleted', () => {
    const { dev, drv } = rig({ accelerators: { rdma: 100, crypto: 60 } });
    const id = drv.createTenant({ name: 'ctr-a', weight: 2, capGbps: 10 });
    const rows = () => (deviceCommand(dev, 'tenants', {}) as { tenants: Row[] }).tenants;
    expect(rows().map((r) => [r.id, r.tenant, r.weight, r.capGbps])).toEqual([
      [0, 'default', 1, null],
      [id, 'ctr-a', 2, 10],
    ]);
    expect(errnoOf(() => drv.createTenant({ name: 'big', capGbps: 500 }))).toBe('EINVAL'); // above every capacity
    drv.setTenant(id, 3); // the TENANT command on a made tenant
    expect(dev.dp.tenants.get(id)!.weight).toBe(3);
    expect(() =>
      deviceCommand(dev, 'schedule', { accelerators: { rdma: 10 }, tenants: [{ name: 'A' }] }),
    ).toThrow(/the guest made tenants 1 \(ctr-a\)/);
    // Leaving "tenants" out keeps the table.
    deviceCommand(dev, 'schedule', { accelerators: { rdma: 50, crypto: 60 } });
    expect(rows().map((r) => r.tenant)).toEqual(['default', 'ctr-a']);
    // Traffic of the made tenant is charged to it.
    const l = drv.socket({ txSize: 4096, rxSize: 4096, tenant: id });
    l.listen(700);
    const [c, s] = drv.connectPair(l, { txSize: 65536, rxSize: 65536, tenant: id });
    c.send(msg(20000, 3));
    expect(s.recv()).toEqual(msg(20000, 3));
    expect(rows().find((r) => r.id === id)).toMatchObject({ tenant: 'ctr-a' });
    expect((rows().find((r) => r.id === id) as unknown as { bytes: number }).bytes).toBeGreaterThanOrEqual(
      20000,
    );
    for (const x of [c, s, l]) x.close();
    drv.deleteTenant(id);
    expect(rows().map((r) => r.tenant)).toEqual(['default']);
    expect(drv.createTenant({ name: 'ctr-b' })).toBe(id);
    expect(rows().map((r) => [r.id, r.tenant])).toEqual([
      [0, 'default'],
      [id, 'ctr-b'],
    ]);
  });
});

describe('per-tenant keys', () => {
  const ENC_DEC = chainCode('ENCRYPT', 'DECRYPT');

  /** A listener of tenant `to` on `port` and a client of tenant `from` connected to it with `chain`. */
  function connect(drv: SgiovSocketDriver, from: number, to: number, port: number, chain: number) {
    const l = drv.socket({ txSize: 4096, rxSize: 4096, tenant: to });
    l.listen(port);
    const client = drv.socket({ txSize: 65536, rxSize: 65536, tenant: from });
    return drv.connectPair(l, { txSize: 65536, rxSize: 65536, tenant: to, client, chain });
  }

  it('two tenants with different keys each read their own messages and cannot read each other’s (EBADMSG)', () => {
    const { dev, drv } = rig();
    const a = drv.createTenant({ name: 'a', aesKey: keyA });
    const b = drv.createTenant({ name: 'b' });
    drv.setTenantKeys(b, { aesKey: keyB }); // the per-tenant SET_KEYS
    const [ca, sa] = connect(drv, a, a, 801, ENC_DEC);
    const [cb, sb] = connect(drv, b, b, 802, ENC_DEC);
    ca.send(msg(3000, 1));
    cb.send(msg(3000, 2));
    expect(sa.recv()).toEqual(msg(3000, 1));
    expect(sb.recv()).toEqual(msg(3000, 2));
    // a -> b: sealed with a's key, opened with b's.
    const [cx, sx] = connect(drv, a, b, 803, ENC_DEC);
    const failed = dev.dp.counters.msgsMoved;
    cx.send(msg(500, 3));
    const err = sgiovErrorOf(() => sx.recv());
    expect(err?.errno).toBe('EBADMSG');
    expect(err?.code).toBe(ENUMS.SERR.AUTH_FAILED);
    expect(dev.dp.counters.msgsMoved).toBe(failed + 1); // it left the sender's ring, it was not delivered
    // And back, b -> a: the same.
    sx.send(msg(400, 4));
    expect(() => cx.recv()).toThrow(/EBADMSG|command failed|AUTH/);
    // Each still reads its own.
    ca.send(msg(100, 5));
    expect(sa.recv()).toEqual(msg(100, 5));
  });

  it('ENCRYPT seals with the sender tenant’s own key, not the device-wide one', () => {
    const { drv } = rig();
    const a = drv.createTenant({ name: 'a', aesKey: keyA });
    const s = drv.socket({ txSize: 65536, rxSize: 65536, tenant: a });
    s.connect(CONSTANTS.PORT_LOOPBACK, chainCode('ENCRYPT'));
    s.send(msg(1000, 6));
    const sealed = s.recv();
    const d = createDecipheriv('aes-256-gcm', keyA, sealed.subarray(0, 12));
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    expect(Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()])).toEqual(
      Buffer.from(msg(1000, 6)),
    );
    // The default tenant uses the device's key (all zero here): the same bytes do not open with keyA.
    const z = drv.socket({ txSize: 65536, rxSize: 65536 });
    z.connect(CONSTANTS.PORT_LOOPBACK, chainCode('ENCRYPT'));
    z.send(msg(1000, 6));
    const other = z.recv();
    const d2 = createDecipheriv('aes-256-gcm', keyA, other.subarray(0, 12));
    d2.setAuthTag(other.subarray(other.length - 16));
    d2.update(other.subarray(12, other.length - 16));
    expect(() => d2.final()).toThrow();
  });

  it('a tenant’s own VNI: its encapsulation carries it, another tenant’s decapsulation refuses it', () => {
    const { drv } = rig();
    const a = drv.createTenant({ name: 'a', vni: 42 });
    const b = drv.createTenant({ name: 'b', vni: 43 });
    const s = drv.socket({ txSize: 65536, rxSize: 65536, tenant: a });
    s.connect(CONSTANTS.PORT_LOOPBACK, chainCode('ENCAP'));
    s.send(msg(64, 7));
    const framed = s.recv();
    expect(Array.from(framed.subarray(4, 7))).toEqual([0, 0, 42]);
    const [cx, sx] = connect(drv, a, b, 804, chainCode('ENCAP', 'DECAP'));
    cx.send(msg(64, 8));
    const err = sgiovErrorOf(() => sx.recv());
    expect(err?.code).toBe(ENUMS.SERR.BAD_ENCAP);
    const [ca, sa] = connect(drv, a, a, 805, chainCode('ENCAP', 'DECAP'));
    ca.send(msg(64, 9));
    expect(sa.recv()).toEqual(msg(64, 9));
  });
});
