/**
 * sgiov drf: the DRF allocation of accelerators for a set of tenants, and
 * optionally what the schedulers actually give them in the virtual-time
 * simulator. Called by emulator/cli.ts.
 */
import { parseArgs } from 'node:util';
import { progressiveFilling, type DrfAllocation, type DrfTenant } from '../sched/drf.js';
import {
  isSchedulerKind,
  SCHEDULER_KINDS,
  type PolicyConfig,
  type SchedulerKind,
} from '../sched/scheduler.js';
import { simulate, type SimResult, type SimTenant } from '../sched/sim.js';

export const DRF_USAGE = '  sgiov drf --resource NAME=GBPS... --tenant NAME=RES[,RES...]... [drf options]';

export const DRF_HELP = `drf options (DRF under equal-bandwidth demand: a tenant's rate is used on every resource it names):
      --resource NAME=GBPS   an accelerator and its capacity (repeat; at least one)
      --tenant NAME=R1,R2    a tenant and the resources it uses, in chain order (repeat; at least one)
      --weight NAME=W        the tenant's weight, > 0 (default 1)
      --cap NAME=GBPS        the tenant's demand, 0..the smallest capacity it uses (default: unlimited)
      --priority NAME=P      for --scheduler prio: higher first (default: tenants given earlier first)
      --simulate SECONDS     also run the scheduler on saturating 128 KiB jobs for SECONDS of
                             virtual time (a capped tenant offers exactly its cap) and print
                             the measured rates beside the computed ones
      --scheduler KIND       ${SCHEDULER_KINDS.join('|')} for --simulate (default drf)
      --vfs N                for --scheduler sriov: virtual functions (default: one per tenant),
                             each limited to 1/N of every accelerator
      --json                 print {"allocation": {...}, "measured": {...}} only
`;

class DrfUsageError extends Error {}

const NAME = /^[A-Za-z0-9_.:-]+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function num(flag: string, raw: string, text: string): number {
  if (!NUMBER.test(text)) throw new DrfUsageError(`${flag} ${raw}: '${text}' is not a number`);
  const v = Number(text);
  if (!Number.isFinite(v)) throw new DrfUsageError(`${flag} ${raw}: '${text}' is not a finite number`);
  return v;
}

function pair(flag: string, raw: string, what: string): [string, string] {
  const eq = raw.indexOf('=');
  if (eq < 0) throw new DrfUsageError(`${flag} ${raw}: expected NAME=${what} (no '=')`);
  const name = raw.slice(0, eq);
  if (!NAME.test(name))
    throw new DrfUsageError(`${flag} ${raw}: '${name}' is not a name (letters, digits, '_', '.', ':', '-')`);
  return [name, raw.slice(eq + 1)];
}

export interface DrfCommand {
  resources: { name: string; capacity: number }[];
  tenants: (DrfTenant & { priority: number })[];
  simulate: number | undefined;
  scheduler: SchedulerKind;
  vfs: number | undefined;
  json: boolean;
}

