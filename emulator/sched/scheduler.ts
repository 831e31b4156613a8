/**
 * Per-tenant, per-accelerator job queues and the policies that decide which
 * queued job an accelerator runs next: the interface the data plane calls
 * per job.
 *
 * A job is (tenant, the accelerators it needs in chain order, bytes). It is
 * queued in its tenant's FIFO at its first accelerator; when that
 * accelerator finishes it, `complete` moves it to the tenant's FIFO at the
 * next one, until the chain is done. Equal bandwidth: a job of B bytes
 * costs B bytes on every accelerator of its chain. The caller (the data
 * plane, or the simulator in sim.ts) owns time and the accelerators: it
 * calls `next(accel, now)` when an accelerator is free, runs the job for
 * bytes * 8 / capacity seconds of its clock (a virtual clock in the
 * simulator), then calls `complete(job, now)`. `now` is in seconds.
 *
 *   submit(job, now)      a new job enters, queued at its first accelerator
 *   next(accel, now)      the job the accelerator runs now, or null
 *   wakeAt(accel)         when null was returned with jobs queued (sriov rate
 *                         limits): the earliest time one may become eligible
 *   complete(job, now)    the running job finished on its accelerator: the
 *                         index of the accelerator it is queued at next, or -1
 *   setPolicy(cfg, now)   switch the policy at run time; queues are kept
 *   setTenant(i, spec)    change a tenant's weight, priority or cap at run time
 *
 * Demand caps: a capped tenant's jobs pass a shaper before they are queued:
 * job k enters at max(its arrival, when job k-1 entered + its bytes * 8 /
 * cap), so over any stretch the tenant offers at most its cap, and the
 * policies divide the rest among the others as if it wanted no more
 * (which is what DRF's demand cap means).
 *
 * One JobScheduler per device; each chooses its own policy.
 *
 * Policies (each decision is O(1) or O(log n) in the number of tenants):
 *
 * - rr: per accelerator, round-robin over the tenants with a job queued
 *   there, one job per turn.
 * - prio: strict priority by tenant priority (higher first); tenants of
 *   equal priority take turns. A lower tenant runs only when no higher one
 *   has a job queued at that accelerator.
 * - drf: DRF realised per job. Each tenant has a tag, its weighted dominant
 *   usage: when one of its jobs is dispatched on its first accelerator, the
 *   tag grows by bytes * 8 / (w_t * Z * 1e9) where Z is the smallest
 *   capacity in the job's chain (equal bandwidth: B bytes on each of the
 *   chain's accelerators is a dominant share of B / Z). Every accelerator
 *   serves, among the tenants with a job queued there, the one with the
 *   smallest finish tag, its tag plus what its head job would add (ties:
 *   lower tenant index): ordering by finish rather than start lets a small
 *   job of a tenant within its share pass the large jobs of tenants level
 *   with it, which is what keeps a latency-sensitive tenant's messages
 *   short behind bulk ones (the isolation benchmark). So on a contended accelerator
 *   the tenants whose dominant share is smallest are served first, and a
 *   tenant held back elsewhere (by another saturated accelerator, or by its
 *   own demand) is served whenever it has work; in the fluid limit this is
 *   the weighted max-min fair allocation of dominant shares, i.e. what
 *   progressive filling computes (drf.ts); the simulator checks it within
 *   2%. Usage is "recent": each accelerator keeps a virtual time, the tag
 *   of the job it dispatched last (as in start-time fair queueing), and a
 *   tenant that had no job in the system and gets one has its tag raised
 *   to the lowest virtual time among the accelerators of its chain where
 *   other jobs are queued (or, when none has a queue, the highest virtual
 *   time of its chain), so idle time earns no credit against the tenants
 *   it will contend with. A policy switch starts every tag at 0.
 * - sriov: the SR-IOV baseline. A fixed number of virtual functions, each
 *   with pre-configured rate limits, assigned to tenants up front (tenant i
 *   gets VF i while VFs last; later tenants get none and are never
 *   served). VF v may use accelerator j at most at vfRateGbps[v] (default
 *   C_j / vfs: a static equal partition of every accelerator). Among the
 *   eligible VFs an accelerator takes turns. Not work-conserving: a tenant
 *   never exceeds its VF's rate even when every other VF is idle.
 */
