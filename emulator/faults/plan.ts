/**
 * Fault plans: what to inject where, as JSON (`sgiov serve --faults plan.json`,
 * or one rule at a time through the control interface). Validated here, run
 * by FaultInjector (injector.ts). Every field, with its constraints:
 *
 * plan {
 *   "description"?: string
 *   "seed"?:        whole number 0..2^53-1 (default 0). One seed per plan;
 *                   each rule draws from its own stream derived from the seed
 *                   and the rule's id, so adding a rule leaves the others' draws alone
 *   "state"?:       state name the plan starts in (default "initial")
 *   "rules":        [rule, ...]
 * }
 * rule {
 *   "name"?:        [A-Za-z][A-Za-z0-9_.-]*, unique; becomes the rule's id (default
 *                   "#<position from 1>": name rules whose draws must not move
 *                   when rules are inserted before them)
 *   "description"?: string
 *   "point":        mmio.read | mmio.write | dma.read | dma.write | signal.h2d |
 *                   signal.d2h | irq | job.start | job.complete | fabric.send |
 *                   fabric.recv | device.reset
 *   "match"?: {     every field optional, absent = any; only those the point carries:
 *     "sid":        socket id, whole number >= 0          (dma.*, signal.*, job.*, fabric.*)
 *     "tenant":     tenant id, whole number >= 0          (dma.*, signal.*, job.*, fabric.*)
 *     "accel":      rdma | crypto | encap | lookaside     (job.*)
 *     "executor":   F | I | L | A | M | Z                 (job.*)
 *     "reg":        register name (abi.ts; DOORBELL_DMA, DOORBELL_KICK) or BAR0 offset (mmio.*)
 *     "addr":       { "lo": a, "hi": a } with a a whole number or a "0x..." string:
 *                   [lo, hi), matches an access overlapping it   (mmio.*: BAR offset; dma.*: guest address)
 *     "node":       node name (the cluster description's) or number (fabric.*)
 *     "vector":     MSI-X vector 0..2047                  (irq)
 *   }
 *   "trigger"?: {   all optional; absent: fires on every match
 *     "after":       N >= 0: the first N matches never fire
 *     "nth":         N >= 1: fires on the N-th match only (not with every or after)
 *     "every":       N >= 1: fires on every N-th match counted after `after`
 *     "probability": p in [0, 1]: of the matches the gates above let through, fires with p
 *     "count":       K >= 1: at most K injections
 *     "once":        true: count 1 (not with count)
 *   }
 *   "do": {         the action, by "action" (allowed points in ACTION_POINTS):
 *     {"action": "error", "status": errno name (EIO, ...), device error (DMA_UNMAPPED, ...)
 *                                   or socket error (AUTH_FAILED, ...)}
 *     {"action": "all_ones"}                                (mmio.read returns all-ones)
 *     {"action": "delay", one of "ns" | "us" | "ms": number >= 0}
 *     {"action": "corrupt", "offset"?: byte >= 0 (default 0), "xor": byte 1..255 or [bytes], not all 0}
 *     {"action": "drop"} | {"action": "duplicate"}
 *     {"action": "stall", "accel"?: accelerator (default: the job's), one of ns | us | ms > 0}
 *     {"action": "link_down", one of ns | us | ms > 0}
 *     {"action": "reset"} | {"action": "surprise_removal"}
 *     {"action": "none"}: nothing is injected; the rule only counts and moves the
 *                         state with "then" (an arming rule), and never shadows another
 *   }
 *   "when"?:        state name or [names]: the rule is live only in these states
 *                   (each must be the plan's start state or some rule's `then`)
 *   "then"?:        state name the plan moves to when this rule fires
 *   "enabled"?:     boolean (default true)
 * }
 * Unknown fields are errors at every level, so a typo is reported, not ignored.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { DOORBELLS, ENUMS, REGISTERS } from '../abi/abi.js';
import { ACCEL_NAMES, type AccelName } from '../abi/accel-names.js';

// ---- points and actions ----------------------------------------------------

export const POINT_NAMES = [
  'mmio.read',
  'mmio.write',
  'dma.read',
  'dma.write',
  'signal.h2d',
  'signal.d2h',
  'irq',
  'job.start',
  'job.complete',
  'fabric.send',
  'fabric.recv',
  'device.reset',
] as const;
export type PointName = (typeof POINT_NAMES)[number];

/** Point numbers, the index into FaultInjector.armed: POINT_NAMES[POINT.X] is X's name. */
export const POINT = {
  MMIO_READ: 0,
  MMIO_WRITE: 1,
  DMA_READ: 2,
  DMA_WRITE: 3,
  SIGNAL_H2D: 4,
  SIGNAL_D2H: 5,
  IRQ: 6,
  JOB_START: 7,
  JOB_COMPLETE: 8,
  FABRIC_SEND: 9,
  FABRIC_RECV: 10,
  DEVICE_RESET: 11,
} as const;
export type Point = (typeof POINT)[keyof typeof POINT];

