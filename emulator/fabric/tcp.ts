/**
 * The fabric over TCP (node:net). Nagle is off: the frames a round of the
 * device loop produced (a message and the credit beside it, say) are
 * written together as one writev when the loop calls flush(), or at the
 * end of the current task when the write came from the event loop (a
 * heartbeat, an acknowledgement): one system call and one wake-up of the
 * peer per batch instead of one per frame, and no waiting for more bytes.
 *
 * Reads: by node in the event loop ('data' events), or, with `directReads`,
 * by the thread that owns the transport when it finds a socket readable in
 * its own poll(2) (the emulator's device loop calls readReady): read(2)
 * straight into an append-only arena whose views go to the frame decoder.
 * That saves the turn of the event loop between poll(2) and the data, a
 * Buffer and a stream event per chunk; node never reads those sockets
 * (stopNodeReading).
 *
 * With `tls` (tls.ts) every connection is TLS 1.3 with certificates on both
 * sides; node reads those (the kernel's bytes are ciphertext: direct reads
 * do not apply), and the owner's poll(2) still gets their descriptors, so
 * that it yields to the event loop when one is readable.
 */
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { createSecureContext, connect as tlsConnect, TLSSocket, type SecureContext } from 'node:tls';
import { EAGAIN, EINTR, Libc } from '../native/libc.js';
import { formatAddress, type NodeAddress } from './cluster.js';
import { FrameError, HEADER_LEN } from './frame.js';
import { EXPORTER_BYTES, EXPORTER_LABEL, peerCertNames, tlsOptions, type FabricTls } from './tls.js';
import { TlsFailure, type FabricListener, type FabricTransport, type Wire } from './transport.js';

/** One read(2) takes at most this much; a socket with more is read again, up to READ_ROUNDS times per call. */
const READ_MAX = 256 << 10;
const READ_ROUNDS = 8;
const ARENA_BYTES = 4 << 20;

/**
 * Where direct reads land: appended, never overwritten, so views handed out
 * stay valid however long the decoder keeps them (a frame that spans reads);
 * a full arena is replaced and left to the garbage collector with its views.
 */
class ReadArena {
  private buf = Buffer.allocUnsafeSlow(ARENA_BYTES);
  private pos = 0;

  /** Room for one read. */
  space(): Buffer {
    if (this.buf.length - this.pos < READ_MAX) {
      this.buf = Buffer.allocUnsafeSlow(ARENA_BYTES);
      this.pos = 0;
    }
    return this.buf.subarray(this.pos, this.pos + READ_MAX);
  }

  /** Takes `n` bytes just read into space(). */
  take(n: number): Uint8Array {
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
}

class TcpWire implements Wire {
  readonly local: string;
  readonly remote: string;
  private closedWith: { error?: Error } | null = null;
  private closeCb: ((error?: Error) => void) | null = null;
  private error: Error | undefined;
  /** Chunks written since the last flush, and whether a flush at the end of the task is queued. */
  private pending: Uint8Array[] = [];
  private flushQueued = false;

  private dataCb: ((chunk: Uint8Array) => void) | null = null;
  private hints: { headerNext(): boolean } | null = null;
  readonly fd: number;
  /** TLS: the node names the peer's verified certificate carries (set once the handshake is done). */
  peerNames: readonly string[] | null = null;
  /** TLS: why the handshake or the peer's certificate failed, if it did. */
  tlsFailure: string | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly unflushed: Set<TcpWire>,
    private readonly arena: ReadArena | null,
  ) {
    socket.setNoDelay(true);
    this.fd = fdOf(socket);
    this.local = `${socket.localAddress}:${socket.localPort}`;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    // Without an 'error' listener a reset peer would crash the process; the cause is reported through onClose.
    socket.on('error', (e) => {
      this.error = e;
      if (socket instanceof TLSSocket && this.peerNames === null && this.tlsFailure === null)
        this.tlsFailure = `TLS handshake failed: ${e.message}`;
    });
    socket.on('close', () => {
      this.closedWith = this.error ? { error: this.error } : {};
      this.closeCb?.(this.error);
    });
  }

  /** TLS: keying material exported from this connection's session, which the authentication binds to. */
  binding(): Uint8Array {
    return this.socket instanceof TLSSocket && this.peerNames !== null
      ? this.socket.exportKeyingMaterial(EXPORTER_BYTES, EXPORTER_LABEL, Buffer.alloc(0))
      : new Uint8Array(0);
  }

  authFailure(): string | null {
    return this.tlsFailure;
  }

