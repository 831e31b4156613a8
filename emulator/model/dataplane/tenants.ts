/**
 * The device's tenant table: who the sockets belong to. Tenant ids are
 * indexes (0..max-1); 0 is the default tenant and always exists. The host
 * makes tenants through the control interface (`schedule`), the driver
 * through the TENANT_CREATE / TENANT_DELETE / TENANT_KEYS commands
 * (emulator/abi/abi.ts). A tenant has a name, a weight and demand cap for
 * the scheduled accelerators, and may have its own AES-256-GCM key and VNI:
 * its sockets' ENCRYPT and ENCAP stages use the sender's tenant's keys, the
 * DECRYPT and DECAP stages the receiver's; a key it does not have falls back
 * to the device-wide one (CRYPTO_KEY, ENCAP_VNI).
 *
 * When the accelerators are scheduled, tenant id i is the scheduler's tenant
 * i: a deleted id stays in the scheduler as a free placeholder (nothing
 * can submit for it: a tenant is deleted only when none of its sockets
 * exists) and is reused by the next create.
 */
import { CONSTANTS, ENUMS, STRUCTS } from '../../abi/abi.js';
import type { EngineKeys } from '../accel/engines.js';
import type { TenantSpec } from '../../sched/scheduler.js';
import type { AcceleratorFarm } from '../accel/farm.js';

const ST = ENUMS.STATUS;
const CFG = Object.fromEntries(STRUCTS.tenant_cfg!.fields.map((f) => [f.name, f.offset])) as Record<
  string,
  number
>;
const CFG_AES = 1 << 0;
const CFG_VNI = 1 << 1;

export interface Tenant {
  readonly id: number;
  name: string;
  weight: number;
  priority?: number;
  capGbps?: number;
  /** Its own key material; null: the device-wide one. */
  aesKey: Uint8Array | null;
  vni: number | null;
  /** Made by the driver (TENANT_CREATE), not by the host's schedule. */
  readonly byGuest: boolean;
  /** What its sockets' engines use: its own keys, else the device's. */
  readonly keys: EngineKeys;
}

/** A tenant as TENANT_CREATE asks for it, decoded from the command and its struct sgiov_tenant_cfg. */
export interface TenantRequest {
  /** 0: the lowest free id. */
  id: number;
  name: string;
  weightMilli: number;
  capMbps: number;
  aesKey: Uint8Array | null;
  vni: number | null;
}

/** A struct sgiov_tenant_cfg decoded, or an errno and why. */
export type TenantCfg =
  | { name: string; aesKey: Uint8Array | null; vni: number | null }
  | { errno: number; why: string };

/** Decodes a struct sgiov_tenant_cfg (72 bytes of guest memory). */
export function decodeTenantCfg(v: Uint8Array): TenantCfg {
  const d = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const flags = d.getUint32(CFG.flags!, true);
  if (flags & ~(CFG_AES | CFG_VNI)) return { errno: ST.EINVAL, why: `unknown flags 0x${flags.toString(16)}` };
  const raw = v.subarray(CFG.name!, CFG.name! + CONSTANTS.TENANT_NAME_LEN);
  const end = raw.indexOf(0);
  const bytes = end < 0 ? raw : raw.subarray(0, end);
  if (end >= 0 && raw.subarray(end).some((b) => b !== 0))
    return { errno: ST.EINVAL, why: 'bytes after the name NUL' };
  if (bytes.some((b) => b < 0x21 || b > 0x7e))
    return { errno: ST.EINVAL, why: 'the name is not printable ASCII without spaces' };
  const name = String.fromCharCode(...bytes);
  const vni = flags & CFG_VNI ? d.getUint32(CFG.vni!, true) : null;
  if (vni !== null && vni > 0xffffff) return { errno: ST.EINVAL, why: `VNI ${vni} is above 0xffffff` };
  const aesKey = flags & CFG_AES ? v.slice(CFG.aes_key!, CFG.aes_key! + 32) : null;
  return { name, aesKey, vni };
}

export class TenantTable {
  private slots: (Tenant | null)[] = [];

  constructor(
    private readonly deviceKeys: EngineKeys,
    readonly max: number = CONSTANTS.MAX_TENANTS_DEFAULT,
  ) {
    if (!(Number.isInteger(max) && max >= 1 && max <= 1024))
      throw new RangeError(`max tenants ${max} is not 1..1024`);
    this.replace([{ name: 'default' }]);
  }

