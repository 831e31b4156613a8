/**
 * The fabric over TCP (node:net). Nagle is off: frames are written whole
 * (header and payload corked into one writev), and the link layer batches
 * its own acks, so waiting for more bytes would only add latency.
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

  constructor(private readonly socket: Socket) {
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
    this.socket.cork();
    for (const c of chunks) if (c.length > 0) this.socket.write(c);
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
    const server = createServer((s) => onWire(new TcpWire(this.track(s))));
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
        resolve(new TcpWire(s));
      });
    });
  }
}