import { Fifo, MinHeap } from './heap.js';

export const SCHEDULER_KINDS = ['drf', 'rr', 'prio', 'sriov'] as const;
export type SchedulerKind = (typeof SCHEDULER_KINDS)[number];

export function isSchedulerKind(s: string): s is SchedulerKind {
  return (SCHEDULER_KINDS as readonly string[]).includes(s);
}

export interface AccelSpec {
  readonly name: string;
  /** Gbps, > 0. */
  readonly capacityGbps: number;
}

export interface TenantSpec {
  readonly name: string;
  /** drf: > 0, default 1. */
  readonly weight?: number;
  /** prio: higher is served first, default 0. */
  readonly priority?: number;
  /**
   * Demand cap, Gbps per used accelerator (every policy): the tenant wants
   * no more. Its jobs enter the queues no faster than this (a shaper in
   * front of them), so what it leaves goes to the others.
   */
  readonly capGbps?: number;
}

export type PolicyConfig =
  | { readonly kind: 'drf' }
  | { readonly kind: 'rr' }
  | { readonly kind: 'prio' }
  | { readonly kind: 'sriov'; readonly vfs?: number; readonly vfRateGbps?: readonly number[] };

export interface SchedJob {
  readonly tenant: number;
  /** Accelerator indices in chain order, non-empty, no repeats. */
  readonly accels: readonly number[];
  readonly bytes: number;
  /** Index in `accels` of the accelerator it is queued at or running on (the scheduler moves it). */
  stage: number;
  /** Free for the caller (an id, a message, ...). */
  readonly tag?: unknown;
}

/** What a policy sees of the scheduler. */
interface Context {
  readonly accels: readonly AccelSpec[];
  readonly tenants: readonly TenantSpec[];
  queued(accel: number, tenant: number): number;
  /** The tenant's next job queued at accel (it has one). */
  head(accel: number, tenant: number): SchedJob;
  queuedTotal(accel: number): number;
}

interface Policy {
  readonly kind: SchedulerKind;
  tenantAdded(tenant: number): void;
  /** The tenant had no job in the system and now has one, with this chain (called before it is queued). */
  activated(tenant: number, chain: readonly number[], now: number): void;
  /** The tenant's queue at accel went from empty to non-empty. */
  backlogged(accel: number, tenant: number, now: number): void;
  /** A tenant with a job queued at accel to serve now, or -1. */
  pick(accel: number, now: number): number;
  /** The picked tenant's head job was taken off its queue at accel. */
  dispatched(job: SchedJob, accel: number, now: number, stillQueued: boolean): void;
  /** With jobs queued and -1 picked: when to ask again (Infinity: at the next arrival). */
  wakeAt(accel: number): number;
}

class RoundRobin implements Policy {
  readonly kind = 'rr';
  private turn: Fifo<number>[];
  constructor(ctx: Context) {
    this.turn = ctx.accels.map(() => new Fifo<number>());
  }
  tenantAdded(): void {}
  activated(): void {}
  backlogged(accel: number, tenant: number): void {
    this.turn[accel]!.push(tenant);
  }
  pick(accel: number): number {
    return this.turn[accel]!.peek() ?? -1;
  }
  dispatched(job: SchedJob, accel: number, _now: number, still: boolean): void {
    const q = this.turn[accel]!;
    q.shift();
    if (still) q.push(job.tenant);
  }
  wakeAt(): number {
    return Infinity;
  }
}

