/**
 * One reliable, ordered link to a peer node, over successive connections.
 *
 * A *session* is one run of link sequence numbers in each direction. It
 * survives reconnects: the handshake carries the session and the last seq
 * each side delivered, and each side retransmits what the other lacks. It
 * ends (FAILED) when the link stays down past the deadline or the peer
 * turns out to have lost it (restarted, or failed it on its own deadline);
 * then every frame not acknowledged is handed back to the owner, never
 * dropped silently, and numbering starts over in a fresh session.
 *
 * A frame lost on the wire (faults.ts injects such losses) leaves a gap the
 * receiver sees at the next data frame (it resets the connection); when no
 * frame follows, the retransmission timeout does: the oldest unacknowledged
 * frame waiting rtoMs with no ack progress resets the connection, and the
 * resume resends it. Every frame, heartbeats too, carries the cumulative
 * ack, so a lost ACK is made good by the next frame or heartbeat.
 */
import { randomBytes } from 'node:crypto';
import { RateLimitedLog, type Logger } from '../util/log.js';
import { encodeProof, newNonce, parseChallenge, proofMatches, proofOf, type Transcript } from './auth.js';
import { formatAddress, type Cluster } from './cluster.js';
import { Conn, type ConnHandlers } from './conn.js';
import { corruptChunks, Hold, type WireFault, type WireFaults } from './faults.js';
import {
  announcedLength,
  encodeHeader,
  FIRST_DATA_TYPE,
  LinkType,
  payloadCrc,
  payloadLength,
  peekHeader,
  type Frame,
  type FrameErrorKind,
  type FrameHeader,
} from './frame.js';
import { dials, encodeHello, parseHello, refuseHello, type Hello } from './hello.js';
import { TlsFailure, type FabricTransport } from './transport.js';
import { SendWindow, type SentFrame } from './window.js';

export interface LinkOptions {
  /** A frame (a heartbeat when idle) goes out at least this often. */
  heartbeatMs: number;
  /** Nothing heard for this long: the connection is dead; also the limit for a connect + handshake. */
  deadMs: number;
  /** Not re-established within this: the session is FAILED. */
  deadlineMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Bound on frames sent and not yet acknowledged: count and payload bytes. */
  windowFrames: number;
  windowBytes: number;
  /** An ack waits at most this long for a frame to ride on. */
  ackDelayMs: number;
  /**
   * Retransmission timeout: frames unacknowledged and no ack progress for
   * this long reset the connection, so the resume resends them (a frame lost
   * with nothing after it). Above the heartbeat interval, which carries the
   * ack when an ACK frame is lost, and above deadMs, so that a silent peer is
   * reported as such (default 4 heartbeat intervals).
   */
  rtoMs: number;
  maxPayload: number;
}

export const DEFAULT_LINK_OPTIONS: LinkOptions = {
  heartbeatMs: 200,
  deadMs: 600,
  deadlineMs: 10_000,
  backoffMinMs: 50,
  backoffMaxMs: 2_000,
  windowFrames: 1024,
  windowBytes: 16 << 20,
  ackDelayMs: 2,
  rtoMs: 800,
  maxPayload: 16 << 20,
};

export type LinkState = 'connecting' | 'up' | 'down' | 'failed';

export interface LinkStateInfo {
  reason: string;
  session?: string;
  resumed?: boolean;
  retransmitted?: number;
  failedFrames?: number;
}

/** Input refused, by kind: the frame decoder's kinds and the link's own. */
export type BadKind =
  | FrameErrorKind
  | 'outOfSequence'
  | 'unknownNode'
  | 'badHello'
  | 'unexpected'
  /** The handshake's authentication failed (auth.ts): no, another or a replayed proof of the cluster secret. */
  | 'badAuth'
  /** The TLS handshake, the peer's certificate, or the node it names (tls.ts). */
  | 'badTls'
  /** A connection that did not finish its handshake in time, or was pushed out by newer ones (preauth.ts). */
  | 'handshakeTimeout'
  | 'handshakeOverflow';
export type BadCounts = Record<BadKind, number>;

export function zeroBadCounts(): BadCounts {
  return {
    truncated: 0,
    tooLarge: 0,
    badCrc: 0,
    badMagic: 0,
    badVersion: 0,
    outOfSequence: 0,
    unknownNode: 0,
    badHello: 0,
    unexpected: 0,
    badAuth: 0,
    badTls: 0,
    handshakeTimeout: 0,
    handshakeOverflow: 0,
  };
}

