/**
 * The device thread: owns the vfu context and the device model, runs the
 * vfio-user loop with synchronous callbacks, and sends its log lines to the
 * main thread (which writes them) so that it never blocks on stdout.
 */
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { makeLogger, type LogLevel } from '../util/log.js';
import { SgiovDevice } from '../model/device.js';
import { VfuServer } from './vfu-server.js';
import type { PciIdentity } from '../pci/config.js';

export interface WorkerConfig {
  socketPath: string;
  identity: PciIdentity;
  msixVectors: number;
  maxSockets: number;
  logLevel: LogLevel;
}

export type ToWorker = { type: 'stop' } | { type: 'stats' } | { type: 'control'; id: number; cmd: string; args: Record<string, unknown> };
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
const log = makeLogger(cfg.logLevel, { write: (s: string) => { post({ type: 'log', line: s }); } });

let stopping = false;
const server = new VfuServer({ socketPath: cfg.socketPath, identity: cfg.identity, msixVectors: cfg.msixVectors, log });
try {
  const model = new SgiovDevice({
    dmaView: (a, l) => server.dmaView(a, l),
    busMasterEnabled: () => server.busMasterEnabled(),
    raiseMsix: (v) => server.raiseMsix(v),
    schedule: (d, f) => server.schedule(d, f),
    nowNs: () => server.nowNs(),
    deviceMemory: () => server.deviceMemory(),
    log: log.child({ sub: 'model' }),
  }, { msixVectors: cfg.msixVectors, maxSockets: cfg.maxSockets });
  server.open(model);
  post({ type: 'ready' });
  server.run(() => {
    // Control messages arrive while this thread is busy in its own loop.
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      const msg = m.message as ToWorker;
      if (msg.type === 'stop') stopping = true;
      else if (msg.type === 'stats') post({ type: 'stats', stats: server.stats });
      else if (msg.type === 'control') {
        try {
          const result = msg.cmd === 'status' ? { transport: server.stats, device: model.status() } : model.control(msg.cmd, msg.args);
          post({ type: 'control', id: msg.id, ok: true, result });
        } catch (e) {
          post({ type: 'control', id: msg.id, ok: false, error: (e as Error).message });
        }
      }
    }
    return stopping;
  });
} catch (err) {
  post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
} finally {
  server.close();
}