class StrictPriority implements Policy {
  readonly kind = 'prio';
  private heaps: MinHeap[];
  private seq = 0;
  constructor(private ctx: Context) {
    this.heaps = ctx.accels.map(() => new MinHeap());
  }
  tenantAdded(): void {}
  activated(): void {}
  private prio(t: number): number {
    return -(this.ctx.tenants[t]!.priority ?? 0);
  }
  backlogged(accel: number, tenant: number): void {
    this.heaps[accel]!.push(this.prio(tenant), this.seq++, tenant);
  }
  pick(accel: number): number {
    const h = this.heaps[accel]!;
    return h.size ? h.peekValue() : -1;
  }
  dispatched(job: SchedJob, accel: number, _now: number, still: boolean): void {
    const h = this.heaps[accel]!;
    h.pop();
    if (still) h.push(this.prio(job.tenant), this.seq++, job.tenant); // behind its equals: turns within a priority
  }
  wakeAt(): number {
    return Infinity;
  }
}

class DominantResourceFair implements Policy {
  readonly kind = 'drf';
  /** Per tenant: weighted dominant usage, seconds of its bottleneck accelerator per unit weight. */
  private tag: number[];
  private heaps: MinHeap[];
  /** Per accelerator: the tag its latest job was dispatched at (its virtual time, as in start-time fair queueing). */
  private vtime: number[];
  constructor(private ctx: Context) {
    this.tag = ctx.tenants.map(() => 0);
    this.heaps = ctx.accels.map(() => new MinHeap());
    this.vtime = ctx.accels.map(() => 0);
  }
  tenantAdded(tenant: number): void {
    this.tag[tenant] = 0;
  }
  activated(tenant: number, chain: readonly number[]): void {
    // Back from idle: no credit for the time it had nothing to send. Raise it
    // to the lowest virtual time of the accelerators of its chain where
    // others have jobs queued (the ones it will contend on; an accelerator
    // without a queue may have an old virtual time), or when none has, to
    // the highest virtual time of its chain.
    let contended = Infinity,
      idle = 0;
    for (const a of chain) {
      const v = this.vtime[a]!;
      if (this.ctx.queuedTotal(a) > 0) {
        if (v < contended) contended = v;
      } else if (v > idle) idle = v;
    }
    const v = contended !== Infinity ? contended : idle;
    if (v > this.tag[tenant]!) this.tag[tenant] = v;
  }
  /** The dominant usage one job adds: its bytes over the smallest capacity of its chain, per unit weight. */
  private cost(job: SchedJob): number {
    let z = Infinity;
    for (const a of job.accels) z = Math.min(z, this.ctx.accels[a]!.capacityGbps);
    // The weight is read per job, so a weight changed at run time applies to the next one.
    return (job.bytes * 8) / ((this.ctx.tenants[job.tenant]!.weight ?? 1) * z * 1e9);
  }
  /** A tenant's finish tag at accel: its usage once its head job there has run. */
  private key(accel: number, t: number): number {
    const head = this.ctx.head(accel, t);
    return this.tag[t]! + (head.stage === 0 ? this.cost(head) : 0);
  }
  backlogged(accel: number, tenant: number): void {
    this.heaps[accel]!.push(this.key(accel, tenant), tenant, tenant);
  }
  pick(accel: number): number {
    const h = this.heaps[accel]!;
    // A tenant's key changes only when it is dispatched (re-keyed then) or its
    // weight changes: an entry that does not match is refreshed and looked at again.
    while (h.size) {
      const t = h.peekValue();
      const k = this.key(accel, t);
      if (h.peekKey() === k) return t;
      h.pop();
      h.push(k, t, t);
    }
    return -1;
  }
  dispatched(job: SchedJob, accel: number, _now: number, still: boolean): void {
    const t = job.tenant;
    this.vtime[accel] = this.tag[t]!;
    if (job.stage === 0) this.tag[t] = this.tag[t]! + this.cost(job);
    const h = this.heaps[accel]!;
    h.pop();
    if (still) h.push(this.key(accel, t), t, t);
  }
  wakeAt(): number {
    return Infinity;
  }
}