export const ACTION_NAMES = [
  'error',
  'all_ones',
  'delay',
  'corrupt',
  'drop',
  'duplicate',
  'stall',
  'link_down',
  'reset',
  'surprise_removal',
  'none',
] as const;
export type ActionName = (typeof ACTION_NAMES)[number];

const ALL_POINTS: readonly PointName[] = POINT_NAMES;
/** Where each action means something; anything else is refused when a rule is validated. */
export const ACTION_POINTS: Record<ActionName, readonly PointName[]> = {
  // irq and device.reset have no status to return: an interrupt is delivered or not, a reset happens.
  error: ALL_POINTS.filter((p) => p !== 'irq' && p !== 'device.reset'),
  all_ones: ['mmio.read'],
  // MMIO answers synchronously (the access is a vfio-user callback), so it cannot be delayed.
  delay: [
    'dma.read',
    'dma.write',
    'signal.h2d',
    'signal.d2h',
    'irq',
    'job.start',
    'job.complete',
    'fabric.send',
    'fabric.recv',
  ],
  // Only where the point carries bytes: an MMIO value, DMA data, a 64-bit signal, a job's data, a frame.
  corrupt: [
    'mmio.read',
    'mmio.write',
    'dma.read',
    'dma.write',
    'signal.h2d',
    'signal.d2h',
    'job.start',
    'job.complete',
    'fabric.send',
    'fabric.recv',
  ],
  // A lost posted write (mmio.write) is as real a fault as a lost signal, frame or interrupt.
  drop: ['mmio.write', 'signal.h2d', 'signal.d2h', 'irq', 'fabric.send', 'fabric.recv'],
  duplicate: ['signal.h2d', 'signal.d2h', 'irq', 'fabric.send', 'fabric.recv'],
  stall: ['job.start', 'job.complete'],
  link_down: ['fabric.send', 'fabric.recv'],
  // A reset rule at device.reset would reset again on every reset it causes.
  reset: ALL_POINTS.filter((p) => p !== 'device.reset'),
  surprise_removal: ALL_POINTS,
  // Counts matches and moves the state (a rule that only arms others); check() never returns it.
  none: ALL_POINTS,
};

export const EXECUTORS = ['F', 'I', 'L', 'A', 'M', 'Z'] as const;
export type Executor = (typeof EXECUTORS)[number];

type MatchField = 'sid' | 'tenant' | 'accel' | 'executor' | 'reg' | 'addr' | 'node' | 'vector';
/** The context fields each point's caller fills in, hence the only ones a rule there may match on. */
const POINT_FIELDS: Record<PointName, readonly MatchField[]> = {
  'mmio.read': ['reg', 'addr'],
  'mmio.write': ['reg', 'addr'],
  'dma.read': ['addr', 'sid', 'tenant'],
  'dma.write': ['addr', 'sid', 'tenant'],
  'signal.h2d': ['sid', 'tenant'],
  'signal.d2h': ['sid', 'tenant'],
  irq: ['vector'],
  'job.start': ['accel', 'executor', 'sid', 'tenant'],
  'job.complete': ['accel', 'executor', 'sid', 'tenant'],
  'fabric.send': ['node', 'sid', 'tenant'],
  'fabric.recv': ['node', 'sid', 'tenant'],
  'device.reset': [],
};

/** Error statuses by name, in three spaces: the caller maps them to what its point can report. */
export type StatusSpace = 'errno' | 'device' | 'socket';
const ERRNO: Record<string, number> = {
  ...Object.fromEntries(Object.entries(ENUMS.STATUS).filter(([k]) => k !== 'OK')),
  // Linux x86 numbers of errors a device, a link or a peer can plausibly cause.
  EPERM: 1,
  EIO: 5,
  ENXIO: 6,
  ENODEV: 19,
  ENOSPC: 28,
  EPROTO: 71,
  EBADMSG: 74,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNRESET: 104,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113,
  ECANCELED: 125,
};
const STATUS_SPACES: [StatusSpace, Record<string, number>][] = [
  ['errno', ERRNO],
  ['device', Object.fromEntries(Object.entries(ENUMS.ERR).filter(([k]) => k !== 'NONE'))],
  ['socket', { ...ENUMS.SERR }],
];

