/**
 * The control interface's commands, answered in the device thread between
 * its rounds: host/worker.ts hands each request here once control/methods.ts
 * checked it against the table. `status`, `metrics`, `trace` and `fabric`
 * come from the carriers and the thread, the rest from the device model:
 * `sockets`, `reset`, `faults`, `schedule`, `tenants`, `tenant`. Each checks its arguments' ranges and
 * meaning and throws an Error naming the problem; the model itself takes
 * no JSON.
 */
import { CONSTANTS } from '../abi/abi.js';
import { faultsControl } from '../faults/injector.js';
import type { FabricCarrier } from '../host/fabric-carrier.js';
import { snapshot } from '../host/snapshot.js';
import type { VfuServer } from '../host/vfu-server.js';
import { ACCEL_NAMES, type AccelName, DEFAULT_JOB_BYTES } from '../model/accel/farm.js';
import type { SgiovDevice } from '../model/device.js';
import { isSchedulerKind, type PolicyConfig, SCHEDULER_KINDS } from '../sched/scheduler.js';
import type { Logger } from '../util/log.js';
import { setTrace, traceState } from '../util/trace.js';

/** What the device thread answers with: the model and its carriers. */
export interface CommandTarget {
  readonly model: SgiovDevice;
  /** The vfio-user server (its counters and clock). */
  readonly server: Pick<VfuServer, 'stats' | 'nowNs'>;
  /** The fabric carrier, when the emulator is a node of a cluster. */
  readonly carrier: FabricCarrier | null;
  /** The thread's root logger (trace lines go to it). */
  readonly log: Logger;
}

/** Answers one control command (checked against the table already); throws on an unknown one or bad arguments. */
export function answerCommand(t: CommandTarget, cmd: string, args: Record<string, unknown>): unknown {
  const { model, carrier } = t;
  if (cmd === 'status')
    return {
      transport: t.server.stats,
      device: model.status(),
      ...(carrier ? { fabric: carrier.stats(), pipes: model.dp.remote?.counters } : {}),
    };
  if (cmd === 'metrics')
    return snapshot(t.server.stats, model, t.server.nowNs(), carrier ? carrier.stats() : null);
  if (cmd === 'trace') {
    const a = args as { pattern?: string; perSecond?: number };
    if (a.pattern !== undefined) setTrace(a.pattern, t.log, a.perSecond);
    return traceState();
  }
  if (cmd === 'fabric') {
    if (!carrier) throw new Error('fabric: this emulator has no cluster (--cluster or --node)');
    return carrier.stats();
  }
  return deviceCommand(model, cmd, args);
}

/** The commands the device model answers (all but status and fabric); throws on an unknown one or bad arguments. */
export function deviceCommand(model: SgiovDevice, cmd: string, args: Record<string, unknown>): unknown {
  switch (cmd) {
    case 'sockets': {
      const from = args.from === undefined ? 0 : Number(args.from);
      const limit = args.limit === undefined ? 100 : Number(args.limit);
      if (!Number.isInteger(from) || from < 0 || !Number.isInteger(limit) || limit < 1 || limit > 65536)
        throw new Error('sockets: "from" >= 0 and "limit" in 1..65536');
      return model.dp.describeSockets(from, limit);
    }
    case 'reset':
      model.reset('reset through the control interface');
      return { reset: true };
    case 'faults':
      if (args.op === 'reinsert') {
        // The card is back in its slot: as after power-on.
        const was = model.removed;
        model.reset('re-inserted through the control interface');
        return { reinserted: true, wasRemoved: was };
      }
      return faultsControl(model.faults, args);
    case 'schedule':
      return schedule(model, args);
    case 'tenants':
      if (!model.dp.farm)
        throw new Error('tenants: the accelerators are not scheduled (see the schedule command)');
      return { policy: model.dp.farm.sched.kind, tenants: model.dp.tenantReport() };
    case 'tenant':
      return tenant(model, args);
    default:
      throw new Error(
        `unknown command '${cmd}' (known: status, sockets, reset, schedule, tenants, tenant, faults)`,
      );
  }
}

