/**
 * The fabric over TCP (node:net). Nagle is off: the frames a round of the
 * device loop produced (a message and the credit beside it, say) are
 * written together as one writev when the loop calls flush(), or at the
 * end of the current task when the write came from the event loop (a
 * heartbeat, an acknowledgement): one system call and one wake-up of the
 * peer per batch instead of one per frame, and no waiting for more bytes.
 */
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { formatAddress, type NodeAddress } from './cluster.js';
import type { FabricListener, FabricTransport, Wire } from './transport.js';

class TcpWire implements Wire {
  readonly local: string;
  readonly remote: string;
  private closedWith: { error?: Error } | null = null;
  private closeCb: ((error?: Error) => void) | null = null;
  private error: Error | undefined;
  /** Chunks written since the last flush, and whether a flush at the end of the task is queued. */
  private pending: Uint8Array[] = [];
  private flushQueued = false;

  constructor(private readonly socket: Socket, private readonly unflushed: Set<TcpWire>) {
    socket.setNoDelay(true);
    this.local = `${socket.localAddress}:${socket.localPort}`;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    // Without an 'error' listener a reset peer would crash the process; the cause is reported through onClose.
    socket.on('error', (e) => (this.error = e));
    socket.on('close', () => {
      this.closedWith = this.error ? { error: this.error } : {};
      this.closeCb?.(this.error);
    });
  }

  write(chunks: readonly Uint8Array[]): void {
    if (this.socket.destroyed) return;
    for (const c of chunks) if (c.length > 0) this.pending.push(c);
    if (this.pending.length === 0) return;
    this.unflushed.add(this);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => { this.flushQueued = false; this.flush(); });
    }
  }

  /** Hands what was written since the last flush to the socket as one corked write. */
  flush(): void {
    this.unflushed.delete(this);
    if (this.pending.length === 0) return;
    const chunks = this.pending;
    this.pending = [];
    if (this.socket.destroyed) return;
    this.socket.cork();
    for (const c of chunks) this.socket.write(c);
    this.socket.uncork();
  }

  onData(cb: (chunk: Uint8Array) => void): void {
    this.socket.removeAllListeners('data');
    this.socket.on('data', cb);
  }

  onClose(cb: (error?: Error) => void): void {
    this.closeCb = cb;
    const done = this.closedWith;
    if (done) queueMicrotask(() => cb(done.error));
  }

  close(): void {
    // What was written before the close goes to the socket first, as it
    // would have without the batching (a cut drops what follows it).
    this.flush();
    this.socket.destroy();
  }
}

/** The descriptor under a node:net handle (Linux), or -1. */
function fdOf(h: unknown): number {
  const fd = (h as { _handle?: { fd?: number } } | null)?._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

export class TcpTransport implements FabricTransport {
  private readonly sockets = new Set<Socket>();
  private readonly servers = new Set<ReturnType<typeof createServer>>();
  private readonly unflushed = new Set<TcpWire>();

  /** Writes out every connection's batched frames (the device loop calls it after each round). */
  flush(): void {
    if (this.unflushed.size === 0) return;
    for (const w of [...this.unflushed]) w.flush();
  }

  /**
   * The descriptors of its listeners and open connections: a carrier whose
   * thread sleeps in its own poll(2) (the device loop) waits on them too,
   * and gives the event loop a turn when one is readable.
   */
  fds(): number[] {
    const out: number[] = [];
    for (const x of this.servers) { const fd = fdOf(x); if (fd >= 0) out.push(fd); }
    for (const x of this.sockets) { const fd = fdOf(x); if (fd >= 0) out.push(fd); }
    return out;
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    return s;
  }

  async listen(address: NodeAddress, onWire: (wire: Wire) => void): Promise<FabricListener> {
    const server = createServer((s) => onWire(new TcpWire(this.track(s), this.unflushed)));
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // A failing accept must not crash the node; the dialer will try again.
    server.on('error', () => {});
    const bound = server.address() as AddressInfo;
    return {
      address: { host: address.host, port: bound.port },
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  connect(address: NodeAddress, signal: AbortSignal): Promise<Wire> {
    return new Promise<Wire>((resolve, reject) => {
      if (signal.aborted) return reject(new Error(`connect to ${formatAddress(address)} aborted`));
      const s = this.track(netConnect({ host: address.host, port: address.port }));
      const abort = (): void => {
        s.destroy();
        reject(new Error(`connect to ${formatAddress(address)} aborted`));
      };
      signal.addEventListener('abort', abort, { once: true });
      s.once('error', (e) => {
        signal.removeEventListener('abort', abort);
        reject(e);
      });
      s.once('connect', () => {
        signal.removeEventListener('abort', abort);
        s.removeAllListeners('error');
        resolve(new TcpWire(s, this.unflushed));
      });
    });
  }
}
