/**
 * Dominant Resource Fairness under equal-bandwidth demand (the SG-IOV paper's
 * case), computed by progressive filling, and the paper's closed form.
 *
 * The model. K resources (accelerators) with capacities C_j in Gbps. Tenant t
 * uses a non-empty subset S_t at equal bandwidth: its rate r_t is consumed on
 * every member of S_t. Its bottleneck capacity is Z_t = min_{j in S_t} C_j,
 * so its dominant share is r_t / Z_t. Optional weight w_t > 0 (default 1)
 * and optional demand cap d_t with 0 <= d_t <= Z_t (the tenant wants no more
 * than d_t; a cap above Z_t can never be met and is rejected).
 *
 * Progressive filling. One level L rises from 0. Every unfrozen tenant sits
 * at dominant share w_t * L, i.e. rate r_t = L * w_t * Z_t: dominant shares
 * rise together in proportion to the weights (with equal weights, equal
 * dominant shares: that is DRF; raising the *rates* equally would not give
 * the paper's 37.5/62.5). A tenant freezes, keeping its rate, when a resource
 * it uses saturates or when its rate reaches its cap; the others go on until
 * every tenant is frozen. The computation is event-driven: from the current
 * level it computes the level of the next event directly,
 *
 *   resource j saturates at  L_j = (C_j - F_j) / U_j
 *     (F_j: rate of the frozen tenants on j, U_j: sum of w_t Z_t of the
 *      unfrozen tenants on j)
 *   tenant t reaches its cap at  L_t = d_t / (w_t Z_t),
 *
 * jumps to the smallest, and freezes what it names. All of it in exact
 * rational arithmetic (rational.ts), so simultaneous events are found
 * exactly and the result is rounded once.
 *
 * The closed form (the paper): s* = min_j C_j / sum_{t: j in S_t} Z_{S_t},
 * a_t = s* Z_{S_t}; with weights, sum w_t Z_t and a_t = s* w_t Z_t. It is
 * the first event of progressive filling without caps, so the two agree
 * whenever every tenant uses a resource that binds at s*; otherwise the
 * closed form leaves capacity that progressive filling hands out.
 */
import { Q } from './rational.js';

export interface DrfResource {
  readonly name: string;
  /** Gbps, finite and > 0. */
  readonly capacity: number;
}

export interface DrfTenant {
  readonly name: string;
  /** Names of the resources it uses (equal bandwidth on each), non-empty, no repeats. */
  readonly uses: readonly string[];
  /** > 0, default 1. */
  readonly weight?: number;
  /** Demand cap in Gbps, 0 <= cap <= the smallest capacity it uses; absent: unlimited. */
  readonly cap?: number;
}

export interface DrfProblem {
  readonly resources: readonly DrfResource[];
  readonly tenants: readonly DrfTenant[];
}

export type FrozenBy = { readonly kind: 'resource'; readonly resource: string } | { readonly kind: 'cap' };

export interface TenantAllocation {
  readonly name: string;
  readonly uses: readonly string[];
  readonly weight: number;
  readonly cap: number | undefined;
  /** Z_t: the smallest capacity among the resources it uses. */
  readonly bottleneckCapacity: number;
  /** Gbps on every resource it uses. */
  readonly rate: number;
  /** rate / Z_t. */
  readonly dominantShare: number;
  /** What froze it: a resource of S_t that saturated (the first in S_t's order when several did), or its cap. */
  readonly frozenBy: FrozenBy;
  readonly exact: { readonly rate: Q; readonly dominantShare: Q; readonly level: Q };
}

export interface ResourceUse {
  readonly name: string;
  readonly capacity: number;
  /** Gbps used by all tenants together. */
  readonly used: number;
  readonly saturated: boolean;
  readonly exact: { readonly used: Q; readonly capacity: Q };
}

export interface DrfEvent {
  /** The filling level (weighted dominant share) at which it happened. */
  readonly level: number;
  readonly saturated: readonly string[];
  readonly capped: readonly string[];
}

export interface DrfAllocation {
  readonly tenants: readonly TenantAllocation[];
  readonly resources: readonly ResourceUse[];
  /** Tenant name -> Gbps. */
  readonly rates: Readonly<Record<string, number>>;
  /** The events of progressive filling, in order. */
  readonly events: readonly DrfEvent[];
}

/** A problem that is not well formed; the message names the offending item. */
export class DrfError extends Error {}

interface Prepared {
  resNames: string[];
  cap: Q[];
  tenants: {
    name: string;
    uses: number[];
    usesNames: string[];
    weight: number;
    w: Q;
    Z: Q;
    speed: Q;
    cap: Q | undefined;
    capNum: number | undefined;
  }[];
}

