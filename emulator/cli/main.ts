#!/usr/bin/env node
/**
 * sgiov: the command line of the SG-IOV emulator.
 *   sgiov serve --socket PATH [options]   serve the device to QEMU over vfio-user
 *   sgiov vm [options] -- COMMAND [ARGS...]   run a command in a guest (the harness: qemu/run.ts)
 */
import { parseArgs } from 'node:util';
import { BARS, CONSTANTS } from '../abi/abi.js';
import { DEFAULT_IDENTITY, parseId, type PciIdentity } from '../pci/config.js';
import { defaultLevel, isLogLevel, LOG_LEVELS, makeLogger } from '../util/log.js';
import { EmulatorServer } from './serve.js';
import { CLUSTER_ARGS, clusterFromOptions, formatAddress, type Cluster } from '../fabric/cluster.js';
import type { WorkerFabricConfig } from '../host/worker.js';
import { ControlServer } from '../control/server.js';
import { DRF_HELP, DRF_USAGE, runDrf } from './drf.js'; // sgiov drf
import { loadPlan, PlanError } from '../faults/plan.js';
// The CLI is the outermost layer: it may use the harness (qemu/ never imports the CLI).
import { runInVm, VmRunError, type Copy } from '../../qemu/run.js';
import { parseCidr } from '../../qemu/address-plan.js';
import { CompareError, compareResults } from '../../qemu/bench/compare.js';
import { readFileSync } from 'node:fs';
import { methodHandler } from '../control/methods.js';
import { CONTROL_OPTION, withControl } from './control-session.js';
import { claimSocketPath, SocketPathInUse } from '../util/socket-path.js';
import { commandHelp, parseCommand, suggest, UsageError, type CommandSpec } from './options.js';
import { resolveGroup } from '../util/group.js';
import { OBSERVE_ARGS, OBSERVE_HELP, observeFromOptions, type ObserveOptions } from './observe-args.js';
import { MetricsServer } from '../observe/metrics.js';
import { lineWriter } from '../observe/log-format.js';
import type { Snapshot } from '../host/snapshot.js';
import { runTop } from './top.js';

