/**
 * The device's accelerators as shared, scheduled resources: each has a
 * capacity (Gbps) enforced against the device clock, and a JobScheduler
 * (emulator/sched/scheduler.ts) decides per job which tenant's queued job
 * an accelerator runs next. A job of B bytes occupies each accelerator of
 * its chain for B * 8 / capacity ns (the paper's equal-bandwidth model);
 * when the last one finishes, the data plane does the real work.
 *
 * A message is cut into jobs of at most `jobBytes` (default 16 KiB) for the
 * accelerators, as the device's job generation does: the schedulers decide
 * per job, so a tenant's small message waits behind at most one job of each
 * other tenant, not behind whole large messages. The message moves when its
 * last job has run its whole chain.
 *
 * Without a configuration the data plane skips all this and moves data as
 * fast as the host allows.
 */
import { JobScheduler, type PolicyConfig, type SchedJob, type TenantSpec } from '../../sched/scheduler.js';
import { progressiveFilling } from '../../sched/drf.js';
import { ACCEL_NAMES, type AccelName } from '../../abi/accel-names.js';
import { TRACE, trace } from '../../util/trace.js';

export { ACCEL_NAMES, type AccelName };

export interface FarmConfig {
  accels: { name: AccelName; capacityGbps: number }[];
  tenants: TenantSpec[];
  policy: PolicyConfig;
  /** The largest job handed to the accelerators (bytes); longer messages are cut. */
  jobBytes?: number;
}

export const DEFAULT_JOB_BYTES = 16 << 10;

/** A message in the accelerators: its caller's tag and the jobs still to finish. */
interface MessageJobs {
  readonly tag: unknown;
  left: number;
}

const freshStats = (): TenantStats => ({
  bytes: 0,
  firstNs: -1,
  lastNs: 0,
  uses: new Set<number>(),
  messages: 0,
  jobs: 0,
});

interface TenantStats {
  bytes: number;
  firstNs: number;
  lastNs: number;
  /** Accelerators its jobs used, for the allocation it should get. */
  uses: Set<number>;
  /** Messages and jobs whose whole chain has run (metrics; resetStats leaves them). */
  messages: number;
  jobs: number;
}

/** Per accelerator since the farm was configured (metrics): the jobs it ran, their bytes, its busy time. */
export interface AccelStats {
  name: AccelName;
  capacityGbps: number;
  jobs: number;
  bytes: number;
  busyNs: number;
}

export class AcceleratorFarm {
  readonly sched: JobScheduler;
  private readonly busyUntil: number[];
  private readonly running: (SchedJob | null)[];
  private readonly index = new Map<string, number>();
  private readonly stats: TenantStats[];
  private inFlight = 0;
  readonly accelStats: AccelStats[];

  /**
   * The configuration as it stands now: the tenants and the policy are the
   * scheduler's (changed at run time by setTenant and setPolicy), not a
   * second copy to keep in step.
   */
  get cfg(): FarmConfig {
    return { ...this.base, tenants: [...this.sched.tenants], policy: this.sched.policyConfig };
  }

  get tenants(): readonly TenantSpec[] {
    return this.sched.tenants;
  }

  constructor(private readonly base: FarmConfig) {
    this.sched = new JobScheduler(
      base.accels.map((a) => ({ name: a.name, capacityGbps: a.capacityGbps })),
      base.tenants,
      base.policy,
    );
    base.accels.forEach((a, i) => this.index.set(a.name, i));
    this.busyUntil = base.accels.map(() => 0);
    this.running = base.accels.map(() => null);
    this.stats = base.tenants.map(freshStats);
    this.accelStats = base.accels.map((a) => ({
      name: a.name,
      capacityGbps: a.capacityGbps,
      jobs: 0,
      bytes: 0,
      busyNs: 0,
    }));
  }

  /** Accelerator indexes for engine names, skipping engines this farm does not model. */
  accels(names: readonly string[]): number[] {
    const out: number[] = [];
    for (const n of names) {
      const i = this.index.get(n);
      if (i !== undefined && !out.includes(i)) out.push(i);
    }
    return out;
  }

  get pending(): number {
    return this.inFlight;
  }

  /** A message of `bytes` for `accels` (chain order); `done` in pump() gets `tag` when all of it has run. */
  submit(tenant: number, accels: number[], bytes: number, tag: unknown, nowNs: number): void {
    const t = Math.min(Math.max(0, tenant), this.sched.tenants.length - 1);
    for (const a of accels) this.stats[t]!.uses.add(a);
    this.inFlight++;
    const max = this.base.jobBytes ?? DEFAULT_JOB_BYTES;
    const total = Math.max(1, bytes);
    const msg: MessageJobs = { tag, left: Math.ceil(total / max) };
    if (TRACE.job_submit)
      trace('job_submit', {
        tenant: this.sched.tenants[t]!.name,
        bytes,
        jobs: msg.left,
        accels: accels.map((a) => this.base.accels[a]!.name),
      });
    for (let off = 0; off < total; off += max) {
      this.sched.submit(
        { tenant: t, accels, bytes: Math.min(max, total - off), stage: 0, tag: msg },
        nowNs / 1e9,
      );
    }
  }

  /** Holds accelerators (indexes) until `untilNs` of device time: no job of theirs finishes before (a fault's stall). */
  stall(accels: number[], untilNs: number): void {
    for (const a of accels) this.busyUntil[a] = Math.max(this.busyUntil[a]!, untilNs);
  }

