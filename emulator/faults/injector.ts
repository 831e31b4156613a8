/**
 * The fault injector: runs a plan's rules (plan.ts) at the injection points.
 * It decides and counts; it never acts or sleeps. The caller applies what
 * check() returns with its own means and clock (DeviceHost.schedule for a
 * delay, a stall or a link outage).
 *
 * The points sit on hot paths (every MMIO access, every signal), so the
 * question "could anything fire here?" is one array read, kept current
 * whenever rules, their states or the plan's state change:
 *
 *   if (inj.armed[POINT.SIGNAL_H2D]) {
 *     const f = inj.check(POINT.SIGNAL_H2D, { sid, tenant });
 *     if (f?.action === 'drop') return;
 *   }
 *
 * One check yields at most one action: every live rule that matches counts
 * the match and takes its own decision (so its draws do not depend on the
 * others), and the first that fires, in plan order, wins; the others that
 * fired in the same check count it as `shadowed` and spend nothing of their
 * `count`. Rules with action `none` inject nothing, so they never win nor
 * shadow: they fire beside the winner. The `then` of every rule that fired
 * (and was not shadowed) applies after the check, in plan order: the last
 * one names the new state.
 */
import { RateLimitedLog, subLogger, type Logger } from '../util/log.js';
import { TRACE, trace } from '../util/trace.js';
import {
  ACTION_NAMES,
  POINT_NAMES,
  PlanError,
  checkStates,
  validateRule,
  type FaultAction,
  type Match,
  type Plan,
  type Point,
  type RuleSpec,
} from './plan.js';
import { RuleStream } from './rng.js';

/** What the caller knows at a point; a rule that matches on a field the caller left out does not match. */
export interface FaultContext {
  readonly sid?: number;
  readonly tenant?: number;
  readonly accel?: string;
  readonly executor?: string;
  /** BAR0 offset of an MMIO access. */
  readonly reg?: number;
  /** BAR offset (mmio.*) or guest address (dma.*) of the first byte. */
  readonly addr?: number | bigint;
  /** Bytes from addr (default 1), for address-range matching. */
  readonly len?: number;
  readonly node?: string | number;
  /** The same node's number (fabric.*: its id), so a rule's `node` matches the name or the id. */
  readonly nodeId?: number;
  readonly vector?: number;
}

/** What check() returns: the action, and the id of the rule that chose it. Shared: do not modify. */
export type Fault = Exclude<FaultAction, { action: 'none' }> & { readonly rule: string };

export interface RuleReport {
  id: string;
  /** Enabled, in one of its states and not spent: it counts matches and may fire. */
  live: boolean;
  enabled: boolean;
  /** Matches while live (a spent or idle rule is not even looked at). */
  matches: number;
  injections: number;
  /** Fired in a check that an earlier rule won. */
  shadowed: number;
  /** The rule as written. */
  rule: Record<string, unknown>;
}

/** One injection, for the live view. */
export interface RecentInjection {
  atMs: number;
  rule: string;
  point: string;
  action: string;
  /** The rule's injections so far. */
  n: number;
}
const RECENT = 16;

export interface FaultReport {
  state: string;
  seed: number;
  rules: RuleReport[];
  /** Injections by point, then action (non-zero ones only), since load or resetCounters. */
  injections: Record<string, Record<string, number>>;
}

interface LiveRule {
  readonly spec: RuleSpec;
  readonly point: number;
  /** null for action `none`. */
  readonly fault: Fault | null;
  readonly actionIndex: number;
  enabled: boolean;
  rng: RuleStream;
  matches: number;
  injections: number;
  shadowed: number;
}

const NO_CONTEXT: FaultContext = Object.freeze({});

function matches(m: Match, c: FaultContext): boolean {
  if (m.sid !== undefined && c.sid !== m.sid) return false;
  if (m.tenant !== undefined && c.tenant !== m.tenant) return false;
  if (m.accel !== undefined && c.accel !== m.accel) return false;
  if (m.executor !== undefined && c.executor !== m.executor) return false;
  if (m.reg !== undefined && c.reg !== m.reg) return false;
  if (m.vector !== undefined && c.vector !== m.vector) return false;
  if (
    m.node !== undefined &&
    (c.node === undefined || String(c.node) !== m.node) &&
    (c.nodeId === undefined || String(c.nodeId) !== m.node)
  )
    return false;
  if (m.addr !== undefined) {
    if (c.addr === undefined) return false;
    // An access matches when any of its bytes falls in [lo, hi).
    const lo = BigInt(c.addr);
    const hi = lo + BigInt(Math.max(1, c.len ?? 1));
    if (!(lo < m.addr.hi && hi > m.addr.lo)) return false;
  }
  return true;
}

