/**
 * A virtual-time simulator: synthetic load through accelerator models and a
 * JobScheduler, reporting the rate each tenant gets. Results depend only on
 * the inputs, never on the host's speed.
 *
 * Accelerators: each runs one job at a time, a job of B bytes for
 * B * 8 / (capacity * 1e9) seconds of virtual time, and asks the scheduler
 * for the next job as soon as it is free (work-conserving unless the
 * policy holds a job back, as sriov does).
 *
 * Tenants: each sends jobs of `jobBytes` (default 128 KiB, the paper's
 * bandwidth message) through its chain of accelerators, with at most
 * `window` jobs in flight (default 8: a 1 MiB ring of 128 KiB messages).
 * A tenant without a demand cap is saturating: it always has jobs, a new
 * one the moment one leaves. A tenant with a demand (cap) of d Gbps offers
 * jobs at exactly d Gbps (one every jobBytes * 8 / d seconds), held in its
 * own ring while the window is full; demand 0 offers nothing.
 *
 * Measured rate: bytes of jobs that finished their whole chain during the
 * measurement interval, over its length. The interval is the run after a
 * warm-up (default 5% of it); with policy switches, each phase is measured
 * on its own, after the same fraction of warm-up.
 */
import { MinHeap } from './heap.js';
import { JobScheduler, type PolicyConfig, type SchedJob, type TenantSpec } from './scheduler.js';

export interface SimAccelerator {
  readonly name: string;
  readonly capacityGbps: number;
}

export interface SimTenant extends TenantSpec {
  /** Accelerator names in chain order. */
  readonly accels: readonly string[];
  /** Offered load in Gbps; absent: saturating. */
  readonly demandGbps?: number;
}

export interface SimOptions {
  /** Virtual seconds to run, > 0. */
  readonly seconds: number;
  readonly policy: PolicyConfig;
  readonly jobBytes?: number;
  readonly window?: number;
  /** Fraction of each phase not measured, 0 <= f < 1 (default 0.05). */
  readonly warmup?: number;
  /** Switch the policy at these virtual times (seconds, increasing, inside the run). */
  readonly switches?: readonly { readonly at: number; readonly policy: PolicyConfig }[];
}

export interface SimPhase {
  readonly policy: PolicyConfig['kind'];
  readonly from: number;
  readonly to: number;
  /** Tenant name -> measured Gbps. */
  readonly rates: Readonly<Record<string, number>>;
  /** Accelerator name -> Gbps it processed. */
  readonly accelGbps: Readonly<Record<string, number>>;
}

export interface SimResult {
  /** Measured rates of the first phase: the whole run when there are no switches. */
  readonly rates: Readonly<Record<string, number>>;
  readonly accelGbps: Readonly<Record<string, number>>;
  readonly phases: readonly SimPhase[];
  /** Scheduler decisions (jobs dispatched on an accelerator). */
  readonly decisions: number;
  readonly jobsDone: number;
}

const EV_DONE = 0;
const EV_WAKE = 1;
const EV_ARRIVE = 2;
const EV_SWITCH = 3;

