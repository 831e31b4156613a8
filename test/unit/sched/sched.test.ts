import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { progressiveFilling, type DrfTenant } from '../../../emulator/sched/drf.js';
import { schedulerDecisionNs } from '../../../qemu/bench/sched.js';
import { JobScheduler, SCHEDULER_KINDS, type SchedJob } from '../../../emulator/sched/scheduler.js';
import { simulate, type SimAccelerator, type SimTenant } from '../../../emulator/sched/sim.js';

const RDMA_CRYPTO: SimAccelerator[] = [
  { name: 'rdma', capacityGbps: 100 },
  { name: 'crypto', capacityGbps: 60 },
];
const AB: SimTenant[] = [
  { name: 'A', accels: ['rdma', 'crypto'] },
  { name: 'B', accels: ['rdma'] },
];

/** |measured - expected| <= 2% of expected (or 0.01 Gbps for rates near 0). */
function within2(measured: Record<string, number>, expected: Record<string, number>): void {
  for (const [k, e] of Object.entries(expected)) {
    const m = measured[k]!;
    expect(Math.abs(m - e), `${k}: measured ${m}, expected ${e}`).toBeLessThanOrEqual(
      Math.max(0.02 * e, 0.01),
    );
  }
}

describe('simulator with the drf scheduler', () => {
  it('realises the worked example within 2%: A 37.5, B 62.5', () => {
    const r = simulate(RDMA_CRYPTO, AB, { seconds: 1, policy: { kind: 'drf' } });
    within2(r.rates, { A: 37.5, B: 62.5 });
    within2(r.accelGbps, { rdma: 100, crypto: 37.5 });
  });

  it('weights: A=2 gives A 600/11, B 500/11', () => {
    const r = simulate(RDMA_CRYPTO, [{ ...AB[0]!, weight: 2 }, AB[1]!], {
      seconds: 1,
      policy: { kind: 'drf' },
    });
    within2(r.rates, { A: 600 / 11, B: 500 / 11 });
  });

  it('a demand cap redistributes: B=40 gives A 60', () => {
    const r = simulate(RDMA_CRYPTO, [AB[0]!, { ...AB[1]!, demandGbps: 40 }], {
      seconds: 1,
      policy: { kind: 'drf' },
    });
    within2(r.rates, { A: 60, B: 40 });
  });

  it('several bottlenecks in turn (X=10, Y=100; A{X}, B{Y,X}, C{Y}): 5, 5, 95', () => {
    const r = simulate(
      [
        { name: 'X', capacityGbps: 10 },
        { name: 'Y', capacityGbps: 100 },
      ],
      [
        { name: 'A', accels: ['X'] },
        { name: 'B', accels: ['Y', 'X'] },
        { name: 'C', accels: ['Y'] },
      ],
      { seconds: 1, policy: { kind: 'drf' } },
    );
    within2(r.rates, { A: 5, B: 5, C: 95 });
  });

  it('matches progressive filling within 2% on random scenarios (weights, caps, chains)', () => {
    const gen = fc.integer({ min: 2, max: 4 }).chain((K) =>
      fc.record({
        caps: fc.array(fc.integer({ min: 10, max: 200 }), { minLength: K, maxLength: K }),
        tenants: fc.array(
          fc.record({
            uses: fc.shuffledSubarray(
              Array.from({ length: K }, (_, j) => j),
              { minLength: 1 },
            ),
            weight: fc.integer({ min: 1, max: 4 }),
            capFrac: fc.option(fc.integer({ min: 1, max: 10 }), { freq: 3 }),
          }),
          { minLength: 2, maxLength: 5 },
        ),
      }),
    );
    fc.assert(
      fc.property(gen, ({ caps, tenants }) => {
        const resources = caps.map((c, j) => ({ name: `r${j}`, capacity: c }));
        const drf: DrfTenant[] = tenants.map((t, i) => {
          const Z = Math.min(...t.uses.map((j) => caps[j]!));
          return {
            name: `t${i}`,
            uses: t.uses.map((j) => `r${j}`),
            weight: t.weight,
            ...(t.capFrac ? { cap: (Z * t.capFrac) / 10 } : {}),
          };
        });
        const want = progressiveFilling({ resources, tenants: drf }).rates;
        const got = simulate(
          resources.map((r) => ({ name: r.name, capacityGbps: r.capacity })),
          drf.map((t) => ({
            name: t.name,
            accels: t.uses,
            weight: t.weight!,
            ...(t.cap === undefined ? {} : { demandGbps: t.cap }),
          })),
          { seconds: 0.2, policy: { kind: 'drf' } },
        ).rates;
        within2(got, want);
      }),
      { seed: 11, numRuns: 25 },
    );
  });
});