export interface LinkStats {
  state: LinkState;
  session: string;
  peerIncarnation: string;
  /** Data frames written (retransmissions included) and their payload bytes. */
  framesSent: number;
  bytesSent: number;
  /** Data frames delivered to the owner and their payload bytes. */
  framesReceived: number;
  bytesReceived: number;
  retransmitted: number;
  /** Connections reset by the retransmission timeout. */
  rtoResets: number;
  duplicates: number;
  /** Times the link came up again after being down. */
  reconnects: number;
  failures: number;
  failedFrames: number;
  /** Smoothed round trip, frame sent to its ack (ms; acks may wait ackDelayMs to ride on a frame); 0 before a sample. */
  rttMs: number;
  unackedFrames: number;
  unackedBytes: number;
  bad: BadCounts;
}

export interface LinkEvents {
  frame(f: Frame): void;
  state(state: LinkState, info: LinkStateInfo): void;
  /** The session failed (`reason`); `frames` were not acknowledged (each may or may not have been delivered). */
  failed(frames: SentFrame[], reason: string): void;
  /** Every frame of the current session up to `seq` is delivered at the peer. */
  acked(seq: number): void;
  /** send() refused a frame and the window has room again. */
  drain(): void;
  /**
   * Optional: where the payload (`length` bytes) of the data frame `h` may
   * be written straight from the wire (views adding up to `length`), or
   * null. Asked only for the next frame in sequence on an established link
   * with no injected receive fault in play; frame() follows at once if the
   * frame checks out.
   */
  place?(h: FrameHeader, length: number): Uint8Array[] | null;
}

export interface LinkContext {
  cluster: Cluster;
  incarnation: string;
  transport: FabricTransport;
  log: Logger;
  opts: LinkOptions;
  /** Fault injection on the wire (faults.ts); absent: none. */
  faults?: WireFaults;
}

const newId = (): string => randomBytes(8).toString('hex');

export class Link {
  /** 'idle' until start(), so that the first state is announced too. */
  private state: LinkState | 'idle' = 'idle';
  private conn: Conn | null = null;
  private up = false;
  private everUp = false;
  private closed = false;
  private session = '';
  /** The last session this end failed: the HELLO says so (hello.ts). */
  private left = '';
  private peerIncarnation = '';
  private readonly selfIndex: number;
  private readonly peerIndex: number;
  private readonly dialer: boolean;
  private readonly log: Logger;
  private readonly warn: RateLimitedLog;
  private readonly o: LinkOptions;

  // Sending.
  private sendSeq = 0;
  private readonly window: SendWindow;
  private lastTx = 0;

  // Receiving.
  private delivered = 0;
  private pendingAckFrames = 0;
  private pendingAckBytes = 0;
  private ackFrames = 1;
  private ackBytes = 1;
  private lastRx = 0;

  private backoff: number;
  private dialAbort: AbortController | null = null;
  private dialTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private beatTimer: NodeJS.Timeout | null = null;
  private ackTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;

  /** Since when the oldest unacknowledged frame has waited with no ack progress (the RTO's clock). */
  private ackWaitSince = 0;
  // Injected faults (faults.ts): an outage (no connection before outageUntil), output or input held in order, a recv fault for the frame being decoded.
  private outageUntil = 0;
  private readonly txHold = new Hold<readonly Uint8Array[]>((q) => {
    for (const chunks of q) this.conn?.write(chunks);
  });
  private readonly rxHold = new Hold<Frame>((q) => {
    const conn = this.conn;
    for (const f of q) {
      if (this.conn !== conn || this.rxHold.active) break;
      this.take(f);
    }
  });
  private rxFault: WireFault | null = null;
  /**
   * The dialer's side of the authentication on the current connection: its
   * HELLO (nonce, payload, ack) and, once the CHALLENGE checked out, the
   * acceptor's transcript (auth.ts).
   */
  private auth: { nonce: string; hello: Uint8Array; ack: number; proven: Transcript | null } | null = null;

  private readonly c = {
    framesSent: 0,
    bytesSent: 0,
    framesReceived: 0,
    bytesReceived: 0,
    retransmitted: 0,
    rtoResets: 0,
    duplicates: 0,
    reconnects: 0,
    failures: 0,
    failedFrames: 0,
  };
  private readonly bad = zeroBadCounts();
  /** RTT: one frame timed at a time (its first transmission only, as Karn's rule), and the smoothed value. */
  private rttSeq = 0;
  private rttAt = 0;
  private srttMs = 0;