const REG_OFFSETS = new Map<string, number>([
  ...REGISTERS.map((r): [string, number] => [r.name, r.offset]),
  ...Object.entries(DOORBELLS)
    .filter(([k]) => k !== 'BASE' && k !== 'SIZE')
    .map(([k, v]): [string, number] => [`DOORBELL_${k}`, v]),
]);

// ---- parsed forms ------------------------------------------------------------

export type FaultAction =
  | { readonly action: 'error'; readonly status: string; readonly code: number; readonly space: StatusSpace }
  | { readonly action: 'all_ones' | 'drop' | 'duplicate' | 'reset' | 'surprise_removal' | 'none' }
  | { readonly action: 'delay' | 'link_down'; readonly ns: number }
  | { readonly action: 'corrupt'; readonly offset: number; readonly xor: Uint8Array }
  | { readonly action: 'stall'; readonly ns: number; readonly accel: AccelName | null };

export interface Match {
  sid?: number;
  tenant?: number;
  accel?: AccelName;
  executor?: Executor;
  /** BAR0 offset (a register name is resolved when the rule is validated). */
  reg?: number;
  addr?: { lo: bigint; hi: bigint };
  /** Compared with String(ctx.node), so 3 and "3" are the same node. */
  node?: string;
  vector?: number;
}

/** Normalised so that the hot path needs no undefined checks: 0 = no such gate, count Infinity = no limit. */
export interface Trigger {
  after: number;
  nth: number;
  every: number;
  probability: number;
  count: number;
}

export interface RuleSpec {
  /** The name, or "#<n>" for an unnamed rule. */
  id: string;
  point: PointName;
  match: Match;
  trigger: Trigger;
  action: FaultAction;
  when: readonly string[] | null;
  then: string | null;
  enabled: boolean;
  /** The rule as written, for list(). */
  source: Record<string, unknown>;
}

export interface Plan {
  seed: number;
  state: string;
  description: string | null;
  rules: RuleSpec[];
}

// ---- validation --------------------------------------------------------------

/** A plan or rule that does not validate; the message starts with the field's path. */
export class PlanError extends Error {
  override name = 'PlanError';
}

const fail = (path: string, msg: string): never => {
  throw new PlanError(`${path}: ${msg}`);
};
const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);
const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function object(v: unknown, path: string, fields: readonly string[]): Record<string, unknown> {
  if (!isObj(v)) return fail(path, 'must be an object');
  for (const k of Object.keys(v))
    if (!fields.includes(k)) fail(join(path, k), `unknown field (known: ${fields.join(', ')})`);
  return v;
}

function whole(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    return fail(
      path,
      max === Number.MAX_SAFE_INTEGER
        ? `must be a whole number >= ${min}`
        : `must be a whole number in [${min}, ${max}]`,
    );
  }
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, known: readonly T[], what: string): T {
  if (typeof v !== 'string' || !(known as readonly string[]).includes(v))
    return fail(path, `unknown ${what} ${JSON.stringify(v)} (known: ${known.join(', ')})`);
  return v as T;
}

const NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/;
function name(v: unknown, path: string): string {
  if (typeof v !== 'string' || !NAME_RE.test(v))
    return fail(path, 'must be a name: a letter, then letters, digits, _ . -');
  return v;
}

const NS_PER = { ns: 1, us: 1e3, ms: 1e6 } as const;
/** The longest delay, stall or link-down a rule may ask: an hour (the device's clocks are whole ns). */
export const MAX_DURATION_NS = 3600e9;
/** The furthest byte a corruption may start at: past the largest DMA job (1 MiB) it could never apply. */
export const MAX_CORRUPT_OFFSET = 1 << 20;
/** The largest plan file read: a plan is a few KiB; /dev/zero is not one. */
export const MAX_PLAN_BYTES = 1 << 20;
export type Duration = { ns?: number; us?: number; ms?: number };
/** A duration given as ns, us or ms (one of them) in whole nanoseconds, for callers' own clocks. */
export function toNs(d: Duration): number {
  return Math.round((d.ns ?? 0) + (d.us ?? 0) * NS_PER.us + (d.ms ?? 0) * NS_PER.ms);
}

