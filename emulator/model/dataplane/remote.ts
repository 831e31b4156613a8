/**
 * Cross-node warp pipes: sockets whose peer lives on another node's device.
 *
 * The model does not know how frames travel: it sees a PipeFabric (sends
 * frames to a node by id, reports acknowledgements, failures and link
 * states) that the carrier provides, over TCP in production
 * (emulator/fabric/, wired in host/) and in memory in unit tests
 * (emulator/host/memory-fabric.ts). The fabric delivers each node's
 * frames once and in order per session, or gives them back as failed.
 *
 * Node ids are global: 1 + the node's index in the cluster's sorted names
 * (0 in a CONNECT means this node). The protocol, frame by frame (ids in
 * the frame's channel / socket / value fields):
 *
 *   CONNECT   channel=port   socket=client sid  value=client rx size, payload: chain u32, tenant u32
 *             (flag ADDR, ABI 1.2: then the destination address (16 bytes), the client's
 *             address (16) and port (u16): the listener is looked up by address)
 *   ACCEPTED  channel=client socket=server sid  value=server rx size
 *   REFUSED   channel=client socket=0           value=errno
 *   MSG       channel=dst    socket=src          value=bytes the message takes in dst's ring, payload: the message
 *             (flag REFUSED: no payload, value = the SERR a sender-side stage refused it with)
 *   CREDIT    channel=dst    socket=src          value=bytes freed in src's rx ring since the last CREDIT
 *   CLOSE     channel=dst    socket=src          value=0
 *   SHUTDOWN  channel=dst    socket=src          value=0 (ABI 1.2: src shut down its sending side, after every message before it)
 *
 * Executor Z across nodes: a message leaves the sender's tx ring as views
 * of the ring (no copy in the device; the fabric writes them to the wire)
 * and lands in the receiver's rx ring: read straight into it when the
 * fabric asks place() and the whole message is waiting, else copied once
 * from the received frame.
 * The sender's ring space is the retransmission buffer: TX_HEAD moves only
 * when the fabric acknowledges the frame (delivered into the peer's ring),
 * so a reconnect can resend it and nothing is copied to be kept.
 * Flow control is by credit: the sender knows the free space of the peer's
 * rx ring and sends only what fits; the receiver returns space as its
 * application consumes (batched per poll round). A chain is split at its
 * first DECRYPT or DECAP: the stages before it run on the sender, the rest
 * on the receiver (encrypt on one node, decrypt on the other); any other
 * chain runs wholly on the sender.
 *
 * Failure: when the fabric gives frames back (the session was lost: link
 * down past its deadline, or the peer restarted), every socket paired with
 * that node fails with SERR.LINK_FAILED, on both sides; messages sent but
 * unacknowledged are reported through that error, never dropped silently.
 */
import { ENUMS } from '../../abi/abi.js';
import type { DeviceHost } from '../host.js';
import { COPY, runMessage, split, type Transform } from '../accel/jobgen.js';
import { crc32c, decodeChain, type Chain, type EngineKeys } from '../accel/engines.js';
import { RateLimitedLog } from '../../util/log.js';
import { NO_PEER, SockState, type SocketTable } from './sockets.js';
import { byteLength, joinBytes } from '../../util/bytes.js';
import type { AddressBook, SockName } from './addresses.js';

const D2H = ENUMS.SIG_D2H;
const ST = ENUMS.STATUS;
const SERR = ENUMS.SERR;

/** Frame types of the data plane (the fabric's own types are below 16). */
export const PIPE_FRAME = {
  CONNECT: 16,
  ACCEPTED: 17,
  MSG: 18,
  CREDIT: 19,
  CLOSE: 20,
  REFUSED: 21,
  SHUTDOWN: 22,
} as const;
/** MSG flag: a sender-side stage refused the message; value is the SERR code. */
export const MSG_FLAG_REFUSED = 1;
/** CONNECT flag: by address (the payload carries both names). */
export const CONNECT_FLAG_ADDR = 1;