export function parseDrfArgs(argv: string[]): DrfCommand {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      resource: { type: 'string', multiple: true },
      tenant: { type: 'string', multiple: true },
      weight: { type: 'string', multiple: true },
      cap: { type: 'string', multiple: true },
      priority: { type: 'string', multiple: true },
      simulate: { type: 'string' },
      scheduler: { type: 'string' },
      vfs: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (positionals.length > 0) throw new DrfUsageError(`unexpected argument '${positionals[0]}'`);
  if (!values.resource?.length) throw new DrfUsageError('at least one --resource NAME=GBPS is required');
  if (!values.tenant?.length) throw new DrfUsageError('at least one --tenant NAME=RES[,RES...] is required');

  const capacity = new Map<string, number>();
  for (const raw of values.resource) {
    const [name, v] = pair('--resource', raw, 'GBPS');
    if (capacity.has(name)) throw new DrfUsageError(`--resource ${raw}: resource '${name}' is defined twice`);
    const c = num('--resource', raw, v);
    if (c <= 0) throw new DrfUsageError(`--resource ${raw}: capacity must be > 0 Gbps`);
    capacity.set(name, c);
  }
  const uses = new Map<string, string[]>();
  for (const raw of values.tenant) {
    const [name, v] = pair('--tenant', raw, 'RES[,RES...]');
    if (uses.has(name)) throw new DrfUsageError(`--tenant ${raw}: tenant '${name}' is defined twice`);
    const list = v.split(',');
    if (v === '' || list.some((r) => r === ''))
      throw new DrfUsageError(`--tenant ${raw}: expected a comma-separated list of resources`);
    for (const [i, r] of list.entries()) {
      if (!capacity.has(r))
        throw new DrfUsageError(
          `--tenant ${raw}: unknown resource '${r}' (resources: ${[...capacity.keys()].join(', ')})`,
        );
      if (list.indexOf(r) !== i) throw new DrfUsageError(`--tenant ${raw}: resource '${r}' named twice`);
    }
    uses.set(name, list);
  }
  const perTenant = (
    flag: string,
    raws: string[] | undefined,
    what: string,
    check: (name: string, v: number, raw: string) => void,
  ): Map<string, number> => {
    const m = new Map<string, number>();
    for (const raw of raws ?? []) {
      const [name, v] = pair(flag, raw, what);
      if (!uses.has(name)) throw new DrfUsageError(`${flag} ${raw}: unknown tenant '${name}'`);
      if (m.has(name)) throw new DrfUsageError(`${flag} ${raw}: tenant '${name}' given twice`);
      const x = num(flag, raw, v);
      check(name, x, raw);
      m.set(name, x);
    }
    return m;
  };
  const weight = perTenant('--weight', values.weight, 'W', (_n, w, raw) => {
    if (w <= 0) throw new DrfUsageError(`--weight ${raw}: weight must be > 0`);
  });
  const cap = perTenant('--cap', values.cap, 'GBPS', (n, c, raw) => {
    if (c < 0) throw new DrfUsageError(`--cap ${raw}: cap must be >= 0 Gbps`);
    const list = uses.get(n)!;
    const z = Math.min(...list.map((r) => capacity.get(r)!));
    if (c > z) {
      const at = list.find((r) => capacity.get(r) === z)!;
      throw new DrfUsageError(
        `--cap ${raw}: ${c} Gbps is above the capacity of ${n}'s smallest resource '${at}' (${z} Gbps)`,
      );
    }
  });
  const priority = perTenant('--priority', values.priority, 'P', () => {});

  let simulateSeconds: number | undefined;
  if (values.simulate !== undefined) {
    const s = values.simulate;
    if (!NUMBER.test(s) || !(Number(s) > 0) || !Number.isFinite(Number(s)))
      throw new DrfUsageError(`--simulate ${s}: expected a number of seconds > 0`);
    simulateSeconds = Number(s);
  }
  const scheduler = values.scheduler ?? 'drf';
  if (!isSchedulerKind(scheduler))
    throw new DrfUsageError(`--scheduler ${scheduler}: not one of ${SCHEDULER_KINDS.join(', ')}`);
  let vfs: number | undefined;
  if (values.vfs !== undefined) {
    vfs = Number(values.vfs);
    if (!/^\d+$/.test(values.vfs) || !Number.isSafeInteger(vfs) || vfs < 1)
      throw new DrfUsageError(`--vfs ${values.vfs}: expected a whole number >= 1`);
  }

  const names = [...uses.keys()];
  const tenants = names.map((name, i) => ({
    name,
    uses: uses.get(name)!,
    weight: weight.get(name) ?? 1,
    ...(cap.has(name) ? { cap: cap.get(name)! } : {}),
    priority: priority.size > 0 ? (priority.get(name) ?? 0) : names.length - i,
  }));
  return {
    resources: [...capacity].map(([name, c]) => ({ name, capacity: c })),
    tenants,
    simulate: simulateSeconds,
    scheduler,
    vfs,
    json: values.json ?? false,
  };
}