function duration(o: Record<string, unknown>, path: string, allowZero: boolean): number {
  const given = (['ns', 'us', 'ms'] as const).filter((u) => o[u] !== undefined);
  if (given.length !== 1)
    fail(
      path,
      given.length === 0
        ? 'needs a duration: one of ns, us, ms'
        : `give one of ns, us, ms, not ${given.join(' and ')}`,
    );
  const unit = given[0]!;
  const v = o[unit];
  const max = MAX_DURATION_NS / NS_PER[unit];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0) || v > max)
    fail(join(path, unit), `must be a number ${allowZero ? '>=' : '>'} 0 and at most ${max} (one hour)`);
  return toNs({ [unit]: v });
}

function address(v: unknown, path: string): bigint {
  let a: bigint | null = null;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) a = BigInt(v);
  else if (typeof v === 'string' && /^(0x[0-9a-fA-F]+|[0-9]+)$/.test(v)) a = BigInt(v);
  if (a === null || a > 1n << 64n)
    return fail(path, 'must be an address: a whole number >= 0 or a "0x..." string, at most 2^64');
  return a;
}

function parseMatch(v: unknown, path: string, point: PointName): Match {
  const o = object(v, path, ['sid', 'tenant', 'accel', 'executor', 'reg', 'addr', 'node', 'vector']);
  const here = POINT_FIELDS[point];
  for (const k of Object.keys(o)) {
    if (!(here as readonly string[]).includes(k))
      fail(join(path, k), `not matchable at ${point} (there: ${here.length ? here.join(', ') : 'nothing'})`);
  }
  const m: Match = {};
  if (o.sid !== undefined) m.sid = whole(o.sid, join(path, 'sid'), 0);
  if (o.tenant !== undefined) m.tenant = whole(o.tenant, join(path, 'tenant'), 0);
  if (o.accel !== undefined) m.accel = oneOf(o.accel, join(path, 'accel'), ACCEL_NAMES, 'accelerator');
  if (o.executor !== undefined) m.executor = oneOf(o.executor, join(path, 'executor'), EXECUTORS, 'executor');
  if (o.vector !== undefined) m.vector = whole(o.vector, join(path, 'vector'), 0, 2047);
  if (o.reg !== undefined) {
    const r = o.reg;
    if (typeof r === 'string')
      m.reg =
        REG_OFFSETS.get(r) ??
        fail(
          join(path, 'reg'),
          `unknown register ${JSON.stringify(r)} (a name from abi.ts, DOORBELL_DMA, DOORBELL_KICK, or an offset)`,
        );
    else m.reg = whole(r, join(path, 'reg'), 0, 0xffff_ffff);
  }
  if (o.addr !== undefined) {
    const ap = join(path, 'addr');
    const a = object(o.addr, ap, ['lo', 'hi']);
    const lo = address(a.lo, join(ap, 'lo'));
    const hi = address(a.hi, join(ap, 'hi'));
    if (hi <= lo)
      fail(
        join(ap, 'hi'),
        `must be greater than lo (the range is [lo, hi); got lo 0x${lo.toString(16)}, hi 0x${hi.toString(16)})`,
      );
    m.addr = { lo, hi };
  }
  if (o.node !== undefined) {
    const n = o.node;
    if (typeof n === 'string' && n !== '') m.node = n;
    else m.node = String(whole(n, join(path, 'node'), 0));
  }
  return m;
}

function parseTrigger(v: unknown, path: string): Trigger {
  const o = object(v, path, ['after', 'nth', 'every', 'probability', 'count', 'once']);
  const t: Trigger = { after: 0, nth: 0, every: 0, probability: 1, count: Infinity };
  if (o.after !== undefined) t.after = whole(o.after, join(path, 'after'), 0);
  if (o.nth !== undefined) {
    t.nth = whole(o.nth, join(path, 'nth'), 1);
    if (o.every !== undefined)
      fail(join(path, 'nth'), 'fires on one match only, so it does not combine with every');
    if (o.after !== undefined)
      fail(join(path, 'nth'), 'does not combine with after (nth counts every match: use nth = after + N)');
  }
  if (o.every !== undefined) t.every = whole(o.every, join(path, 'every'), 1);
  if (o.probability !== undefined) {
    const p = o.probability;
    if (typeof p !== 'number' || !(p >= 0 && p <= 1))
      fail(join(path, 'probability'), 'must be a number in [0, 1]');
    t.probability = p as number;
  }
  if (o.count !== undefined) t.count = whole(o.count, join(path, 'count'), 1);
  if (o.once !== undefined) {
    if (typeof o.once !== 'boolean') fail(join(path, 'once'), 'must be true or false');
    if (o.once && o.count !== undefined) fail(join(path, 'once'), 'give once or count, not both');
    if (o.once) t.count = 1;
  }
  return t;
}