/** The names a CONNECT by address carries. */
export interface ConnectNames {
  dst: SockName;
  src: SockName | null;
}

/** What the data plane needs of a fabric. */
export interface PipeFabric {
  /** This node's id (1-based). */
  readonly selfId: number;
  /** Node names by id - 1 (this node included). */
  readonly names: readonly string[];
  /**
   * Sends a frame to node `node`: its sequence number in the current session,
   * 'full' when the link's window is full (drain() follows), or 'unknown'.
   * `segments` are kept, not copied, until acknowledged or failed.
   */
  send(
    node: number,
    type: number,
    flags: number,
    channel: number,
    socket: number,
    value: number,
    segments: readonly Uint8Array[],
  ): number | 'full' | 'unknown';
}

/** What the fabric tells the data plane (DataPlane forwards these to RemotePipes). */
export interface PipeFabricEvents {
  /** A frame from `node`; its payload as the pieces it arrived in (views of the socket's reads: written where they go, not joined first). */
  frame(
    node: number,
    type: number,
    flags: number,
    channel: number,
    socket: number,
    value: number,
    payload: readonly Uint8Array[],
  ): void;
  acked(node: number, seq: number): void;
  /** The session with `node` ended with frames unacknowledged (or the link failed): everything paired with it is gone. */
  failed(node: number, why: string): void;
  drain(node: number): void;
  /**
   * Optional: where the `length`-byte payload of a frame from `node` may be
   * written before frame() delivers it (the receiver's ring), or null. The
   * frame follows at once if it checks out; if not, the bytes sit in ring
   * space not yet published, which the next message overwrites.
   */
  place?(
    node: number,
    type: number,
    flags: number,
    channel: number,
    socket: number,
    value: number,
    length: number,
  ): Uint8Array[] | null;
}

/** The data plane's internals remote pipes act through. */
export interface PipeOwner {
  readonly socks: SocketTable;
  readonly host: DeviceHost;
  readonly keys: EngineKeys;
  emit(type: number, id: number, value: number): void;
  sockError(sid: number, code: number, why: string): void;
  /** The sender's message has left its ring (TX_HEAD). */
  consumed(sid: number, len: number): void;
  markReady(sid: number): void;
  answer(slot: number, status: number, result: number): void;
  /** A remote sender's message now waits in a listener's backlog under this (negative) id. */
  queueConnection(listener: number, id: number): void;
  readonly addrs: AddressBook;
}

/** The far end of a socket whose peer is on another node. */
interface RemoteEnd {
  node: number;
  /** The peer's sid on its node; -1 while connecting. */
  rsid: number;
  /** Bytes the peer's rx ring can still take (as far as this side knows). */
  credit: number;
  /** Bytes of our rx ring consumed since the last CREDIT. */
  owed: number;
  /** The peer's rx ring size. */
  peerRx: number;
  /** Bytes of our tx ring sent and not yet acknowledged (they stay in the ring for a resend). */
  unacked: number;
  /** Stages run here before the wire, and after it on the receiving side. */
  out: Chain;
  in: Chain;
  /** The whole chain, for the size a message takes in the peer's ring. */
  full: Chain;
  /** Waiting for credit or for the fabric's window. */
  waiting: boolean;
}

/** A CONNECT from another node waiting in a listener's backlog. */
interface RemoteRequest {
  node: number;
  sid: number;
  rxSize: number;
  chain: number;
  tenant: number;
  /** A CONNECT by address: the names the accepted socket gets. */
  names?: { local: SockName; peer: SockName };
}

interface InFlight {
  seq: number;
  sid: number;
  len: number;
}

export interface RemoteCounters {
  framesIn: number;
  framesOut: number;
  msgsOut: number;
  msgsIn: number;
  /** Messages whose payload the wire wrote straight into the receiver's ring (place()): no copy in the emulator. */
  msgsPlaced: number;
  /** Frames for a socket that does not exist or is not paired with the sender: dropped. */
  unknownSocket: number;
  /** Frames that break the protocol (more than the credit, a bad payload): dropped, the socket failed. */
  protocolErrors: number;
  linkFailures: number;
}

