/**
 * The fault campaign in a VM (`npm run faults`): for each plan, an emulator
 * started with `serve --faults PLAN --control CTL` and a QEMU VM booted
 * against it with the `campaign` scenario of qemu/init, which loads sgiov.ko
 * (lowered timeouts), runs `sgiov-stress -E` (tenants 0 and 1, every fourth
 * connection through ENCRYPT+DECRYPT, so the example plans' matches find
 * traffic), and reports. A device the fault removed is brought back by the
 * host (control `reset`) when the guest says so; the guest reloads the
 * module and sends a few messages through new sockets (campaign_probe).
 *
 * One row per plan (emulator/faults/campaign.ts): injections from the
 * control `faults` list, sent / delivered / failed-and-reported / lost /
 * duplicated / corrupted / reordered from sgiov-stress, the module's
 * recovery counters (holes, resyncs, repeats, ...) from its `dp` attribute,
 * and the time to recover: for a device that stayed, the run's longest
 * stall (stress `stall_ms`: no message delivered and no socket failed for
 * that long); for a device lost (reset or removed), from the first
 * injection (the emulator's log) to the guest's probe through new sockets.
 * Plans on cross-node points (fabric.*) run on two nodes: two emulators in
 * two network namespaces (the plan loaded into node a's), a VM on each,
 * sgiov-stress split across them (-L on b, -C 2 on a); the row adds up
 * both guests' figures, recover ms is node a's longest stall (without root
 * for the namespaces they are skipped).
 *
 *   node dist/qemu/campaign.js [--memory] [--messages N] [--json] [PLAN.json ...]
 *
 * Every process is stopped by its PID; the run directory is removed unless
 * a row broke the contract (or SGIOV_KEEP=1).
 */
import { writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  campaignMain,
  describePlan,
  memoryWorkload,
  type CampaignRow,
  type CampaignWorkload,
} from './campaign-memory.js';
import type { Plan } from '../emulator/faults/plan.js';
import { NetnsPair } from './netns.js';
import { FabricCredentials } from './fabric-credentials.js';
import { controlCall, EmulatorProcess, guestListening, QemuVm, RunDir, type GuestLine } from './vm.js';

export interface VmCampaignOptions {
  /** sgiov-stress arguments besides -E and -m (default: 64 sockets, 4 KiB messages, 2 tenants, every 4th connection encrypted). */
  stress?: string[];
  /** sgiov.ko parameters (default: 5 s timeouts). */
  kmod?: string[];
  /** Where runs go (default: a new temp dir per workload). */
  dir?: RunDir;
  /** Per-VM limit in seconds (default 240). */
  timeoutS?: number;
  /** Progress lines (default: none). */
  log?: (s: string) => void;
}

export const DEFAULT_STRESS = ['-n', '64', '-s', '4096', '-T', '2', '-c', '4'];
export const DEFAULT_KMOD = ['io_timeout_ms=5000', 'cmd_timeout_ms=5000'];

const num = (l: GuestLine | undefined, k: string): number => Number(l?.fields[k] ?? NaN);

/** k=v fields of the module's `dp` attribute that say what it recovered from (non-zero ones). */
const RECOVERY_FIELDS = [
  'holes',
  'resyncs',
  'repeats',
  'retries',
  'cmd_resent',
  'polled',
  'resets',
  'stray',
  'dev_errors',
];

function recoveryOf(dp: GuestLine | undefined): string {
  if (!dp) return '';
  return RECOVERY_FIELDS.filter((k) => Number(dp.fields[k] ?? 0) > 0)
    .map((k) => `${k}=${dp.fields[k]}`)
    .join(' ');
}

/** Injections that did something (action none only counts or moves the plan's state). */
function injectionsOf(list: unknown): number {
  const inj = (list as { injections?: Record<string, Record<string, number>> }).injections ?? {};
  let n = 0;
  for (const byAction of Object.values(inj))
    for (const [a, k] of Object.entries(byAction)) if (a !== 'none') n += k;
  return n;
}

/** When the first fault that did something was injected (the emulator's log, ms since the epoch), or null. */
function firstInjection(e: EmulatorProcess): number | null {
  for (const r of e.records()) {
    if (r.msg === 'fault injected' && r.action !== 'none' && typeof r.time === 'string')
      return Date.parse(r.time);
  }
  return null;
}