const ACTION_FIELDS: Record<ActionName, readonly string[]> = {
  error: ['status'],
  all_ones: [],
  delay: ['ns', 'us', 'ms'],
  corrupt: ['offset', 'xor'],
  drop: [],
  duplicate: [],
  stall: ['accel', 'ns', 'us', 'ms'],
  link_down: ['ns', 'us', 'ms'],
  reset: [],
  surprise_removal: [],
  none: [],
};

function parseAction(v: unknown, path: string, point: PointName): FaultAction {
  if (!isObj(v)) return fail(path, 'must be an object with an "action"');
  const action = oneOf(v.action, join(path, 'action'), ACTION_NAMES, 'action');
  const allowed = ACTION_POINTS[action];
  if (!allowed.includes(point))
    fail(join(path, 'action'), `'${action}' is not allowed at ${point} (allowed at: ${allowed.join(', ')})`);
  const o = object(v, path, ['action', ...ACTION_FIELDS[action]]);
  switch (action) {
    case 'error': {
      const st = o.status;
      if (st === undefined)
        fail(
          join(path, 'status'),
          'required: an errno name such as EIO, a device error such as DMA_UNMAPPED, or a socket error such as AUTH_FAILED',
        );
      for (const [space, table] of STATUS_SPACES) {
        if (typeof st === 'string' && Object.hasOwn(table, st))
          return { action, status: st, code: table[st]!, space };
      }
      return fail(
        join(path, 'status'),
        `unknown status ${JSON.stringify(st)} (errno names: ${Object.keys(ERRNO).join(', ')}; device errors: DMA_UNMAPPED, ...; socket errors: AUTH_FAILED, ...)`,
      );
    }
    case 'delay':
      return { action, ns: duration(o, path, true) };
    case 'link_down':
      return { action, ns: duration(o, path, false) };
    case 'stall': {
      const accel =
        o.accel === undefined ? null : oneOf(o.accel, join(path, 'accel'), ACCEL_NAMES, 'accelerator');
      return { action, accel, ns: duration(o, path, false) };
    }
    case 'corrupt': {
      const offset =
        o.offset === undefined ? 0 : whole(o.offset, join(path, 'offset'), 0, MAX_CORRUPT_OFFSET);
      const xp = join(path, 'xor');
      const raw = o.xor;
      if (raw === undefined) fail(xp, 'required: the byte or bytes to XOR in');
      const list = Array.isArray(raw) ? raw : [raw];
      if (list.length === 0 || list.length > 4096) fail(xp, 'must be a byte or a list of 1 to 4096 bytes');
      const xor = Uint8Array.from(
        list.map((b, i) => whole(b, Array.isArray(raw) ? `${xp}[${i}]` : xp, 0, 255)),
      );
      if (xor.every((b) => b === 0)) fail(xp, 'XOR with zero changes nothing: give a nonzero byte');
      return { action, offset, xor };
    }
    default:
      return { action };
  }
}

const RULE_FIELDS = [
  'name',
  'description',
  'point',
  'match',
  'trigger',
  'do',
  'when',
  'then',
  'enabled',
] as const;

/**
 * One rule, as in a plan's "rules" or from the control interface. `path`
 * prefixes error messages ("rules[2]", "rule"); `id` is used when it has no name.
 * States named in `when` are checked by checkStates, which needs the whole rule set.
 */
