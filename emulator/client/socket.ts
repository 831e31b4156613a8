/**
 * One socket device as the TypeScript driver sees it: a message stream over
 * a tx and an rx ring in guest memory, moved by signals (SgiovSocketDriver
 * in sockets.ts owns the memory, the FIFOs and the command slots).
 */
import { BITS, ENUMS } from '../abi/abi.js';
import { SERR_NAME, SgiovError } from './errors.js';
import type { SgiovSocketDriver } from './sockets.js';

/** One socket device: a message stream. */
export class SgiovSocket {
  /** Tail published to the device / head the device reported freed. */
  private txTail = 0;
  private txHead = 0;
  /** What the device delivered: message ends, and what the application consumed. */
  private rxTail = 0;
  private rxHead = 0;
  private readonly rxEnds: number[] = [];
  private partial = 0;
  pendingConnections = 0;
  peerClosed = false;
  /** The peer shut down its sending side (half-close): nothing more will arrive; this socket may still send. */
  peerShutdown = false;
  error: string | null = null;
  closed = false;

  constructor(
    private readonly drv: SgiovSocketDriver,
    readonly sid: number,
    readonly txOff: number,
    readonly txSize: number,
    readonly rxOff: number,
    readonly rxSize: number,
  ) {}

  /** The port this socket listens on, once listen() succeeded. */
  port: number | null = null;

  listen(port: number): void {
    this.drv.command(ENUMS.CMD_OP.LISTEN, { sid: this.sid, port });
    this.port = port;
  }

  /**
   * Connects to a listener on `port` (CONSTANTS.PORT_LOOPBACK: a loopback
   * pipe) of node `node` (0: this device's node; otherwise a node id of the
   * cluster, 1 + its index in the sorted names); waits for the accept.
   */
  connect(port: number, chain = 0, node = 0): void {
    this.connectStart(port, chain, node)();
  }

  /**
   * Sends the connect request; the returned function waits for the accept
   * (or the refusal). `chain`: the pipes' transformations (chainCode()).
   */
  connectStart(port: number, chain = 0, node = 0): () => void {
    const slot = this.drv.submit(ENUMS.CMD_OP.CONNECT, { sid: this.sid, port, chain, arg: node });
    return () => {
      this.drv.complete(slot);
    };
  }

  /** BIND (ABI 1.2): the socket's local (address, port); port 0: the device picks one. Returns the port. */
  bind(addr: Uint8Array, port = 0, v6only = false): number {
    return this.drv.command(ENUMS.CMD_OP.BIND, {
      sid: this.sid,
      addr,
      port,
      flags: v6only ? 1 << BITS.CMD_FLAG.V6ONLY : 0,
    });
  }

  /** LISTEN on the bound (address, port). */
  listenBound(): void {
    this.drv.command(ENUMS.CMD_OP.LISTEN, { sid: this.sid, flags: 1 << BITS.CMD_FLAG.ADDR });
  }

  /** CONNECT to (address, port); the returned function waits for the accept (or the refusal). */
  connectAddrStart(addr: Uint8Array, port: number, chain = 0): () => void {
    const slot = this.drv.submit(ENUMS.CMD_OP.CONNECT, {
      sid: this.sid,
      addr,
      port,
      chain,
      flags: 1 << BITS.CMD_FLAG.ADDR,
    });
    return () => {
      this.drv.complete(slot);
    };
  }

  connectAddr(addr: Uint8Array, port: number): void {
    this.connectAddrStart(addr, port)();
  }

  /** SHUTDOWN: 0 SHUT_RD, 1 SHUT_WR, 2 SHUT_RDWR. */
  shutdown(how: number): void {
    this.drv.command(ENUMS.CMD_OP.SHUTDOWN, { sid: this.sid, arg: how });
  }

  /** NAME: the socket's (or its peer's) address and port; null when it has none. */
  name(peer = false): { addr: Uint8Array; port: number } | null {
    const r = this.drv.commandName(ENUMS.CMD_OP.NAME, {
      sid: this.sid,
      flags: peer ? 1 << BITS.CMD_FLAG.PEER : 0,
    });
    return r.result ? { addr: r.addr, port: r.port } : null;
  }

