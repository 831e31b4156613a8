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
 *
 * Beside it: what the owner names (options, states, counters, events) in
 * link-types.ts, what the handshake frames mean in link-handshake.ts, when
 * acks go and the round trip they measure in link-acks.ts, and the wire
 * faults a link applies in link-faults.ts.
 */
import { randomBytes } from 'node:crypto';
import { RateLimitedLog, type Logger } from '../util/log.js';
import { formatAddress } from './cluster.js';
import { Conn, type ConnHandlers } from './conn.js';
import type { WireFrame } from './faults.js';
import {
  announcedLength,
  encodeHeader,
  FIRST_DATA_TYPE,
  LinkType,
  payloadCrc,
  payloadLength,
  peekHeader,
  type Frame,
} from './frame.js';
import { dials, encodeHello, type Hello } from './hello.js';
import { DelayedAck, RttEstimator } from './link-acks.js';
import { LinkFaults } from './link-faults.js';
import {
  acceptVerdict,
  checkWelcome,
  DialerHandshake,
  helloOf,
  isRefusal,
  type LinkEnds,
} from './link-handshake.js';
import {
  zeroBadCounts,
  zeroLinkCounters,
  type BadKind,
  type LinkContext,
  type LinkEvents,
  type LinkOptions,
  type LinkState,
  type LinkStateInfo,
  type LinkStats,
} from './link-types.js';
import { TlsFailure } from './transport.js';
import { SendWindow, type SentFrame } from './window.js';

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
  /** When the next ACK goes (link-acks.ts). */
  private readonly acks: DelayedAck;
  private lastRx = 0;

  private backoff: number;
  private dialAbort: AbortController | null = null;
  private dialTimer: NodeJS.Timeout | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private beatTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;

  /** Since when the oldest unacknowledged frame has waited with no ack progress (the RTO's clock). */
  private ackWaitSince = 0;
  /** Injected faults on the wire (link-faults.ts): every write and every frame decoded goes through them. */
  private readonly faults: LinkFaults;
  /** Who the two ends are, for the handshake (link-handshake.ts). */
  private readonly ends: LinkEnds;
  /** The dialer's side of the handshake on the current connection (link-handshake.ts). */
  private auth: DialerHandshake | null = null;

  private readonly c = zeroLinkCounters();
  private readonly bad = zeroBadCounts();
  /** The round trip, frame to ack (link-acks.ts). */
  private readonly rtt = new RttEstimator();

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
    this.acks = new DelayedAck(this.o.ackDelayMs, () => {
      if (this.up) this.writeLink(LinkType.ACK);
    });
    this.ends = { cluster: ctx.cluster, incarnation: ctx.incarnation, peer };
    this.faults = new LinkFaults(ctx.faults, {
      peer,
      current: () => this.conn,
      take: (f) => this.take(f),
      lost: (conn, why) => this.lost(conn, why),
    });
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
    if (this.faults.outageLeftMs() > 0) {
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
    const verdict = acceptVerdict(hello, this.session, this.peerIncarnation);
    if (verdict === 'fresh') this.freshSession(hello.incarnation);
    if (this.closed) return; // the owner closed the fabric from its failed() callback
    this.peerIncarnation = hello.incarnation;
    this.acks.setPeerWindow(hello.windowFrames, hello.windowBytes);
    this.writeLink(LinkType.WELCOME, encodeHello(this.hello()));
    this.goUp(verdict === 'resume' ? peerDelivered : 0, verdict !== 'fresh');
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
      rttMs: this.rtt.ms,
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
        this.auth = new DialerHandshake(this.ends, this.hello(), this.delivered);
        this.writeLink(LinkType.HELLO, this.auth.hello);
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
    const tap = this.faults.tap;
    if (tap) conn.setTap(tap);
    if (this.ev.place) conn.setPlacer((head) => this.place(conn, head));
  }

  /** FrameDecoder.placer for `conn`: only the frame take() will deliver next, and only with no receive fault in play. */
  private place(conn: Conn, head: Uint8Array): Uint8Array[] | null {
    if (conn !== this.conn || !this.up || !this.faults.rxClear()) return null;
    const h = peekHeader(head);
    if (h.src !== this.peerIndex || h.type < FIRST_DATA_TYPE || h.seq !== this.delivered + 1) return null;
    return this.ev.place!(h, announcedLength(head));
  }

  private handlers(conn: Conn): ConnHandlers {
    return {
      frame: (f) => this.faults.frame(conn, f),
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
    const inMs = Math.max(this.backoff, this.faults.outageLeftMs());
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
    return helloOf(this.ends, this.session, this.left, this.o);
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
    this.rtt.reset();
    this.delivered = 0;
    this.acks.settled();
    this.session = '';
    this.clear('deadlineTimer');
    this.c.failures++;
    this.c.failedFrames += frames.length;
    this.setState('failed', { reason, failedFrames: frames.length });
    this.ev.failed(frames, reason);
    this.maybeDrain();
  }

  // --- frames -------------------------------------------------------------

  /** A frame off the current connection, in order and past any injected fault (link-faults.ts). */
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

  /** The dialer: the acceptor's CHALLENGE, answered with our PROOF. Nothing of the session is touched. */
  private onChallenge(f: Frame): void {
    if (!this.dialer || this.auth === null)
      return this.protocolError('unexpected', 'CHALLENGE to the end that accepts this link');
    const r = this.auth.challenge(f, () => this.conn?.wire.binding?.() ?? new Uint8Array(0));
    if (r === 'duplicate') {
      this.c.duplicates++;
      return;
    }
    if (isRefusal(r)) return this.protocolError(r.kind, r.why);
    this.writeLink(LinkType.PROOF, r);
  }

  private onWelcome(f: Frame): void {
    const h = checkWelcome(f, this.ends, this.auth);
    if (isRefusal(h)) return this.protocolError(h.kind, h.why);
    const resume = this.session !== '' && h.session === this.session;
    if (!resume) {
      this.freshSession(h.incarnation, h.session);
      if (this.closed) return;
    }
    this.peerIncarnation = h.incarnation;
    this.acks.setPeerWindow(h.windowFrames, h.windowBytes);
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
    this.acks.add(f.length);
    this.ev.frame(f);
    if (this.up && this.acks.due()) this.writeLink(LinkType.ACK);
  }

  /** Releases frames up to `ack`; false (and the connection reset) when it acks what was never sent. */
  private ackUpTo(ack: number): boolean {
    if (ack > this.sendSeq) {
      this.protocolError('outOfSequence', `ack ${ack} beyond the last seq sent, ${this.sendSeq}`);
      return false;
    }
    if (!this.window.release(ack)) return true;
    this.ackWaitSince = performance.now();
    this.rtt.acked(ack, this.ackWaitSince);
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
    this.write(f.segments.length === 1 ? [header, f.segments[0]!] : [header, ...f.segments], f);
    this.rtt.sent(f.seq, f.transmitted);
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
    this.write([header, ...segs], { type, seq: 0, channel: 0, socket: 0, bytes });
  }

  /**
   * Every frame carries the cumulative ack, so any write settles the pending
   * one (a write an injected fault loses included: the next frame or
   * heartbeat carries the ack).
   */
  private write(chunks: readonly Uint8Array[], f: WireFrame): void {
    const conn = this.conn;
    if (conn) this.faults.write(conn, chunks, f);
    this.lastTx = performance.now();
    this.acks.settled();
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
    this.acks.cancel();
    this.faults.cancel();
    if (this.beatTimer) clearInterval(this.beatTimer);
    this.beatTimer = null;
  }

  private clear(name: 'dialTimer' | 'handshakeTimer' | 'deadlineTimer'): void {
    const t = this[name];
    if (t) clearTimeout(t);
    this[name] = null;
  }
}
