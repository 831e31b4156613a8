/**
 * The socket table: every socket device's state, stored column-wise in typed
 * arrays indexed by socket id, so that an idle socket costs a few dozen
 * bytes (its rings live in guest memory). Per-socket objects exist only
 * while they are needed: a queue of published-but-unmoved messages, a
 * listener's backlog.
 */

export const enum SockState {
  FREE = 0,
  CREATED = 1,
  LISTENING = 2,
  CONNECTING = 3,
  CONNECTED = 4,
  /** close() asked; the tx ring still drains to the peer. */
  CLOSING = 5,
  /** A protocol error; only CLOSE is accepted. */
  ERROR = 6,
}

export const NO_PEER = 0xffff_ffff;

/** Socket flags (SocketTable.flags). */
export const FLAG_PEER_CLOSED = 1;
export const FLAG_READY = 2;
export const FLAG_BLOCKED = 4;
/** SHUTDOWN (SHUT_WR) asked: no more sends. */
export const FLAG_SHUT_WR = 8;
/** SHUT_WR asked with messages still queued: the peer hears it when they have moved. */
export const FLAG_SHUT_PENDING = 16;
/**
 * Connected by address and not yet accepted: as TCP's handshake completes
 * before accept(), CONNECT is answered at once; what the socket sends
 * waits in its queue until the accept pairs it.
 */
export const FLAG_UNPAIRED = 32;

export class SocketTable {
  capacity = 0;
  state = new Uint8Array(0);
  /** SERR code once in ERROR. */
  err = new Uint8Array(0);
  /** Flags: bit 0 peer closed, bit 1 queued in the ready list, bit 2 blocked on its sink. */
  flags = new Uint8Array(0);
  port = new Uint16Array(0);
  txAddr = new Float64Array(0);
  rxAddr = new Float64Array(0);
  txSize = new Uint32Array(0);
  rxSize = new Uint32Array(0);
  /** tx ring: bytes the device has consumed (head) and the host has published (tail). */
  txHead = new Uint32Array(0);
  txTail = new Uint32Array(0);
  /** rx ring: bytes the host has consumed (head) and the device has produced (tail). */
  rxHead = new Uint32Array(0);
  rxTail = new Uint32Array(0);
  peer = new Uint32Array(0);
  /** Command slot of a pending CONNECT or CLOSE, answered later. */
  pendingCmd = new Uint32Array(0);
  /** The chain code of the socket's pipes (CONNECT's chain field). */
  chain = new Uint32Array(0);
  tenant = new Uint32Array(0);
  /** rx ring bytes promised to messages in the accelerators (scheduled mode). */
  rxReserved = new Uint32Array(0);
  /** Messages of the socket's queue handed to the accelerators (scheduled mode). */
  inFlight = new Uint16Array(0);
  /** Lengths of published messages not yet moved, per socket (only while non-empty). */
  readonly txQueue = new Map<number, number[]>();
  /** Connecting sockets waiting for accept, per listener. */
  readonly backlog = new Map<number, number[]>();
  /** Listening port -> listener. */
  readonly listeners = new Map<number, number>();
  open = 0;

  constructor(readonly max: number) {}

  /** Makes room for socket ids below `n` (doubling; never beyond max). */
  ensure(n: number): void {
    if (n <= this.capacity) return;
    let cap = Math.max(1024, this.capacity);
    while (cap < n) cap *= 2;
    cap = Math.min(cap, this.max);
    const grow = <T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(a: T, fill = 0): T => {
      const b = new (a.constructor as new (n: number) => T)(cap);
      b.set(a);
      if (fill) b.fill(fill, a.length);
      return b;
    };
    this.state = grow(this.state);
    this.err = grow(this.err);
    this.flags = grow(this.flags);
    this.port = grow(this.port);
    this.txAddr = grow(this.txAddr);
    this.rxAddr = grow(this.rxAddr);
    this.txSize = grow(this.txSize);
    this.rxSize = grow(this.rxSize);
    this.txHead = grow(this.txHead);
    this.txTail = grow(this.txTail);
    this.rxHead = grow(this.rxHead);
    this.rxTail = grow(this.rxTail);
    this.peer = grow(this.peer, NO_PEER);
    this.pendingCmd = grow(this.pendingCmd, NO_PEER);
    this.chain = grow(this.chain);
    this.tenant = grow(this.tenant);
    this.rxReserved = grow(this.rxReserved);
    this.inFlight = grow(this.inFlight);
    this.capacity = cap;
  }