  constructor(
    readonly peer: string,
    private readonly ctx: LinkContext,
    private readonly ev: LinkEvents,
  ) {
    this.o = ctx.opts;
    this.selfIndex = ctx.cluster.names.indexOf(ctx.cluster.self);
    this.peerIndex = ctx.cluster.names.indexOf(peer);
    this.dialer = dials(ctx.cluster.self, peer);
    this.log = ctx.log.child({ peer });
    this.warn = new RateLimitedLog(this.log);
    this.backoff = this.o.backoffMinMs;
    this.window = new SendWindow(this.o.windowFrames, this.o.windowBytes);
  }

  start(): void {
    this.setState('connecting', { reason: this.dialer ? 'dialing' : 'waiting for the peer to dial' });
    if (this.dialer) this.dial();
  }

  /**
   * Queues a data frame and returns its seq, or null when the window is full
   * (drain() follows once it has room). The frame goes out at once if the
   * link is up, else when it comes up (or back to the owner through failed()).
   */
  send(
    type: number,
    flags: number,
    channel: number,
    socket: number,
    value: number,
    segments: readonly Uint8Array[],
  ): number | null {
    const bytes = payloadLength(segments);
    if (bytes > this.o.maxPayload)
      throw new RangeError(`frame payload of ${bytes} bytes above the maximum ${this.o.maxPayload}`);
    if (!this.window.admits(bytes)) return null;
    const f: SentFrame = {
      seq: ++this.sendSeq,
      type,
      flags,
      channel,
      socket,
      value,
      segments: [...segments],
      bytes,
      pcrc: payloadCrc(segments),
      transmitted: false,
    };
    if (this.window.count === 0) this.ackWaitSince = performance.now();
    this.window.push(f);
    if (this.up) this.transmit(f);
    else this.armDeadline();
    return f.seq;
  }

  /** An accepted connection whose HELLO the fabric checked: it becomes this link's connection. */
  adopt(conn: Conn, hello: Hello, peerDelivered: number): void {
    if (this.closed) return conn.drop();
    if (performance.now() < this.outageUntil) {
      this.log.debug(
        { remote: conn.wire.remote },
        'fabric connection refused: the link is down (fault injection)',
      );
      return conn.drop();
    }
    if (this.conn) this.lost(this.conn, `replaced by a new connection from ${conn.wire.remote}`);
    this.conn = conn;
    this.own(conn);
    conn.setMaxPayload(this.o.maxPayload);
    this.lastRx = performance.now();
    const resume = hello.session !== '' && hello.session === this.session;
    // A dialer with no session that did not leave ours, and has not
    // restarted, never saw the WELCOME that opened it (the connection went
    // first): it holds nothing of the session, which goes on from its
    // first frame instead of failing everything sent in it.
    const unseen =
      !resume &&
      hello.session === '' &&
      this.session !== '' &&
      (hello.left ?? '') !== this.session &&
      hello.incarnation === this.peerIncarnation;
    if (!resume && !unseen) this.freshSession(hello.incarnation);
    if (this.closed) return; // the owner closed the fabric from its failed() callback
    this.peerIncarnation = hello.incarnation;
    this.setPeerWindow(hello);
    this.writeLink(LinkType.WELCOME, encodeHello(this.hello()));
    this.goUp(resume ? peerDelivered : 0, resume || unseen);
  }

  /** Drops the current connection as a network cut would; false when there is none. */
  cut(): boolean {
    if (!this.conn) return false;
    this.lost(this.conn, 'cut (debugCutLink)');
    return true;
  }

  close(): void {
    this.closed = true;
    this.cancelDial();
    this.stopConnTimers();
    this.clear('deadlineTimer');
    this.conn?.drop();
    this.conn = null;
    this.up = false;
  }

  stats(): LinkStats {
    return {
      state: this.state === 'idle' ? 'connecting' : this.state,
      session: this.session,
      peerIncarnation: this.peerIncarnation,
      ...this.c,
      rttMs: this.srttMs,
      unackedFrames: this.window.count,
      unackedBytes: this.window.bytes,
      bad: { ...this.bad },
    };
  }