/** Rates and weights a control request may set: finite, and far from where the schedulers' sums overflow or vanish. */
const MIN_GBPS = 1e-3;
const MAX_GBPS = 1e6;
const MIN_WEIGHT = 1e-6;
const MAX_WEIGHT = 1e6;
const inRange = (v: unknown, lo: number, hi: number): v is number =>
  typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi;

/**
 * `schedule`: accelerator capacities, tenants and the scheduling policy.
 *   {"accelerators": {"rdma": 100, "crypto": 60}, "tenants": [{"name": "A", "weight": 2}, {"name": "B", "cap": 40}],
 *    "policy": "drf", "jobBytes": 16384}
 *                      weight (> 0), priority (prio), cap (Gbps, demand cap), jobBytes (largest accelerator job)
 *   {"policy": "rr"}   switch the policy of the running configuration
 *   {"off": true}      back to unscheduled (as fast as the host goes)
 *   {}                 the current configuration
 */
function schedule(model: SgiovDevice, args: Record<string, unknown>): unknown {
  const dp = model.dp;
  const policyOf = (v: unknown, vfs: unknown): PolicyConfig => {
    if (!isSchedulerKind(String(v)))
      throw new Error(`schedule: policy '${String(v)}' is not one of ${SCHEDULER_KINDS.join(', ')}`);
    if (v === 'sriov') {
      if (vfs !== undefined && (!Number.isInteger(vfs) || (vfs as number) < 1))
        throw new Error('schedule: vfs must be a whole number >= 1');
      return vfs === undefined ? { kind: 'sriov' } : { kind: 'sriov', vfs: vfs as number };
    }
    return { kind: v as 'drf' | 'rr' | 'prio' };
  };
  if (args.off === true) {
    dp.configureFarm(null);
    return { scheduled: false };
  }
  if (args.accelerators === undefined && args.policy !== undefined) {
    if (!dp.farm) throw new Error('schedule: nothing to switch; give accelerators and tenants first');
    dp.farm.sched.setPolicy(policyOf(args.policy, args.vfs), model.nowNs() / 1e9);
    return { scheduled: true, policy: dp.farm.sched.kind };
  }
  if (args.accelerators === undefined)
    return dp.farm ? { scheduled: true, ...dp.farm.cfg } : { scheduled: false };
  const acc = args.accelerators;
  if (typeof acc !== 'object' || acc === null || Array.isArray(acc))
    throw new Error('schedule: "accelerators" is an object of name: Gbps');
  const accels = Object.entries(acc as Record<string, unknown>).map(([name, gbps]) => {
    if (!(ACCEL_NAMES as readonly string[]).includes(name))
      throw new Error(`schedule: unknown accelerator '${name}' (known: ${ACCEL_NAMES.join(', ')})`);
    if (!inRange(gbps, MIN_GBPS, MAX_GBPS))
      throw new Error(
        `schedule: accelerator '${name}' needs a capacity in Gbps > 0 (in [${MIN_GBPS}, ${MAX_GBPS}])`,
      );
    return { name: name as AccelName, capacityGbps: gbps };
  });
  if (accels.length === 0) throw new Error('schedule: at least one accelerator');
  if (args.tenants !== undefined && dp.tenants.guestMade.length > 0)
    throw new Error(
      `schedule: the guest made tenants ${dp.tenants.guestMade.map((t) => `${t.id} (${t.name})`).join(', ')}; ` +
        'leave "tenants" out to keep the tenant table, or delete them first',
    );
  const ten = args.tenants ?? [];
  if (!Array.isArray(ten) || (args.tenants !== undefined && ten.length === 0))
    throw new Error('schedule: "tenants" is a non-empty list');
  if (ten.length > dp.tenants.max) throw new Error(`schedule: at most ${dp.tenants.max} tenants`);
  const names = new Set<string>();
  const tenants = ten.map((t: unknown, i: number) => {
    const o = (typeof t === 'object' && t !== null ? t : {}) as Record<string, unknown>;
    const name = typeof o.name === 'string' && o.name ? o.name : `tenant${i}`;
    if (names.has(name)) throw new Error(`schedule: tenant '${name}' given twice`);
    names.add(name);
    const weight = o.weight === undefined ? 1 : o.weight;
    if (!inRange(weight, MIN_WEIGHT, MAX_WEIGHT))
      throw new Error(`schedule: tenant '${name}': weight must be > 0 (in [${MIN_WEIGHT}, ${MAX_WEIGHT}])`);
    const priority = o.priority === undefined ? 0 : o.priority;
    if (!inRange(priority, -MAX_WEIGHT, MAX_WEIGHT))
      throw new Error(
        `schedule: tenant '${name}': priority must be a number in [${-MAX_WEIGHT}, ${MAX_WEIGHT}]`,
      );
    if (o.cap === undefined) return { name, weight, priority };
    const most = Math.max(...accels.map((a) => a.capacityGbps));
    if (!inRange(o.cap, MIN_GBPS, MAX_GBPS))
      throw new Error(
        `schedule: tenant '${name}': cap must be a number of Gbps > 0 (in [${MIN_GBPS}, ${MAX_GBPS}])`,
      );
    if (o.cap > most)
      throw new Error(
        `schedule: tenant '${name}': cap ${o.cap} Gbps is above every accelerator's capacity (largest ${most} Gbps)`,
      );
    return { name, weight, priority, capGbps: o.cap };
  });
  const jobBytes = args.jobBytes ?? DEFAULT_JOB_BYTES;
  if (
    typeof jobBytes !== 'number' ||
    !Number.isInteger(jobBytes) ||
    jobBytes < 64 ||
    jobBytes > CONSTANTS.RING_MAX
  )
    throw new Error(`schedule: jobBytes must be a whole number of bytes in 64..${CONSTANTS.RING_MAX}`);
  const policy = policyOf(args.policy ?? 'drf', args.vfs);
  if (args.tenants === undefined) {
    // The tenants as they stand (the default one, and those the host or the guest made).
    try {
      dp.configureFarm({ accels, tenants: dp.tenants.specs(), policy, jobBytes });
    } catch (e) {
      throw new Error(`schedule: ${(e as Error).message}`);
    }
  } else {
    dp.configureFarm({ accels, tenants, policy, jobBytes });
    dp.tenants.replace(tenants);
  }
  return { scheduled: true, ...dp.farm!.cfg };
}