export class RemotePipes {
  private readonly ends = new Map<number, RemoteEnd>();
  private readonly requests = new Map<number, RemoteRequest>();
  private nextRequest = 1;
  /** Per node: MSG frames sent and not yet acknowledged, in order. */
  private readonly inFlight = new Map<number, InFlight[]>();
  /** Per node: sockets waiting for the fabric's window. */
  private readonly blocked = new Map<number, Set<number>>();
  private readonly owing = new Set<number>();
  private readonly guestErr: RateLimitedLog;
  readonly counters: RemoteCounters = {
    framesIn: 0,
    framesOut: 0,
    msgsOut: 0,
    msgsIn: 0,
    msgsPlaced: 0,
    unknownSocket: 0,
    protocolErrors: 0,
    linkFailures: 0,
  };

  constructor(
    private readonly dp: PipeOwner,
    readonly fabric: PipeFabric,
  ) {
    this.guestErr = new RateLimitedLog(dp.host.log);
  }

  /** Whether `sid`'s peer is remote. */
  has(sid: number): boolean {
    return this.ends.has(sid);
  }

  get size(): number {
    return this.ends.size;
  }

  /** The peer's rx ring size, for MSG_TOO_LARGE checks (0 while connecting). */
  peerRxSize(sid: number): number {
    return this.ends.get(sid)?.peerRx ?? 0;
  }

  /** The whole chain of a remote pipe (for the size a message takes in the peer's ring). */
  chain(sid: number): Chain | null {
    return this.ends.get(sid)?.full ?? null;
  }

  describe(sid: number): { node: string; peer: number; credit: number } | null {
    const e = this.ends.get(sid);
    return e
      ? { node: this.fabric.names[e.node - 1] ?? String(e.node), peer: e.rsid, credit: e.credit }
      : null;
  }

  /** Whether node id `node` names another node of the cluster. */
  isRemote(node: number): boolean {
    return node !== 0 && node !== this.fabric.selfId;
  }

  private send(
    node: number,
    type: number,
    flags: number,
    channel: number,
    socket: number,
    value: number,
    segments: readonly Uint8Array[] = [],
  ): number | 'full' | 'unknown' {
    const r = this.fabric.send(node, type, flags, channel, socket, value, segments);
    if (typeof r === 'number') this.counters.framesOut++;
    return r;
  }

  /** Splits a chain for two nodes: stages before the first DECRYPT/DECAP run on the sender. */
  private halves(code: number): { out: Chain; in: Chain; full: Chain } | string {
    const full = decodeChain(code, this.dp.keys);
    if (typeof full === 'string') return full;
    if (full.lookAside) return 'a look-aside chain has no peer';
    let k = full.stages.findIndex((st) => st === ENUMS.STAGE.DECRYPT || st === ENUMS.STAGE.DECAP);
    if (k < 0) k = full.stages.length;
    const outCode = k === 0 ? 0 : (code & (2 ** (8 * k) - 1)) >>> 0;
    const inCode = k >= 4 ? 0 : code >>> (8 * k);
    return {
      out: decodeChain(outCode, this.dp.keys) as Chain,
      in: decodeChain(inCode, this.dp.keys) as Chain,
      full,
    };
  }

  // ---- connection set-up -------------------------------------------------------