  /** Accepts one pending connection into a new socket; throws EAGAIN when none waits. */
  accept(opts: { txSize?: number; rxSize?: number; tenant?: number } = {}): SgiovSocket {
    const s = this.drv.socket(opts);
    try {
      this.drv.command(ENUMS.CMD_OP.ACCEPT, { sid: s.sid, arg: this.sid });
    } catch (e) {
      s.close();
      throw e;
    }
    if (this.pendingConnections > 0) this.pendingConnections--;
    return s;
  }

  /** Bytes free in the tx ring. */
  txFree(): number {
    return this.txSize - ((this.txTail - this.txHead) >>> 0);
  }

  /**
   * Sends one message. Returns false when the tx ring has no room for it
   * now (EAGAIN: the sink is full; try again after the device drains).
   */
  trySend(data: Uint8Array): boolean {
    this.check();
    if (this.peerClosed) throw new SgiovError(`socket ${this.sid}: the peer closed`, 'EPIPE');
    if (data.length === 0) throw new SgiovError('empty message', 'EINVAL');
    if (data.length > this.txSize)
      throw new SgiovError(
        `message of ${data.length} bytes larger than the ${this.txSize}-byte tx ring`,
        'EMSGSIZE',
      );
    this.drv.process();
    if (this.txFree() < data.length) return false;
    const pos = this.txTail & (this.txSize - 1);
    const ring = this.drv.ringBytes(this.txOff, this.txSize);
    const first = Math.min(data.length, this.txSize - pos);
    ring.set(data.subarray(0, first), pos);
    if (first < data.length) ring.set(data.subarray(first), 0);
    this.txTail = (this.txTail + data.length) >>> 0;
    this.drv.signal(ENUMS.SIG_H2D.TX_TAIL, (this.sid << 1) | ENUMS.RING_DIR.TX, this.txTail);
    return true;
  }

  /** The tx ring itself, for zero-copy sends: write at txPosition(), then trySendPrepared(). */
  txRing(): Uint8Array {
    return this.drv.ringBytes(this.txOff, this.txSize);
  }

  txPosition(): number {
    return this.txTail & (this.txSize - 1);
  }

  /** Publishes `len` bytes the caller already wrote at the tail (zero-copy send); false when they do not fit now. */
  trySendPrepared(len: number): boolean {
    this.check();
    if (this.peerClosed) throw new SgiovError(`socket ${this.sid}: the peer closed`, 'EPIPE');
    if (len <= 0 || len > this.txSize)
      throw new SgiovError(
        `message of ${len} bytes does not fit the ${this.txSize}-byte tx ring`,
        'EMSGSIZE',
      );
    this.drv.process();
    if (this.txFree() < len) return false;
    this.txTail = (this.txTail + len) >>> 0;
    this.drv.signal(ENUMS.SIG_H2D.TX_TAIL, (this.sid << 1) | ENUMS.RING_DIR.TX, this.txTail);
    return true;
  }

  /**
   * Zero-copy receive: hands the next whole message to `read` as one or two
   * views on the rx ring (two when it wraps), then frees it. Returns its
   * length, or -1 when no message is there.
   */
  tryRecvInPlace(read?: (parts: Uint8Array[]) => void): number {
    this.drv.process();
    this.failedMessage();
    const end = this.rxEnds[0];
    if (end === undefined) {
      this.check();
      return -1;
    }
    const n = (end - this.rxHead) >>> 0;
    if (read) {
      const ring = this.drv.ringBytes(this.rxOff, this.rxSize);
      const pos = this.rxHead & (this.rxSize - 1);
      const first = Math.min(n, this.rxSize - pos);
      read(first < n ? [ring.subarray(pos), ring.subarray(0, n - first)] : [ring.subarray(pos, pos + n)]);
    }
    this.rxHead = end;
    this.rxEnds.shift();
    this.partial = 0;
    this.drv.signal(ENUMS.SIG_H2D.RX_HEAD, (this.sid << 1) | ENUMS.RING_DIR.RX, this.rxHead);
    return n;
  }

  /** Sends one message, waiting for room (back-pressure). */
  send(data: Uint8Array): void {
    if (this.trySend(data)) return;
    this.drv.waitUntil(
      () => this.error !== null || this.txFree() >= data.length,
      `room to send on socket ${this.sid}`,
    );
    if (!this.trySend(data)) throw new SgiovError('send failed after waiting', 'EAGAIN');
  }