  // --- connection life ----------------------------------------------------

  private dial(): void {
    if (this.closed) return;
    const abort = new AbortController();
    this.dialAbort = abort;
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = null;
      if (this.conn) this.lost(this.conn, `no WELCOME within ${this.o.deadMs} ms`);
      else {
        abort.abort();
        this.retry(`connect timed out after ${this.o.deadMs} ms`);
      }
    }, this.o.deadMs);
    const addr = this.ctx.cluster.nodes.get(this.peer)!;
    this.ctx.transport.connect(addr, abort.signal).then(
      (wire) => {
        if (abort.signal.aborted || this.closed) return wire.close();
        this.dialAbort = null;
        const conn = new Conn(wire, this.o.maxPayload);
        this.own(conn);
        this.conn = conn;
        this.lastRx = performance.now();
        const names = wire.peerNames;
        if (this.ctx.cluster.tls && !names?.includes(this.peer))
          return this.protocolError(
            'badTls',
            `dialed '${this.peer}', the certificate at ${wire.remote} names ${names?.join(', ') || 'no node'}`,
          );
        const nonce = newNonce();
        const hello = encodeHello({ ...this.hello(), nonce });
        this.auth = { nonce, hello, ack: this.delivered, proven: null };
        this.writeLink(LinkType.HELLO, hello);
      },
      (e: Error) => {
        if (abort.signal.aborted || this.closed) return;
        this.dialAbort = null;
        this.clear('handshakeTimer');
        if (e instanceof TlsFailure) {
          this.bad.badTls++;
          this.warn.warn('fabric-badTls', { kind: 'badTls', remote: formatAddress(addr) }, e.message);
        }
        this.retry(`connect to ${formatAddress(addr)} failed: ${e.message}`);
      },
    );
  }

  /** Takes `conn`'s events (and, with fault injection, sees its frames before their CRC check). */
  private own(conn: Conn): void {
    conn.setHandlers(this.handlers(conn));
    if (this.ctx.faults) conn.setTap(this.tap);
    if (this.ev.place) conn.setPlacer((head) => this.place(conn, head));
  }

  /** FrameDecoder.placer for `conn`: only the frame take() will deliver next, and only with no receive fault in play. */
  private place(conn: Conn, head: Uint8Array): Uint8Array[] | null {
    if (conn !== this.conn || !this.up || this.rxHold.active || this.rxFault !== null) return null;
    const fx = this.ctx.faults;
    if (fx && fx.armed[fx.recvPoint]) return null;
    const h = peekHeader(head);
    if (h.src !== this.peerIndex || h.type < FIRST_DATA_TYPE || h.seq !== this.delivered + 1) return null;
    return this.ev.place!(h, announcedLength(head));
  }

  private handlers(conn: Conn): ConnHandlers {
    return {
      frame: (f) => this.onFrame(conn, f),
      bad: (e) => {
        this.bad[e.kind]++;
        this.warn.warn(
          `fabric-${e.kind}`,
          { kind: e.kind, remote: conn.wire.remote },
          `bad frame from peer: ${e.message}`,
        );
        this.lost(conn, `bad frame (${e.kind}): ${e.message}`);
      },
      closed: (reason: string) => this.lost(conn, reason),
    };
  }

  private retry(why: string): void {
    // Not before an injected outage ends.
    const inMs = Math.max(this.backoff, this.outageUntil - performance.now());
    this.log.debug({ why, inMs }, 'fabric dial failed, retrying');
    this.armDeadline();
    this.dialTimer = setTimeout(() => {
      this.dialTimer = null;
      this.dial();
    }, inMs);
    this.backoff = Math.min(this.backoff * 2, this.o.backoffMaxMs);
  }

  /** `conn` is gone (or is being let go); the link goes down and, as the dialer, dials again. */
  private lost(conn: Conn, reason: string): void {
    conn.drop();
    if (conn !== this.conn) return;
    this.conn = null;
    this.auth = null;
    const wasUp = this.up;
    this.up = false;
    this.stopConnTimers();
    if (wasUp) this.setState('down', { reason, session: this.session });
    else this.log.debug({ reason }, 'fabric handshake failed');
    if (this.closed) return;
    this.armDeadline();
    if (this.dialer) this.retry(reason);
  }

  private goUp(peerDelivered: number, resumed: boolean): void {
    this.clear('handshakeTimer');
    // Frames the peer already has are released before anything is resent.
    if (!this.ackUpTo(peerDelivered) || this.closed || !this.conn) return;
    this.clear('deadlineTimer');
    this.up = true;
    this.backoff = this.o.backoffMinMs;
    if (this.everUp) this.c.reconnects++;
    this.everUp = true;
    let retransmitted = 0;
    this.ackWaitSince = performance.now();
    for (const f of this.window) {
      if (f.transmitted) retransmitted++;
      this.transmit(f);
    }
    this.c.retransmitted += retransmitted;
    this.beatTimer = setInterval(() => this.beat(), Math.max(1, this.o.heartbeatMs / 2));
    this.setState('up', {
      reason: resumed ? 'session resumed' : 'new session',
      session: this.session,
      resumed,
      retransmitted,
    });
  }

  private beat(): void {
    const now = performance.now();
    if (now - this.lastRx >= this.o.deadMs) {
      if (this.conn)
        this.lost(this.conn, `nothing heard from the peer for ${Math.round(now - this.lastRx)} ms`);
      return;
    }
    if (this.window.count > 0 && now - this.ackWaitSince >= this.o.rtoMs && this.conn) {
      // A frame lost with nothing after it (the receiver sees no gap) or acks lost for that long: the resume resends.
      this.c.rtoResets++;
      const why = `retransmission timeout: no ack for ${Math.round(now - this.ackWaitSince)} ms with ${this.window.count} frames unacknowledged`;
      this.warn.warn('fabric-rto', { unacked: this.window.count }, `fabric link to ${this.peer}: ${why}`);
      this.lost(this.conn, why);
      return;
    }
    if (now - this.lastTx >= this.o.heartbeatMs / 2) this.writeLink(LinkType.HEARTBEAT);
  }

  // --- sessions -----------------------------------------------------------

  private hello(): Hello {
    const { cluster } = this.ctx;
    return {
      from: cluster.self,
      to: this.peer,
      cluster: cluster.hash,
      incarnation: this.ctx.incarnation,
      session: this.session,
      left: this.left,
      windowFrames: this.o.windowFrames,
      windowBytes: this.o.windowBytes,
    };
  }

  private setPeerWindow(h: Hello): void {
    // Ack at a quarter of the peer's window, so its sender never stalls waiting for one.
    this.ackFrames = Math.max(1, Math.floor(h.windowFrames / 4));
    this.ackBytes = Math.max(1, Math.floor(h.windowBytes / 4));
  }

  /**
   * The handshake did not resume: a new session begins. An existing one is
   * failed first; frames sent while there was no session at all (seq from
   * 1, never seen by anyone) simply open the new one.
   */
  private freshSession(peerIncarnation: string, session = newId()): void {
    if (this.session !== '') {
      const restarted = this.peerIncarnation !== '' && peerIncarnation !== this.peerIncarnation;
      this.fail(
        restarted
          ? `peer restarted (incarnation ${this.peerIncarnation} -> ${peerIncarnation})`
          : 'peer no longer has the session',
      );
    }
    this.session = session;
  }

  private armDeadline(): void {
    if (this.deadlineTimer || this.up || this.closed) return;
    if (this.session === '' && this.window.count === 0) return;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = null;
      if (this.up) return;
      const handshaking = this.conn;
      this.fail(`not re-established within ${this.o.deadlineMs} ms`);
      // A HELLO in flight named the session just failed; its answer could resume it at the peer. Start the handshake over.
      if (handshaking && handshaking === this.conn)
        this.lost(handshaking, 'session failed during the handshake');
    }, this.o.deadlineMs);
  }

  /** Ends the session: unacknowledged frames go back to the owner, numbering restarts. */
  private fail(reason: string): void {
    const frames = this.window.takeAll();
    if (this.session !== '') this.left = this.session;
    this.sendSeq = 0;
    this.rttSeq = 0;
    this.delivered = 0;
    this.pendingAckFrames = 0;
    this.pendingAckBytes = 0;
    this.session = '';
    this.clear('ackTimer');
    this.clear('deadlineTimer');
    this.c.failures++;
    this.c.failedFrames += frames.length;
    this.setState('failed', { reason, failedFrames: frames.length });
    this.ev.failed(frames, reason);
    this.maybeDrain();
  }

  // --- frames -------------------------------------------------------------

  private onFrame(conn: Conn, f: Frame): void {
    const fault = this.rxFault;
    this.rxFault = null;
    if (conn !== this.conn) return;
    if (fault !== null && this.recvFault(conn, f, fault)) return;
    this.rx(conn, f);
  }

  /** A frame off the connection, in order: taken now, or queued behind those an injected delay holds. */
  private rx(conn: Conn, f: Frame): void {
    if (conn !== this.conn) return;
    if (this.rxHold.active) this.rxHold.push(f);
    else this.take(f);
  }

  private take(f: Frame): void {
    this.lastRx = performance.now();
    if (f.src !== this.peerIndex)
      return this.protocolError(
        'unknownNode',
        `frame with source id ${f.src}, '${this.peer}' is ${this.peerIndex}`,
      );
    if (!this.up) return f.type === LinkType.CHALLENGE ? this.onChallenge(f) : this.onWelcome(f);
    if (!this.ackUpTo(f.ack)) return;
    if (f.type >= FIRST_DATA_TYPE) return this.onData(f);
    if (
      f.type === LinkType.HELLO ||
      f.type === LinkType.WELCOME ||
      f.type === LinkType.CHALLENGE ||
      f.type === LinkType.PROOF
    ) {
      // The handshake repeated on the connection it established: a duplicated packet, nothing new.
      this.c.duplicates++;
      return;
    }
    if (f.type !== LinkType.ACK && f.type !== LinkType.HEARTBEAT)
      this.protocolError('unexpected', `link frame type ${f.type} on an established link`);
  }

  /**
   * The dialer: the acceptor proves the secret over our fresh nonce and
   * its own; we answer with our PROOF. Nothing of the session is touched.
   */
  private onChallenge(f: Frame): void {
    const secret = this.ctx.cluster.secret;
    const auth = this.auth;
    if (!this.dialer || auth === null)
      return this.protocolError('unexpected', 'CHALLENGE to the end that accepts this link');
    if (!secret)
      return this.protocolError(
        'badAuth',
        `'${this.peer}' asks for authentication, and this node has no cluster secret (--fabric-secret)`,
      );
    if (auth.proven !== null) {
      this.c.duplicates++;
      return;
    }
    const c = parseChallenge(f.payload);
    if (typeof c === 'string') return this.protocolError('badAuth', c);
    const t: Transcript = {
      dialer: this.ctx.cluster.self,
      acceptor: this.peer,
      dialerIncarnation: this.ctx.incarnation,
      acceptorIncarnation: c.incarnation,
      dialerNonce: auth.nonce,
      acceptorNonce: c.nonce,
      hello: auth.hello,
      helloAck: auth.ack,
      binding: this.conn?.wire.binding?.() ?? new Uint8Array(0),
    };
    if (!proofMatches(secret, 'acceptor', t, c.proof))
      return this.protocolError(
        'badAuth',
        `'${this.peer}' failed to prove the cluster secret (another secret, or a replayed exchange)`,
      );
    auth.proven = t;
    this.writeLink(LinkType.PROOF, encodeProof(proofOf(secret, 'dialer', t)));
  }

  private onWelcome(f: Frame): void {
    if (f.type !== LinkType.WELCOME)
      return this.protocolError('unexpected', `expected WELCOME, got frame type ${f.type}`);
    const proven = this.auth?.proven ?? null;
    if (this.ctx.cluster.secret && proven === null)
      return this.protocolError(
        'badAuth',
        `'${this.peer}' answered without authenticating (it has no cluster secret)`,
      );
    const h = parseHello(f.payload);
    if (typeof h === 'string') return this.protocolError('badHello', h);
    if (h.session === '') return this.protocolError('badHello', 'WELCOME without a session');
    const refusal = refuseHello(h, f.src, this.ctx.cluster, this.peer);
    if (refusal) return this.protocolError(refusal.kind, refusal.why);
    if (proven !== null && h.incarnation !== proven.acceptorIncarnation)
      return this.protocolError(
        'badAuth',
        `WELCOME from incarnation ${h.incarnation}, the CHALLENGE from ${proven.acceptorIncarnation}`,
      );
    const resume = this.session !== '' && h.session === this.session;
    if (!resume) {
      this.freshSession(h.incarnation, h.session);
      if (this.closed) return;
    }
    this.peerIncarnation = h.incarnation;
    this.setPeerWindow(h);
    this.goUp(resume ? f.ack : 0, resume);
  }

  private onData(f: Frame): void {
    if (f.seq <= this.delivered) {
      this.c.duplicates++;
      return;
    }
    if (f.seq !== this.delivered + 1)
      return this.protocolError('outOfSequence', `seq ${f.seq} after ${this.delivered}`);
    this.delivered = f.seq;
    this.c.framesReceived++;
    this.c.bytesReceived += f.length;
    this.pendingAckFrames++;
    this.pendingAckBytes += f.length;
    this.ev.frame(f);
    if (!this.up) return;
    if (this.pendingAckFrames >= this.ackFrames || this.pendingAckBytes >= this.ackBytes) {
      this.writeLink(LinkType.ACK);
    } else if (!this.ackTimer) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = null;
        if (this.up && this.pendingAckFrames > 0) this.writeLink(LinkType.ACK);
      }, this.o.ackDelayMs);
    }
  }

  /** Releases frames up to `ack`; false (and the connection reset) when it acks what was never sent. */
  private ackUpTo(ack: number): boolean {
    if (ack > this.sendSeq) {
      this.protocolError('outOfSequence', `ack ${ack} beyond the last seq sent, ${this.sendSeq}`);
      return false;
    }
    if (!this.window.release(ack)) return true;
    this.ackWaitSince = performance.now();
    if (this.rttSeq !== 0 && ack >= this.rttSeq) {
      const ms = this.ackWaitSince - this.rttAt;
      this.srttMs = this.srttMs === 0 ? ms : this.srttMs * 0.875 + ms * 0.125;
      this.rttSeq = 0;
    }
    this.ev.acked(ack);
    this.maybeDrain();
    return true;
  }

  private maybeDrain(): void {
    if (this.window.drainDue()) this.ev.drain();
  }

  /** The peer broke the protocol: counted, logged, connection reset (a reconnect resumes cleanly). */
  private protocolError(kind: BadKind, why: string): void {
    this.bad[kind]++;
    this.warn.warn(
      `fabric-${kind}`,
      { kind, remote: this.conn?.wire.remote },
      `fabric protocol error: ${why}`,
    );
    if (this.conn) this.lost(this.conn, `protocol error (${kind}): ${why}`);
  }

  private transmit(f: SentFrame): void {
    const header = encodeHeader(
      {
        type: f.type,
        flags: f.flags,
        src: this.selfIndex,
        seq: f.seq,
        ack: this.delivered,
        channel: f.channel,
        socket: f.socket,
        value: f.value,
      },
      f.bytes,
      f.pcrc,
    );
    this.write(
      f.segments.length === 1 ? [header, f.segments[0]!] : [header, ...f.segments],
      f.type,
      f.seq,
      f.channel,
      f.socket,
      f.bytes,
    );
    if (f.transmitted) {
      if (f.seq === this.rttSeq) this.rttSeq = 0; // a retransmission's ack would time two sends
    } else if (this.rttSeq === 0) {
      this.rttSeq = f.seq;
      this.rttAt = performance.now();
    }
    f.transmitted = true;
    this.c.framesSent++;
    this.c.bytesSent += f.bytes;
  }

  private writeLink(type: number, payload?: Uint8Array): void {
    const segs = payload ? [payload] : [];
    const bytes = payloadLength(segs);
    const header = encodeHeader(
      { type, flags: 0, src: this.selfIndex, seq: 0, ack: this.delivered, channel: 0, socket: 0, value: 0 },
      bytes,
      payloadCrc(segs),
    );
    this.write([header, ...segs], type, 0, 0, 0, bytes);
  }

  /**
   * Every frame carries the cumulative ack, so any write settles the pending
   * one (a write an injected fault loses included: the next frame or
   * heartbeat carries the ack).
   */
  private write(
    chunks: readonly Uint8Array[],
    type: number,
    seq: number,
    channel: number,
    socket: number,
    bytes: number,
  ): void {
    const conn = this.conn;
    if (conn) {
      const fx = this.ctx.faults;
      const fault =
        fx && fx.armed[fx.sendPoint] ? fx.send(this.peer, { type, seq, channel, socket, bytes }) : null;
      if (fault === null) this.out(conn, chunks);
      else this.sendFault(conn, chunks, fault);
    }
    this.lastTx = performance.now();
    this.pendingAckFrames = 0;
    this.pendingAckBytes = 0;
    this.clear('ackTimer');
  }

  // --- injected faults (faults.ts) ----------------------------------------

  /** Writes a frame, or queues it behind those an injected delay holds. */
  private out(conn: Conn, chunks: readonly Uint8Array[]): void {
    if (this.txHold.active) this.txHold.push(chunks);
    else conn.write(chunks);
  }

  /** What the network does to a frame being sent. */
  private sendFault(conn: Conn, chunks: readonly Uint8Array[], f: WireFault): void {
    switch (f.action) {
      case 'drop':
        return;
      case 'duplicate':
        this.out(conn, chunks);
        return this.out(conn, chunks);
      case 'corrupt':
        return this.out(conn, corruptChunks(chunks, f.offset, f.xor));
      case 'delay':
        this.txHold.extend(f.ns / 1e6);
        return this.out(conn, chunks);
      case 'link_down':
        this.outageUntil = Math.max(this.outageUntil, performance.now() + f.ns / 1e6);
        return this.cutSoon(conn, `link down for ${f.ns / 1e6} ms (fault injection)`);
      case 'error':
        return this.cutSoon(conn, 'connection reset (fault injection)');
    }
  }

  /**
   * The connection goes now (nothing more is written), the link learns it
   * after the current call: a fault may strike in the middle of goUp() or
   * of the owner's send().
   */
  private cutSoon(conn: Conn, why: string): void {
    conn.drop();
    queueMicrotask(() => this.lost(conn, why));
  }

  /**
   * Sees each frame the connection decodes, before its CRC check: asks the
   * owner's recv() and applies a `corrupt` to the bytes (the CRC check that
   * follows refuses the frame); any other fault waits for onFrame.
   */
  private readonly tap = (head: Uint8Array, payload: () => Uint8Array): boolean => {
    const fx = this.ctx.faults!;
    if (!fx.armed[fx.recvPoint]) return false;
    const h = peekHeader(head);
    const f = fx.recv(this.peer, {
      type: h.type,
      seq: h.seq,
      channel: h.channel,
      socket: h.socket,
      bytes: announcedLength(head),
    });
    if (f === null) return false;
    if (f.action === 'corrupt') {
      corruptChunks([head, payload()], f.offset, f.xor, false);
      return true;
    }
    this.rxFault = f;
    return false;
  };

  /** What the network does to a frame received; true when the frame is not to be taken as it is. */
  private recvFault(conn: Conn, f: Frame, fault: WireFault): boolean {
    switch (fault.action) {
      case 'drop':
        return true;
      case 'duplicate':
        this.rx(conn, f);
        this.rx(conn, f);
        return true;
      case 'delay':
        this.rxHold.extend(fault.ns / 1e6);
        return false;
      case 'link_down':
        this.outageUntil = Math.max(this.outageUntil, performance.now() + fault.ns / 1e6);
        this.lost(conn, `link down for ${fault.ns / 1e6} ms (fault injection)`);
        return true;
      case 'error':
        this.lost(conn, 'connection reset (fault injection)');
        return true;
      case 'corrupt':
        return false; // applied by the tap, and the frame passed its CRC: the bytes hit were outside it
    }
  }

  private setState(state: LinkState, info: LinkStateInfo): void {
    if (state === this.state && state !== 'up' && state !== 'failed') return;
    this.state = state;
    const line = { state, ...info, peerIncarnation: this.peerIncarnation || undefined };
    if (state === 'up' || state === 'connecting')
      this.log.info(line, `fabric link to ${this.peer} ${state}: ${info.reason}`);
    else this.log.warn(line, `fabric link to ${this.peer} ${state}: ${info.reason}`);
    this.ev.state(state, info);
  }

  private cancelDial(): void {
    this.dialAbort?.abort();
    this.dialAbort = null;
    this.clear('dialTimer');
  }

  private stopConnTimers(): void {
    this.clear('handshakeTimer');
    this.clear('ackTimer');
    // Frames an injected delay held belong to the connection: the resume resends what they carried.
    this.txHold.cancel();
    this.rxHold.cancel();
    this.rxFault = null;
    if (this.beatTimer) clearInterval(this.beatTimer);
    this.beatTimer = null;
  }

  private clear(name: 'dialTimer' | 'handshakeTimer' | 'ackTimer' | 'deadlineTimer'): void {
    const t = this[name];
    if (t) clearTimeout(t);
    this[name] = null;
  }
}
