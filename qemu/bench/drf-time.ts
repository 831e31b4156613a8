/**
 * DRF shares over time, for the bench's plot: the paper's two tenants (A on
 * RDMA and crypto, B on RDMA only; RDMA 100 and crypto 60 Gbps) through the
 * scheduler in the virtual-time simulator (emulator/sched/sim.ts, what
 * `sgiov drf --simulate` runs), measured over consecutive intervals, beside
 * the allocation progressive filling computes. Device time: the figures
 * repeat exactly, whatever the machine does.
 */
import { progressiveFilling } from '../../emulator/sched/drf.js';
import { simulate } from '../../emulator/sched/sim.js';

export interface DrfOverTime {
  what: string;
  computed: Record<string, number>;
  samples: { t: number; tenant: string; gbps: number }[];
}

export function drfOverTime(seconds = 0.2, intervals = 20): DrfOverTime {
  const resources = [
    { name: 'rdma', capacity: 100 },
    { name: 'crypto', capacity: 60 },
  ];
  const tenants = [
    { name: 'A', uses: ['rdma', 'crypto'] },
    { name: 'B', uses: ['rdma'] },
  ];
  const step = seconds / intervals;
  // The same policy at every boundary: one run, measured interval by interval.
  const switches = Array.from({ length: intervals - 1 }, (_, i) => ({
    at: (i + 1) * step,
    policy: { kind: 'drf' as const },
  }));
  const sim = simulate(
    resources.map((r) => ({ name: r.name, capacityGbps: r.capacity })),
    tenants.map((t) => ({ name: t.name, accels: t.uses })),
    { seconds, policy: { kind: 'drf' }, warmup: 0, switches },
  );
  return {
    what: `2 saturating tenants, 128 KiB jobs, ${intervals} intervals of ${(step * 1000).toFixed(1)} ms (virtual time)`,
    computed: { ...progressiveFilling({ resources, tenants }).rates },
    samples: sim.phases.flatMap((p) =>
      Object.entries(p.rates).map(([tenant, gbps]) => ({ t: p.to, tenant, gbps })),
    ),
  };
}