const HELP = `sgiov - emulator of the SG-IOV PCIe device, served to QEMU over vfio-user

Usage:
  sgiov serve --socket PATH [options]
  sgiov ctl --control PATH COMMAND [ARGS-JSON]   send one control command, print the reply
  sgiov top --control PATH [--once]              a live view of a running emulator (sgiov top --help)
  sgiov vm [vm options] -- COMMAND [ARGS...]      run a command in a guest, exit with its status
  sgiov vm [vm options] --shell                   an interactive guest shell
                                                 ('methods' lists them; sgiov ctl --help)
  sgiov bench compare A.json B.json             two bench results row by row (exit 1: a goal
                                                 met in A is missed in B)
  sgiov --version
${DRF_USAGE}
  sgiov --help

serve options:
  -s, --socket PATH          vfio-user UNIX socket to listen on (required)
      --vendor-id ID         PCI vendor id            (default 0x${DEFAULT_IDENTITY.vendorId.toString(16)})
      --device-id ID         PCI device id            (default 0x${DEFAULT_IDENTITY.deviceId.toString(16)})
      --subsys-vendor-id ID  PCI subsystem vendor id  (default 0x${DEFAULT_IDENTITY.subsysVendorId.toString(16)})
      --subsys-id ID         PCI subsystem id         (default 0x${DEFAULT_IDENTITY.subsysId.toString(16).padStart(4, '0')})
      --msix-vectors N       MSI-X vectors, 2..2048   (default ${BARS.MSIX_VECTORS})
      --max-sockets N        socket devices at most, 1..8388607 (default ${CONSTANTS.MAX_SOCKETS_DEFAULT})
      --socket-group NAME    give this group read/write on the vfio-user socket (0660);
                             without it the socket is owner-only (0600) whatever the umask
      --client-deadline MS   a client must finish its handshake and each message it starts
                             within this, or it is dropped (default 5000)
  -c, --control PATH         serve the control interface (JSON lines) on this UNIX socket,
                             owner-only (0600) whatever the umask
      --control-group NAME   give this group read/write on the control socket (0660)
      --cluster FILE         cross-node pipes: the cluster ({"self": "a", "nodes": {"a": "host:port", ...}})
      --node NAME=HOST:PORT  the same from flags, one per node (repeated); with --self NAME
      --self NAME            this node's name (overrides the file's "self")
      --fabric-secret FILE   the cluster secret (a file only its owner may read: chmod 600);
                             peers prove it at each handshake (HMAC-SHA-256). Without it the
                             fabric is unauthenticated (a warning at start). docs/fabric-security.md
      --fabric-tls           encrypt the links: TLS 1.3 with certificates on both ends, with
      --fabric-ca FILE       the cluster's CA certificate,
      --fabric-cert FILE     this node's certificate (naming it: CN or DNS subjectAltName) and
      --fabric-key FILE      its key (owner-only); or "tls": {ca, cert, key} in the cluster file
      --link-deadline MS     a link down this long fails its sockets (default 10000)
      --faults PLAN          load a fault-injection plan (JSON; examples in faults/) at start
${OBSERVE_HELP.trimEnd()}
  -l, --log-level LEVEL      ${LOG_LEVELS.join('|')} (default: $SGIOV_LOG_LEVEL or info)

vm options (a fresh emulator and a QEMU VM under TCG; docs/running-programs.md):
      --packages P1,P2       extra Debian packages from the trixie tree (cached per set)
      --copy HOST:GUEST      a host file or folder into the guest (repeated; GUEST ending
                             in / places it inside that folder)
      --mem SIZE             guest memory, e.g. 512M, 1G (default 1G)
      --smp N                vCPUs (default 1)
      --addr A.B.C.D/N       the guest's address instead of the plan's 10.77.0.1/16
      --json                 at the end one line {"exitCode", "seconds", "device": {counters}}
      --shell                an interactive shell on the guest console instead of COMMAND
  The command runs in /root with $SGIOV_ADDR set; its output is streamed, its
  exit status is sgiov's. Status 125: the run failed before the command ended.

${DRF_HELP}
The emulator serves one client at a time; when QEMU disconnects, the device
is reset and the emulator waits for the next one. SIGINT/SIGTERM stop it and
remove the socket. Logs are JSON lines (pino) on stdout.
Environment: SGIOV_CACHE (setup cache, default ~/.cache/sgiov),
SGIOV_LIBVFIO_USER (path of libvfio-user.so.0), SGIOV_LOG_LEVEL.
`;

