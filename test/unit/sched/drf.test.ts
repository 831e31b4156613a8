import { describe, expect, it } from 'vitest';
import { closedForm, DrfError, progressiveFilling, type DrfProblem } from '../../../emulator/sched/drf.js';
import { Q } from '../../../emulator/sched/rational.js';

const worked: DrfProblem = {
  resources: [
    { name: 'rdma', capacity: 100 },
    { name: 'crypto', capacity: 60 },
  ],
  tenants: [
    { name: 'A', uses: ['rdma', 'crypto'] },
    { name: 'B', uses: ['rdma'] },
  ],
};

describe('rational', () => {
  it('converts doubles exactly and rounds back', () => {
    expect(Q.from(0.1).toString()).toBe('3602879701896397/36028797018963968');
    expect(Q.from(0.1).toNumber()).toBe(0.1);
    expect(Q.from(-37.5).toString()).toBe('-75/2');
    expect(Q.from(5e-324).toNumber()).toBe(5e-324);
    expect(Q.from(1e300).mul(Q.from(3)).toNumber()).toBe(3e300);
    expect(Q.of(1n, 3n).toNumber()).toBe(1 / 3);
    expect(Q.of(2n, 3n).toNumber()).toBe(2 / 3);
    expect(Q.of(10n, 11n).toNumber()).toBe(10 / 11);
    expect(Q.of(6n, -4n).toString()).toBe('-3/2');
    expect(Q.of(1n, 3n).add(Q.of(1n, 6n)).eq(Q.of(1n, 2n))).toBe(true);
    expect(() => Q.ONE.div(Q.ZERO)).toThrow(RangeError);
  });
});