  private make(
    id: number,
    spec: TenantSpec,
    byGuest: boolean,
    aesKey: Uint8Array | null,
    vni: number | null,
  ): Tenant {
    const dev = this.deviceKeys;
    const t: Tenant = {
      id,
      name: spec.name,
      weight: spec.weight ?? 1,
      ...(spec.priority !== undefined ? { priority: spec.priority } : {}),
      ...(spec.capGbps !== undefined ? { capGbps: spec.capGbps } : {}),
      aesKey,
      vni,
      byGuest,
      keys: {
        get aesKey() {
          return t.aesKey ?? dev.aesKey;
        },
        get vni() {
          return t.vni ?? dev.vni;
        },
      },
    };
    return t;
  }

  /** The host's tenant list (`schedule`): ids 0..n-1. */
  replace(specs: readonly TenantSpec[]): void {
    if (specs.length === 0 || specs.length > this.max)
      throw new RangeError(`${specs.length} tenants: 1..${this.max}`);
    this.slots = specs.map((s, i) => this.make(i, s, false, null, null));
  }

  get(id: number): Tenant | null {
    return this.slots[id] ?? null;
  }

  has(id: number): boolean {
    return this.get(id) !== null;
  }

  /** Every live tenant, by id. */
  list(): Tenant[] {
    return this.slots.filter((t): t is Tenant => t !== null);
  }

  /** Slots in use or freed (a scheduler has one tenant per slot). */
  get length(): number {
    return this.slots.length;
  }

  /** The scheduler's tenant list: one per slot, a free one as a placeholder nothing submits for. */
  specs(): TenantSpec[] {
    return this.slots.map((t, i) => (t ? specOf(t) : { name: `(free ${i})` }));
  }

  /** A socket CREATE for this tenant is refused: scheduled, it must exist; unscheduled, a freed id is refused (ids beyond the table are labels, as before tenants could be made). */
  refuses(id: number, scheduled: boolean): boolean {
    if (scheduled) return !this.has(id);
    return id < this.slots.length && !this.has(id);
  }

  /** The keys a socket of this tenant uses (an unknown one: the device's). */
  keysOf(id: number): EngineKeys {
    return this.get(id)?.keys ?? this.deviceKeys;
  }

  /** TENANT_CREATE's checks: the id it gets, or an errno and why. Nothing changes until add(). */
  check(r: TenantRequest): { id: number } | { errno: number; why: string } {
    if (r.weightMilli === 0) return { errno: ST.EINVAL, why: 'weight 0' };
    let id = r.id;
    if (id === 0) {
      id = this.slots.findIndex((t) => t === null);
      if (id < 0) id = this.slots.length;
      if (id >= this.max) return { errno: ST.ENOSPC, why: `the tenant table is full (${this.max})` };
    } else if (id >= this.max) {
      return { errno: ST.EINVAL, why: `id ${id} is beyond the table (${this.max})` };
    } else if (this.has(id)) {
      return { errno: ST.EEXIST, why: `id ${id} is taken (${this.get(id)!.name})` };
    }
    const name = r.name || `tenant${id}`;
    if (this.list().some((t) => t.name === name)) return { errno: ST.EEXIST, why: `name '${name}' is taken` };
    return { id };
  }

  /** Adds a checked tenant at `id`; returns it. */
  add(id: number, r: TenantRequest): Tenant {
    const spec: TenantSpec = {
      name: r.name || `tenant${id}`,
      weight: r.weightMilli / 1000,
      ...(r.capMbps > 0 ? { capGbps: r.capMbps / 1000 } : {}),
    };
    while (this.slots.length <= id) this.slots.push(null);
    const t = this.make(id, spec, true, r.aesKey, r.vni);
    this.slots[id] = t;
    return t;
  }

  /** Frees a tenant's id (the caller checked it has no socket). */
  remove(id: number): void {
    this.slots[id] = null;
  }

  /** Sets a tenant's weight and cap (the TENANT command, the control `tenant`). */
  update(id: number, spec: TenantSpec): void {
    const t = this.get(id);
    if (!t) return;
    t.name = spec.name;
    t.weight = spec.weight ?? 1;
    if (spec.priority !== undefined) t.priority = spec.priority;
    else delete t.priority;
    if (spec.capGbps !== undefined) t.capGbps = spec.capGbps;
    else delete t.capGbps;
  }

  /** Host-made tenants are replaced by a new schedule; guest-made ones hold it back. */
  get guestMade(): Tenant[] {
    return this.list().filter((t) => t.byGuest);
  }
}

export function specOf(t: Tenant): TenantSpec {
  return {
    name: t.name,
    weight: t.weight,
    ...(t.priority !== undefined ? { priority: t.priority } : {}),
    ...(t.capGbps !== undefined ? { capGbps: t.capGbps } : {}),
  };
}

