#!/usr/bin/env node
/**
 * sgiov: the command line of the SG-IOV emulator.
 *   sgiov serve --socket PATH [options]   serve the device to QEMU over vfio-user
 */
import { parseArgs } from 'node:util';
import { BARS, CONSTANTS } from './abi/abi.js';
import { DEFAULT_IDENTITY, parseId, type PciIdentity } from './pci/config.js';
import { defaultLevel, isLogLevel, LOG_LEVELS, makeLogger } from './util/log.js';
import { EmulatorServer } from './server.js';
import { CLUSTER_ARGS, clusterFromOptions, formatAddress, type Cluster } from './fabric/cluster.js';
import type { WorkerFabricConfig } from './transport/worker.js';
import { ControlServer } from './control/server.js';
import { createConnection } from 'node:net';
import { DRF_HELP, DRF_USAGE, runDrf } from './sched/cli-drf.js'; // sgiov drf
import { loadPlan, PlanError } from './faults/plan.js';

const HELP = `sgiov - emulator of the SG-IOV PCIe device, served to QEMU over vfio-user

Usage:
  sgiov serve --socket PATH [options]
  sgiov ctl --control PATH COMMAND [ARGS-JSON]   send one control command, print the reply
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
  -c, --control PATH         serve the control interface (JSON lines) on this UNIX socket
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
  -l, --log-level LEVEL      ${LOG_LEVELS.join('|')} (default: $SGIOV_LOG_LEVEL or info)

${DRF_HELP}
The emulator serves one client at a time; when QEMU disconnects, the device
is reset and the emulator waits for the next one. SIGINT/SIGTERM stop it and
remove the socket. Logs are JSON lines (pino) on stdout.
Environment: SGIOV_CACHE (setup cache, default ~/.cache/sgiov),
SGIOV_LIBVFIO_USER (path of libvfio-user.so.0), SGIOV_LOG_LEVEL.
`;

class UsageError extends Error {}

function parseServe(argv: string[]): {
  socketPath: string;
  identity: PciIdentity;
  msixVectors: number;
  maxSockets: number;
  logLevel: ReturnType<typeof defaultLevel>;
  control: string | undefined;
  fabric?: WorkerFabricConfig;
  faultsPlan?: string;
} {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      socket: { type: 'string', short: 's' },
      'vendor-id': { type: 'string' },
      'device-id': { type: 'string' },
      'subsys-vendor-id': { type: 'string' },
      'subsys-id': { type: 'string' },
      'msix-vectors': { type: 'string' },
      'max-sockets': { type: 'string' },
      control: { type: 'string', short: 'c' },
      ...CLUSTER_ARGS,
      'link-deadline': { type: 'string' },
      faults: { type: 'string' },
      'log-level': { type: 'string', short: 'l' },
      help: { type: 'boolean', short: 'h' },
    },
  });
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
  return {
    socketPath: values.socket,
    identity,
    msixVectors,
    maxSockets,
    logLevel: level,
    control: values.control,
    ...(fabric ? { fabric } : {}),
    ...(values.faults !== undefined ? { faultsPlan: values.faults } : {}),
  };
}

async function serve(argv: string[]): Promise<number> {
  const cfg = parseServe(argv);
  const log = makeLogger(cfg.logLevel);
  const out = (line: string): void => {
    process.stdout.write(line.endsWith('\n') ? line : line + '\n');
  };
  const server = new EmulatorServer(cfg, log.child({ sub: 'main' }), out);
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
        (cmd, args) => server.request(cmd, args),
        log.child({ sub: 'control' }),
      );
      await control.listen();
    }
  } catch (e) {
    log.fatal({ error: (e as Error).message }, 'could not start the device');
    await server.stop();
    return 1;
  }
  const code = await server.done;
  await control?.close();
  return stopping ? 0 : code === 0 ? 1 : code;
}

/** sgiov ctl: one request to a running emulator's control interface. */
async function ctl(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { control: { type: 'string', short: 'c' } },
  });
  if (!values.control) throw new UsageError('--control PATH is required');
  const [cmd, json, ...extra] = positionals;
  if (!cmd) throw new UsageError('a COMMAND is required (status, sockets, ...)');
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`);
  let args: unknown = {};
  if (json !== undefined) {
    try {
      args = JSON.parse(json);
    } catch {
      throw new UsageError(`ARGS-JSON: '${json}' is not JSON`);
    }
  }
  const reply = await new Promise<string>((resolve, reject) => {
    const c = createConnection(values.control!);
    let buf = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(JSON.stringify({ id: 1, cmd, args }) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        c.end();
        resolve(buf.slice(0, nl));
      }
    });
    c.on('error', (e) => reject(new Error(`control socket ${values.control}: ${e.message}`)));
  });
  const r = JSON.parse(reply) as { ok: boolean; result?: unknown; error?: string };
  if (!r.ok) {
    process.stderr.write(`sgiov ctl: ${r.error}\n`);
    return 1;
  }
  process.stdout.write(JSON.stringify(r.result, null, 2) + '\n');
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (
    !cmd ||
    cmd === '--help' ||
    cmd === '-h' ||
    cmd === 'help' ||
    rest.includes('--help') ||
    rest.includes('-h')
  ) {
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