  /** CONNECT to (node, port): pending until the peer accepts; or an errno now. */
  connect(
    sid: number,
    node: number,
    port: number,
    slot: number,
    chain: number,
    names?: ConnectNames,
  ): number | 'pending' {
    const s = this.dp.socks;
    if (node > this.fabric.names.length) return ST.ENETUNREACH;
    const h = this.halves(chain);
    if (typeof h === 'string') return ST.EINVAL;
    const payload = new Uint8Array(names ? 44 : 8);
    const v = new DataView(payload.buffer);
    v.setUint32(0, chain, true);
    v.setUint32(4, s.tenant[sid]!, true);
    if (names) {
      payload.set(names.dst.addr, 8);
      if (names.src) payload.set(names.src.addr, 24);
      v.setUint16(40, names.src?.port ?? 0, true);
    }
    const r = this.send(node, PIPE_FRAME.CONNECT, names ? CONNECT_FLAG_ADDR : 0, port, sid, s.rxSize[sid]!, [
      payload,
    ]);
    if (r === 'unknown') return ST.ENETUNREACH;
    if (r === 'full') return ST.EAGAIN;
    s.state[sid] = SockState.CONNECTING;
    s.pendingCmd[sid] = slot;
    s.chain[sid] = chain;
    this.ends.set(sid, { node, rsid: -1, credit: 0, owed: 0, peerRx: 0, unacked: 0, ...h, waiting: false });
    return 'pending';
  }

  /** ACCEPT popped a remote request (id < 0) from the listener's backlog. */
  accept(sid: number, id: number): [number, number] {
    const s = this.dp.socks;
    const q = this.requests.get(-id);
    this.requests.delete(-id);
    if (!q) return [ST.ECONNREFUSED, 0]; // its node failed meanwhile
    const h = this.halves(q.chain);
    if (typeof h === 'string') {
      this.send(q.node, PIPE_FRAME.REFUSED, 0, q.sid, 0, ST.EINVAL);
      return [ST.EAGAIN, 0];
    }
    const r = this.send(q.node, PIPE_FRAME.ACCEPTED, 0, q.sid, sid, s.rxSize[sid]!);
    if (typeof r !== 'number') return [ST.EAGAIN, 0];
    s.state[sid] = SockState.CONNECTED;
    s.peer[sid] = q.sid;
    s.chain[sid] = q.chain;
    if (q.names) this.dp.addrs.acceptedRemote(sid, q.names.local, q.names.peer);
    this.ends.set(sid, {
      node: q.node,
      rsid: q.sid,
      credit: q.rxSize,
      owed: 0,
      peerRx: q.rxSize,
      unacked: 0,
      ...h,
      waiting: false,
    });
    return [ST.OK, q.sid];
  }

  /** A listener closed with remote requests in its backlog: they are refused. */
  refuse(id: number): void {
    const q = this.requests.get(-id);
    this.requests.delete(-id);
    if (q) this.send(q.node, PIPE_FRAME.REFUSED, 0, q.sid, 0, ST.ECONNREFUSED);
  }

  // ---- messages --------------------------------------------------------------

  /**
   * Sends `sid`'s next message (len bytes at its tx head) to its remote
   * peer. 'sent': it is on its way (TX_HEAD follows the acknowledgement);
   * 'blocked': no credit or no window yet; 'failed': the socket failed.
   */
  sendMessage(sid: number, len: number): 'sent' | 'blocked' | 'failed' {
    const s = this.dp.socks;
    const e = this.ends.get(sid)!;
    if (e.rsid < 0) return 'blocked';
    const need = e.full.transform.outLen(len);
    let payload: Uint8Array[] = [];
    let flags = 0;
    let value: number;
    if (typeof need === 'string') {
      // The chain can never take this message (its length alone says so): the receiver learns, in order.
      flags = MSG_FLAG_REFUSED;
      value = e.full.errorCode;
    } else {
      if (need > e.credit) {
        e.waiting = true;
        return 'blocked';
      }
      const src = this.dp.host.dmaView(BigInt(s.txAddr[sid]!), s.txSize[sid]!);
      if (!src) {
        this.dp.sockError(sid, SERR.RING_UNMAPPED, 'tx ring no longer in mapped guest memory');
        return 'failed';
      }
      // Unacknowledged messages still hold their place in the ring ahead of this one.
      const pos = (s.txHead[sid]! + e.unacked) & (s.txSize[sid]! - 1);
      const segs = split(src.length, pos, len).map((g) => src.subarray(g.off, g.off + g.len));
      value = need;
      const t = e.out.transform;
      if (t === COPY) {
        payload = segs; // zero-copy: the ring's own bytes go to the wire
      } else {
        // Sender-side stages: the engine's output is what travels.
        const input = joinBytes(segs);
        const out = t.bytewise ? mapped(t, input) : t.whole!(input);
        if (typeof out === 'string') {
          flags = MSG_FLAG_REFUSED;
          value = e.out.errorCode;
        } else payload = [out];
      }
    }
    const r = this.send(e.node, PIPE_FRAME.MSG, flags, e.rsid, sid, value, payload);
    if (r === 'unknown') {
      this.dp.sockError(sid, SERR.LINK_FAILED, 'the peer node is not in the cluster');
      return 'failed';
    }
    if (r === 'full') {
      e.waiting = true;
      const b = this.blocked.get(e.node);
      if (b) b.add(sid);
      else this.blocked.set(e.node, new Set([sid]));
      return 'blocked';
    }
    if (flags === 0) e.credit -= value;
    e.unacked += len;
    this.counters.msgsOut++;
    const f = this.inFlight.get(e.node);
    const rec = { seq: r, sid, len };
    if (f) f.push(rec);
    else this.inFlight.set(e.node, [rec]);
    return 'sent';
  }