  /** Changes a tenant's weight, priority or demand cap at run time. */
  setTenant(i: number, spec: TenantSpec): void {
    this.sched.setTenant(i, spec);
  }

  /** A tenant made at run time at index `i` (a freed one, or the next): its stats start afresh. */
  placeTenant(i: number, spec: TenantSpec): void {
    if (i < this.sched.tenants.length) this.sched.setTenant(i, spec);
    else {
      while (this.sched.tenants.length < i) this.addTenant({ name: `(free ${this.sched.tenants.length})` });
      this.addTenant(spec);
    }
    this.stats[i] = freshStats();
  }

  /** A deleted tenant's index: a placeholder until placeTenant reuses it (it has no socket, so no job). */
  freeTenant(i: number): void {
    this.sched.setTenant(i, { name: `(free ${i})` });
    this.stats[i] = freshStats();
  }

  private addTenant(spec: TenantSpec): void {
    this.sched.addTenant(spec);
    this.stats.push(freshStats());
  }

  /**
   * Finishes the jobs whose time is up and starts queued ones on free
   * accelerators. `done` gets the tag of each message whose jobs have all
   * run their whole chain.
   */
  pump(nowNs: number, done: (tag: unknown) => void): void {
    const now = nowNs / 1e9;
    for (let a = 0; a < this.running.length; a++) {
      let backToBack = false;
      for (;;) {
        const cur = this.running[a];
        if (cur) {
          backToBack = true;
          if (this.busyUntil[a]! > nowNs) break;
          this.running[a] = null;
          const as = this.accelStats[a]!;
          as.jobs++;
          as.bytes += cur.bytes;
          as.busyNs += (cur.bytes * 8) / as.capacityGbps;
          if (TRACE.job_done) this.traceJob('job_done', a, cur);
          if (this.sched.complete(cur, now) < 0) {
            const st = this.stats[cur.tenant]!;
            if (st.firstNs < 0) st.firstNs = nowNs;
            st.bytes += cur.bytes;
            st.lastNs = nowNs;
            st.jobs++;
            const msg = cur.tag as MessageJobs;
            if (--msg.left === 0) {
              this.inFlight--;
              st.messages++;
              done(msg.tag);
            }
          }
        }
        const job = this.sched.next(a, now);
        if (!job) break;
        this.running[a] = job;
        if (TRACE.job_start) this.traceJob('job_start', a, job);
        // After a job that just finished, the next starts when it finished
        // (the poll loop notices late; the accelerator did not idle); an
        // idle accelerator starts now.
        const start = backToBack ? this.busyUntil[a]! : Math.max(this.busyUntil[a]!, nowNs);
        this.busyUntil[a] = start + (job.bytes * 8) / this.base.accels[a]!.capacityGbps;
        backToBack = true;
      }
    }
  }

  private traceJob(ev: 'job_start' | 'job_done', a: number, job: SchedJob): void {
    trace(ev, {
      accel: this.base.accels[a]!.name,
      tenant: this.sched.tenants[job.tenant]!.name,
      bytes: job.bytes,
    });
  }

  /** Per tenant (metrics): messages and jobs done, jobs queued or running now. */
  tenantCounters(): { messages: number; jobs: number; queued: number }[] {
    return this.stats.map((st, i) => ({
      messages: st.messages,
      jobs: st.jobs,
      queued: this.sched.jobsOf(i),
    }));
  }

  /** Per tenant: measured Gbps since its first completion, and the DRF allocation for what it uses. */
  report(): {
    tenant: string;
    weight: number;
    capGbps: number | null;
    uses: string[];
    bytes: number;
    measuredGbps: number;
    drfGbps: number | null;
  }[] {
    const active = this.sched.tenants
      .map((t, i) => ({ t, i, st: this.stats[i]! }))
      .filter((x) => x.st.uses.size > 0);
    let alloc: Map<string, number> | null = null;
    if (active.length > 0) {
      try {
        const r = progressiveFilling({
          resources: this.base.accels.map((a) => ({ name: a.name, capacity: a.capacityGbps })),
          tenants: active.map((x) => {
            const uses = [...x.st.uses];
            const z = Math.min(...uses.map((u) => this.base.accels[u]!.capacityGbps));
            return {
              name: x.t.name,
              uses: uses.map((u) => this.base.accels[u]!.name),
              weight: x.t.weight ?? 1,
              // A cap above what its chain can carry is no limit for it.
              ...(x.t.capGbps !== undefined && x.t.capGbps < z ? { cap: x.t.capGbps } : {}),
            };
          }),
        });
        alloc = new Map(r.tenants.map((t) => [t.name, t.rate]));
      } catch {
        alloc = null;
      }
    }
    return this.sched.tenants.map((t, i) => {
      const st = this.stats[i]!;
      const span = st.lastNs - st.firstNs;
      return {
        tenant: t.name,
        weight: t.weight ?? 1,
        capGbps: t.capGbps ?? null,
        uses: [...st.uses].map((u) => this.base.accels[u]!.name),
        bytes: st.bytes,
        measuredGbps: span > 0 ? (st.bytes * 8) / span : 0,
        drfGbps: alloc?.get(t.name) ?? null,
      };
    });
  }

  resetStats(): void {
    for (const st of this.stats) {
      st.bytes = 0;
      st.firstNs = -1;
      st.lastNs = 0;
    }
  }
}