/** The VM workload: one emulator (with the plan) and one VM per plan. */
export function vmWorkload(o: VmCampaignOptions = {}): CampaignWorkload & { dir: RunDir } {
  const dir = o.dir ?? new RunDir('sgiov-faults-');
  const log = o.log ?? ((): void => {});
  let n = 0;
  return {
    name: 'vm',
    dir,
    skip(plan: Plan): string | null {
      return isFabricPlan(plan) && !NetnsPair.available()
        ? 'needs two nodes (cross-node pipes), and namespaces need root'
        : null;
    },
    async run(plan, file, opts): Promise<CampaignRow> {
      const name = `${++n}-${basename(file, '.json')}`;
      if (isFabricPlan(plan)) return twoNodes(dir, name, plan, file, opts.messagesPerPair, o);
      const t0 = Date.now();
      const ctl = dir.file(`${name}.ctl`);
      const e = new EmulatorProcess({
        socketPath: dir.file(`${name}.sock`),
        logPath: dir.file(`${name}.emulator.log`),
        logLevel: 'info',
        extraArgs: ['--control', ctl, '--faults', file],
      });
      let v: QemuVm | undefined;
      try {
        await e.ready();
        const stress = [...(o.stress ?? DEFAULT_STRESS), '-m', String(opts.messagesPerPair)];
        const timeoutS = o.timeoutS ?? 240;
        v = new QemuVm({
          socketPath: e.opts.socketPath,
          consolePath: dir.file(`${name}.console.log`),
          scenario: 'campaign',
          timeoutS,
          extraAppend: `sgiov.kmod=${(o.kmod ?? DEFAULT_KMOD).join(',')} sgiov.stress=${stress.join(',')} sgiov.tool_timeout=${timeoutS - 60}`,
        });
        const vm = v;
        const after = await vm.waitFor(
          (l) => l.kind === 'campaign_after' || l.kind === 'done',
          timeoutS * 1000,
        );
        const state = after.fields.state;
        if (state === 'removed') {
          // The host's part: the card back in its slot, at power-on (the guest reloads the module).
          log(`  ${name}: device removed; control reset`);
          await controlCall(ctl, 'reset');
        }
        await vm.waitFor((l) => l.kind === 'done', timeoutS * 1000);
        await vm.exit(30_000);
        const list = await controlCall(ctl, 'faults', { op: 'list' });
        const s = vm.find('stress')[0];
        const dps = vm.find('dp');
        const dpAfter = dps.find((l) => l.at >= (vm.find('stress_done')[0]?.at ?? Infinity));
        const probe = vm.find('campaign_probe')[0];
        const resets = Number(dpAfter?.fields.resets ?? 0);
        const deviceLost =
          state === 'removed'
            ? 'DEVICE_REMOVED'
            : resets > 0
              ? 'DEVICE_RESET'
              : state === 'ok'
                ? null
                : 'DATA_PLANE_OFF';
        const injectedAt = firstInjection(e);
        const injections = injectionsOf(list);
        let recoverMs: number | null = null;
        if (injections > 0) {
          if (deviceLost)
            recoverMs = probe && num(probe, 'rc') === 0 && injectedAt !== null ? probe.at - injectedAt : null;
          else if (s) recoverMs = num(s, 'stall_ms');
        }
        const driver = recoveryOf(dpAfter);
        if (!s) throw new Error(`${name}: no stress line from the guest (console: ${vm.opts.consolePath})`);
        return {
          plan: basename(file, '.json'),
          fault: describePlan(plan),
          injections,
          sent: num(s, 'sent'),
          delivered: num(s, 'delivered'),
          failed: num(s, 'failed'),
          lost: num(s, 'lost'),
          duplicated: num(s, 'duplicated'),
          corrupted: num(s, 'corrupted'),
          reordered: num(s, 'reordered'),
          recoverMs,
          deviceLost,
          wallMs: Date.now() - t0,
          // A fault-free run: its longest stall is what TCG costs anyway.
          driver:
            plan.rules.length === 0 && s
              ? `stall_ms=${s.fields.stall_ms} without faults${driver ? ` ${driver}` : ''}`
              : driver,
          unrecovered: !probe || num(probe, 'rc') !== 0 || num(probe, 'lost') !== 0,
        };
      } finally {
        await v?.stop();
        await e.stop();
      }
    },
  };
}

const isFabricPlan = (plan: Plan): boolean => plan.rules.some((r) => r.point.startsWith('fabric.'));

/**
 * A fabric plan: node a (the plan loaded, its guest connecting: -C 2) and
 * node b (its guest listening: -L), each emulator in its own namespace.
 * The row sums both guests' figures; recover ms is node a's longest stall.
 */