  /** The application consumed `bytes` of `sid`'s rx ring: credit for its remote sender, sent at the end of the round. */
  rxConsumed(sid: number, bytes: number): void {
    const e = this.ends.get(sid);
    if (!e || bytes === 0) return;
    e.owed += bytes;
    this.owing.add(sid);
  }

  /** Sends the credit owed (once per poll round, so a burst of RX_HEADs is one frame). */
  flush(): boolean {
    if (this.owing.size === 0) return false;
    for (const sid of this.owing) {
      const e = this.ends.get(sid);
      if (!e || e.rsid < 0 || e.owed === 0) continue;
      if (typeof this.send(e.node, PIPE_FRAME.CREDIT, 0, e.rsid, sid, e.owed) === 'number') e.owed = 0;
    }
    for (const sid of this.owing) if ((this.ends.get(sid)?.owed ?? 0) === 0) this.owing.delete(sid);
    return true;
  }

  /** `sid` closes (its queue has drained): the peer hears CLOSE after every message sent before it. */
  closed(sid: number): void {
    const e = this.ends.get(sid);
    if (!e) return;
    this.ends.delete(sid);
    this.owing.delete(sid);
    this.blocked.get(e.node)?.delete(sid);
    if (e.rsid >= 0) this.send(e.node, PIPE_FRAME.CLOSE, 0, e.rsid, sid, 0);
    // Acknowledgements still due for it must not move a later socket of the same id.
    const f = this.inFlight.get(e.node);
    if (f)
      this.inFlight.set(
        e.node,
        f.filter((x) => x.sid !== sid),
      );
  }

  /** `sid` shut down its sending side (its queue has left): the peer hears it after those messages. False: not sent. */
  shutdown(sid: number): boolean {
    const e = this.ends.get(sid);
    if (!e || e.rsid < 0) return false;
    return typeof this.send(e.node, PIPE_FRAME.SHUTDOWN, 0, e.rsid, sid, 0) === 'number';
  }

  /** Everything remote is forgotten (device reset or stop); peers are told their sockets closed. */
  reset(): void {
    for (const sid of [...this.ends.keys()]) this.closed(sid);
    for (const id of [...this.requests.keys()]) this.refuse(-id);
    this.inFlight.clear();
    this.blocked.clear();
    this.owing.clear();
  }

  // ---- events from the fabric ------------------------------------------------

  readonly events: PipeFabricEvents = {
    frame: (node, type, flags, channel, socket, value, payload) =>
      this.onFrame(node, type, flags, channel, socket, value, payload),
    acked: (node, seq) => this.onAcked(node, seq),
    failed: (node, why) => this.onFailed(node, why),
    drain: (node) => this.onDrain(node),
    place: (node, type, flags, channel, socket, value, length) =>
      this.place(node, type, flags, channel, socket, value, length),
  };