const NAME = /^[A-Za-z0-9_.:-]+$/;

function prepare(p: DrfProblem): Prepared {
  const index = new Map<string, number>();
  const cap: Q[] = [];
  p.resources.forEach((r, j) => {
    if (!NAME.test(r.name))
      throw new DrfError(`resource name '${r.name}' must be letters, digits, '_', '.', ':' or '-'`);
    if (index.has(r.name)) throw new DrfError(`resource '${r.name}' is defined twice`);
    if (typeof r.capacity !== 'number' || !Number.isFinite(r.capacity) || r.capacity <= 0)
      throw new DrfError(`resource '${r.name}': capacity ${r.capacity} is not a number > 0`);
    index.set(r.name, j);
    cap.push(Q.from(r.capacity));
  });
  const seen = new Set<string>();
  const tenants = p.tenants.map((t) => {
    if (!NAME.test(t.name))
      throw new DrfError(`tenant name '${t.name}' must be letters, digits, '_', '.', ':' or '-'`);
    if (seen.has(t.name)) throw new DrfError(`tenant '${t.name}' is defined twice`);
    seen.add(t.name);
    if (t.uses.length === 0) throw new DrfError(`tenant '${t.name}' uses no resource`);
    const uses: number[] = [];
    for (const r of t.uses) {
      const j = index.get(r);
      if (j === undefined) throw new DrfError(`tenant '${t.name}' uses unknown resource '${r}'`);
      if (uses.includes(j)) throw new DrfError(`tenant '${t.name}' names resource '${r}' twice`);
      uses.push(j);
    }
    const weight = t.weight ?? 1;
    if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0)
      throw new DrfError(`tenant '${t.name}': weight ${weight} is not a number > 0`);
    let Z = cap[uses[0]!]!;
    for (const j of uses) Z = Q.min(Z, cap[j]!);
    let capQ: Q | undefined;
    if (t.cap !== undefined) {
      if (typeof t.cap !== 'number' || !Number.isFinite(t.cap) || t.cap < 0)
        throw new DrfError(`tenant '${t.name}': cap ${t.cap} is not a number >= 0`);
      capQ = Q.from(t.cap);
      if (capQ.gt(Z))
        throw new DrfError(
          `tenant '${t.name}': cap ${t.cap} Gbps is above the capacity of its smallest resource (${Z.toNumber()} Gbps)`,
        );
    }
    const w = Q.from(weight);
    return {
      name: t.name,
      uses,
      usesNames: [...t.uses],
      weight,
      w,
      Z,
      speed: w.mul(Z),
      cap: capQ,
      capNum: t.cap,
    };
  });
  return { resNames: p.resources.map((r) => r.name), cap, tenants };
}

/** Throws DrfError when the problem is not well formed. */
export function validateProblem(p: DrfProblem): void {
  prepare(p);
}