/** What the tenant commands need of the data plane. */
export interface TenantCommandContext {
  readonly table: TenantTable;
  readonly farm: AcceleratorFarm | null;
  /** The 72 bytes of a struct sgiov_tenant_cfg at a guest address, or null when unmapped. */
  readCfg(addr: bigint): Uint8Array | null;
  /** Sockets of the tenant that exist now. */
  socketsOf(id: number): number;
  /** The tenants' keys changed: decoded chains must be decoded again. */
  changed(): void;
  /** A refused command: logged once per reason (rate-limited). */
  refused(what: string, ctx: Record<string, unknown>, why: string): void;
  info(ctx: Record<string, unknown>, msg: string): void;
}

export interface TenantCommand {
  op: number;
  tenant: number;
  weightMilli: number;
  capMbps: number;
  cfgAddr: bigint;
}

const OP = ENUMS.CMD_OP;

/** TENANT_CREATE, TENANT_DELETE, TENANT_KEYS: [status, result]. */
export function tenantCommand(c: TenantCommand, x: TenantCommandContext): [number, number] {
  const fail = (errno: number, why: string): [number, number] => {
    x.refused(`tenant-op-${c.op}-${errno}`, { tenant: c.tenant, op: c.op, errno }, why);
    return [errno, 0];
  };
  const cfg = (): TenantCfg | null => {
    if (c.cfgAddr === 0n) return null;
    const v = x.readCfg(c.cfgAddr);
    return v
      ? decodeTenantCfg(v)
      : { errno: ST.EFAULT, why: 'the tenant config is not in mapped guest memory' };
  };
  switch (c.op) {
    case OP.TENANT_CREATE: {
      const k = cfg();
      if (k && 'errno' in k) return fail(k.errno, `TENANT_CREATE: ${k.why}`);
      const req: TenantRequest = {
        id: c.tenant,
        name: k?.name ?? '',
        weightMilli: c.weightMilli,
        capMbps: c.capMbps,
        aesKey: k?.aesKey ?? null,
        vni: k?.vni ?? null,
      };
      const ok = x.table.check(req);
      if ('errno' in ok) return fail(ok.errno, `TENANT_CREATE: ${ok.why}`);
      const t = x.table.add(ok.id, req);
      if (x.farm) {
        try {
          x.farm.placeTenant(ok.id, specOf(t));
        } catch (e) {
          x.table.remove(ok.id);
          return fail(ST.EINVAL, `TENANT_CREATE: ${(e as Error).message}`);
        }
      }
      x.changed();
      x.info(
        {
          tenant: t.id,
          name: t.name,
          weight: t.weight,
          capGbps: t.capGbps ?? null,
          ownKey: !!t.aesKey,
          vni: t.vni,
        },
        'tenant created by the driver',
      );
      return [ST.OK, t.id];
    }
    case OP.TENANT_DELETE: {
      const t = x.table.get(c.tenant);
      if (!t) return fail(ST.ENOENT, `TENANT_DELETE: no tenant ${c.tenant}`);
      if (c.tenant === 0) return fail(ST.EINVAL, 'TENANT_DELETE: the default tenant (0) stays');
      const n = x.socketsOf(c.tenant);
      if (n > 0) return fail(ST.EBUSY, `TENANT_DELETE: tenant ${c.tenant} (${t.name}) has ${n} sockets`);
      x.table.remove(c.tenant);
      x.farm?.freeTenant(c.tenant);
      x.changed();
      x.info({ tenant: c.tenant, name: t.name }, 'tenant deleted by the driver');
      return [ST.OK, 0];
    }
    case OP.TENANT_KEYS: {
      const t = x.table.get(c.tenant);
      if (!t) return fail(ST.ENOENT, `TENANT_KEYS: no tenant ${c.tenant}`);
      if (c.tenant === 0)
        return fail(ST.EINVAL, 'TENANT_KEYS: tenant 0 uses the device-wide keys (CRYPTO_KEY, ENCAP_VNI)');
      const k = cfg();
      if (!k) return fail(ST.EINVAL, 'TENANT_KEYS without a config');
      if ('errno' in k) return fail(k.errno, `TENANT_KEYS: ${k.why}`);
      if (!k.aesKey && k.vni === null)
        return fail(ST.EINVAL, 'TENANT_KEYS: the config sets neither key nor VNI');
      if (k.aesKey) t.aesKey = k.aesKey;
      if (k.vni !== null) t.vni = k.vni;
      x.changed();
      x.info({ tenant: t.id, ownKey: !!t.aesKey, vni: t.vni }, 'tenant keys set by the driver');
      return [ST.OK, 0];
    }
    default:
      return fail(ST.EINVAL, `op ${c.op} is no tenant command`);
  }
}
