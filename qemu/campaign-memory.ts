/**
 * The fault campaign (`npm run faults`): the stress workload under each plan
 * in faults/*.json in turn, one table row per plan: injections, messages
 * sent, delivered, failed-and-reported, lost, duplicated, corrupted
 * delivered, time to recover. Exits non-zero when any row lost, duplicated
 * or delivered corrupted messages.
 *
 * The workload is pluggable (CampaignWorkload): the one here runs the device
 * model on the in-memory bus with the TypeScript driver; the VM workload
 * (qemu/campaign.ts: the guest's sgiov.ko and sgiov-stress against an
 * emulator started with --faults) implements the same interface, and its
 * entry point (`npm run faults`) runs campaignMain with both.
 *
 *   node dist/qemu/campaign-memory.js [--messages N] [--json] [PLAN.json ...]   (in memory)
 */
import { readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { harnessArgs } from './harness-args.js';
import { chainCode, SgiovSocketDriver } from '../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../emulator/host/bus-access.js';
import { deviceCommand } from '../emulator/control/commands.js';
import { repoRoot } from '../emulator/util/paths.js';
import type { SgiovDevice } from '../emulator/model/device.js';
import { loadPlan, POINT_NAMES, type Plan, type Point } from '../emulator/faults/plan.js';
import { runFaultStress, type FaultStressReport } from '../emulator/client/fault-workload.js';

/**
 * One plan's row: the workload's account (FaultStressReport), where
 * recoverMs runs, for a lost device, to the first message through a fresh
 * driver after the host's reset (ms of the workload's clock; memory: device time).
 */
export interface CampaignRow
  extends Pick<
    FaultStressReport,
    | 'sent'
    | 'delivered'
    | 'failed'
    | 'lost'
    | 'duplicated'
    | 'corrupted'
    | 'reordered'
    | 'recoverMs'
    | 'deviceLost'
    | 'wallMs'
  > {
  plan: string;
  /** The faults the plan injects, as point:action of its rules. */
  fault: string;
  injections: number;
  /** The driver's recovery counters (resyncs, rewrites, repeats ignored, ...), as k=v. */
  driver?: string;
  /** Why the plan did not run on this workload (then every count is 0). */
  skipped?: string;
  /** The device did not work again after the fault (the host's recovery failed). */
  unrecovered?: boolean;
}

export interface CampaignWorkload {
  readonly name: string;
  /** Why `plan` cannot run on this workload, or null. */
  skip?(plan: Plan): string | null;
  run(plan: Plan, file: string, opts: { messagesPerPair: number }): Promise<CampaignRow> | CampaignRow;
}

/** Injections that did something (arming rules, action none, only count). */
function injected(dev: SgiovDevice): number {
  let n = 0;
  for (let p = 0; p < POINT_NAMES.length; p++)
    n += dev.faults.injected(p as Point) - dev.faults.injected(p as Point, 'none');
  return n;
}

export function describePlan(plan: Plan): string {
  return [
    ...new Set(
      plan.rules.filter((r) => r.action.action !== 'none').map((r) => `${r.point}:${r.action.action}`),
    ),
  ].join(', ');
}

/**
 * The device model on the in-memory bus, the TypeScript socket driver, 8
 * pairs: tenants 0 and 1 alternate, every fourth pair runs ENCRYPT+DECRYPT
 * (executor I), the D2H interrupt is on vector 2 and armed before every
 * wait (as a driver that sleeps would), so every example plan finds its
 * points. A lost device is brought back as the host would (control reset)
 * and probed with a fresh driver.
 */
export const memoryWorkload: CampaignWorkload = {
  name: 'memory',
  run(plan, file, opts) {
    const { bus, dev } = enabledDevice(64 << 20);
    dev.faults.load(plan);
    const base = busAccess(bus, dev);
    const access = {
      ...base,
      wait: () => {
        new DataView(bus.shm.buffer).setUint32(0x100, 1, true);
        base.wait();
      },
    };
    access.writeReg('D2H_VECTOR', 2);
    const drv = new SgiovSocketDriver(access, { d2hSlots: 4096, timeoutMs: 5000 });
    const chain = chainCode('ENCRYPT', 'DECRYPT');
    const rep: FaultStressReport = runFaultStress(drv, {
      sockets: 16,
      messagesPerPair: opts.messagesPerPair,
      minSize: 16,
      maxSize: 3000,
      ringSize: 4096,
      seed: 1,
      tenants: 2,
      chainFor: (i) => (i % 4 === 3 ? chain : 0),
      injections: () => injected(dev),
      deadlineMs: 30_000,
      clock: () => bus.nowNs() / 1e6,
    });
    let recoverMs = rep.recoverMs;
    if (rep.deviceLost) {
      // The host's recovery: a reset through the control interface, then a new driver.
      deviceCommand(dev, 'reset', {});
      access.writeReg('CONTROL', 1);
      const drv2 = new SgiovSocketDriver(access, { d2hSlots: 1024, timeoutMs: 5000 });
      const s = drv2.socket({ txSize: 4096, rxSize: 4096 });
      s.connect(0);
      s.send(Uint8Array.of(1, 2, 3));
      const back = s.recv();
      recoverMs = back.length === 3 && rep.injectedAt !== null ? bus.nowNs() / 1e6 - rep.injectedAt : null;
    }
    return {
      plan: basename(file, '.json'),
      fault: describePlan(plan),
      injections: injected(dev),
      sent: rep.sent,
      delivered: rep.delivered,
      failed: rep.failed,
      lost: rep.lost,
      duplicated: rep.duplicated,
      corrupted: rep.corrupted,
      reordered: rep.reordered,
      recoverMs,
      deviceLost: rep.deviceLost,
      wallMs: rep.wallMs,
      driver: Object.entries(drv.recovery)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}=${n}`)
        .join(' '),
    };
  },
};

export const WORKLOADS: Record<string, CampaignWorkload> = { memory: memoryWorkload };

export async function runCampaign(
  workload: CampaignWorkload,
  files: string[],
  opts: { messagesPerPair: number },
  progress?: (r: CampaignRow) => void,
): Promise<CampaignRow[]> {
  const rows: CampaignRow[] = [];
  for (const f of files) {
    const plan = loadPlan(f);
    const why = workload.skip?.(plan) ?? null;
    const row: CampaignRow =
      why !== null
        ? {
            plan: basename(f, '.json'),
            fault: describePlan(plan),
            injections: 0,
            sent: 0,
            delivered: 0,
            failed: 0,
            lost: 0,
            duplicated: 0,
            corrupted: 0,
            reordered: 0,
            recoverMs: null,
            deviceLost: null,
            wallMs: 0,
            skipped: why,
          }
        : await workload.run(plan, f, opts);
    rows.push(row);
    progress?.(row);
  }
  return rows;
}

const COLUMNS: [string, (r: CampaignRow) => string][] = [
  ['plan', (r) => r.plan],
  ['fault', (r) => r.fault],
  ['injections', (r) => String(r.injections)],
  ['sent', (r) => String(r.sent)],
  ['delivered', (r) => String(r.delivered)],
  ['failed-reported', (r) => String(r.failed)],
  ['lost', (r) => String(r.lost)],
  ['duplicated', (r) => String(r.duplicated)],
  ['corrupted', (r) => String(r.corrupted)],
  [
    'recover ms',
    (r) =>
      r.injections === 0
        ? '-'
        : r.recoverMs === null
          ? 'never'
          : Number.isInteger(r.recoverMs)
            ? String(r.recoverMs)
            : r.recoverMs.toFixed(3),
  ],
  [
    'device',
    (r) =>
      r.skipped !== undefined
        ? 'skipped'
        : r.unrecovered
          ? `${r.deviceLost ?? 'ok'}, not back`
          : (r.deviceLost ?? 'ok'),
  ],
];

/** The table; a last column says what each row's driver did to recover, or why the plan was skipped. */
export function formatTable(rows: CampaignRow[]): string {
  const cols: [string, (r: CampaignRow) => string][] = rows.some((r) => r.driver || r.skipped)
    ? [...COLUMNS, ['driver', (r) => r.skipped ?? (r.driver || '-')]]
    : COLUMNS;
  // A skipped plan ran nothing: no figures.
  const cells = [
    cols.map(([h]) => h),
    ...rows.map((r) =>
      cols.map(([, f], i) => (r.skipped !== undefined && i >= 2 && i < COLUMNS.length - 1 ? '-' : f(r))),
    ),
  ];
  const w = cols.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  const left = (i: number): boolean => i < 2 || i === COLUMNS.length;
  return (
    cells
      .map((c) =>
        c
          .map((x, i) => (left(i) ? x.padEnd(w[i]!) : x.padStart(w[i]!)))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/** The contract: nothing lost, duplicated, reordered or delivered corrupted, and the device back, in every row. */
export const broken = (rows: CampaignRow[]): CampaignRow[] =>
  rows.filter(
    (r) => r.lost > 0 || r.duplicated > 0 || r.corrupted > 0 || r.reordered > 0 || r.unrecovered === true,
  );

/**
 * The campaign's command line: `--workload NAME` (or `--memory`) among
 * `workloads`, `--messages N` per pair, `--json`, plan files (default:
 * faults/*.json; `first(workload)` may put more before them, e.g. a
 * fault-free baseline). Returns the exit code: 1 when the contract failed.
 */
export const CAMPAIGN_HELP = `npm run faults -- [options] [PLAN.json ...]
  Runs each fault plan (default: faults/*.json) against a workload and checks the contract:
  nothing lost, duplicated, reordered or delivered corrupted; every failure reported.
  --workload NAME   vm (default: a real VM running sgiov-stress) or memory (in-process, no VM)
  --memory          the same as --workload memory
  --messages N      messages per socket (vm, default 256) or per pair (memory, default 1000)
  --json            one JSON line per plan instead of the table
  -h, --help        this text
  Environment: SGIOV_KEEP=1 keeps the run files.`;

export async function campaignMain(
  argv: string[],
  workloads: Record<string, CampaignWorkload>,
  defaultWorkload: string,
  first?: (w: CampaignWorkload) => string[],
): Promise<number> {
  const parsed = harnessArgs(
    'faults',
    CAMPAIGN_HELP,
    argv,
    {
      workload: { type: 'string', default: defaultWorkload },
      memory: { type: 'boolean', default: false },
      messages: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    true,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  values.messages ??= '1000';
  const name = values.memory ? 'memory' : values.workload;
  const workload = workloads[name];
  if (!workload) {
    process.stderr.write(
      `faults: unknown workload '${name}' (known: ${Object.keys(workloads).join(', ')})\n`,
    );
    return 2;
  }
  const messagesPerPair = Number(values.messages);
  if (!Number.isInteger(messagesPerPair) || messagesPerPair < 1) {
    process.stderr.write(`faults: --messages '${values.messages}' is not a whole number >= 1\n`);
    return 2;
  }
  const dir = join(repoRoot(), 'faults');
  const files = [
    ...(first?.(workload) ?? []),
    ...(positionals.length > 0
      ? positionals
      : readdirSync(dir)
          .filter((f) => f.endsWith('.json'))
          .sort()
          .map((f) => join(dir, f))),
  ];
  process.stderr.write(
    `fault campaign: ${files.length} plans, workload ${workload.name}, ${messagesPerPair} messages per ${workload.name === 'memory' ? 'pair, 8 pairs' : 'socket'}\n`,
  );
  const rows = await runCampaign(workload, files, { messagesPerPair }, (r) =>
    process.stderr.write(`  ${r.plan}: ${r.skipped ?? `${r.injections} injections, ${r.wallMs} ms`}\n`),
  );
  process.stdout.write(values.json ? JSON.stringify(rows, null, 2) + '\n' : formatTable(rows));
  const bad = broken(rows);
  if (bad.length > 0) {
    process.stderr.write(
      `fault campaign: the contract failed under ${bad.map((r) => r.plan).join(', ')} (lost, duplicated, reordered or corrupted messages, or a device not back)\n`,
    );
    return 1;
  }
  const idle = rows
    .filter((r) => r.injections === 0 && r.skipped === undefined && r.fault !== '')
    .map((r) => r.plan);
  if (idle.length > 0)
    process.stderr.write(
      `fault campaign: no injection under ${idle.join(', ')} (its points are not on this workload's path)\n`,
    );
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  campaignMain(process.argv.slice(2), WORKLOADS, 'memory').then(
    (c) => {
      process.exitCode = c;
    },
    (e) => {
      process.stderr.write(`faults: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
