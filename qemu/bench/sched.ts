/**
 * Scheduler decision cost: wall-clock nanoseconds per job decision with many
 * tenants, for `npm run bench` to include (schedulerDecisionNs) or to run
 * alone: node dist/qemu/bench/sched.js [--tenants N] [--decisions N].
 *
 * Setup: `tenants` tenants (default 4,096) on 4 accelerators (100, 60, 200
 * and 400 Gbps); tenant i's chain is one or two accelerators chosen from i;
 * every tenant keeps 2 jobs of 128 KiB in the system, so every accelerator
 * has thousands of backlogged tenants to choose from. The loop visits the
 * accelerators in turn and asks each for its next job, completes it at
 * once (moving it along its chain) and submits a new job for a tenant whose
 * job left the system. Time is virtual: `now` advances by each job's
 * service time (and to wakeAt when sriov holds every job back). One
 * decision = next() that returned a job, plus its complete() and, when the
 * chain ends, the submit() of the replacement: the per-job cost the data
 * plane pays.
 */
import { pathToFileURL } from 'node:url';
import {
  JobScheduler,
  SCHEDULER_KINDS,
  type PolicyConfig,
  type SchedJob,
  type SchedulerKind,
} from '../../emulator/sched/scheduler.js';

export interface DecisionCost {
  readonly kind: SchedulerKind;
  readonly tenants: number;
  readonly accels: number;
  readonly decisions: number;
  readonly nsPerDecision: number;
}

export function schedulerDecisionNs(
  kind: SchedulerKind,
  opts: { tenants?: number; decisions?: number; warmup?: number } = {},
): DecisionCost {
  const tenants = opts.tenants ?? 4096;
  const decisions = opts.decisions ?? 400_000;
  const warmup = opts.warmup ?? 100_000;
  const accels = [100, 60, 200, 400].map((c, i) => ({ name: `acc${i}`, capacityGbps: c }));
  const K = accels.length;
  const chains = Array.from({ length: tenants }, (_, i) => {
    const a = i % K,
      b = (i * 7 + 3) % K;
    return i % 3 === 0 || a === b ? [a] : [a, b];
  });
  const policy: PolicyConfig = kind === 'sriov' ? { kind, vfs: tenants } : { kind };
  const s = new JobScheduler(
    accels,
    Array.from({ length: tenants }, (_, i) => ({ name: `t${i}`, weight: 1 + (i % 4), priority: i % 8 })),
    policy,
  );
  const bytes = 128 * 1024;
  let now = 0;
  for (let t = 0; t < tenants; t++)
    for (let k = 0; k < 2; k++) s.submit({ tenant: t, accels: chains[t]!, bytes, stage: 0 }, now);

  const run = (n: number): void => {
    let done = 0,
      a = 0,
      idle = 0;
    while (done < n) {
      const job: SchedJob | null = s.next(a, now);
      if (job) {
        now += (bytes * 8) / (accels[a]!.capacityGbps * 1e9 * K);
        if (s.complete(job, now) < 0)
          s.submit({ tenant: job.tenant, accels: chains[job.tenant]!, bytes, stage: 0 }, now);
        done++;
        idle = 0;
      } else if (++idle >= K) {
        // nothing eligible anywhere (sriov rate limits): jump to the earliest wake-up
        let w = Infinity;
        for (let i = 0; i < K; i++) w = Math.min(w, s.wakeAt(i));
        if (w === Infinity) throw new Error(`${kind}: no job can run`);
        now = Math.max(now, w);
        idle = 0;
      }
      a = a + 1 === K ? 0 : a + 1;
    }
  };
  run(warmup);
  const t0 = process.hrtime.bigint();
  run(decisions);
  const ns = Number(process.hrtime.bigint() - t0);
  return { kind, tenants, accels: K, decisions, nsPerDecision: ns / decisions };
}

export function schedulerDecisionTable(opts: { tenants?: number; decisions?: number } = {}): DecisionCost[] {
  return SCHEDULER_KINDS.map((k) => schedulerDecisionNs(k, opts));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const tenants = arg('--tenants');
  const decisions = arg('--decisions');
  const rows = schedulerDecisionTable({
    ...(tenants ? { tenants } : {}),
    ...(decisions ? { decisions } : {}),
  });
  process.stdout.write('scheduler  tenants  accelerators  decisions  ns/decision\n');
  for (const r of rows)
    process.stdout.write(
      `${r.kind.padEnd(11)}${String(r.tenants).padEnd(9)}${String(r.accels).padEnd(14)}${String(r.decisions).padEnd(11)}${r.nsPerDecision.toFixed(0)}\n`,
    );
}