describe('DRF by progressive filling', () => {
  it('gives the paper worked example: A 37.5, B 62.5 at s* = 0.625', () => {
    const a = progressiveFilling(worked);
    expect(a.rates).toEqual({ A: 37.5, B: 62.5 });
    expect(a.tenants.map((t) => t.exact.rate.toString())).toEqual(['75/2', '125/2']);
    expect(a.tenants.map((t) => t.dominantShare)).toEqual([0.625, 0.625]);
    expect(a.tenants.map((t) => t.frozenBy)).toEqual([
      { kind: 'resource', resource: 'rdma' },
      { kind: 'resource', resource: 'rdma' },
    ]);
    expect(a.resources.map((r) => [r.name, r.used, r.saturated])).toEqual([
      ['rdma', 100, true],
      ['crypto', 37.5, false],
    ]);
    expect(a.events).toEqual([{ level: 0.625, saturated: ['rdma'], capped: [] }]);
  });

  it('matches the closed form on the worked example', () => {
    const c = closedForm(worked);
    expect(c.s).toBe(0.625);
    expect(c.rates).toEqual({ A: 37.5, B: 62.5 });
    expect(c.binding).toEqual(['rdma']);
    expect(c.everyTenantBound).toBe(true);
  });

  it('weights scale dominant shares: --weight A=2', () => {
    const a = progressiveFilling({
      ...worked,
      tenants: [
        { name: 'A', uses: ['rdma', 'crypto'], weight: 2 },
        { name: 'B', uses: ['rdma'] },
      ],
    });
    // rdma: 2*60 L + 100 L = 100 -> L = 5/11; A = 600/11, B = 500/11.
    expect(a.tenants.map((t) => t.exact.rate.toString())).toEqual(['600/11', '500/11']);
    expect(a.tenants[0]!.dominantShare / a.tenants[1]!.dominantShare).toBeCloseTo(2, 12);
    expect(
      closedForm({
        ...worked,
        tenants: [
          { name: 'A', uses: ['rdma', 'crypto'], weight: 2 },
          { name: 'B', uses: ['rdma'] },
        ],
      }).rates,
    ).toEqual(a.rates);
  });

  it('a cap redistributes: --cap B=40 gives A 60 (both resources saturate together)', () => {
    const a = progressiveFilling({
      ...worked,
      tenants: [
        { name: 'A', uses: ['rdma', 'crypto'] },
        { name: 'B', uses: ['rdma'], cap: 40 },
      ],
    });
    expect(a.rates).toEqual({ A: 60, B: 40 });
    expect(a.tenants[1]!.frozenBy).toEqual({ kind: 'cap' });
    expect(a.tenants[0]!.frozenBy).toEqual({ kind: 'resource', resource: 'rdma' });
    expect(a.events).toEqual([
      { level: 0.4, saturated: [], capped: ['B'] },
      { level: 1, saturated: ['rdma', 'crypto'], capped: [] },
    ]);
    expect(a.resources.every((r) => r.saturated)).toBe(true);
  });

  it('a cap above the fair share changes nothing; a cap equal to it freezes by cap', () => {
    expect(
      progressiveFilling({
        ...worked,
        tenants: [
          { name: 'A', uses: ['rdma', 'crypto'], cap: 50 },
          { name: 'B', uses: ['rdma'] },
        ],
      }).rates,
    ).toEqual({ A: 37.5, B: 62.5 });
    const a = progressiveFilling({
      ...worked,
      tenants: [
        { name: 'A', uses: ['rdma', 'crypto'], cap: 37.5 },
        { name: 'B', uses: ['rdma'] },
      ],
    });
    expect(a.rates).toEqual({ A: 37.5, B: 62.5 });
    expect(a.tenants[0]!.frozenBy).toEqual({ kind: 'cap' });
  });

  it('hands out what the closed form leaves when several bottlenecks bind in turn', () => {
    const p: DrfProblem = {
      resources: [
        { name: 'X', capacity: 10 },
        { name: 'Y', capacity: 100 },
      ],
      tenants: [
        { name: 'A', uses: ['X'] },
        { name: 'B', uses: ['X', 'Y'] },
        { name: 'C', uses: ['Y'] },
      ],
    };
    const a = progressiveFilling(p);
    expect(a.rates).toEqual({ A: 5, B: 5, C: 95 });
    expect(a.resources.every((r) => r.saturated)).toBe(true);
    const c = closedForm(p);
    expect(c.rates).toEqual({ A: 5, B: 5, C: 50 });
    expect(c.everyTenantBound).toBe(false);
  });

  it('finds simultaneous saturations exactly with non-representable decimals', () => {
    // 0.1 + 0.2 != 0.3 in doubles; exact arithmetic still sees both saturate at once.
    const p: DrfProblem = {
      resources: [
        { name: 'a', capacity: 0.3 },
        { name: 'b', capacity: 0.3 },
      ],
      tenants: [
        { name: 'x', uses: ['a'], cap: 0.1 },
        { name: 'y', uses: ['a', 'b'] },
        { name: 'z', uses: ['b'], cap: 0.1 },
      ],
    };
    const a = progressiveFilling(p);
    expect(a.resources.every((r) => r.saturated)).toBe(true);
    expect(a.events.length).toBe(2);
  });

  it('a tenant with cap 0 gets nothing; an unused resource stays idle', () => {
    const a = progressiveFilling({
      resources: [...worked.resources, { name: 'idle', capacity: 5 }],
      tenants: [
        { name: 'A', uses: ['rdma', 'crypto'], cap: 0 },
        { name: 'B', uses: ['rdma'] },
      ],
    });
    expect(a.rates).toEqual({ A: 0, B: 100 });
    expect(a.resources[2]).toMatchObject({ name: 'idle', used: 0, saturated: false });
  });

  it.each([
    [
      {
        resources: [
          { name: 'r', capacity: 1 },
          { name: 'r', capacity: 2 },
        ],
        tenants: [],
      },
      /resource 'r' is defined twice/,
    ],
    [{ resources: [{ name: 'r', capacity: 0 }], tenants: [] }, /resource 'r': capacity 0/],
    [{ resources: [{ name: 'r', capacity: NaN }], tenants: [] }, /capacity NaN/],
    [
      { resources: [{ name: 'r', capacity: 1 }], tenants: [{ name: 'A', uses: ['q'] }] },
      /tenant 'A' uses unknown resource 'q'/,
    ],
    [
      { resources: [{ name: 'r', capacity: 1 }], tenants: [{ name: 'A', uses: [] }] },
      /tenant 'A' uses no resource/,
    ],
    [
      { resources: [{ name: 'r', capacity: 1 }], tenants: [{ name: 'A', uses: ['r', 'r'] }] },
      /names resource 'r' twice/,
    ],
    [
      {
        resources: [{ name: 'r', capacity: 1 }],
        tenants: [
          { name: 'A', uses: ['r'] },
          { name: 'A', uses: ['r'] },
        ],
      },
      /tenant 'A' is defined twice/,
    ],
    [
      { resources: [{ name: 'r', capacity: 1 }], tenants: [{ name: 'A', uses: ['r'], weight: 0 }] },
      /tenant 'A': weight 0/,
    ],
    [
      { resources: [{ name: 'r', capacity: 1 }], tenants: [{ name: 'A', uses: ['r'], cap: -1 }] },
      /tenant 'A': cap -1/,
    ],
    [
      {
        resources: [
          { name: 'r', capacity: 100 },
          { name: 's', capacity: 60 },
        ],
        tenants: [{ name: 'A', uses: ['r', 's'], cap: 61 }],
      },
      /cap 61 Gbps is above the capacity of its smallest resource \(60 Gbps\)/,
    ],
    [{ resources: [{ name: 'a b', capacity: 1 }], tenants: [] }, /resource name 'a b'/],
  ] as [DrfProblem, RegExp][])('rejects %j', (p, msg) => {
    expect(() => progressiveFilling(p)).toThrow(DrfError);
    expect(() => progressiveFilling(p)).toThrow(msg);
  });

  it('the closed form refuses caps', () => {
    expect(() => closedForm({ ...worked, tenants: [{ name: 'A', uses: ['rdma'], cap: 1 }] })).toThrow(
      /no demand caps/,
    );
  });

  it('handles 4,096 tenants with distinct caps quickly', () => {
    const resources = Array.from({ length: 6 }, (_, j) => ({ name: `r${j}`, capacity: 100 + 37 * j }));
    const tenants = Array.from({ length: 4096 }, (_, i) => ({
      name: `t${i}`,
      uses: [`r${i % 6}`, `r${(i * 7 + 1) % 6}`].filter((v, k, a) => a.indexOf(v) === k),
      weight: 1 + (i % 5),
      ...(i % 3 === 0 ? { cap: 0.001 * (i % 97) } : {}),
    }));
    const t0 = performance.now();
    const a = progressiveFilling({ resources, tenants });
    expect(performance.now() - t0).toBeLessThan(5000);
    for (const r of a.resources) expect(r.exact.used.le(r.exact.capacity)).toBe(true);
  });
});
