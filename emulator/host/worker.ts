/**
 * The device thread: owns the vfu context and the device model, runs the
 * vfio-user loop with synchronous callbacks, and sends its log lines to the
 * main thread (which writes them) so that it never blocks on stdout.
 * Control requests are answered between rounds by the function the
 * thread's entry (cli/device-thread.ts) gives runDeviceThread: the control
 * layer's (control/commands.ts). Only that entry imports this module for
 * more than its types: it is the worker thread's own.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { makeLogger, type Logger, type LogLevel } from '../util/log.js';
import { SgiovDevice } from '../model/device.js';
import { VfuServer } from './vfu-server.js';
import { FabricCarrier } from './fabric-carrier.js';
import { clusterFromOptions } from '../fabric/cluster.js';
import type { FabricTlsFiles } from '../fabric/tls.js';
import type { PciIdentity } from '../pci/config.js';
import { FaultInjector } from '../faults/injector.js';
import { loadPlan } from '../faults/plan.js';
import { flushTrace, setTrace } from '../util/trace.js';

/** Cross-node pipes: this node and the cluster, as [name, "host:port"] pairs. */
export interface WorkerFabricConfig {
  self: string;
  nodes: [string, string][];
  deadlineMs?: number;
  /** The cluster secret's and the TLS files' paths (the CLI loaded and checked them; loaded again here). */
  secretFile?: string;
  tls?: FabricTlsFiles;
}

export interface WorkerConfig {
  socketPath: string;
  identity: PciIdentity;
  msixVectors: number;
  maxSockets: number;
  logLevel: LogLevel;
  fabric?: WorkerFabricConfig;
  /** A fault plan file (the CLI validated it), loaded into the device's injector at start. */
  faultsPlan?: string;
  /** The group given read and write on the vfio-user socket (--socket-group), as a gid. */
  socketGid?: number;
  /** --client-deadline: a handshake or a started message must complete within this (ms). */
  clientDeadlineMs?: number;
  /** Trace events to log (a glob the CLI checked) and at most how many lines a second each. */
  trace?: { pattern: string; perSecond?: number };
}

export type ToWorker =
  | { type: 'stop' }
  | { type: 'stats' }
  | { type: 'control'; id: number; cmd: string; args: Record<string, unknown> };
export type FromWorker =
  | { type: 'log'; line: string }
  | { type: 'ready' }
  | { type: 'stats'; stats: unknown }
  | { type: 'control'; id: number; ok: boolean; result?: unknown; error?: string }
  | { type: 'fatal'; message: string };

const port = parentPort!;
const cfg = workerData as WorkerConfig;
const post = (m: FromWorker): void => port.postMessage(m);

// pino's destination contract: an object with write(string) suffices.
const log = makeLogger(cfg.logLevel, {
  write: (s: string) => {
    post({ type: 'log', line: s });
  },
});

let stopping = false;
const server = new VfuServer({
  socketPath: cfg.socketPath,
  identity: cfg.identity,
  msixVectors: cfg.msixVectors,
  log,
  ...(cfg.socketGid !== undefined ? { socketGid: cfg.socketGid } : {}),
  ...(cfg.clientDeadlineMs !== undefined ? { clientDeadlineMs: cfg.clientDeadlineMs } : {}),
});
let carrier: FabricCarrier | null = null;

/** How the thread answers a control command (control/commands.ts): a result, or an Error thrown. */
export type CommandAnswerer = (
  t: { model: SgiovDevice; server: VfuServer; carrier: FabricCarrier | null; log: Logger },
  cmd: string,
  args: Record<string, unknown>,
) => unknown;

/** Control messages arrive while this thread is busy in its own loop. */
function drainControl(model: SgiovDevice, answer: CommandAnswerer): boolean {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const msg = m.message as ToWorker;
    if (msg.type === 'stop') stopping = true;
    else if (msg.type === 'stats') post({ type: 'stats', stats: server.stats });
    else if (msg.type === 'control') {
      try {
        const result = answer({ model, server, carrier, log }, msg.cmd, msg.args);
        post({ type: 'control', id: msg.id, ok: true, result });
      } catch (e) {
        post({ type: 'control', id: msg.id, ok: false, error: (e as Error).message });
      }
    }
  }
  return stopping;
}

async function main(answer: CommandAnswerer): Promise<void> {
  const modelLog = log.child({ sub: 'model' });
  if (cfg.trace) setTrace(cfg.trace.pattern, log, cfg.trace.perSecond);
  // The root logger: the injector's lines carry "sub": "faults" (under modelLog it would be a second "sub").
  const faults = new FaultInjector(log, cfg.faultsPlan ? loadPlan(cfg.faultsPlan) : undefined);
  const model = new SgiovDevice(
    {
      dmaView: (a, l) => server.dmaView(a, l),
      busMasterEnabled: () => server.busMasterEnabled(),
      raiseMsix: (v) => server.raiseMsix(v),
      schedule: (d, f) => server.schedule(d, f),
      nowNs: () => server.nowNs(),
      deviceMemory: () => server.deviceMemory(),
      log: modelLog,
    },
    { msixVectors: cfg.msixVectors, maxSockets: cfg.maxSockets, faults },
  );
  server.open(model);
  if (cfg.fabric) {
    // parseServe validated it; rebuilt here from plain data.
    const f = cfg.fabric;
    const cluster = clusterFromOptions({
      node: f.nodes.map(([n, a]) => `${n}=${a}`),
      self: f.self,
      'fabric-secret': f.secretFile,
      ...(f.tls
        ? { 'fabric-tls': true, 'fabric-ca': f.tls.ca, 'fabric-cert': f.tls.cert, 'fabric-key': f.tls.key }
        : {}),
    });
    carrier = new FabricCarrier({
      cluster,
      log,
      faults: model.faults,
      directReads: true,
      ...(cfg.fabric.deadlineMs !== undefined ? { deadlineMs: cfg.fabric.deadlineMs } : {}),
    });
    carrier.attach(model);
    await carrier.start();
    log.info({ nodes: carrier.nodes }, 'cross-node pipes: node ids for CONNECT');
  }
  post({ type: 'ready' });
  if (carrier) {
    const c = carrier;
    // The device loop reads the fabric's sockets itself and writes what a round sent; accepts,
    // timers and write completions live in this thread's event loop, which the loop gives turns.
    await server.runAsync(
      () => drainControl(model, answer),
      { fds: () => c.fds(), readable: (fds) => c.readReady(fds), flush: () => c.flush() },
      5,
    );
  } else {
    server.run(() => drainControl(model, answer));
  }
}

/** Runs the device thread until it is told to stop; `answer` answers the control commands. */
export async function runDeviceThread(answer: CommandAnswerer): Promise<void> {
  try {
    await main(answer);
  } catch (err) {
    post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
  } finally {
    flushTrace();
    await (carrier as FabricCarrier | null)?.close();
    server.close();
  }
}