async function twoNodes(
  dir: RunDir,
  name: string,
  plan: Plan,
  file: string,
  messages: number,
  o: VmCampaignOptions,
): Promise<CampaignRow> {
  const t0 = Date.now();
  const net = NetnsPair.create('camp');
  const emus: EmulatorProcess[] = [];
  const vms: QemuVm[] = [];
  const timeoutS = o.timeoutS ?? 240;
  try {
    // The fabric as users should run it: authenticated (a secret made for this plan).
    const creds = FabricCredentials.make(dir.file(`${name}-fabric`), ['a', 'b']);
    for (const node of ['a', 'b'] as const) {
      const e = new EmulatorProcess({
        socketPath: dir.file(`${name}-${node}.sock`),
        logPath: dir.file(`${name}-${node}.emulator.log`),
        logLevel: 'info',
        netns: net.node(node, 7420).netns,
        extraArgs: [
          ...net.node(node, 7420).cluster,
          '--link-deadline',
          '30000',
          '--control',
          dir.file(`${name}-${node}.ctl`),
          ...creds.flags(node, false),
          ...(node === 'a' ? ['--faults', file] : []),
        ],
      });
      emus.push(e);
      await e.ready();
    }
    const boot = (node: 'a' | 'b', mode: string): QemuVm => {
      const stress = [mode, '-n', '64', '-s', '4096', '-p', '7350', '-m', String(messages)];
      // Node b's guest blocks in accept while node a's boots: its wait must outlast a boot.
      const kmod =
        node === 'b'
          ? (o.kmod ?? DEFAULT_KMOD).map((p) => (p.startsWith('io_timeout_ms=') ? 'io_timeout_ms=60000' : p))
          : (o.kmod ?? DEFAULT_KMOD);
      const v = new QemuVm({
        socketPath: dir.file(`${name}-${node}.sock`),
        consolePath: dir.file(`${name}-${node}.console.log`),
        scenario: 'campaign',
        timeoutS,
        extraAppend: `sgiov.kmod=${kmod.join(',')} sgiov.stress=${stress.join(',')} sgiov.tool_timeout=${timeoutS - 60}`,
      });
      vms.push(v);
      return v;
    };
    const vb = boot('b', '-L');
    if (!(await guestListening(dir.file(`${name}-b.ctl`), 7350, vb)))
      throw new Error(`${name}: node b's guest never listened (console: ${vb.opts.consolePath})`);
    boot('a', '-C,2');
    await Promise.all(vms.map((v) => v.waitFor((l) => l.kind === 'done', timeoutS * 1000)));
    await Promise.all(vms.map((v) => v.exit(30_000)));
    const list = await controlCall(dir.file(`${name}-a.ctl`), 'faults', { op: 'list' });
    const st = vms.map((v) => v.find('stress')[0]);
    if (st.some((x) => !x))
      throw new Error(`${name}: a guest printed no stress line (consoles in ${dir.path})`);
    const sum = (k: string): number => st.reduce((acc, x) => acc + num(x, k), 0);
    const probes = vms.map((v) => v.find('campaign_probe')[0]);
    const injections = injectionsOf(list);
    const links = emus
      .map((e) => (e.log.match(/fabric link to . (down|failed)/g) ?? []).length)
      .reduce((x, y) => x + y, 0);
    return {
      plan: basename(file, '.json'),
      fault: describePlan(plan),
      injections,
      sent: sum('sent'),
      delivered: sum('delivered'),
      failed: sum('failed'),
      lost: sum('lost'),
      duplicated: sum('duplicated'),
      corrupted: sum('corrupted'),
      reordered: sum('reordered'),
      // Node a's longest stall: node b's includes the wait for a's guest to boot and connect.
      recoverMs: injections > 0 ? num(st[1], 'stall_ms') : null,
      deviceLost: null,
      wallMs: Date.now() - t0,
      driver: `two nodes; link down/failed ${links}x`,
      unrecovered: probes.some((p) => !p || num(p, 'rc') !== 0 || num(p, 'lost') !== 0),
    };
  } finally {
    for (const v of vms) await v.stop();
    await Promise.all(emus.map((e) => e.stop()));
    net.remove();
  }
}

/** A plan with no rules (row "baseline"), written into `dir`. */
export function baselinePlan(dir: RunDir): string {
  const f = dir.file('baseline.json');
  writeFileSync(
    f,
    JSON.stringify({ description: 'no faults: the same workload, for comparison', rules: [] }),
  );
  return f;
}

async function main(argv: string[]): Promise<number> {
  const vm = vmWorkload({ log: (s) => process.stderr.write(s + '\n') });
  // The VM workload's default is smaller than the in-memory one's (TCG): 64 sockets x 256 messages.
  const args =
    argv.some((a) => a === '--messages' || a.startsWith('--messages=')) || argv.includes('--memory')
      ? argv
      : ['--messages', '256', ...argv];
  let code = 2;
  try {
    // A fault-free round first: the longest stall TCG costs without faults, beside each plan's.
    code = await campaignMain(args, { vm, memory: memoryWorkload }, 'vm', (w) =>
      w === vm ? [baselinePlan(vm.dir)] : [],
    );
  } finally {
    if ((code === 0 || code === 2) && process.env.SGIOV_KEEP !== '1') vm.dir.remove();
    else process.stderr.write(`fault campaign: run files kept in ${vm.dir.path}\n`);
  }
  return code;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (c) => {
      process.exitCode = c;
    },
    (e) => {
      process.stderr.write(`faults: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