function parseServe(argv: string[]): ObserveOptions & {
  socketPath: string;
  identity: PciIdentity;
  msixVectors: number;
  maxSockets: number;
  logLevel: ReturnType<typeof defaultLevel>;
  control: string | undefined;
  fabric?: WorkerFabricConfig;
  faultsPlan?: string;
  socketGid?: number;
  clientDeadlineMs?: number;
  controlGid?: number;
} {
  const serveOptions = {
    socket: { type: 'string', short: 's' },
    'vendor-id': { type: 'string' },
    'device-id': { type: 'string' },
    'subsys-vendor-id': { type: 'string' },
    'subsys-id': { type: 'string' },
    'msix-vectors': { type: 'string' },
    'max-sockets': { type: 'string' },
    control: { type: 'string', short: 'c' },
    'socket-group': { type: 'string' },
    'client-deadline': { type: 'string' },
    'control-group': { type: 'string' },
    ...CLUSTER_ARGS,
    'link-deadline': { type: 'string' },
    faults: { type: 'string' },
    ...OBSERVE_ARGS,
    'log-level': { type: 'string', short: 'l' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  let parsed: ReturnType<
    typeof parseArgs<{ args: string[]; allowPositionals: true; options: typeof serveOptions }>
  >;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: serveOptions });
  } catch (e) {
    const m = /Unknown option '([^']+)'/.exec((e as Error).message);
    if (!m) throw new UsageError((e as Error).message.split('\n')[0]!);
    const hint = suggest(
      m[1]!,
      Object.keys(serveOptions).map((o) => `--${o}`),
    );
    throw new UsageError(`unknown option '${m[1]}'${hint ? ` (did you mean ${hint}?)` : ''}`);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  if (!values.socket) throw new UsageError('--socket PATH is required');
  const identity: PciIdentity = { ...DEFAULT_IDENTITY };
  try {
    if (values['vendor-id']) identity.vendorId = parseId(values['vendor-id'], 16, '--vendor-id');
    if (values['device-id']) identity.deviceId = parseId(values['device-id'], 16, '--device-id');
    if (values['subsys-vendor-id'])
      identity.subsysVendorId = parseId(values['subsys-vendor-id'], 16, '--subsys-vendor-id');
    if (values['subsys-id']) identity.subsysId = parseId(values['subsys-id'], 16, '--subsys-id');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const msixVectors = values['msix-vectors'] ? Number(values['msix-vectors']) : BARS.MSIX_VECTORS;
  if (!Number.isInteger(msixVectors) || msixVectors < 2 || msixVectors > 2048)
    throw new UsageError(`--msix-vectors: '${values['msix-vectors']}' is not a whole number in 2..2048`);
  const maxSockets = values['max-sockets'] ? Number(values['max-sockets']) : CONSTANTS.MAX_SOCKETS_DEFAULT;
  if (!Number.isInteger(maxSockets) || maxSockets < 1 || maxSockets > 0x7fffff)
    throw new UsageError(`--max-sockets: '${values['max-sockets']}' is not a whole number in 1..8388607`);
  const level = values['log-level'] ?? defaultLevel();
  if (!isLogLevel(level))
    throw new UsageError(`--log-level: '${level}' is not one of ${LOG_LEVELS.join(', ')}`);
  let fabric: WorkerFabricConfig | undefined;
  const clusterFlags = (Object.keys(CLUSTER_ARGS) as (keyof typeof CLUSTER_ARGS)[]).filter(
    (k) => values[k] !== undefined,
  );
  if (values.cluster !== undefined || values.node !== undefined || values.self !== undefined) {
    let cluster: Cluster;
    try {
      cluster = clusterFromOptions(values);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const deadline = values['link-deadline'] === undefined ? undefined : Number(values['link-deadline']);
    if (deadline !== undefined && (!Number.isInteger(deadline) || deadline < 1))
      throw new UsageError(`--link-deadline: '${values['link-deadline']}' is not a whole number of ms >= 1`);
    // The worker gets it as plain data (a structured clone).
    fabric = {
      self: cluster.self,
      nodes: [...cluster.nodes].map(([n, a]) => [n, formatAddress(a)]),
      ...(deadline !== undefined ? { deadlineMs: deadline } : {}),
      ...(cluster.files?.secret !== undefined ? { secretFile: cluster.files.secret } : {}),
      ...(cluster.files?.tls ? { tls: cluster.files.tls } : {}),
    };
  } else if (values['link-deadline'] !== undefined) {
    throw new UsageError('--link-deadline: only with --cluster or --node');
  } else if (clusterFlags.length > 0) {
    throw new UsageError(`--${clusterFlags[0]}: only with --cluster or --node`);
  }
  if (values.faults !== undefined) {
    // Validated here, so that a bad plan stops the start naming the field.
    try {
      loadPlan(values.faults);
    } catch (e) {
      if (e instanceof PlanError) throw new UsageError(`--faults: ${e.message}`);
      throw e;
    }
  }
  const access = parseAccess(values);
  return {
    ...access,
    socketPath: values.socket,
    identity,
    msixVectors,
    maxSockets,
    logLevel: level,
    control: values.control,
    ...(fabric ? { fabric } : {}),
    ...(values.faults !== undefined ? { faultsPlan: values.faults } : {}),
    ...observeFromOptions(values),
  };
}

/** --socket-group, --control-group, --client-deadline (docs/reliability.md). */
function parseAccess(values: Record<string, unknown>): {
  socketGid?: number;
  controlGid?: number;
  clientDeadlineMs?: number;
} {
  const gid = (flag: string): number | undefined => {
    const v = values[flag];
    if (typeof v !== 'string') return undefined;
    try {
      return resolveGroup(v);
    } catch (e) {
      throw new UsageError(`--${flag}: ${(e as Error).message}`);
    }
  };
  if (values['control-group'] !== undefined && values.control === undefined)
    throw new UsageError('--control-group: only with --control');
  const d = values['client-deadline'];
  const ms = typeof d === 'string' ? Number(d) : undefined;
  if (ms !== undefined && (!Number.isInteger(ms) || ms < 10 || ms > 3_600_000))
    throw new UsageError(`--client-deadline: '${String(d)}' is not a whole number of ms in 10..3600000`);
  const socketGid = gid('socket-group');
  const controlGid = gid('control-group');
  return {
    ...(socketGid !== undefined ? { socketGid } : {}),
    ...(controlGid !== undefined ? { controlGid } : {}),
    ...(ms !== undefined ? { clientDeadlineMs: ms } : {}),
  };
}

async function serve(argv: string[]): Promise<number> {
  const cfg = parseServe(argv);
  const out = lineWriter(cfg.logFormat);
  const log = makeLogger(cfg.logLevel, { write: out });
  // A path another emulator listens on is refused; a dead one's socket file is replaced.
  try {
    for (const [p, what] of [
      [cfg.socketPath, 'vfio-user socket'],
      ...(cfg.control ? [[cfg.control, 'control socket']] : []),
    ] as [string, string][])
      if ((await claimSocketPath(p, what)) === 'stale')
        log.warn({ path: p }, `${what}: replaced a stale socket file nobody listened on`);
  } catch (e) {
    if (e instanceof SocketPathInUse) {
      process.stderr.write(`sgiov serve: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const server = new EmulatorServer(cfg, log.child({ sub: 'main' }), out);
  const startedNs = process.hrtime.bigint();
  const uptimeS = (): number => Number(process.hrtime.bigint() - startedNs) / 1e9;
  // The metrics port first: one in use stops the start before the device thread exists.
  const metrics = cfg.metrics
    ? new MetricsServer(
        cfg.metrics,
        async () => ({ snap: (await server.request('metrics', {})) as Snapshot, uptimeS: uptimeS() }),
        log.child({ sub: 'metrics' }),
      )
    : null;
  try {
    await metrics?.listen();
  } catch (e) {
    process.stderr.write(`sgiov serve: ${(e as Error).message}\n`);
    return 1;
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'stopping');
    void server.stop();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  let control: ControlServer | null = null;
  try {
    await server.start();
    if (cfg.control) {
      control = new ControlServer(
        cfg.control,
        methodHandler((cmd, args) => server.request(cmd, args)),
        log.child({ sub: 'control' }),
        () => ({
          time: new Date().toISOString(),
          uptimeS: uptimeS(),
        }),
        cfg.controlGid !== undefined ? { gid: cfg.controlGid } : {},
      );
      await control.listen();
    }
  } catch (e) {
    log.fatal({ error: (e as Error).message }, 'could not start the device');
    await server.stop();
    await metrics?.close();
    return 1;
  }
  const code = await server.done;
  await control?.close();
  await metrics?.close();
  return stopping ? 0 : code === 0 ? 1 : code;
}

/** A size in MiB: "512", "512M", "1G" (binary units). */
function parseMem(v: string): number {
  const m = /^(\d+)([MG]?)(?:i?B)?$/i.exec(v);
  const mib = m ? Number(m[1]) * (m[2]?.toUpperCase() === 'G' ? 1024 : 1) : NaN;
  if (!Number.isInteger(mib) || mib < 128 || mib > 65536)
    throw new UsageError(`--mem: '${v}' is not a size from 128M to 64G (e.g. 512M, 1G)`);
  return mib;
}

/** The exit status of a run that could not give the command's. */
const VM_FAILED = 125;

/** sgiov vm: runs a command in a guest (qemu/run.ts), exits with its status. */
async function vm(argv: string[]): Promise<number> {
  const dd = argv.indexOf('--');
  const { values, positionals } = parseArgs({
    args: dd >= 0 ? argv.slice(0, dd) : argv,
    allowPositionals: true,
    options: {
      packages: { type: 'string', multiple: true },
      copy: { type: 'string', multiple: true },
      mem: { type: 'string' },
      smp: { type: 'string' },
      addr: { type: 'string' },
      json: { type: 'boolean' },
      shell: { type: 'boolean' },
    },
  });
  const command = [...positionals, ...(dd >= 0 ? argv.slice(dd + 1) : [])];
  if (values.shell && command.length > 0) throw new UsageError('--shell takes no COMMAND');
  if (!values.shell && command.length === 0)
    throw new UsageError('a COMMAND is required (after --), or --shell');
  const packages = (values.packages ?? []).flatMap((p) => p.split(',')).filter((p) => p !== '');
  const copies: Copy[] = (values.copy ?? []).map((c) => {
    const i = c.lastIndexOf(':');
    if (i <= 0 || i === c.length - 1) throw new UsageError(`--copy: '${c}' is not HOST_PATH:GUEST_PATH`);
    return { host: c.slice(0, i), guest: c.slice(i + 1) };
  });
  const smp = values.smp === undefined ? 1 : Number(values.smp);
  if (!Number.isInteger(smp) || smp < 1 || smp > 64)
    throw new UsageError(`--smp: '${values.smp}' is not a whole number in 1..64`);
  let addr: string | undefined;
  try {
    addr = values.addr === undefined ? undefined : parseCidr(values.addr);
  } catch (e) {
    throw new UsageError(`--addr: ${(e as Error).message}`);
  }
  let last = 0x0a;
  try {
    const r = await runInVm({
      command,
      shell: values.shell ?? false,
      packages,
      copies,
      smp,
      ...(values.mem !== undefined ? { memMiB: parseMem(values.mem) } : {}),
      ...(addr !== undefined ? { addr } : {}),
      out: (b) => {
        if (b.length > 0) last = b[b.length - 1]!;
        process.stdout.write(b);
      },
    });
    if (values.json) {
      // On a line of its own, even after output without a final newline.
      const line = JSON.stringify({
        exitCode: r.exitCode,
        seconds: r.seconds,
        bootSeconds: r.bootSeconds,
        device: r.device,
      });
      process.stdout.write((last === 0x0a ? '' : '\n') + line + '\n');
    }
    return r.exitCode;
  } catch (e) {
    if (!(e instanceof VmRunError)) throw e;
    process.stderr.write(`sgiov vm: ${e.message}\n`);
    return VM_FAILED;
  }
}
const CTL: CommandSpec = {
  name: 'ctl',
  summary: "send one command to a running emulator's control interface, print the result",
  usage: ['--control PATH COMMAND [ARGS-JSON]', '--control PATH methods'],
  options: [CONTROL_OPTION],
  footer: "'sgiov ctl --control PATH methods' lists the commands and their arguments.\n",
};

/** sgiov ctl: one request to a running emulator's control interface. */
async function ctl(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(CTL, argv);
  if (help) {
    process.stdout.write(commandHelp(CTL));
    return 0;
  }
  const path = values.control as string | undefined;
  if (!path) throw new UsageError('--control PATH is required');
  const [cmd, json, ...extra] = positionals;
  if (!cmd) throw new UsageError('a COMMAND is required (status, sockets, ... ; methods lists them)');
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  let args: unknown = {};
  if (json !== undefined) {
    try {
      args = JSON.parse(json);
    } catch {
      throw new UsageError(`ARGS-JSON: '${json}' is not JSON`);
    }
  }
  return withControl('ctl', path, async (c) => {
    const r = await c.request(cmd, args as Record<string, unknown>);
    if (!r.ok) {
      process.stderr.write(`sgiov ctl: ${r.error}\n`);
      return 1;
    }
    process.stdout.write(JSON.stringify(r.result, null, 2) + '\n');
    return 0;
  });
}

/** sgiov bench compare A.json B.json (qemu/bench/compare.ts). */
function bench(args: string[]): number {
  if (args[0] !== 'compare' || args.length !== 3)
    throw new UsageError(
      'usage: sgiov bench compare A.json B.json (two results of npm run bench or bench:apps)',
    );
  try {
    const r = compareResults(args[1]!, args[2]!);
    process.stdout.write(r.text);
    return r.regressed.length ? 1 : 0;
  } catch (e) {
    if (!(e instanceof CompareError)) throw e;
    process.stderr.write(`sgiov bench compare: ${e.message}\n`);
    return 2;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return `sgiov ${pkg.version}\n`;
}

/** The arguments before `--` (a guest command's own -h is not sgiov's). */
const options = (a: string[]): string[] => (a.includes('--') ? a.slice(0, a.indexOf('--')) : a);

/** The block of HELP that starts with the line `header` and ends at the next blank line. */
function helpSection(header: string): string {
  const lines = HELP.split('\n');
  const from = lines.findIndex((l) => l.startsWith(header));
  const to = lines.findIndex((l, i) => i > from && l.trim() === '');
  return lines.slice(from, to < 0 ? undefined : to).join('\n') + '\n';
}

/** `sgiov CMD --help` for the commands whose options are in the global help. */
function subcommandHelp(cmd: string): string | undefined {
  const usage = (summary: string, lines: string[]): string =>
    `sgiov ${cmd} - ${summary}\n\nUsage:\n${lines.map((l) => `  ${l}\n`).join('')}\n`;
  switch (cmd) {
    case 'serve':
      return (
        usage('serve the SG-IOV device to QEMU over vfio-user', ['sgiov serve --socket PATH [options]']) +
        helpSection('serve options:')
      );
    case 'vm':
      return (
        usage('run a command in a guest against a fresh emulator, exit with its status', [
          'sgiov vm [vm options] -- COMMAND [ARGS...]',
          'sgiov vm [vm options] --shell',
        ]) + helpSection('vm options')
      );
    case 'drf':
      return (
        usage('DRF allocations (and a simulated schedule) for accelerators and tenants', [DRF_USAGE.trim()]) +
        DRF_HELP
      );
    default:
      return undefined;
  }
}

/** A subcommand with its own options table: its usage errors name it and its --help. */
async function ownUsage(name: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`sgiov ${name}: ${e.message}\nRun 'sgiov ${name} --help' for usage.\n`);
    return 2;
  }
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V') {
    process.stdout.write(version());
    return 0;
  }
  if (cmd === 'ctl') return ownUsage('ctl', () => ctl(rest));
  if (cmd === 'top') return ownUsage('top', () => runTop(rest));
  const wantsHelp = options(rest).includes('--help') || options(rest).includes('-h');
  const own = cmd && wantsHelp ? subcommandHelp(cmd) : undefined;
  if (own !== undefined) {
    process.stdout.write(own);
    return 0;
  }
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help' || wantsHelp) {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  try {
    switch (cmd) {
      case 'serve':
        return await serve(rest);
      case 'ctl':
        return await ctl(rest);
      case 'drf':
        return runDrf(rest);
      case 'vm':
        return await vm(rest);
      case 'bench':
        return bench(rest);
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`sgiov: ${(e as Error).message}\nRun 'sgiov --help' for usage.\n`);
      return 2;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`sgiov: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
