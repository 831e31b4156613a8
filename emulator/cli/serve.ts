/**
 * The main-thread side of the emulator: starts the device thread, writes
 * its log lines, and stops it on request. The main thread stays free for
 * control and logging; the device runs in the worker (host/worker.ts,
 * started through its entry, device-thread.ts).
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../util/log.js';
import type { FromWorker, ToWorker, WorkerConfig } from '../host/worker.js';

export class EmulatorServer {
  private worker: Worker | null = null;
  private exited: Promise<number> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly cfg: WorkerConfig,
    private readonly log: Logger,
    private readonly writeLine: (line: string) => void,
  ) {}

  /** Resolves when the socket is listening; rejects when setup failed. */
  start(): Promise<void> {
    const w = new Worker(fileURLToPath(new URL('./device-thread.js', import.meta.url)), {
      workerData: this.cfg,
    });
    this.worker = w;
    this.exited = new Promise((resolve) => w.once('exit', resolve));
    return new Promise((resolve, reject) => {
      w.on('message', (m: FromWorker) => {
        if (m.type === 'log') this.writeLine(m.line);
        else if (m.type === 'control') {
          const p = this.pending.get(m.id);
          this.pending.delete(m.id);
          if (p) {
            if (m.ok) p.resolve(m.result);
            else p.reject(new Error(m.error ?? 'failed'));
          }
        } else if (m.type === 'ready') resolve();
        else if (m.type === 'fatal') {
          this.log.fatal({ error: m.message }, 'device thread failed');
          reject(new Error(m.message));
        }
      });
      w.on('error', (err) => {
        this.log.fatal({ err }, 'device thread crashed');
        reject(err);
      });
      w.once('exit', (code) => reject(new Error(`device thread exited with code ${code}`)));
    });
  }

  /** A control command, answered by the device thread. */
  request(cmd: string, args: Record<string, unknown>): Promise<unknown> {
    const w = this.worker;
    if (!w) return Promise.reject(new Error('the device is not running'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ type: 'control', id, cmd, args } satisfies ToWorker);
    });
  }

  /** Resolves with the worker's exit code when it ends for any reason. */
  get done(): Promise<number> {
    return this.exited ?? Promise.resolve(0);
  }

  async stop(): Promise<void> {
    if (!this.worker) return;
    this.worker.postMessage({ type: 'stop' } satisfies ToWorker);
    // A device thread that does not see the stop within half a second is terminated.
    const t = setTimeout(() => {
      void this.worker?.terminate();
    }, 500);
    await this.exited;
    clearTimeout(t);
    this.worker = null;
  }
}