/** DRF by progressive filling (see the file comment). */
export function progressiveFilling(p: DrfProblem): DrfAllocation {
  const { resNames, cap, tenants } = prepare(p);
  const K = cap.length;
  const T = tenants.length;
  const users: number[][] = Array.from({ length: K }, () => []);
  tenants.forEach((t, i) => {
    for (const j of t.uses) users[j]!.push(i);
  });
  const F: Q[] = Array.from({ length: K }, () => Q.ZERO); // rate of frozen tenants on j
  const U: Q[] = Array.from({ length: K }, () => Q.ZERO); // sum of speeds of unfrozen tenants on j
  for (const t of tenants) for (const j of t.uses) U[j] = U[j]!.add(t.speed);
  const frozenLevel: (Q | undefined)[] = new Array(T).fill(undefined);
  const frozenBy: (FrozenBy | undefined)[] = new Array(T).fill(undefined);
  // Cap events in level order (exact comparisons); a pointer walks them.
  const capLevel = tenants.map((t) => (t.cap === undefined ? undefined : t.cap.div(t.speed)));
  const capOrder = tenants
    .map((_, i) => i)
    .filter((i) => capLevel[i] !== undefined)
    .sort((a, b) => capLevel[a]!.cmp(capLevel[b]!) || a - b);
  let capPtr = 0;
  const events: DrfEvent[] = [];
  let unfrozen = T;

  const freeze = (i: number, level: Q, by: FrozenBy): void => {
    const t = tenants[i]!;
    frozenLevel[i] = level;
    frozenBy[i] = by;
    const rate = level.mul(t.speed);
    for (const j of t.uses) {
      F[j] = F[j]!.add(rate);
      U[j] = U[j]!.sub(t.speed);
    }
    unfrozen--;
  };

  while (unfrozen > 0) {
    while (capPtr < capOrder.length && frozenLevel[capOrder[capPtr]!] !== undefined) capPtr++;
    let level: Q | undefined = capPtr < capOrder.length ? capLevel[capOrder[capPtr]!] : undefined;
    const resLevel: (Q | undefined)[] = new Array(K).fill(undefined);
    for (let j = 0; j < K; j++) {
      if (U[j]!.isZero()) continue;
      const l = cap[j]!.sub(F[j]!).div(U[j]!);
      resLevel[j] = l;
      if (level === undefined || l.lt(level)) level = l;
    }
    if (level === undefined)
      throw new Error('progressive filling: unfrozen tenants but no event (cannot happen)');
    const capped: string[] = [];
    while (capPtr < capOrder.length) {
      const i = capOrder[capPtr]!;
      if (frozenLevel[i] === undefined) {
        if (!capLevel[i]!.eq(level)) break;
        freeze(i, level, { kind: 'cap' });
        capped.push(tenants[i]!.name);
      }
      capPtr++;
    }
    const saturated: string[] = [];
    const satNow: number[] = [];
    for (let j = 0; j < K; j++)
      if (resLevel[j] !== undefined && resLevel[j]!.eq(level)) {
        satNow.push(j);
        saturated.push(resNames[j]!);
      }
    for (const j of satNow) {
      for (const i of users[j]!) {
        if (frozenLevel[i] !== undefined) continue;
        const t = tenants[i]!;
        const first = t.uses.find((k) => satNow.includes(k))!;
        freeze(i, level, { kind: 'resource', resource: resNames[first]! });
      }
    }
    events.push({ level: level.toNumber(), saturated, capped });
  }

  const out: TenantAllocation[] = tenants.map((t, i) => {
    const level = frozenLevel[i]!;
    const rate = level.mul(t.speed);
    const share = rate.div(t.Z);
    return {
      name: t.name,
      uses: t.usesNames,
      weight: t.weight,
      cap: t.capNum,
      bottleneckCapacity: t.Z.toNumber(),
      rate: rate.toNumber(),
      dominantShare: share.toNumber(),
      frozenBy: frozenBy[i]!,
      exact: { rate, dominantShare: share, level },
    };
  });
  const resources: ResourceUse[] = resNames.map((name, j) => {
    let used = Q.ZERO;
    for (const i of users[j]!) used = used.add(out[i]!.exact.rate);
    return {
      name,
      capacity: cap[j]!.toNumber(),
      used: used.toNumber(),
      saturated: used.eq(cap[j]!),
      exact: { used, capacity: cap[j]! },
    };
  });
  return { tenants: out, resources, rates: Object.fromEntries(out.map((t) => [t.name, t.rate])), events };
}

export interface ClosedForm {
  /** s* (with weights: the common weighted dominant share). */
  readonly s: number;
  readonly exactS: Q;
  /** Tenant name -> a_t in Gbps. */
  readonly rates: Readonly<Record<string, number>>;
  readonly exactRates: ReadonlyMap<string, Q>;
  /** The resources at which the minimum is attained. */
  readonly binding: readonly string[];
  /** True when every tenant uses a binding resource: then progressive filling gives exactly this. */
  readonly everyTenantBound: boolean;
}

/**
 * The paper's closed form, s* = min_j C_j / sum_{t: j in S_t} w_t Z_{S_t},
 * a_t = s* w_t Z_{S_t} (w_t = 1 in the paper). Caps are not part of it: a
 * problem with a cap is rejected.
 */
export function closedForm(p: DrfProblem): ClosedForm {
  const { resNames, cap, tenants } = prepare(p);
  const withCap = tenants.find((t) => t.cap !== undefined);
  if (withCap) throw new DrfError(`the closed form has no demand caps (tenant '${withCap.name}' has one)`);
  const sum: Q[] = cap.map(() => Q.ZERO);
  for (const t of tenants) for (const j of t.uses) sum[j] = sum[j]!.add(t.speed);
  let s: Q | undefined;
  const ratio: (Q | undefined)[] = cap.map((c, j) => (sum[j]!.isZero() ? undefined : c.div(sum[j]!)));
  for (const r of ratio) if (r !== undefined && (s === undefined || r.lt(s))) s = r;
  const sStar = s ?? Q.ZERO;
  const binding = resNames.filter((_, j) => ratio[j] !== undefined && ratio[j]!.eq(sStar));
  const exactRates = new Map(tenants.map((t) => [t.name, sStar.mul(t.speed)] as const));
  const bound = new Set(binding);
  return {
    s: sStar.toNumber(),
    exactS: sStar,
    rates: Object.fromEntries([...exactRates].map(([n, r]) => [n, r.toNumber()])),
    exactRates,
    binding,
    everyTenantBound: tenants.every((t) => t.usesNames.some((r) => bound.has(r))),
  };
}