/** The trigger's decision for the rule's latest match (r.matches already counts it). */
function fires(r: LiveRule): boolean {
  const t = r.spec.trigger;
  const k = r.matches - t.after;
  if (k <= 0) return false;
  if (t.nth !== 0 && k !== t.nth) return false;
  if (t.every > 1 && k % t.every !== 0) return false;
  // Drawn only when the deterministic gates pass, so p = 1 consumes nothing.
  if (t.probability < 1 && !(r.rng.float() < t.probability)) return false;
  return true;
}

/** Can never fire again (until resetCounters): its count is used up or its nth match is past. */
const spent = (r: LiveRule): boolean =>
  r.injections >= r.spec.trigger.count || (r.spec.trigger.nth !== 0 && r.matches >= r.spec.trigger.nth);

/** The action's parameters, for the log line. */
function detail(a: FaultAction): Record<string, unknown> {
  switch (a.action) {
    case 'error':
      return { status: a.status };
    case 'delay':
    case 'link_down':
      return { ns: a.ns };
    case 'stall':
      return { ns: a.ns, accel: a.accel };
    case 'corrupt':
      return { offset: a.offset, xor: Buffer.from(a.xor).toString('hex') };
    default:
      return {};
  }
}

export class FaultInjector {
  /** armed[point] !== 0 when some rule could fire there now: test it before building a context. */
  readonly armed = new Uint8Array(POINT_NAMES.length);
  /** Live rules per point, in plan order: what check() walks. */
  private readonly byPoint: LiveRule[][] = POINT_NAMES.map(() => []);
  private rules: LiveRule[] = [];
  /** Injections per (point, action), indexed point * ACTION_NAMES.length + action. */
  private readonly counts = new Float64Array(POINT_NAMES.length * ACTION_NAMES.length);
  private seed = 0;
  private startState = 'initial';
  private current = 'initial';
  /** For the ids of unnamed rules added at run time; never reused, so ids stay unambiguous in logs. */
  private nextId = 1;
  private readonly log: Logger;
  /** Injections can come in floods (p = 1 on every signal): a few lines per rule per second. */
  private readonly rl: RateLimitedLog;

  private readonly recentRing: RecentInjection[] = [];
  private recentNext = 0;

  constructor(log: Logger, plan?: Plan) {
    this.log = subLogger(log, 'faults');
    this.rl = new RateLimitedLog(this.log);
    if (plan) this.load(plan);
  }

  /** The plan's current state. */
  get state(): string {
    return this.current;
  }

  /** Replaces every rule, the seed and the state with the plan's; counters start from zero. */
  load(plan: Plan): void {
    this.seed = plan.seed;
    this.startState = this.current = plan.state;
    this.rules = plan.rules.map((s) => this.instantiate(s));
    this.nextId = plan.rules.length + 1;
    this.counts.fill(0);
    this.rebuild();
    this.log.info(
      { seed: plan.seed, state: plan.state, rules: this.rules.map((r) => r.spec.id) },
      'fault plan loaded',
    );
  }

  /**
   * The action to apply at this point now, or null. Callers should test
   * armed[point] first; check() repeats that test, so calling it blindly is
   * correct, only a little slower.
   */
  check(point: Point, ctx: FaultContext = NO_CONTEXT): Fault | null {
    if (this.armed[point] === 0) return null;
    let winner: Fault | null = null;
    let next: LiveRule | null = null;
    let relist = false;
    for (const r of this.byPoint[point]!) {
      if (!matches(r.spec.match, ctx)) continue;
      r.matches++;
      if (fires(r)) {
        if (winner === null || r.fault === null) {
          winner ??= r.fault;
          this.fired(r, point, ctx);
          if (r.spec.then !== null) next = r;
        } else r.shadowed++;
      }
      if (spent(r)) relist = true;
    }
    if (next !== null && next.spec.then !== this.current) {
      this.rl.warn(
        'fault state',
        { rule: next.spec.id, from: this.current, to: next.spec.then },
        'fault plan state changed',
      );
      this.current = next.spec.then!;
      relist = true;
    }
    if (relist) this.rebuild();
    return winner;
  }