function policyOf(cmd: DrfCommand): PolicyConfig {
  if (cmd.scheduler === 'sriov')
    return cmd.vfs === undefined ? { kind: 'sriov' } : { kind: 'sriov', vfs: cmd.vfs };
  return { kind: cmd.scheduler };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]! + 2)))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

const f3 = (x: number): string => x.toFixed(3);
const round6 = (x: number): number => Math.round(x * 1e6) / 1e6;

function signed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  return /^-?0\.?0*$/.test(s) ? (0).toFixed(digits) : x > 0 ? `+${s}` : s;
}

export function renderDrf(cmd: DrfCommand, alloc: DrfAllocation, sim: SimResult | undefined): string {
  if (cmd.json) {
    const out: Record<string, Record<string, number>> = { allocation: { ...alloc.rates } };
    if (sim) out.measured = Object.fromEntries(Object.entries(sim.rates).map(([k, v]) => [k, round6(v)]));
    return JSON.stringify(out) + '\n';
  }
  let s = 'DRF allocation by progressive filling (Gbps on every resource the tenant uses)\n';
  if (sim)
    s += `measured: ${cmd.scheduler} scheduler, ${cmd.simulate} s of virtual time, saturating 128 KiB jobs (8 in flight per tenant), after 5% warm-up\n`;
  s += '\n';
  const head = ['tenant', 'resources', 'weight', 'cap', 'allocated', 'bottleneck'];
  if (sim) head.push('measured', 'diff');
  const rows = [head];
  for (const t of alloc.tenants) {
    const row = [
      t.name,
      t.uses.join(','),
      String(t.weight),
      t.cap === undefined ? '-' : String(t.cap),
      f3(t.rate),
      t.frozenBy.kind === 'cap' ? 'cap' : t.frozenBy.resource,
    ];
    if (sim) {
      const m = sim.rates[t.name]!;
      const pct = t.rate > 0 ? ` (${signed((100 * (m - t.rate)) / t.rate, 3)}%)` : '';
      row.push(f3(m), `${signed(m - t.rate, 3)}${pct}`);
    }
    rows.push(row);
  }
  s += table(rows) + '\n';
  const rhead = ['resource', 'capacity', 'allocated', 'saturated'];
  if (sim) rhead.push('measured');
  const rrows = [rhead];
  for (const r of alloc.resources) {
    const row = [r.name, String(r.capacity), f3(r.used), r.saturated ? 'yes' : 'no'];
    if (sim) row.push(f3(sim.accelGbps[r.name]!));
    rrows.push(row);
  }
  s += table(rrows);
  return s;
}

/** Runs `sgiov drf ARGS`; returns the exit code (2 for bad arguments). */
export function runDrf(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): number {
  let cmd: DrfCommand;
  try {
    cmd = parseDrfArgs(argv);
  } catch (e) {
    if (e instanceof DrfUsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err(`sgiov drf: ${(e as Error).message}\nRun 'sgiov drf --help' for usage.\n`);
      return 2;
    }
    throw e;
  }
  const alloc = progressiveFilling({ resources: cmd.resources, tenants: cmd.tenants });
  let sim: SimResult | undefined;
  if (cmd.simulate !== undefined) {
    const tenants: SimTenant[] = cmd.tenants.map((t) => ({
      name: t.name,
      accels: t.uses,
      weight: t.weight ?? 1,
      priority: t.priority,
      ...(t.cap === undefined ? {} : { demandGbps: t.cap }),
    }));
    sim = simulate(
      cmd.resources.map((r) => ({ name: r.name, capacityGbps: r.capacity })),
      tenants,
      { seconds: cmd.simulate, policy: policyOf(cmd) },
    );
  }
  out(renderDrf(cmd, alloc, sim));
  return 0;
}