/**
 * `tenant`: change one tenant at run time, as the guest's TENANT command does.
 *   {"tenant": "A", "weight": 2, "cap": 40}   cap null lifts the cap; absent fields stay
 */
function tenant(model: SgiovDevice, args: Record<string, unknown>): unknown {
  const farm = model.dp.farm;
  if (!farm) throw new Error('tenant: the accelerators are not scheduled (see the schedule command)');
  const i = farm.tenants.findIndex((t, id) => t.name === args.tenant && model.dp.tenants.has(id));
  if (i < 0)
    throw new Error(
      `tenant: unknown tenant '${String(args.tenant)}' (known: ${model.dp.tenants
        .list()
        .map((t) => t.name)
        .join(', ')})`,
    );
  const cur = farm.tenants[i]!;
  const weight = args.weight === undefined ? cur.weight : args.weight;
  if (!inRange(weight, MIN_WEIGHT, MAX_WEIGHT))
    throw new Error(`tenant: '${cur.name}': weight must be > 0 (in [${MIN_WEIGHT}, ${MAX_WEIGHT}])`);
  const cap = args.cap === undefined ? cur.capGbps : args.cap === null ? undefined : args.cap;
  if (cap !== undefined && !inRange(cap, MIN_GBPS, MAX_GBPS))
    throw new Error(
      `tenant: '${cur.name}': cap must be a number of Gbps > 0 (in [${MIN_GBPS}, ${MAX_GBPS}]), or null`,
    );
  try {
    const spec = {
      name: cur.name,
      weight,
      ...(cur.priority !== undefined ? { priority: cur.priority } : {}),
      ...(cap !== undefined ? { capGbps: cap } : {}),
    };
    farm.setTenant(i, spec);
    model.dp.tenants.update(i, spec);
  } catch (e) {
    throw new Error(`tenant: ${(e as Error).message}`);
  }
  return { tenant: cur.name, weight, capGbps: cap ?? null };
}