  /** Counts and logs one firing. */
  private fired(r: LiveRule, point: Point, ctx: FaultContext): void {
    r.injections++;
    this.counts[point * ACTION_NAMES.length + r.actionIndex]!++;
    const where: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(ctx)) where[k] = typeof v === 'bigint' ? '0x' + v.toString(16) : v;
    const a = r.spec.action;
    this.rl.warn(
      `fault ${r.spec.id}`,
      { rule: r.spec.id, point: r.spec.point, action: a.action, ...detail(a), n: r.injections, ctx: where },
      'fault injected',
    );
    if (TRACE.fault_inject)
      trace('fault_inject', { rule: r.spec.id, point: r.spec.point, action: a.action, ...where });
    this.recentRing[this.recentNext++ % RECENT] = {
      atMs: Date.now(),
      rule: r.spec.id,
      point: r.spec.point,
      action: a.action,
      n: r.injections,
    };
  }

  /** The latest injections, oldest first (at most 16): for `sgiov top`. */
  recent(): RecentInjection[] {
    const n = Math.min(this.recentNext, RECENT);
    const out: RecentInjection[] = [];
    for (let i = this.recentNext - n; i < this.recentNext; i++) out.push({ ...this.recentRing[i % RECENT]! });
    return out;
  }

  /** Adds a rule (validated as in a plan; errors name "rule.<field>"); returns its id. */
  add(json: unknown): string {
    const spec = validateRule(json, 'rule', `#${this.nextId}`);
    if (this.find(spec.id))
      throw new PlanError(`rule.name: a rule named '${spec.id}' exists (clear it first)`);
    checkStates(spec, 'rule', this.knownStates(spec));
    this.nextId++; // only once accepted, so a refused add does not move later ids (and their draws)
    this.rules.push(this.instantiate(spec));
    this.rebuild();
    this.log.info({ rule: spec.id, point: spec.point, action: spec.action.action }, 'fault rule added');
    return spec.id;
  }

  /** Removes one rule, or all of them; returns how many went. */
  clear(id?: string): number {
    const before = this.rules.length;
    if (id === undefined) this.rules = [];
    else {
      this.get(id);
      this.rules = this.rules.filter((r) => r.spec.id !== id);
    }
    this.rebuild();
    this.log.info({ rule: id ?? 'all', removed: before - this.rules.length }, 'fault rules cleared');
    return before - this.rules.length;
  }

  setEnabled(id: string, on: boolean): void {
    this.get(id).enabled = on;
    this.rebuild();
  }

  /** Moves the plan to a state by hand (the start state, or one some rule's `then` enters). */
  setState(state: string): void {
    const known = this.knownStates();
    if (!known.has(state))
      throw new PlanError(`state: '${state}' is not a state of this plan (known: ${[...known].join(', ')})`);
    this.current = state;
    this.rebuild();
  }

  /** Counters, random streams and state back to how load() left them, so the plan replays identically. */
  resetCounters(): void {
    for (const r of this.rules) {
      r.matches = r.injections = r.shadowed = 0;
      r.rng = new RuleStream(this.seed, r.spec.id);
    }
    this.counts.fill(0);
    this.current = this.startState;
    this.rebuild();
  }

  /** Injections at a point (of one action, or all) since load or resetCounters. */
  injected(point: Point, action?: FaultAction['action']): number {
    const base = point * ACTION_NAMES.length;
    if (action !== undefined) return this.counts[base + ACTION_NAMES.indexOf(action)]!;
    return this.counts.subarray(base, base + ACTION_NAMES.length).reduce((a, b) => a + b, 0);
  }

  list(): FaultReport {
    const injections: Record<string, Record<string, number>> = {};
    POINT_NAMES.forEach((p, i) => {
      ACTION_NAMES.forEach((a, j) => {
        const n = this.counts[i * ACTION_NAMES.length + j]!;
        if (n > 0) (injections[p] ??= {})[a] = n;
      });
    });
    return {
      state: this.current,
      seed: this.seed,
      rules: this.rules.map((r) => ({
        id: r.spec.id,
        live: this.isLive(r),
        enabled: r.enabled,
        matches: r.matches,
        injections: r.injections,
        shadowed: r.shadowed,
        rule: structuredClone(r.spec.source),
      })),
      injections,
    };
  }

  private instantiate(spec: RuleSpec): LiveRule {
    return {
      spec,
      point: POINT_NAMES.indexOf(spec.point),
      fault: spec.action.action === 'none' ? null : { ...spec.action, rule: spec.id },
      actionIndex: ACTION_NAMES.indexOf(spec.action.action),
      enabled: spec.enabled,
      rng: new RuleStream(this.seed, spec.id),
      matches: 0,
      injections: 0,
      shadowed: 0,
    };
  }

  private isLive(r: LiveRule): boolean {
    return r.enabled && !spent(r) && (r.spec.when === null || r.spec.when.includes(this.current));
  }

  /** Recomputes byPoint and armed; runs only when something changed, never per check. */
  private rebuild(): void {
    for (const l of this.byPoint) l.length = 0;
    for (const r of this.rules) if (this.isLive(r)) this.byPoint[r.point]!.push(r);
    this.byPoint.forEach((l, p) => {
      this.armed[p] = l.length > 0 ? 1 : 0;
    });
  }

  private knownStates(extra?: RuleSpec): Set<string> {
    const s = new Set([this.startState, this.current]);
    for (const r of this.rules) if (r.spec.then) s.add(r.spec.then);
    if (extra?.then) s.add(extra.then);
    return s;
  }

  private find(id: string): LiveRule | undefined {
    return this.rules.find((r) => r.spec.id === id);
  }

  private get(id: string): LiveRule {
    const r = this.find(id);
    if (!r)
      throw new Error(
        `faults: no rule '${id}' (ids: ${this.rules.map((x) => x.spec.id).join(', ') || 'none'})`,
      );
    return r;
  }
}

