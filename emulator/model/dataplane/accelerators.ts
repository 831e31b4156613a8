/**
 * The device's accelerators as shared, scheduled resources: each has a
 * capacity (Gbps) enforced against the device clock, and a JobScheduler
 * (emulator/sched/scheduler.ts) decides per job which tenant's queued job
 * an accelerator runs next. A job of B bytes occupies each accelerator of
 * its chain for B * 8 / capacity ns (the paper's equal-bandwidth model);
 * when the last one finishes, the data plane does the real work.
 *
 * Without a configuration the data plane skips all this and moves data as
 * fast as the host allows.
 */
import { JobScheduler, type PolicyConfig, type SchedJob, type TenantSpec } from '../../sched/scheduler.js';
import { progressiveFilling } from '../../sched/drf.js';

/** The engines a chain can use. `rdma` carries a message between two sockets. */
export const ACCEL_NAMES = ['rdma', 'crypto', 'encap', 'lookaside'] as const;
export type AccelName = (typeof ACCEL_NAMES)[number];

export interface FarmConfig {
  accels: { name: AccelName; capacityGbps: number }[];
  tenants: TenantSpec[];
  policy: PolicyConfig;
}

interface TenantStats {
  bytes: number;
  firstNs: number;
  lastNs: number;
  /** Accelerators its jobs used, for the allocation it should get. */
  uses: Set<number>;
}

export class AcceleratorFarm {
  readonly sched: JobScheduler;
  private readonly busyUntil: number[];
  private readonly running: (SchedJob | null)[];
  private readonly index = new Map<string, number>();
  private readonly stats: TenantStats[];
  private inFlight = 0;

  constructor(readonly cfg: FarmConfig) {
    this.sched = new JobScheduler(cfg.accels.map((a) => ({ name: a.name, capacityGbps: a.capacityGbps })), cfg.tenants, cfg.policy);
    cfg.accels.forEach((a, i) => this.index.set(a.name, i));
    this.busyUntil = cfg.accels.map(() => 0);
    this.running = cfg.accels.map(() => null);
    this.stats = cfg.tenants.map(() => ({ bytes: 0, firstNs: -1, lastNs: 0, uses: new Set<number>() }));
  }

  /** Accelerator indexes for engine names, skipping engines this farm does not model. */
  accels(names: readonly string[]): number[] {
    const out: number[] = [];
    for (const n of names) { const i = this.index.get(n); if (i !== undefined && !out.includes(i)) out.push(i); }
    return out;
  }

  get pending(): number {
    return this.inFlight;
  }

  submit(tenant: number, accels: number[], bytes: number, tag: unknown, nowNs: number): void {
    const t = Math.min(Math.max(0, tenant), this.cfg.tenants.length - 1);
    for (const a of accels) this.stats[t]!.uses.add(a);
    this.inFlight++;
    this.sched.submit({ tenant: t, accels, bytes, stage: 0, tag }, nowNs / 1e9);
  }

  /**
   * Finishes the jobs whose time is up and starts queued ones on free
   * accelerators. `done` gets each job whose whole chain has run.
   */
  pump(nowNs: number, done: (job: SchedJob) => void): void {
    const now = nowNs / 1e9;
    for (let a = 0; a < this.running.length; a++) {
      let backToBack = false;
      for (;;) {
        const cur = this.running[a];
        if (cur) {
          backToBack = true;
          if (this.busyUntil[a]! > nowNs) break;
          this.running[a] = null;
          if (this.sched.complete(cur, now) < 0) {
            this.inFlight--;
            const st = this.stats[cur.tenant]!;
            if (st.firstNs < 0) st.firstNs = nowNs;
            st.bytes += cur.bytes;
            st.lastNs = nowNs;
            done(cur);
          }
        }
        const job = this.sched.next(a, now);
        if (!job) break;
        this.running[a] = job;
        // After a job that just finished, the next starts when it finished
        // (the poll loop notices late; the accelerator did not idle); an
        // idle accelerator starts now.
        const start = backToBack ? this.busyUntil[a]! : Math.max(this.busyUntil[a]!, nowNs);
        this.busyUntil[a] = start + (job.bytes * 8) / this.cfg.accels[a]!.capacityGbps;
        backToBack = true;
      }
    }
  }

  /** Per tenant: measured Gbps since its first completion, and the DRF allocation for what it uses. */
  report(): { tenant: string; weight: number; uses: string[]; bytes: number; measuredGbps: number; drfGbps: number | null }[] {
    const active = this.cfg.tenants.map((t, i) => ({ t, i, st: this.stats[i]! })).filter((x) => x.st.uses.size > 0);
    let alloc: Map<string, number> | null = null;
    if (active.length > 0) {
      try {
        const r = progressiveFilling({
          resources: this.cfg.accels.map((a) => ({ name: a.name, capacity: a.capacityGbps })),
          tenants: active.map((x) => ({ name: x.t.name, uses: [...x.st.uses].map((u) => this.cfg.accels[u]!.name), weight: x.t.weight ?? 1 })),
        });
        alloc = new Map(r.tenants.map((t) => [t.name, t.rate]));
      } catch { alloc = null; }
    }
    return this.cfg.tenants.map((t, i) => {
      const st = this.stats[i]!;
      const span = st.lastNs - st.firstNs;
      return {
        tenant: t.name, weight: t.weight ?? 1, uses: [...st.uses].map((u) => this.cfg.accels[u]!.name), bytes: st.bytes,
        measuredGbps: span > 0 ? (st.bytes * 8) / span : 0, drfGbps: alloc?.get(t.name) ?? null,
      };
    });
  }

  resetStats(): void {
    for (const st of this.stats) { st.bytes = 0; st.firstNs = -1; st.lastNs = 0; }
  }
}