  exists(sid: number): boolean {
    return sid < this.capacity && this.state[sid] !== SockState.FREE;
  }

  create(sid: number, txAddr: number, txSize: number, rxAddr: number, rxSize: number): void {
    this.ensure(sid + 1);
    this.state[sid] = SockState.CREATED;
    this.err[sid] = 0;
    this.flags[sid] = 0;
    this.port[sid] = 0;
    this.txAddr[sid] = txAddr;
    this.txSize[sid] = txSize;
    this.rxAddr[sid] = rxAddr;
    this.rxSize[sid] = rxSize;
    this.txHead[sid] = 0;
    this.txTail[sid] = 0;
    this.rxHead[sid] = 0;
    this.rxTail[sid] = 0;
    this.peer[sid] = NO_PEER;
    this.pendingCmd[sid] = NO_PEER;
    this.chain[sid] = 0;
    this.tenant[sid] = 0;
    this.rxReserved[sid] = 0;
    this.inFlight[sid] = 0;
    this.open++;
  }

  free(sid: number): void {
    if (this.state[sid] === SockState.FREE) return;
    this.state[sid] = SockState.FREE;
    this.txQueue.delete(sid);
    this.backlog.delete(sid);
    this.peer[sid] = NO_PEER;
    this.pendingCmd[sid] = NO_PEER;
    this.flags[sid] = 0;
    this.open--;
  }

  /** Bytes the host may still read from the rx ring. */
  rxUsed(sid: number): number {
    return (this.rxTail[sid]! - this.rxHead[sid]!) >>> 0;
  }

  rxFree(sid: number): number {
    return this.rxSize[sid]! - this.rxUsed(sid);
  }

  /** Bytes published in the tx ring and not yet moved. */
  txUsed(sid: number): number {
    return (this.txTail[sid]! - this.txHead[sid]!) >>> 0;
  }

  /** Typed-array bytes per socket slot, for the memory accounting. */
  static bytesPerSlot(): number {
    return 1 + 1 + 1 + 2 + 8 + 8 + 4 * 11 + 2;
  }
}

/**
 * Which guest memory the rings occupy, to refuse overlapping rings without a
 * scan of every socket: rings are bucketed by the 1 MiB chunks they touch.
 */
export class RingIndex {
  private static readonly CHUNK = 1 << 20;
  private readonly buckets = new Map<number, { start: number; end: number; owner: number }[]>();

  private chunks(start: number, len: number): number[] {
    const out: number[] = [];
    for (let c = Math.floor(start / RingIndex.CHUNK); c * RingIndex.CHUNK < start + len; c++) out.push(c);
    return out;
  }

  /** The owner of a ring overlapping [start, start+len), or -1. */
  overlap(start: number, len: number): number {
    const end = start + len;
    for (const c of this.chunks(start, len)) {
      for (const r of this.buckets.get(c) ?? []) if (r.start < end && start < r.end) return r.owner;
    }
    return -1;
  }

  add(start: number, len: number, owner: number): void {
    const r = { start, end: start + len, owner };
    for (const c of this.chunks(start, len)) {
      const b = this.buckets.get(c);
      if (b) b.push(r);
      else this.buckets.set(c, [r]);
    }
  }

  remove(start: number, len: number): void {
    for (const c of this.chunks(start, len)) {
      const b = this.buckets.get(c);
      if (!b) continue;
      const i = b.findIndex((r) => r.start === start);
      if (i >= 0) b.splice(i, 1);
      if (b.length === 0) this.buckets.delete(c);
    }
  }

  clear(): void {
    this.buckets.clear();
  }
}