export function simulate(
  accels: readonly SimAccelerator[],
  tenants: readonly SimTenant[],
  opts: SimOptions,
): SimResult {
  const T = opts.seconds;
  if (!(Number.isFinite(T) && T > 0)) throw new RangeError(`simulate: ${T} seconds`);
  const jobBytes = opts.jobBytes ?? 128 * 1024;
  const window = opts.window ?? 8;
  const warm = opts.warmup ?? 0.05;
  if (!(jobBytes > 0) || !Number.isInteger(window) || window < 1 || !(warm >= 0 && warm < 1))
    throw new RangeError('simulate: bad jobBytes, window or warmup');
  const index = new Map(accels.map((a, i) => [a.name, i] as const));
  const chains = tenants.map((t) =>
    t.accels.map((n) => {
      const i = index.get(n);
      if (i === undefined) throw new RangeError(`tenant '${t.name}' uses unknown accelerator '${n}'`);
      return i;
    }),
  );
  const sched = new JobScheduler(accels, tenants, opts.policy);
  const switches = [...(opts.switches ?? [])];
  const bounds = [0, ...switches.map((s) => s.at), T];
  for (let i = 1; i < bounds.length; i++)
    if (!(bounds[i]! > bounds[i - 1]!))
      throw new RangeError('simulate: switches must be increasing times inside the run');
  const phasePolicies = [opts.policy.kind, ...switches.map((s) => s.policy.kind)];
  const P = bounds.length - 1;
  const measureFrom = Array.from({ length: P }, (_, p) => bounds[p]! + warm * (bounds[p + 1]! - bounds[p]!));
  const delivered = Array.from({ length: P }, () => tenants.map(() => 0));
  const processed = Array.from({ length: P }, () => accels.map(() => 0));

  const events = new MinHeap();
  let seq = 0;
  const at = (time: number, kind: number, idx: number): void => events.push(time, seq++, kind + 4 * idx);

  const running: (SchedJob | null)[] = accels.map(() => null);
  const startedAt: number[] = accels.map(() => 0);
  const wakeAt: number[] = accels.map(() => Infinity);
  const inFlight = tenants.map(() => 0);
  const pending = tenants.map(() => 0); // offered by a paced tenant, waiting for the window
  const gap = tenants.map((t) =>
    t.demandGbps === undefined ? 0 : t.demandGbps > 0 ? (jobBytes * 8) / (t.demandGbps * 1e9) : Infinity,
  );
  let jobsDone = 0;

  const start = (a: number, now: number): void => {
    if (running[a]) return;
    const job = sched.next(a, now);
    if (job) {
      running[a] = job;
      startedAt[a] = now;
      at(now + (job.bytes * 8) / (accels[a]!.capacityGbps * 1e9), EV_DONE, a);
      return;
    }
    const w = sched.wakeAt(a);
    if (w < wakeAt[a]!) {
      wakeAt[a] = w;
      at(w, EV_WAKE, a);
    }
  };
  const admit = (t: number, now: number): void => {
    while (inFlight[t]! < window && (gap[t] === 0 || pending[t]! > 0)) {
      if (gap[t] !== 0) pending[t]!--;
      inFlight[t]!++;
      sched.submit({ tenant: t, accels: chains[t]!, bytes: jobBytes, stage: 0 }, now);
      start(chains[t]![0]!, now);
    }
  };
  /** An accelerator served `bytes` during [from, to): credit each phase's measured interval with its part (up to `until`). */
  const credit = (idx: number, bytes: number, from: number, to: number, until: number): void => {
    for (let p = 0; p < P; p++) {
      const lo = Math.max(from, measureFrom[p]!),
        hi = Math.min(to, until, bounds[p + 1]!);
      if (hi > lo) processed[p]![idx]! += (bytes * (hi - lo)) / (to - from);
    }
  };

  for (let t = 0; t < tenants.length; t++) {
    if (gap[t] === 0) admit(t, 0);
    else if (gap[t] !== Infinity) at(0, EV_ARRIVE, t);
  }
  switches.forEach((_, i) => at(switches[i]!.at, EV_SWITCH, i));

  while (events.size && events.peekKey() <= T) {
    const now = events.peekKey();
    const ev = events.pop();
    const kind = ev & 3,
      idx = ev >>> 2;
    if (kind === EV_DONE) {
      const job = running[idx]!;
      running[idx] = null;
      credit(idx, job.bytes, startedAt[idx]!, now, now);
      const t = job.tenant;
      const nextA = sched.complete(job, now);
      if (nextA >= 0) start(nextA, now);
      else {
        jobsDone++;
        for (let p = 0; p < P; p++)
          if (now >= measureFrom[p]! && now < bounds[p + 1]!) delivered[p]![t]! += job.bytes;
        inFlight[t]!--;
        admit(t, now);
      }
      start(idx, now);
    } else if (kind === EV_WAKE) {
      if (wakeAt[idx] === now) wakeAt[idx] = Infinity;
      start(idx, now);
    } else if (kind === EV_ARRIVE) {
      pending[idx]!++;
      at(now + gap[idx]!, EV_ARRIVE, idx);
      admit(idx, now);
    } else {
      sched.setPolicy(switches[idx]!.policy, now);
      for (let a = 0; a < accels.length; a++) {
        wakeAt[a] = Infinity;
        start(a, now);
      }
    }
  }
  // Jobs still running at the end: credit the accelerators with the part served so far.
  for (let a = 0; a < accels.length; a++) {
    const job = running[a];
    if (job)
      credit(
        a,
        job.bytes,
        startedAt[a]!,
        startedAt[a]! + (job.bytes * 8) / (accels[a]!.capacityGbps * 1e9),
        T,
      );
  }

  const gbps = (bytes: number, p: number): number => (bytes * 8) / ((bounds[p + 1]! - measureFrom[p]!) * 1e9);
  const phases: SimPhase[] = Array.from({ length: P }, (_, p) => ({
    policy: phasePolicies[p]!,
    from: bounds[p]!,
    to: bounds[p + 1]!,
    rates: Object.fromEntries(tenants.map((t, i) => [t.name, gbps(delivered[p]![i]!, p)])),
    accelGbps: Object.fromEntries(accels.map((a, i) => [a.name, gbps(processed[p]![i]!, p)])),
  }));
  return {
    rates: phases[0]!.rates,
    accelGbps: phases[0]!.accelGbps,
    phases,
    decisions: sched.decisions,
    jobsDone,
  };
}