  write(chunks: readonly Uint8Array[]): void {
    if (this.socket.destroyed) return;
    for (const c of chunks) if (c.length > 0) this.pending.push(c);
    if (this.pending.length === 0) return;
    this.unflushed.add(this);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  readExactly(views: readonly Uint8Array[], n: number): boolean {
    if (!this.arena || this.fd < 0 || this.socket.destroyed) return false;
    const libc = Libc.get();
    if (libc.readable(this.fd) < n) return false;
    let left = n;
    for (const v of views) {
      let off = 0;
      const want = Math.min(v.length, left);
      while (off < want) {
        const r = libc.read(this.fd, v.subarray(off, want) as Buffer, want - off);
        if (r > 0) {
          off += r;
          continue;
        }
        if (r < 0 && libc.errno() === EINTR) continue;
        // FIONREAD promised the bytes: a stream that ends or fails here has lost part of a frame; the connection goes and the link resends.
        throw new FrameError(
          'truncated',
          `read of a placed payload failed after ${n - left + off} of ${n} bytes (errno ${r < 0 ? libc.errno() : 0})`,
        );
      }
      left -= want;
      if (left === 0) break;
    }
    return true;
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

  onData(cb: (chunk: Uint8Array) => void, hints?: { headerNext(): boolean }): void {
    if (this.arena) {
      this.dataCb = cb;
      this.hints = hints ?? null;
      return;
    }
    this.socket.removeAllListeners('data');
    this.socket.on('data', cb);
  }

  /**
   * Direct reads: takes what the socket holds now (up to READ_ROUNDS reads)
   * and hands it to the data callback; the end of the stream or an error
   * closes the wire as node would have.
   */
  readNow(): void {
    const arena = this.arena;
    // Nobody to take the bytes yet: they wait in the kernel.
    if (!arena || this.fd < 0 || this.dataCb === null) return;
    const libc = Libc.get();
    for (let i = 0; i < READ_ROUNDS && !this.socket.destroyed; i++) {
      // A header alone when the receiver may then read the payload to its place (readExactly).
      const max = this.hints?.headerNext() ? HEADER_LEN : READ_MAX;
      const room = arena.space();
      const n = libc.read(this.fd, room, max);
      if (n > 0) {
        this.dataCb(arena.take(n));
        if (n < max) return;
        continue;
      }
      if (n === 0) {
        this.socket.destroy();
        return;
      }
      const e = libc.errno();
      if (e === EAGAIN) return;
      if (e === EINTR) continue;
      this.socket.destroy(Object.assign(new Error(`read: errno ${e}`), { errno: e }));
      return;
    }
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

/**
 * Makes node leave a socket's incoming bytes to readNow: paused (so a
 * 'data' listener would not resume it) and its handle's read stopped. An
 * accepted socket starts reading when it is made, but nothing is read
 * before the event loop's next poll phase, so calling this from the
 * connection callback loses nothing.
 */
function stopNodeReading(s: Socket): void {
  s.pause();
  const h = (s as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
  if (h && typeof h.readStop === 'function') {
    h.reading = false;
    h.readStop();
  }
}

/**
 * Why a server-side TLSSocket's client certificate fails verification by
 * the CA, or null when it passes. Outside tls.Server node neither rejects
 * nor sets `authorized` (tls.Server does it in a 'secure' listener of its
 * own, with this same handle call); a handle without the call counts as a
 * failure, so a change in node fails closed.
 */
function clientCertError(s: TLSSocket): string | null {
  const h = (s as unknown as { _handle?: { verifyError?: () => Error | null } | null })._handle;
  if (typeof h?.verifyError !== 'function') return 'cannot verify it (no verifyError on the TLS handle)';
  const e = h.verifyError();
  if (e) return (e as Error & { code?: string }).code ?? e.message;
  return s.getPeerCertificate()?.subject ? null : 'no certificate';
}

/** The descriptor under a node:net handle (Linux; for TLS the TCP handle under the TLS one), or -1. */
function fdOf(h: unknown): number {
  const handle = (h as { _handle?: { fd?: number; _parent?: { fd?: number } } } | null)?._handle;
  const fd = handle?.fd ?? handle?._parent?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

export class TcpTransport implements FabricTransport {
  private readonly sockets = new Set<Socket>();
  private readonly servers = new Set<ReturnType<typeof createServer>>();
  private readonly unflushed = new Set<TcpWire>();
  /** Direct-read wires by descriptor. */
  private readonly direct = new Map<number, TcpWire>();
  private readonly arena: ReadArena | null;
  private readonly tls: FabricTls | null;
  private readonly secure: SecureContext | null;

  constructor(opts: { directReads?: boolean; tls?: FabricTls } = {}) {
    this.tls = opts.tls ?? null;
    this.secure = this.tls ? createSecureContext(tlsOptions(this.tls)) : null;
    // The kernel's bytes of a TLS connection are ciphertext: node reads them.
    this.arena = opts.directReads && !this.tls ? new ReadArena() : null;
  }

  /** Whether the connections are TLS. */
  get encrypted(): boolean {
    return this.tls !== null;
  }

  /**
   * With directReads: reads the wires among `fds` (descriptors the caller's
   * poll(2) found readable) and returns the descriptors left to the event
   * loop (listeners: node accepts).
   */
  readReady(fds: readonly number[]): number[] {
    const rest: number[] = [];
    for (const fd of fds) {
      const w = this.direct.get(fd);
      if (w) w.readNow();
      else rest.push(fd);
    }
    return rest;
  }

  private wire(s: Socket): TcpWire {
    if (this.arena) stopNodeReading(s);
    const w = new TcpWire(this.track(s), this.unflushed, this.arena);
    if (this.arena && w.fd >= 0) {
      const fd = w.fd;
      this.direct.set(fd, w);
      s.once('close', () => {
        if (this.direct.get(fd) === w) this.direct.delete(fd);
      });
    }
    return w;
  }

  /** Writes out every connection's batched frames (the device loop calls it after each round). */
  flush(): void {
    if (this.unflushed.size === 0) return;
    for (const w of [...this.unflushed]) w.flush();
  }

  /**
   * The descriptors of its listeners and open connections: a carrier whose
   * thread sleeps in its own poll(2) (the device loop) waits on them too;
   * it reads the connections itself (readReady, with directReads) and
   * gives the event loop a turn for the rest (accepts).
   */
  fds(): number[] {
    const out: number[] = [];
    for (const x of this.servers) {
      const fd = fdOf(x);
      if (fd >= 0) out.push(fd);
    }
    for (const x of this.sockets) {
      const fd = fdOf(x);
      if (fd >= 0) out.push(fd);
    }
    return out;
  }

  private track(s: Socket): Socket {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    return s;
  }

  /**
   * A TLS connection's Wire exists from the TCP accept, so that the
   * fabric's bound on connections not yet authenticated covers the TLS
   * handshake too; bytes reach its owner only once the handshake is done
   * and the client's certificate checked.
   */
  private accepted(raw: Socket): TcpWire {
    if (!this.secure) return this.wire(raw);
    raw.setNoDelay(true);
    const s = new TLSSocket(raw, {
      isServer: true,
      secureContext: this.secure,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const w = this.wire(s);
    s.once('secure', () => {
      const bad = clientCertError(s);
      if (bad !== null) {
        w.tlsFailure = `client certificate refused: ${bad}`;
        s.destroy();
        return;
      }
      w.peerNames = peerCertNames(s.getPeerCertificate());
    });
    return w;
  }

  async listen(address: NodeAddress, onWire: (wire: Wire) => void): Promise<FabricListener> {
    const server = createServer((s) => onWire(this.accepted(s)));
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
    if (this.tls) return this.connectTls(address, signal);
    return new Promise<Wire>((resolve, reject) => {
      if (signal.aborted) return reject(new Error(`connect to ${formatAddress(address)} aborted`));
      const s = netConnect({ host: address.host, port: address.port });
      // Paused before it connects, node does not start reading it (direct reads).
      if (this.arena) s.pause();
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
        resolve(this.wire(s));
      });
    });
  }

  /** A TLS connection: resolves once the handshake is done and the server's certificate verified by the cluster's CA. */
  private connectTls(address: NodeAddress, signal: AbortSignal): Promise<Wire> {
    return new Promise<Wire>((resolve, reject) => {
      const where = formatAddress(address);
      if (signal.aborted) return reject(new Error(`connect to ${where} aborted`));
      let tcpUp = false;
      const s = tlsConnect({
        host: address.host,
        port: address.port,
        secureContext: this.secure!,
        rejectUnauthorized: true,
        // The peer is known by address, which its certificate does not name: the fabric checks the node name (peerNames).
        checkServerIdentity: () => undefined,
      });
      s.once('connect', () => (tcpUp = true));
      const abort = (): void => {
        s.destroy();
        reject(new Error(`connect to ${where} aborted`));
      };
      signal.addEventListener('abort', abort, { once: true });
      s.once('error', (e) => {
        signal.removeEventListener('abort', abort);
        reject(tcpUp ? new TlsFailure(`TLS handshake with ${where} failed: ${e.message}`) : e);
      });
      s.once('secureConnect', () => {
        signal.removeEventListener('abort', abort);
        s.removeAllListeners('error');
        const w = this.wire(s);
        w.peerNames = peerCertNames(s.getPeerCertificate());
        resolve(w);
      });
    });
  }
}
