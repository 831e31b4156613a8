/**
 * Properties of DRF by progressive filling over random scenarios: 2-6
 * resources, 2-8 tenants, random non-empty subsets (in random order),
 * weights, caps. Every check is exact (rational arithmetic, no tolerance).
 * Seeded and bounded: a fixed seed and run count per property.
 *
 * Notation: S_t the resources tenant t uses, Z_t = min_{j in S_t} C_j,
 * w_t its weight, W = sum of all weights, d_t its cap (infinity when none),
 * r_t its allocated rate (consumed on every j in S_t), L_t = r_t / (w_t Z_t)
 * its weighted dominant share.
 *
 * - Feasibility: for every j, sum_{t: j in S_t} r_t <= C_j; 0 <= r_t <= d_t.
 * - Pareto efficiency: every tenant has r_t = d_t or uses a saturated
 *   resource (sum = C_j exactly); so no tenant can be raised without
 *   lowering another. Checked from the rates, not from what the algorithm
 *   says froze the tenant (that is checked too).
 * - Max-min certificate: a tenant below its cap uses a saturated resource on
 *   which no other user has a larger weighted dominant share L_u > L_t
 *   (this characterises the weighted max-min fair allocation: DRF).
 * - Sharing incentive: give every tenant the fraction w_t / W of every
 *   resource; on that slice alone t could run at min(d_t, (w_t / W) Z_t).
 *   Checked: r_t >= min(d_t, (w_t / W) Z_t). (Equal weights: at least what
 *   a 1/n share of every resource gives.)
 * - Envy-freeness: t would envy u if u's bundle (r_u on each resource of
 *   S_u) let t run faster than r_t. t needs all of S_t, so u's bundle is
 *   worth min(r_u, d_t) to t when S_t is a subset of S_u and 0 otherwise.
 *   Checked with equal weights: r_t >= min(r_u, d_t) for all t, u with S_t
 *   subset of S_u; and with weights, against u's bundle scaled by
 *   w_t / w_u: r_t >= min(r_u w_t / w_u, d_t).
 * - Strategy-proofness: tenant t misreports by claiming a superset S' of
 *   S_t and/or a higher demand (a cap above d_t, or none) while the others
 *   tell the truth; it is allocated r'_t and can use min(r'_t, d_t) of it.
 *   Checked: min(r'_t, d_t) <= r_t.
 * - Closed form: without caps, progressive filling gives every tenant at
 *   least the paper's a_t = s* w_t Z_t, and exactly a_t when every tenant
 *   uses a resource that binds at s* (the single-bottleneck case).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  closedForm,
  progressiveFilling,
  type DrfProblem,
  type DrfTenant,
} from '../../../emulator/sched/drf.js';
import { Q } from '../../../emulator/sched/rational.js';

const RUNS = 300;
const opts = (seed: number) => ({ seed, numRuns: RUNS });

interface Gen {
  equalWeights?: boolean;
  caps?: boolean;
}

function scenario(g: Gen = {}): fc.Arbitrary<DrfProblem> {
  return fc.integer({ min: 2, max: 6 }).chain((K) =>
    fc
      .record({
        // capacities: quarters between 0.25 and 400 Gbps, or arbitrary doubles
        caps: fc.array(
          fc.oneof(
            fc.integer({ min: 1, max: 1600 }).map((q) => q / 4),
            fc.double({ min: 0.5, max: 400, noNaN: true }),
          ),
          { minLength: K, maxLength: K },
        ),
        tenants: fc.array(
          fc.record({
            uses: fc.shuffledSubarray(
              Array.from({ length: K }, (_, j) => j),
              { minLength: 1 },
            ),
            weight: g.equalWeights
              ? fc.constant(1)
              : fc.oneof(
                  fc.constant(1),
                  fc.integer({ min: 1, max: 16 }).map((x) => x / 4),
                  fc.double({ min: 0.1, max: 10, noNaN: true }),
                ),
            // cap as a fraction of Z (0..1), or none
            capFrac:
              g.caps === false
                ? fc.constant(undefined)
                : fc.option(
                    fc.oneof(
                      fc.integer({ min: 0, max: 16 }).map((x) => x / 16),
                      fc.double({ min: 0, max: 1, noNaN: true }),
                    ),
                    { freq: 2 },
                  ),
          }),
          { minLength: 2, maxLength: 8 },
        ),
      })
      .map(({ caps, tenants }) => {
        const resources = caps.map((c, j) => ({ name: `r${j}`, capacity: c }));
        return {
          resources,
          tenants: tenants.map((t, i): DrfTenant => {
            const Z = Math.min(...t.uses.map((j) => caps[j]!));
            return {
              name: `t${i}`,
              uses: t.uses.map((j) => `r${j}`),
              weight: t.weight,
              ...(t.capFrac === undefined || t.capFrac === null ? {} : { cap: Math.min(Z, Z * t.capFrac) }),
            };
          }),
        };
      }),
  );
}

const capQ = (t: DrfTenant): Q | undefined => (t.cap === undefined ? undefined : Q.from(t.cap));
const minCap = (r: Q, d: Q | undefined): Q => (d === undefined ? r : Q.min(r, d));
const Zof = (p: DrfProblem, uses: readonly string[]): Q =>
  uses.map((u) => Q.from(p.resources.find((r) => r.name === u)!.capacity)).reduce((a, b) => Q.min(a, b));
const subset = (a: readonly string[], b: readonly string[]): boolean => a.every((x) => b.includes(x));

describe('DRF properties (fast-check, exact)', () => {
  it('feasibility and Pareto efficiency', () => {
    fc.assert(
      fc.property(scenario(), (p) => {
        const a = progressiveFilling(p);
        const sat = new Set(a.resources.filter((r) => r.exact.used.eq(r.exact.capacity)).map((r) => r.name));
        for (const r of a.resources) expect(r.exact.used.le(r.exact.capacity)).toBe(true);
        a.tenants.forEach((t, i) => {
          const d = capQ(p.tenants[i]!);
          expect(t.exact.rate.sign()).toBeGreaterThanOrEqual(0);
          if (d) expect(t.exact.rate.le(d)).toBe(true);
          const atCap = d !== undefined && t.exact.rate.eq(d);
          expect(atCap || t.uses.some((u) => sat.has(u))).toBe(true);
          if (t.frozenBy.kind === 'cap') expect(atCap).toBe(true);
          else {
            expect(t.uses).toContain(t.frozenBy.resource);
            expect(sat.has(t.frozenBy.resource)).toBe(true);
          }
        });
      }),
      opts(1),
    );
  });

  it('max-min certificate: a tenant below its cap has the largest weighted dominant share on one of its saturated resources', () => {
    fc.assert(
      fc.property(scenario(), (p) => {
        const a = progressiveFilling(p);
        const level = a.tenants.map((t) => t.exact.rate.div(Q.from(t.weight).mul(Zof(p, t.uses))));
        a.tenants.forEach((t, i) => {
          const d = capQ(p.tenants[i]!);
          if (d !== undefined && t.exact.rate.eq(d)) return;
          const ok = t.uses.some((u) => {
            const r = a.resources.find((x) => x.name === u)!;
            if (!r.exact.used.eq(r.exact.capacity)) return false;
            return a.tenants.every((o, k) => !o.uses.includes(u) || level[k]!.le(level[i]!));
          });
          expect(ok).toBe(true);
        });
      }),
      opts(2),
    );
  });

  it('sharing incentive: r_t >= min(d_t, (w_t / W) Z_t)', () => {
    fc.assert(
      fc.property(scenario(), (p) => {
        const a = progressiveFilling(p);
        const W = p.tenants.reduce((s, t) => s.add(Q.from(t.weight ?? 1)), Q.ZERO);
        a.tenants.forEach((t, i) => {
          const slice = Q.from(t.weight).div(W).mul(Zof(p, t.uses));
          expect(t.exact.rate.ge(minCap(slice, capQ(p.tenants[i]!)))).toBe(true);
        });
      }),
      opts(3),
    );
  });

  it('envy-freeness with equal weights: r_t >= min(r_u, d_t) whenever S_t is a subset of S_u', () => {
    let pairs = 0;
    fc.assert(
      fc.property(scenario({ equalWeights: true }), (p) => {
        const a = progressiveFilling(p);
        a.tenants.forEach((t, i) =>
          a.tenants.forEach((u, k) => {
            if (i === k || !subset(t.uses, u.uses)) return;
            pairs++;
            expect(t.exact.rate.ge(minCap(u.exact.rate, capQ(p.tenants[i]!)))).toBe(true);
          }),
        );
      }),
      opts(4),
    );
    expect(pairs).toBeGreaterThan(RUNS);
  });

  it('weighted envy-freeness: r_t >= min(r_u w_t / w_u, d_t) whenever S_t is a subset of S_u', () => {
    fc.assert(
      fc.property(scenario(), (p) => {
        const a = progressiveFilling(p);
        a.tenants.forEach((t, i) =>
          a.tenants.forEach((u, k) => {
            if (i === k || !subset(t.uses, u.uses)) return;
            const scaled = u.exact.rate.mul(Q.from(t.weight)).div(Q.from(u.weight));
            expect(t.exact.rate.ge(minCap(scaled, capQ(p.tenants[i]!)))).toBe(true);
          }),
        );
      }),
      opts(5),
    );
  });

  it('strategy-proofness: claiming a superset of resources or a higher demand never raises the useful rate', () => {
    let gained = 0; // misreports that changed the allocation at all (the test must exercise something)
    const lie = scenario().chain((p) =>
      fc.record({
        p: fc.constant(p),
        who: fc.integer({ min: 0, max: p.tenants.length - 1 }),
        extra: fc.shuffledSubarray(p.resources.map((r) => r.name)),
        capMode: fc.constantFrom('same', 'none', 'higher'),
        frac: fc.double({ min: 0, max: 1, noNaN: true }),
      }),
    );
    fc.assert(
      fc.property(lie, ({ p, who, extra, capMode, frac }) => {
        const truth = p.tenants[who]!;
        const claimedUses = [...truth.uses, ...extra.filter((r) => !truth.uses.includes(r))];
        const Zc = Zof(p, claimedUses).toNumber();
        const d = truth.cap;
        let claimedCap: number | undefined;
        if (capMode === 'none' || d === undefined) claimedCap = undefined;
        else if (d > Zc)
          claimedCap = undefined; // the true demand cannot even be claimed on S': claim "unlimited"
        else if (capMode === 'same') claimedCap = d;
        else claimedCap = d + (Zc - d) * frac;
        const lying: DrfProblem = {
          ...p,
          tenants: p.tenants.map((t, i) =>
            i === who
              ? {
                  name: t.name,
                  uses: claimedUses,
                  weight: t.weight,
                  ...(claimedCap === undefined ? {} : { cap: claimedCap }),
                }
              : t,
          ),
        };
        const honest = progressiveFilling(p).tenants[who]!.exact.rate;
        const got = progressiveFilling(lying).tenants[who]!.exact.rate;
        if (!got.eq(honest)) gained++;
        expect(minCap(got, capQ(truth)).le(honest)).toBe(true);
      }),
      opts(6),
    );
    expect(gained).toBeGreaterThan(RUNS / 10);
  });

  it('progressive filling dominates the closed form and equals it when every tenant uses a binding resource', () => {
    let single = 0;
    fc.assert(
      fc.property(scenario({ caps: false }), (p) => {
        const a = progressiveFilling(p);
        const c = closedForm(p);
        for (const t of a.tenants) expect(t.exact.rate.ge(c.exactRates.get(t.name)!)).toBe(true);
        if (c.everyTenantBound) {
          single++;
          for (const t of a.tenants) expect(t.exact.rate.eq(c.exactRates.get(t.name)!)).toBe(true);
          expect(a.events.length).toBe(1);
        }
      }),
      opts(7),
    );
    expect(single).toBeGreaterThan(RUNS / 10);
  });

  it('progressive filling equals the closed form on single-bottleneck scenarios (one resource used by every tenant binds)', () => {
    // Built so that a resource every tenant uses binds: its capacity is at most
    // the smallest ratio C_j / sum w Z of the others.
    const gen = scenario({ caps: false }).map((p) => {
      const shared = 'shared';
      const tenants = p.tenants.map((t) => ({ ...t, uses: [...t.uses, shared] }));
      // Half the smallest other capacity: it is every tenant's Z, binds at 1/W, every other j at >= 2/W.
      const minCapacity = Math.min(...p.resources.map((r) => r.capacity));
      return { resources: [...p.resources, { name: shared, capacity: minCapacity / 2 }], tenants };
    });
    fc.assert(
      fc.property(gen, (p) => {
        const c = closedForm(p);
        expect(c.binding).toContain('shared');
        expect(c.everyTenantBound).toBe(true);
        const a = progressiveFilling(p);
        for (const t of a.tenants) expect(t.exact.rate.eq(c.exactRates.get(t.name)!)).toBe(true);
        expect(a.rates).toEqual(c.rates);
      }),
      opts(8),
    );
  });
});