export function validateRule(v: unknown, path: string, id: string): RuleSpec {
  const o = object(v, path, RULE_FIELDS);
  const ruleName = o.name === undefined ? null : name(o.name, join(path, 'name'));
  try {
    if (o.description !== undefined && typeof o.description !== 'string')
      fail(join(path, 'description'), 'must be a string');
    if (o.point === undefined) fail(join(path, 'point'), `required (one of ${POINT_NAMES.join(', ')})`);
    const point = oneOf(o.point, join(path, 'point'), POINT_NAMES, 'point');
    if (o.do === undefined) fail(join(path, 'do'), 'required: the action, e.g. {"action": "drop"}');
    let when: string[] | null = null;
    if (o.when !== undefined) {
      const w = o.when;
      when = Array.isArray(w)
        ? w.map((s, i) => name(s, `${join(path, 'when')}[${i}]`))
        : [name(w, join(path, 'when'))];
      if (when.length === 0)
        fail(join(path, 'when'), 'an empty list never matches: omit "when" for any state');
    }
    if (o.enabled !== undefined && typeof o.enabled !== 'boolean')
      fail(join(path, 'enabled'), 'must be true or false');
    return {
      id: ruleName ?? id,
      point,
      match: o.match === undefined ? {} : parseMatch(o.match, join(path, 'match'), point),
      trigger:
        o.trigger === undefined ? parseTrigger({}, '') : parseTrigger(o.trigger, join(path, 'trigger')),
      action: parseAction(o.do, join(path, 'do'), point),
      when,
      then: o.then === undefined ? null : name(o.then, join(path, 'then')),
      enabled: o.enabled !== false,
      source: structuredClone(o),
    };
  } catch (e) {
    // The path gives the rule's position; its name is what its author searches for.
    if (e instanceof PlanError && ruleName) e.message += ` (rule '${ruleName}')`;
    throw e;
  }
}

/**
 * A `when` naming a state no rule ever enters is a typo, not a rule that waits:
 * refuse it. `known` holds the start state and every `then`.
 */
export function checkStates(rule: RuleSpec, path: string, known: ReadonlySet<string>): void {
  for (const s of rule.when ?? []) {
    const named = rule.id.startsWith('#') ? '' : ` (rule '${rule.id}')`;
    if (!known.has(s))
      fail(
        join(path, 'when'),
        `state '${s}' is never entered (known: ${[...known].join(', ')}; a rule's "then" enters one)${named}`,
      );
  }
}

/** A plan from parsed JSON; throws PlanError naming the first bad field. */
export function validatePlan(json: unknown): Plan {
  if (!isObj(json)) return fail('plan', 'must be a JSON object {"seed": ..., "rules": [...]}');
  const o = object(json, '', ['description', 'seed', 'state', 'rules']);
  if (o.description !== undefined && typeof o.description !== 'string')
    fail('description', 'must be a string');
  const seed = o.seed === undefined ? 0 : whole(o.seed, 'seed', 0);
  const state = o.state === undefined ? 'initial' : name(o.state, 'state');
  if (!Array.isArray(o.rules)) return fail('rules', 'required: a list of rules (may be empty)');
  const rules = o.rules.map((r, i) => validateRule(r, `rules[${i}]`, `#${i + 1}`));
  const seen = new Map<string, number>();
  rules.forEach((r, i) => {
    const j = seen.get(r.id);
    if (j !== undefined) fail(`rules[${i}].name`, `'${r.id}' is already the name of rules[${j}]`);
    seen.set(r.id, i);
  });
  const known = new Set([state, ...rules.flatMap((r) => (r.then ? [r.then] : []))]);
  rules.forEach((r, i) => checkStates(r, `rules[${i}]`, known));
  return { seed, state, description: typeof o.description === 'string' ? o.description : null, rules };
}

/** Reads and validates a plan file; every failure names the file and what is wrong with it. */
export function loadPlan(path: string): Plan {
  let text: string;
  try {
    text = readBounded(path, MAX_PLAN_BYTES);
  } catch (e) {
    if (e instanceof PlanError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new PlanError(
      `faults plan '${path}': ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PlanError(`faults plan '${path}': not JSON: ${(e as Error).message}`);
  }
  try {
    return validatePlan(json);
  } catch (e) {
    if (e instanceof PlanError) throw new PlanError(`faults plan '${path}': ${e.message}`);
    throw e;
  }
}

/** A file's text when it is at most `max` bytes (read no further: a device or a FIFO may not end). */
function readBounded(path: string, max: number): string {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(max + 1);
    let got = 0;
    for (let n = 1; n > 0 && got <= max; got += n) n = readSync(fd, buf, got, buf.length - got, null);
    if (got > max) throw new PlanError(`faults plan '${path}': larger than ${max} bytes; not a plan`);
    return buf.toString('utf8', 0, got);
  } finally {
    closeSync(fd);
  }
}