describe('simulator with the baselines', () => {
  it('rr: equal shares of the contended accelerator, one job per turn', () => {
    within2(simulate(RDMA_CRYPTO, AB, { seconds: 1, policy: { kind: 'rr' } }).rates, { A: 50, B: 50 });
    const three = simulate(
      [{ name: 'dma', capacityGbps: 90 }],
      ['x', 'y', 'z'].map((name) => ({ name, accels: ['dma'] })),
      { seconds: 1, policy: { kind: 'rr' } },
    );
    within2(three.rates, { x: 30, y: 30, z: 30 });
  });

  it('prio: the lower tenant starves on a saturated accelerator; it gets only what the higher one cannot use', () => {
    const bHigh = simulate(
      RDMA_CRYPTO,
      [
        { ...AB[0]!, priority: 0 },
        { ...AB[1]!, priority: 1 },
      ],
      { seconds: 1, policy: { kind: 'prio' } },
    );
    expect(bHigh.rates.A).toBe(0);
    within2(bHigh.rates, { B: 100 });
    const aHigh = simulate(
      RDMA_CRYPTO,
      [
        { ...AB[0]!, priority: 1 },
        { ...AB[1]!, priority: 0 },
      ],
      { seconds: 1, policy: { kind: 'prio' } },
    );
    within2(aHigh.rates, { A: 60, B: 40 }); // A is held by crypto; B takes the rest of rdma
  });

  it('prio: equal priorities take turns', () => {
    within2(simulate(RDMA_CRYPTO, AB, { seconds: 1, policy: { kind: 'prio' } }).rates, { A: 50, B: 50 });
  });

  it('sriov: each VF gets C_j / vfs of every accelerator and no more, even when the others are idle', () => {
    const r = simulate(RDMA_CRYPTO, AB, { seconds: 1, policy: { kind: 'sriov' } });
    within2(r.rates, { A: 30, B: 50 });
    within2(r.accelGbps, { rdma: 80, crypto: 30 }); // 20 Gbps of rdma left idle: not work-conserving
    const alone = simulate(RDMA_CRYPTO, [AB[0]!, { ...AB[1]!, demandGbps: 0 }], {
      seconds: 1,
      policy: { kind: 'sriov' },
    });
    within2(alone.rates, { A: 30, B: 0 });
    within2(alone.accelGbps, { rdma: 30, crypto: 30 });
  });

  it('sriov: configured VF rates; a tenant without a VF is never served', () => {
    const r = simulate(RDMA_CRYPTO, AB, {
      seconds: 1,
      policy: { kind: 'sriov', vfs: 2, vfRateGbps: [20, 70] },
    });
    within2(r.rates, { A: 20, B: 70 });
    const one = simulate(RDMA_CRYPTO, AB, { seconds: 1, policy: { kind: 'sriov', vfs: 1 } });
    within2(one.rates, { A: 60, B: 0 });
    expect(one.rates.B).toBe(0);
  });

  it('switches policy at run time, keeping the queues', () => {
    const r = simulate(RDMA_CRYPTO, AB, {
      seconds: 2,
      policy: { kind: 'rr' },
      switches: [
        { at: 0.5, policy: { kind: 'drf' } },
        { at: 1.5, policy: { kind: 'sriov' } },
      ],
    });
    expect(r.phases.map((p) => [p.policy, p.from, p.to])).toEqual([
      ['rr', 0, 0.5],
      ['drf', 0.5, 1.5],
      ['sriov', 1.5, 2],
    ]);
    within2(r.phases[0]!.rates, { A: 50, B: 50 });
    within2(r.phases[1]!.rates, { A: 37.5, B: 62.5 });
    within2(r.phases[2]!.rates, { A: 30, B: 50 });
  });

  it('is deterministic (virtual time)', () => {
    const a = simulate(RDMA_CRYPTO, [AB[0]!, { ...AB[1]!, demandGbps: 33.3 }], {
      seconds: 0.3,
      policy: { kind: 'drf' },
    });
    const b = simulate(RDMA_CRYPTO, [AB[0]!, { ...AB[1]!, demandGbps: 33.3 }], {
      seconds: 0.3,
      policy: { kind: 'drf' },
    });
    expect(a).toEqual(b);
  });

  it('rejects bad inputs', () => {
    expect(() =>
      simulate(RDMA_CRYPTO, [{ name: 'A', accels: ['gpu'] }], { seconds: 1, policy: { kind: 'rr' } }),
    ).toThrow(/unknown accelerator 'gpu'/);
    expect(() => simulate(RDMA_CRYPTO, AB, { seconds: 0, policy: { kind: 'rr' } })).toThrow(/seconds/);
    expect(() => simulate(RDMA_CRYPTO, AB, { seconds: 1, policy: { kind: 'sriov', vfs: 0 } })).toThrow(
      /vfs 0/,
    );
  });
});