class SrIov implements Policy {
  readonly kind = 'sriov';
  readonly vfs: number;
  private rates: number[][]; // [vf][accel] bits per second
  /** Per accel: eligible tenants taking turns, and rate-limited ones by the time they become eligible. */
  private ready: Fifo<number>[];
  private waiting: MinHeap[];
  private nextFree: number[][]; // [accel][tenant] seconds
  private seq = 0;
  constructor(
    private ctx: Context,
    cfg: { vfs?: number; vfRateGbps?: readonly number[] },
  ) {
    const vfs = cfg.vfs ?? ctx.tenants.length;
    if (!Number.isInteger(vfs) || vfs < 1)
      throw new RangeError(`sriov: vfs ${vfs} is not a whole number >= 1`);
    this.vfs = vfs;
    if (cfg.vfRateGbps && cfg.vfRateGbps.length !== vfs)
      throw new RangeError(`sriov: ${cfg.vfRateGbps.length} VF rates for ${vfs} VFs`);
    this.rates = Array.from({ length: vfs }, (_, v) =>
      ctx.accels.map((a) => {
        const g = cfg.vfRateGbps ? cfg.vfRateGbps[v]! : a.capacityGbps / vfs;
        if (!Number.isFinite(g) || g <= 0)
          throw new RangeError(`sriov: VF ${v} rate ${g} is not a number > 0`);
        return Math.min(g, a.capacityGbps) * 1e9;
      }),
    );
    this.ready = ctx.accels.map(() => new Fifo<number>());
    this.waiting = ctx.accels.map(() => new MinHeap());
    this.nextFree = ctx.accels.map(() => ctx.tenants.map(() => 0));
  }
  /** Tenant i has VF i (assigned up front, in order), or none. */
  private vf(tenant: number): number {
    return tenant < this.vfs ? tenant : -1;
  }
  tenantAdded(tenant: number): void {
    for (const nf of this.nextFree) nf[tenant] = 0;
  }
  activated(): void {}
  private place(accel: number, tenant: number, now: number): void {
    const at = this.nextFree[accel]![tenant]!;
    if (at <= now) this.ready[accel]!.push(tenant);
    else this.waiting[accel]!.push(at, this.seq++, tenant);
  }
  backlogged(accel: number, tenant: number, now: number): void {
    if (this.vf(tenant) < 0) return; // no VF: never served
    this.place(accel, tenant, now);
  }
  pick(accel: number, now: number): number {
    const w = this.waiting[accel]!,
      r = this.ready[accel]!;
    while (w.size && w.peekKey() <= now) r.push(w.pop());
    return r.peek() ?? -1;
  }
  dispatched(job: SchedJob, accel: number, now: number, still: boolean): void {
    const t = job.tenant;
    this.ready[accel]!.shift();
    const rate = this.rates[this.vf(t)]![accel]!;
    const cost = (job.bytes * 8) / rate;
    // Token bucket one job deep: a dispatch delayed by a busy accelerator keeps its slot.
    const nf = this.nextFree[accel]!;
    nf[t] = Math.max(nf[t]!, now - cost) + cost;
    if (still) this.place(accel, t, now);
  }
  wakeAt(accel: number): number {
    return this.waiting[accel]!.peekKey();
  }
}

function makePolicy(cfg: PolicyConfig, ctx: Context): Policy {
  switch (cfg.kind) {
    case 'rr':
      return new RoundRobin(ctx);
    case 'prio':
      return new StrictPriority(ctx);
    case 'drf':
      return new DominantResourceFair(ctx);
    case 'sriov':
      return new SrIov(ctx, cfg);
    default:
      throw new RangeError(`unknown scheduler '${(cfg as { kind: string }).kind}'`);
  }
}

export class JobScheduler {
  private readonly accelList: AccelSpec[];
  private readonly tenantList: TenantSpec[] = [];
  /** [accel][tenant] */
  private queues: Fifo<SchedJob>[][];
  private queuedAt: number[];
  /** Per tenant: jobs queued or running anywhere. */
  private inSystem: number[] = [];
  /** Demand caps: per tenant, when its next job may enter (seconds); jobs held until then, by entry time. */
  private shapeNext: number[] = [];
  private shaped = new MinHeap();
  private shapedJobs = new Map<number, SchedJob>();
  private shapeSeq = 0;
  private policy: Policy;
  private policyCfg: PolicyConfig;
  private readonly ctx: Context;
  /** Decisions taken (jobs dispatched). */
  decisions = 0;