  /**
   * A message for a socket whose ring takes it as it is (no receiver-side
   * stage, room for it, its announced size) lands straight in the ring at
   * the tail: the views of that space. onMessage then finds the bytes in
   * place and publishes them; any check that would refuse the message
   * refuses placement first.
   */
  private place(
    node: number,
    type: number,
    flags: number,
    dst: number,
    src: number,
    expect: number,
    length: number,
  ): Uint8Array[] | null {
    if (type !== PIPE_FRAME.MSG || flags !== 0 || length !== expect) return null;
    const s = this.dp.socks;
    const e = this.receiver(node, dst, src);
    if (!e || e.in.transform !== COPY || expect > s.rxFree(dst)) return null;
    const size = s.rxSize[dst]!;
    const ring = this.dp.host.dmaView(BigInt(s.rxAddr[dst]!), size);
    if (!ring) return null;
    return split(size, s.rxTail[dst]! & (size - 1), length).map((g) => ring.subarray(g.off, g.off + g.len));
  }

  /** The end `dst` when it is paired with (`node`, `src`) and may still receive; else null. */
  private receiver(node: number, dst: number, src: number): RemoteEnd | null {
    const e = this.ends.get(dst);
    const st = this.dp.socks.state[dst];
    return e && e.node === node && e.rsid === src && (st === SockState.CONNECTED || st === SockState.CLOSING)
      ? e
      : null;
  }

  private drop(node: number, what: string, detail: Record<string, unknown>): void {
    this.counters.unknownSocket++;
    this.guestErr.warn(
      `remote-unknown-${what}`,
      { node: this.fabric.names[node - 1], ...detail },
      `fabric ${what} frame for no matching socket dropped`,
    );
  }

  private violation(sid: number, why: string): void {
    this.counters.protocolErrors++;
    this.dp.sockError(sid, SERR.LINK_FAILED, `peer broke the pipe protocol: ${why}`);
  }