  /** Messages delivered and not yet read to the end. */
  available(): number {
    this.drv.process();
    return this.rxEnds.length;
  }

  /**
   * Reads up to `max` bytes of the next message (a message may be read in
   * parts). Returns null when nothing is there (EAGAIN), or when the peer
   * closed and everything was read (check peerClosed).
   */
  tryRecv(max = Infinity): Uint8Array | null {
    this.drv.process();
    this.failedMessage();
    const end = this.rxEnds[0];
    if (end === undefined) {
      this.check();
      return null;
    }
    const left = (end - this.rxHead) >>> 0;
    const n = Math.min(left, max);
    const out = new Uint8Array(n);
    const ring = this.drv.ringBytes(this.rxOff, this.rxSize);
    const pos = this.rxHead & (this.rxSize - 1);
    const first = Math.min(n, this.rxSize - pos);
    out.set(ring.subarray(pos, pos + first), 0);
    if (first < n) out.set(ring.subarray(0, n - first), first);
    this.rxHead = (this.rxHead + n) >>> 0;
    this.partial = n < left ? this.partial + n : 0;
    if (n === left) this.rxEnds.shift();
    this.drv.signal(ENUMS.SIG_H2D.RX_HEAD, (this.sid << 1) | ENUMS.RING_DIR.RX, this.rxHead);
    return out;
  }

  /** Reads one whole message, waiting for it. */
  recv(): Uint8Array {
    this.drv.waitUntil(
      () => this.available() > 0 || this.error !== null || this.peerClosed,
      `a message on socket ${this.sid}`,
    );
    const m = this.tryRecv();
    if (!m) throw new SgiovError(this.error ?? 'peer closed', this.error ? 'EPROTO' : 'EPIPE');
    return m;
  }

  close(): void {
    if (this.closed) return;
    try {
      this.drv.command(ENUMS.CMD_OP.CLOSE, { sid: this.sid });
    } finally {
      this.closed = true;
      this.drv.released(this);
    }
  }

  /** A message the device could not deliver (MSG_ERROR) is reported where it stood in the stream: EBADMSG, once. */
  private failedMessage(): void {
    const head = this.rxEnds[0];
    if (head !== undefined && head < 0) {
      this.rxEnds.shift();
      throw new SgiovError(
        `socket ${this.sid}: a message failed in the pipe (${SERR_NAME[-head] ?? -head})`,
        'EBADMSG',
        -head,
      );
    }
  }

  private check(): void {
    if (this.error)
      throw new SgiovError(
        `socket ${this.sid} failed: ${this.error}`,
        this.error === 'DEVICE_REMOVED' ? 'ENODEV' : this.error === 'DEVICE_RESET' ? 'ECONNRESET' : 'EPROTO',
      );
  }

  /** @internal D2H handlers */
  /** False for a tail that does not move (a repeated RX_TAIL: no news). */
  onRxTail(tail: number): boolean {
    if (tail === this.rxTail) return false;
    this.rxEnds.push(tail);
    this.rxTail = tail;
    return true;
  }
  onMsgError(code: number): void {
    this.rxEnds.push(-code);
  }
  /** Digests the device sent beside messages (executor M) or for consumed ones (executor A), oldest first. */
  readonly digests: number[] = [];
  onDigest(crc: number): void {
    this.digests.push(crc);
  }
  onTxHead(head: number): void {
    this.txHead = head;
  }
  onEvent(ev: number): void {
    if (ev === ENUMS.EVENT.CONN_PENDING) this.pendingConnections++;
    else if (ev === ENUMS.EVENT.PEER_CLOSED) this.peerClosed = true;
    else if (ev === ENUMS.EVENT.PEER_SHUTDOWN) this.peerShutdown = true;
  }
  onError(code: number, name?: string): void {
    this.error ??= name ?? SERR_NAME[code] ?? `SERR ${code}`;
  }
  /** Bytes delivered and not yet consumed. */
  get rxPending(): number {
    return (this.rxTail - this.rxHead) >>> 0;
  }
}