  constructor(
    accels: readonly AccelSpec[],
    tenants: readonly TenantSpec[],
    policy: PolicyConfig = { kind: 'drf' },
  ) {
    if (accels.length === 0) throw new RangeError('no accelerator');
    for (const a of accels)
      if (!(Number.isFinite(a.capacityGbps) && a.capacityGbps > 0))
        throw new RangeError(`accelerator '${a.name}': capacity ${a.capacityGbps} is not a number > 0`);
    this.accelList = [...accels];
    this.queues = accels.map(() => []);
    this.queuedAt = accels.map(() => 0);
    this.ctx = {
      accels: this.accelList,
      tenants: this.tenantList,
      queued: (a, t) => this.queues[a]![t]!.length,
      head: (a, t) => this.queues[a]![t]!.peek()!,
      queuedTotal: (a) => this.queuedAt[a]!,
    };
    for (const t of tenants) this.pushTenant(t);
    this.policy = makePolicy(policy, this.ctx);
    this.policyCfg = policy;
  }

  get kind(): SchedulerKind {
    return this.policy.kind;
  }
  /** The configuration of the policy in force (the last setPolicy's). */
  get policyConfig(): PolicyConfig {
    return this.policyCfg;
  }
  get accels(): readonly AccelSpec[] {
    return this.accelList;
  }
  get tenants(): readonly TenantSpec[] {
    return this.tenantList;
  }

  private pushTenant(t: TenantSpec): number {
    this.checkTenant(t);
    this.tenantList.push(t);
    for (const q of this.queues) q.push(new Fifo<SchedJob>());
    this.inSystem.push(0);
    this.shapeNext.push(0);
    return this.tenantList.length - 1;
  }

  private checkTenant(t: TenantSpec): void {
    const w = t.weight ?? 1;
    if (!(Number.isFinite(w) && w > 0))
      throw new RangeError(`tenant '${t.name}': weight ${w} is not a number > 0`);
    if (t.priority !== undefined && !Number.isFinite(t.priority))
      throw new RangeError(`tenant '${t.name}': priority ${t.priority} is not a number`);
    if (t.capGbps !== undefined) {
      const most = Math.max(...this.accelList.map((a) => a.capacityGbps));
      if (!(Number.isFinite(t.capGbps) && t.capGbps > 0))
        throw new RangeError(`tenant '${t.name}': cap ${t.capGbps} is not a number > 0`);
      if (t.capGbps > most)
        throw new RangeError(
          `tenant '${t.name}': cap ${t.capGbps} Gbps is above every accelerator's capacity (largest ${most} Gbps)`,
        );
    }
  }

  /** Tenant `i`'s jobs queued or running anywhere now. */
  jobsOf(i: number): number {
    return this.inSystem[i] ?? 0;
  }

  /** Changes tenant `i`'s weight, priority or cap; queued jobs stay, the next decisions use the new values. */
  setTenant(i: number, t: TenantSpec): void {
    if (!(i >= 0 && i < this.tenantList.length)) throw new RangeError(`no tenant ${i}`);
    this.checkTenant(t);
    this.tenantList[i] = t;
    // A cap lifted or raised: jobs held for the old one may enter now (kept in order).
    if (t.capGbps === undefined) this.shapeNext[i] = 0;
  }

  /** A tenant that arrives at run time; returns its index. */
  addTenant(t: TenantSpec): number {
    const i = this.pushTenant(t);
    this.policy.tenantAdded(i);
    return i;
  }