  private onFrame(
    node: number,
    type: number,
    flags: number,
    channel: number,
    socket: number,
    value: number,
    parts: readonly Uint8Array[],
  ): void {
    this.counters.framesIn++;
    const s = this.dp.socks;
    switch (type) {
      case PIPE_FRAME.CONNECT: {
        const payload = joinBytes(parts);
        if (payload.length < 8) {
          this.counters.protocolErrors++;
          return;
        }
        const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
        const byAddr = (flags & CONNECT_FLAG_ADDR) !== 0;
        if (byAddr && payload.length < 44) {
          this.counters.protocolErrors++;
          return;
        }
        const dst = byAddr ? { addr: payload.slice(8, 24), port: channel } : null;
        const l = dst ? this.dp.addrs.lookup(dst.addr, channel) : (s.listeners.get(channel) ?? -1);
        if (l < 0) {
          this.send(node, PIPE_FRAME.REFUSED, 0, socket, 0, ST.ECONNREFUSED);
          return;
        }
        const id = this.nextRequest++;
        this.requests.set(id, {
          node,
          sid: socket,
          rxSize: value,
          chain: v.getUint32(0, true),
          tenant: v.getUint32(4, true),
          ...(dst
            ? { names: { local: dst, peer: { addr: payload.slice(24, 40), port: v.getUint16(40, true) } } }
            : {}),
        });
        this.dp.queueConnection(l, -id);
        return;
      }
      case PIPE_FRAME.ACCEPTED: {
        const e = this.ends.get(channel);
        if (!e || e.node !== node || e.rsid >= 0 || s.state[channel] !== SockState.CONNECTING) {
          // Connected to a socket that gave up meanwhile: close the far end.
          this.drop(node, 'accepted', { sid: channel });
          this.send(node, PIPE_FRAME.CLOSE, 0, socket, channel, 0);
          return;
        }
        e.rsid = socket;
        e.credit = value;
        e.peerRx = value;
        s.state[channel] = SockState.CONNECTED;
        s.peer[channel] = socket;
        const slot = s.pendingCmd[channel]!;
        s.pendingCmd[channel] = NO_PEER;
        this.dp.answer(slot, ST.OK, socket);
        return;
      }
      case PIPE_FRAME.REFUSED: {
        const e = this.ends.get(channel);
        if (!e || e.node !== node || e.rsid >= 0 || s.state[channel] !== SockState.CONNECTING) {
          this.drop(node, 'refused', { sid: channel });
          return;
        }
        this.ends.delete(channel);
        s.state[channel] = SockState.CREATED;
        const slot = s.pendingCmd[channel]!;
        s.pendingCmd[channel] = NO_PEER;
        this.dp.answer(slot, value || ST.ECONNREFUSED, 0);
        return;
      }
      case PIPE_FRAME.MSG:
        return this.onMessage(node, flags, channel, socket, value, parts);
      case PIPE_FRAME.CREDIT: {
        const e = this.ends.get(channel);
        if (!e || e.node !== node || e.rsid !== socket) {
          this.drop(node, 'credit', { sid: channel });
          return;
        }
        e.credit += value;
        if (e.waiting) {
          e.waiting = false;
          this.dp.markReady(channel);
        }
        return;
      }
      case PIPE_FRAME.CLOSE: {
        const e = this.ends.get(channel);
        if (!e || e.node !== node || e.rsid !== socket) {
          this.drop(node, 'close', { sid: channel });
          return;
        }
        this.ends.delete(channel);
        this.owing.delete(channel);
        s.flags[channel] = s.flags[channel]! | 1; // FLAG_PEER_CLOSED
        s.peer[channel] = NO_PEER;
        this.dp.emit(D2H.EVENT, channel, ENUMS.EVENT.PEER_CLOSED);
        if ((s.txQueue.get(channel)?.length ?? 0) > 0)
          this.dp.sockError(channel, SERR.NOT_CONNECTED, 'the peer closed with messages still queued for it');
        return;
      }
      case PIPE_FRAME.SHUTDOWN: {
        const e = this.ends.get(channel);
        if (!e || e.node !== node || e.rsid !== socket) {
          this.drop(node, 'shutdown', { sid: channel });
          return;
        }
        this.dp.emit(D2H.EVENT, channel, ENUMS.EVENT.PEER_SHUTDOWN);
        return;
      }
      default:
        this.counters.protocolErrors++;
        this.guestErr.warn(
          'remote-type',
          { node: this.fabric.names[node - 1], type },
          'fabric frame of an unknown type dropped',
        );
    }
  }

  private onMessage(
    node: number,
    flags: number,
    dst: number,
    src: number,
    expect: number,
    parts: readonly Uint8Array[],
  ): void {
    const s = this.dp.socks;
    const e = this.receiver(node, dst, src);
    if (!e) {
      this.drop(node, 'message', { sid: dst, from: src, bytes: byteLength(parts) });
      return;
    }
    this.counters.msgsIn++;
    const rxRing = (dst << 1) | ENUMS.RING_DIR.RX;
    if (flags & MSG_FLAG_REFUSED) {
      this.dp.emit(D2H.MSG_ERROR, rxRing, expect);
      return;
    }
    if (expect > s.rxFree(dst))
      return this.violation(dst, `a message of ${expect} bytes with ${s.rxFree(dst)} free`);
    const ring = this.dp.host.dmaView(BigInt(s.rxAddr[dst]!), s.rxSize[dst]!);
    if (!ring) {
      this.dp.sockError(dst, SERR.RING_UNMAPPED, 'rx ring no longer in mapped guest memory');
      return;
    }
    const at = s.rxTail[dst]! & (s.rxSize[dst]! - 1);
    // Z: the received pieces go straight into the ring; receiver-side stages take the message whole.
    if (e.in.transform === COPY && byteLength(parts) > expect)
      return this.violation(dst, `a message of ${byteLength(parts)} bytes announced as ${expect}`);
    if (e.in.transform === COPY && inPlace(parts, ring, at)) this.counters.msgsPlaced++;
    const n =
      e.in.transform === COPY
        ? copyParts(parts, ring, at)
        : runMessage(e.in.transform, joinBytes(parts), 0, byteLength(parts), ring, at);
    if (typeof n === 'string') {
      // Refused by a receiver-side stage (a bad tag): the receiver learns in order; the sender gets its credit back.
      this.guestErr.warn(
        `refused-${e.in.errorCode}`,
        { sid: dst, why: n },
        'message refused by a transformation',
      );
      this.dp.emit(D2H.MSG_ERROR, rxRing, e.in.errorCode);
      this.rxConsumed(dst, expect);
      return;
    }
    if (n > expect) return this.violation(dst, `a message of ${n} bytes announced as ${expect}`);
    s.rxTail[dst] = (s.rxTail[dst]! + n) >>> 0;
    this.dp.emit(D2H.RX_TAIL, rxRing, s.rxTail[dst]!);
    if (e.full.digestToReceiver) {
      let crc = 0;
      for (const g of split(ring.length, at, n)) crc = crc32c(ring.subarray(g.off, g.off + g.len), crc);
      this.dp.emit(D2H.DIGEST, rxRing, crc);
    }
    if (n < expect) this.rxConsumed(dst, expect - n);
  }