describe('JobScheduler', () => {
  const job = (tenant: number, accels: number[], bytes = 1000): SchedJob => ({
    tenant,
    accels,
    bytes,
    stage: 0,
  });

  it('moves a job along its chain and keeps per-tenant FIFO order', () => {
    const s = new JobScheduler(
      [
        { name: 'a', capacityGbps: 1 },
        { name: 'b', capacityGbps: 1 },
      ],
      [{ name: 'T' }],
      { kind: 'rr' },
    );
    const j1 = job(0, [0, 1]),
      j2 = job(0, [0, 1]);
    s.submit(j1, 0);
    s.submit(j2, 0);
    expect(s.queued(0, 0)).toBe(2);
    expect(s.next(1, 0)).toBeNull();
    expect(s.wakeAt(1)).toBe(Infinity);
    expect(s.next(0, 0)).toBe(j1);
    expect(s.complete(j1, 1)).toBe(1);
    expect(s.next(1, 1)).toBe(j1);
    expect(s.complete(j1, 2)).toBe(-1);
    expect(s.next(0, 2)).toBe(j2);
    expect(s.decisions).toBe(3);
  });

  it('rejects malformed jobs', () => {
    const s = new JobScheduler([{ name: 'a', capacityGbps: 1 }], [{ name: 'T' }]);
    expect(() => s.submit(job(1, [0]), 0)).toThrow(/unknown tenant/);
    expect(() => s.submit(job(0, [3]), 0)).toThrow(/unknown accelerator/);
    expect(() => s.submit(job(0, [0, 0]), 0)).toThrow(/twice/);
    expect(() => s.submit(job(0, []), 0)).toThrow(/no accelerator/);
    expect(() => s.submit(job(0, [0], 0), 0)).toThrow(/0 bytes/);
    expect(() => new JobScheduler([{ name: 'a', capacityGbps: 0 }], [])).toThrow(/capacity 0/);
    expect(() => new JobScheduler([{ name: 'a', capacityGbps: 1 }], [{ name: 'T', weight: -1 }])).toThrow(
      /weight -1/,
    );
  });

  it('drf: idle time earns no credit (usage is recent)', () => {
    const s = new JobScheduler([{ name: 'a', capacityGbps: 1 }], [{ name: 'A' }, { name: 'B' }], {
      kind: 'drf',
    });
    for (let i = 0; i < 100; i++) {
      s.submit(job(0, [0]), i);
      const j = s.next(0, i)!;
      s.complete(j, i + 1);
    }
    // A keeps one job queued; B arrives with many: they alternate instead of B running 100 in a row.
    for (let i = 0; i < 10; i++) s.submit(job(1, [0]), 100);
    s.submit(job(0, [0]), 100);
    const order: number[] = [];
    for (let i = 0; i < 6; i++) {
      const j = s.next(0, 100 + i)!;
      order.push(j.tenant);
      s.complete(j, 101 + i);
      if (j.tenant === 0) s.submit(job(0, [0]), 101 + i);
    }
    expect(order.filter((t) => t === 0).length).toBeGreaterThanOrEqual(2);
  });

  it('drf: a tenant coming back is raised to the level of the accelerator it contends on, not of its private one', () => {
    // D's chain is Z (nobody else's) then X (shared with A).
    const s = new JobScheduler(
      [
        { name: 'X', capacityGbps: 1 },
        { name: 'Z', capacityGbps: 1 },
      ],
      [{ name: 'A' }, { name: 'D' }],
      { kind: 'drf' },
    );
    const d = s.submit.bind(s);
    d(job(1, [1, 0]), 0);
    let j = s.next(1, 0)!;
    s.complete(j, 1);
    j = s.next(0, 1)!;
    s.complete(j, 2); // D ran one job, then idles
    s.submit(job(0, [0]), 2);
    for (let i = 0; i < 50; i++) {
      j = s.next(0, 3 + i)!;
      s.complete(j, 4 + i);
      s.submit(job(0, [0]), 4 + i);
    } // A alone on X, always one queued
    for (let i = 0; i < 10; i++) d(job(1, [1, 0]), 60);
    for (let i = 0; i < 10; i++) {
      j = s.next(1, 60 + i)!;
      s.complete(j, 60 + i);
    }
    const order: number[] = [];
    for (let i = 0; i < 8; i++) {
      j = s.next(0, 70 + i)!;
      order.push(j.tenant);
      s.complete(j, 71 + i);
      if (j.tenant === 0) s.submit(job(0, [0]), 71 + i);
    }
    expect(order.filter((t) => t === 0).length).toBeGreaterThanOrEqual(3);
  });

  it('drf: tenants added at run time take part', () => {
    const s = new JobScheduler([{ name: 'a', capacityGbps: 1 }], [{ name: 'A' }], { kind: 'drf' });
    const C = s.addTenant({ name: 'C', weight: 3 });
    const served = [0, 0];
    for (let i = 0; i < 400; i++) {
      for (const t of [0, C]) if (s.queued(0, t) === 0) s.submit(job(t, [0]), i);
      const j = s.next(0, i)!;
      served[j.tenant]!++;
      s.complete(j, i + 1);
    }
    expect(served[C]! / served[0]!).toBeCloseTo(3, 1);
  });

  it('sriov: holds a job back until its VF may send again (wakeAt)', () => {
    const s = new JobScheduler([{ name: 'a', capacityGbps: 8 }], [{ name: 'A' }, { name: 'B' }], {
      kind: 'sriov',
      vfs: 2,
    }); // 4 Gbps per VF
    s.submit(job(0, [0], 1e9 / 8), 0);
    s.submit(job(0, [0], 1e9 / 8), 0); // 1 Gbit each: 0.25 s at 4 Gbps
    const j = s.next(0, 0)!;
    s.complete(j, 0.125);
    expect(s.next(0, 0.125)).toBeNull();
    expect(s.wakeAt(0)).toBeCloseTo(0.25, 12);
    expect(s.next(0, 0.25)).not.toBeNull();
  });
});

describe('decision-cost benchmark', () => {
  it.each(SCHEDULER_KINDS)('%s: runs and reports ns per decision (no timing asserted)', (kind) => {
    const r = schedulerDecisionNs(kind, { tenants: 512, decisions: 5000, warmup: 1000 });
    expect(r).toMatchObject({ kind, tenants: 512, accels: 4, decisions: 5000 });
    expect(r.nsPerDecision).toBeGreaterThan(0);
  });
});