  /** Switches the policy; queued jobs stay queued, the new policy starts with fresh state. */
  setPolicy(cfg: PolicyConfig, now = 0): void {
    const p = makePolicy(cfg, this.ctx);
    for (let a = 0; a < this.accelList.length; a++) {
      for (let t = 0; t < this.tenantList.length; t++)
        if (this.queues[a]![t]!.length > 0) p.backlogged(a, t, now);
    }
    this.policy = p;
    this.policyCfg = cfg;
  }

  submit(job: SchedJob, now: number): void {
    const t = job.tenant;
    if (!(t >= 0 && t < this.tenantList.length)) throw new RangeError(`job of unknown tenant ${t}`);
    if (job.accels.length === 0) throw new RangeError('job needs no accelerator');
    for (let i = 0; i < job.accels.length; i++) {
      const a = job.accels[i]!;
      if (!(a >= 0 && a < this.accelList.length)) throw new RangeError(`job needs unknown accelerator ${a}`);
      if (job.accels.indexOf(a) !== i) throw new RangeError(`job needs accelerator ${a} twice`);
    }
    if (!(job.bytes > 0)) throw new RangeError(`job of ${job.bytes} bytes`);
    job.stage = 0;
    const cap = this.tenantList[t]!.capGbps;
    if (cap !== undefined) {
      // The shaper: held while the tenant is ahead of its cap, or behind its own held jobs (order kept).
      const at = Math.max(now, this.shapeNext[t]!);
      this.shapeNext[t] = at + (job.bytes * 8) / (cap * 1e9);
      if (at > now) {
        const seq = this.shapeSeq++;
        this.shapedJobs.set(seq, job);
        this.shaped.push(at, seq, seq);
        return;
      }
    }
    this.admit(job, now);
  }

  private admit(job: SchedJob, now: number): void {
    const t = job.tenant;
    if (this.inSystem[t]!++ === 0) this.policy.activated(t, job.accels, now);
    this.enqueue(job, job.accels[0]!, now);
  }

  /** Lets in the capped jobs whose time has come. */
  private releaseShaped(now: number): void {
    const h = this.shaped;
    while (h.size && h.peekKey() <= now) {
      const seq = h.pop();
      const job = this.shapedJobs.get(seq)!;
      this.shapedJobs.delete(seq);
      this.admit(job, now);
    }
  }

  /** Jobs held by demand caps, not yet queued. */
  get held(): number {
    return this.shapedJobs.size;
  }

  private enqueue(job: SchedJob, accel: number, now: number): void {
    const q = this.queues[accel]![job.tenant]!;
    q.push(job);
    this.queuedAt[accel]!++;
    if (q.length === 1) this.policy.backlogged(accel, job.tenant, now);
  }

  next(accel: number, now: number): SchedJob | null {
    if (this.shaped.size && this.shaped.peekKey() <= now) this.releaseShaped(now);
    if (this.queuedAt[accel] === 0) return null;
    const t = this.policy.pick(accel, now);
    if (t < 0) return null;
    const q = this.queues[accel]![t]!;
    const job = q.shift();
    if (!job)
      throw new Error(
        `scheduler ${this.policy.kind} picked tenant ${t} with nothing queued at accelerator ${accel}`,
      );
    this.queuedAt[accel]!--;
    this.decisions++;
    this.policy.dispatched(job, accel, now, q.length > 0);
    return job;
  }

  /** When to ask `next(accel)` again after it returned null: a rate limit's or a demand cap's next release. */
  wakeAt(accel: number): number {
    const own = this.queuedAt[accel] === 0 ? Infinity : this.policy.wakeAt(accel);
    return Math.min(own, this.shaped.peekKey());
  }

  complete(job: SchedJob, now: number): number {
    job.stage++;
    if (job.stage < job.accels.length) {
      const a = job.accels[job.stage]!;
      this.enqueue(job, a, now);
      return a;
    }
    this.inSystem[job.tenant]!--;
    return -1;
  }

  queued(accel: number, tenant: number): number {
    return this.queues[accel]![tenant]!.length;
  }
  queuedTotal(accel: number): number {
    return this.queuedAt[accel]!;
  }
}