  private onAcked(node: number, seq: number): void {
    const f = this.inFlight.get(node);
    if (!f) return;
    let i = 0;
    for (; i < f.length && f[i]!.seq <= seq; i++) {
      const m = f[i]!;
      const e = this.ends.get(m.sid);
      if (e) e.unacked -= m.len;
      if (this.dp.socks.exists(m.sid)) this.dp.consumed(m.sid, m.len);
    }
    if (i > 0) f.splice(0, i);
  }

  private onFailed(node: number, why: string): void {
    this.counters.linkFailures++;
    const s = this.dp.socks;
    for (const [sid, e] of [...this.ends]) {
      if (e.node !== node) continue;
      this.ends.delete(sid);
      this.owing.delete(sid);
      if (s.state[sid] === SockState.CONNECTING) {
        s.state[sid] = SockState.CREATED;
        const slot = s.pendingCmd[sid]!;
        s.pendingCmd[sid] = NO_PEER;
        this.dp.answer(slot, ST.ENETUNREACH, 0);
      } else {
        s.peer[sid] = NO_PEER;
        this.dp.sockError(
          sid,
          SERR.LINK_FAILED,
          `the link to node ${this.fabric.names[node - 1]} failed: ${why}`,
        );
      }
    }
    for (const [id, q] of [...this.requests]) if (q.node === node) this.requests.delete(id);
    this.inFlight.delete(node);
    this.blocked.delete(node);
  }

  private onDrain(node: number): void {
    const b = this.blocked.get(node);
    if (!b) return;
    this.blocked.delete(node);
    for (const sid of b) {
      const e = this.ends.get(sid);
      if (e) {
        e.waiting = false;
        this.dp.markReady(sid);
      }
    }
  }
}

/** Writes `parts` into `ring` from `at`, wrapping; returns the bytes written. */
/** Whether `part` already lies at `pos` of `ring` (placed by the wire). */
const inPlace = (parts: readonly Uint8Array[], ring: Uint8Array, pos: number): boolean =>
  parts.length > 0 && parts[0]!.buffer === ring.buffer && parts[0]!.byteOffset === ring.byteOffset + pos;

function copyParts(parts: readonly Uint8Array[], ring: Uint8Array, at: number): number {
  const total = byteLength(parts);
  let pos = at;
  for (const p of parts) {
    // Placed: already where it goes (place()), nothing to copy.
    if (inPlace([p], ring, pos)) {
      pos = (pos + p.length) % ring.length;
      continue;
    }
    const first = Math.min(p.length, ring.length - pos);
    ring.set(p.subarray(0, first), pos);
    if (first < p.length) ring.set(p.subarray(first), 0);
    pos = (pos + p.length) % ring.length;
  }
  return total;
}

function mapped(t: Transform, input: Uint8Array): Uint8Array {
  const out = new Uint8Array(input.length);
  t.map!(input, out);
  return out;
}