/**
 * The control interface's `faults` command, for the device's control():
 *   {"op": "list"} (the default)         {"op": "add", "rule": {...}} -> {"id": ...}
 *   {"op": "clear", "id"?: id}           {"op": "reset"}: counters, streams and state as at load
 *   {"op": "enable" | "disable", "id": id}    {"op": "state", "state": name}
 */
export function faultsControl(inj: FaultInjector, args: Record<string, unknown>): unknown {
  const op = args.op ?? 'list';
  const id = (): string => {
    if (typeof args.id !== 'string')
      throw new Error(`faults ${String(op)}: "id" must be a rule id (see {"op": "list"})`);
    return args.id;
  };
  switch (op) {
    case 'list':
      return inj.list();
    case 'add':
      return { id: inj.add(args.rule) };
    case 'clear':
      return { cleared: inj.clear(args.id === undefined ? undefined : id()) };
    case 'reset':
      inj.resetCounters();
      return { reset: true, state: inj.state };
    case 'enable':
    case 'disable':
      inj.setEnabled(id(), op === 'enable');
      return { id: args.id, enabled: op === 'enable' };
    case 'state':
      if (typeof args.state !== 'string') throw new Error('faults state: "state" must be a state name');
      inj.setState(args.state);
      return { state: inj.state };
    default:
      throw new Error(
        `faults: unknown op ${JSON.stringify(op)} (known: list, add, clear, reset, enable, disable, state)`,
      );
  }
}

/**
 * Applies a `corrupt` action to the bytes a point carries: XORs its bytes in
 * at its offset, clipped to the buffer (an offset past the end changes
 * nothing). Returns how many bytes changed.
 */
export function applyCorrupt(
  buf: Uint8Array,
  a: { readonly offset: number; readonly xor: Uint8Array },
): number {
  const n = Math.max(0, Math.min(a.xor.length, buf.length - a.offset));
  for (let i = 0; i < n; i++) buf[a.offset + i] = buf[a.offset + i]! ^ a.xor[i]!;
  return n;
}

/** The same for a little-endian value of `size` bytes: an MMIO access or a 64-bit signal. */
export function corruptValue(
  v: bigint,
  size: number,
  a: { readonly offset: number; readonly xor: Uint8Array },
): bigint {
  let mask = 0n;
  for (let i = 0; i < a.xor.length && a.offset + i < size; i++)
    mask |= BigInt(a.xor[i]!) << BigInt(8 * (a.offset + i));
  return v ^ mask;
}
