/**
 * The control interface's commands as one table: `methods` lists it (as
 * SPDK's rpc_get_methods does), and every request is checked against it
 * before it reaches the device thread: an unknown command or field, or a
 * field of the wrong type, is refused with an error naming it. The model
 * still checks ranges and meaning (a weight > 0, a known tenant).
 */
import { SCHEDULER_KINDS } from '../sched/scheduler.js';

export type ArgType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array';

export interface ArgSpec {
  type: ArgType;
  help: string;
  /** Also accepted: null (a field that lifts a setting). */
  nullable?: boolean;
  /** The values a string may take. */
  oneOf?: readonly string[];
  default?: unknown;
  /** The unit of a number. */
  unit?: string;
  required?: boolean;
}

export interface MethodSpec {
  name: string;
  help: string;
  args: Record<string, ArgSpec>;
}

export const METHODS: readonly MethodSpec[] = [
  { name: 'methods', help: 'the control commands with their arguments (this list)', args: {} },
  {
    name: 'status',
    help: 'the transport, the device registers, the data plane counters and faults',
    args: {},
  },
  {
    name: 'sockets',
    help: 'the socket table, a page at a time',
    args: {
      from: { type: 'integer', help: 'first socket id', default: 0 },
      limit: { type: 'integer', help: 'sockets at most, 1..65536', default: 100 },
    },
  },
  { name: 'reset', help: 'reset the device as a host-side reset does', args: {} },
  {
    name: 'schedule',
    help: 'the scheduled accelerators: capacities, tenants and policy ({} shows the current ones)',
    args: {
      accelerators: { type: 'object', help: 'accelerator name: capacity', unit: 'Gbps' },
      tenants: {
        type: 'array',
        help: 'tenants [{"name", "weight", "priority", "cap" (Gbps)}]',
        default: [{ name: 'default' }],
      },
      policy: { type: 'string', help: 'the scheduling policy', oneOf: SCHEDULER_KINDS, default: 'drf' },
      vfs: { type: 'integer', help: 'for policy sriov: virtual functions (default one per tenant)' },
      jobBytes: { type: 'integer', help: 'the largest accelerator job', unit: 'bytes', default: 16384 },
      off: { type: 'boolean', help: 'true: back to unscheduled (as fast as the host goes)' },
    },
  },
  { name: 'tenants', help: "each tenant's bytes, measured rate and DRF allocation", args: {} },
  {
    name: 'tenant',
    help: 'change one tenant at run time (absent fields stay)',
    args: {
      tenant: { type: 'string', help: 'the tenant name', required: true },
      weight: { type: 'number', help: 'its weight, > 0' },
      cap: { type: 'number', nullable: true, help: 'its demand cap; null lifts it', unit: 'Gbps' },
    },
  },
  {
    name: 'faults',
    help: 'the fault injector: list, add, clear, reset, enable, disable, state; reinsert a removed device',
    args: {
      op: {
        type: 'string',
        help: 'what to do',
        oneOf: ['list', 'add', 'clear', 'reset', 'enable', 'disable', 'state', 'reinsert'],
        default: 'list',
      },
      id: { type: 'string', help: 'a rule id (clear, enable, disable)' },
      rule: { type: 'object', help: 'a rule, as in a plan file (add)' },
      state: { type: 'string', help: 'a state name (state)' },
    },
  },
  { name: 'fabric', help: 'the cross-node links: state, frames, retransmissions, RTT', args: {} },
  {
    name: 'metrics',
    help: 'every counter at once (what /metrics and sgiov top show): device, sockets by state, commands, tenants, accelerators, links, fault rules',
    args: {},
  },
  {
    name: 'trace',
    help: 'the trace events logged, and a new pattern ({} shows the current one)',
    args: {
      pattern: { type: 'string', help: "globs over event names, comma-separated, -GLOB removes; '' stops" },
      perSecond: { type: 'integer', help: 'lines per event per second at most', default: 1000 },
    },
  },
];

const BY_NAME = new Map(METHODS.map((m) => [m.name, m]));

function typeOk(t: ArgType, v: unknown): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isSafeInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
  }
}

/** Throws an Error naming the command or the field when the request does not fit the table. */
export function validateRequest(cmd: string, args: Record<string, unknown>): MethodSpec {
  const m = BY_NAME.get(cmd);
  if (!m) throw new Error(`unknown command '${cmd}' (known: ${METHODS.map((x) => x.name).join(', ')})`);
  const known = Object.keys(m.args);
  for (const [k, v] of Object.entries(args)) {
    const a = m.args[k];
    if (!a)
      throw new Error(
        `${cmd}: unknown field "${k}" (${known.length ? `fields: ${known.join(', ')}` : 'it takes no fields'})`,
      );
    if (v === null && a.nullable) continue;
    if (!typeOk(a.type, v))
      throw new Error(`${cmd}: field "${k}" must be ${article(a.type)}${a.nullable ? ' or null' : ''}`);
    if (a.oneOf && !a.oneOf.includes(v as string))
      throw new Error(`${cmd}: field "${k}": '${String(v)}' is not one of ${a.oneOf.join(', ')}`);
  }
  for (const [k, a] of Object.entries(m.args))
    if (a.required && args[k] === undefined) throw new Error(`${cmd}: field "${k}" is required`);
  return m;
}

const article = (t: ArgType): string =>
  t === 'integer' || t === 'object' || t === 'array' ? `an ${t}` : `a ${t}`;

/** The `methods` reply: the table as data. */
export function describeMethods(): { name: string; help: string; args: ({ name: string } & ArgSpec)[] }[] {
  return METHODS.map((m) => ({
    name: m.name,
    help: m.help,
    args: Object.entries(m.args).map(([name, a]) => ({ name, ...a })),
  }));
}

/**
 * The control handler the server runs: checks each request against the
 * table, answers `methods` itself and hands the rest to the device.
 */
export function methodHandler(
  device: (cmd: string, args: Record<string, unknown>) => Promise<unknown>,
): (cmd: string, args: Record<string, unknown>) => Promise<unknown> {
  return async (cmd, args) => {
    validateRequest(cmd, args);
    if (cmd === 'methods') return describeMethods();
    return device(cmd, args);
  };
}
