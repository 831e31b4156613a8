/**
 * The fabric of one node: a listener on its own address and one reliable
 * link (link.ts) to every other node of the cluster. The owner (the data
 * plane) sends frames to a node by name and gets each peer's frames in
 * order, exactly once, or the frames back through onFailed when a session
 * is lost.
 */
import { randomBytes } from 'node:crypto';
import { silentLogger, RateLimitedLog, type Logger } from '../util/log.js';
import type { Cluster, NodeAddress } from './cluster.js';
import { Conn } from './conn.js';
import { encodeChallenge, newNonce, parseProof, proofMatches, proofOf, type Transcript } from './auth.js';
import {
  encodeFrame,
  FIRST_DATA_TYPE,
  FRAME_CRC_IMPL,
  LinkType,
  type Frame,
  type FrameHeader,
} from './frame.js';
import { parseHello, refuseHello, type Hello } from './hello.js';
import { DEFAULT_PREAUTH, hostOf, PreAuth, type PreAuthLimits } from './preauth.js';
import { Link } from './link.js';
import {
  DEFAULT_LINK_OPTIONS,
  zeroBadCounts,
  type BadCounts,
  type BadKind,
  type LinkOptions,
  type LinkState,
  type LinkStateInfo,
  type LinkStats,
} from './link-types.js';
import type { WireFault, WireFaults, WireFrame } from './faults.js';
import { TcpTransport } from './tcp.js';
import type { FabricListener, FabricTransport } from './transport.js';
import type { SentFrame } from './window.js';

/** What the owner needs to name, from one place. */
export type {
  BadCounts,
  Frame,
  LinkOptions,
  LinkState,
  LinkStateInfo,
  LinkStats,
  SentFrame,
  WireFault,
  WireFaults,
  WireFrame,
};

export interface FabricEvents {
  /** A peer's data frame, in order, exactly once per session. */
  onFrame(node: string, frame: Frame): void;
  onLinkState?(node: string, state: LinkState, info: LinkStateInfo): void;
  /**
   * A session with `node` ended (`reason`: the deadline passed, the peer
   * restarted, ...); `frames` were sent in it and never acknowledged (each
   * may or may not have reached the peer's owner). Called for every failed
   * session, with no frames too: whatever was paired with the node is gone.
   */
  onFailed?(node: string, frames: SentFrame[], reason: string): void;
  /** All frames sent to `node` in the current session up to `seq` were delivered there; their segments are released. */
  onAcked?(node: string, seq: number): void;
  /** send() to `node` said 'full' and the window has room again. */
  onDrain?(node: string): void;
  /** Where a data frame's payload from `node` may go straight from the wire (LinkEvents.place). */
  onPlace?(node: string, h: FrameHeader, length: number): Uint8Array[] | null;
}

export interface FabricOptions extends Partial<LinkOptions> {
  cluster: Cluster;
  transport?: FabricTransport;
  log?: Logger;
  /** Fault injection on the wire: what each link does to the frames it writes and reads (faults.ts). */
  faults?: WireFaults;
  /** Bounds on accepted connections still in their handshake (preauth.ts); the time bound is deadMs. */
  preAuth?: Partial<Omit<PreAuthLimits, 'timeoutMs'>>;
}

/** The owner's ids and value, carried opaquely in the frame header. */
export interface FrameIds {
  channel: number;
  socket: number;
}

export type SendResult = { ok: true; seq: number } | { ok: false; reason: 'full' | 'unknown-node' };
const FULL: SendResult = Object.freeze({ ok: false, reason: 'full' });
const UNKNOWN: SendResult = Object.freeze({ ok: false, reason: 'unknown-node' });

export interface FabricStats {
  self: string;
  incarnation: string;
  /** Whether peers must prove the cluster secret, and whether the links are TLS. */
  authenticated: boolean;
  encrypted: boolean;
  /**
   * Connections refused before they could belong to a link: bad first
   * frame, bad or foreign HELLO, failed authentication or TLS, handshake
   * not finished in time or pushed out by newer ones.
   */
  refused: BadCounts;
  /** Accepted connections in their handshake now. */
  handshaking: number;
  links: Record<string, LinkStats>;
}

/**
 * Until its HELLO has named a node of the cluster, a connection may send no
 * more than this: a stranger must not make us allocate a 16 MiB payload.
 */
const HELLO_MAX_PAYLOAD = 4096;

const isU32 = (v: number): boolean => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

export class Fabric {
  readonly incarnation = randomBytes(8).toString('hex');
  private readonly links = new Map<string, Link>();
  /** Accepted connections that have not finished their handshake (bounded: preauth.ts). */
  private readonly pending: PreAuth<Conn>;
  private readonly refused = zeroBadCounts();
  private readonly cluster: Cluster;
  private readonly transport: FabricTransport;
  private readonly log: Logger;
  private readonly warn: RateLimitedLog;
  private readonly opts: LinkOptions;
  private readonly selfIndex: number;
  private listener: FabricListener | null = null;
  private closed = false;

  constructor(
    options: FabricOptions,
    private readonly events: FabricEvents,
  ) {
    const { cluster, transport, log, faults, preAuth: _preAuth, ...linkOpts } = options;
    this.cluster = cluster;
    this.selfIndex = cluster.names.indexOf(cluster.self);
    this.transport = transport ?? new TcpTransport(cluster.tls ? { tls: cluster.tls } : {});
    this.log = (log ?? silentLogger()).child({ sub: 'fabric', node: cluster.self });
    this.warn = new RateLimitedLog(this.log);
    const heartbeatMs = linkOpts.heartbeatMs ?? DEFAULT_LINK_OPTIONS.heartbeatMs;
    this.opts = { ...DEFAULT_LINK_OPTIONS, deadMs: 3 * heartbeatMs, rtoMs: 4 * heartbeatMs, ...linkOpts };
    const ctx = {
      cluster,
      incarnation: this.incarnation,
      transport: this.transport,
      log: this.log,
      opts: this.opts,
      ...(faults ? { faults } : {}),
    };
    this.pending = new PreAuth<Conn>(
      { timeoutMs: this.opts.deadMs, ...DEFAULT_PREAUTH, ...options.preAuth },
      (conn, why) =>
        why === 'timeout'
          ? this.refuse(conn, 'handshakeTimeout', `handshake not finished within ${this.opts.deadMs} ms`)
          : this.refuse(
              conn,
              'handshakeOverflow',
              'pushed out by newer connections still in their handshake (too many from its host or in all)',
            ),
    );
    for (const node of cluster.names) {
      if (node === cluster.self) continue;
      this.links.set(
        node,
        new Link(node, ctx, {
          frame: (f) => events.onFrame(node, f),
          state: (s, info) => events.onLinkState?.(node, s, info),
          failed: (frames, reason) => events.onFailed?.(node, frames, reason),
          acked: (seq) => events.onAcked?.(node, seq),
          drain: () => events.onDrain?.(node),
          ...(events.onPlace
            ? { place: (h: FrameHeader, length: number) => events.onPlace!(node, h, length) }
            : {}),
        }),
      );
    }
  }

  /** Listens on this node's address and starts the links (the lower-named end of each dials). */
  async start(): Promise<void> {
    const own = this.cluster.nodes.get(this.cluster.self)!;
    this.listener = await this.transport.listen(own, (wire) =>
      this.accept(new Conn(wire, HELLO_MAX_PAYLOAD)),
    );
    this.log.info(
      {
        address: this.listener.address,
        incarnation: this.incarnation,
        peers: [...this.links.keys()],
        crc: FRAME_CRC_IMPL,
        auth: this.cluster.secret ? 'hmac-sha256' : 'none',
        tls: this.cluster.tls !== undefined,
      },
      'fabric listening',
    );
    if (!this.cluster.secret)
      this.log.warn(
        { address: this.listener.address },
        'fabric is unauthenticated: any process that reaches this address can join as a node of the cluster and send into its sockets; give the cluster a secret (--fabric-secret FILE; docs/fabric-security.md)',
      );
    for (const link of this.links.values()) link.start();
  }

  /** The bound address (its port resolved when the cluster gave 0); null before start(). */
  get address(): NodeAddress | null {
    return this.listener?.address ?? null;
  }

  /**
   * Sends a data frame to `node`. `segments` (the payload, e.g. two views of
   * a wrapped ring) are kept, not copied, until onAcked covers the frame or
   * onFailed returns it: they must not change until then. 'full' means the
   * link's window is full; onDrain follows.
   */
  send(
    node: string,
    type: number,
    ids: FrameIds,
    value: number,
    segments: readonly Uint8Array[],
    flags = 0,
  ): SendResult {
    if (this.closed) throw new Error('fabric closed');
    const link = this.links.get(node);
    if (!link) return UNKNOWN;
    if (!Number.isInteger(type) || type < FIRST_DATA_TYPE || type > 0xff)
      throw new RangeError(`frame type ${type} is not a data type (${FIRST_DATA_TYPE}..255)`);
    if (!isU32(ids.channel) || !isU32(ids.socket) || !isU32(value))
      throw new RangeError('channel, socket and value must be u32');
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff)
      throw new RangeError(`flags ${flags} is not a u16`);
    const seq = link.send(type, flags, ids.channel, ids.socket, value, segments);
    return seq === null ? FULL : { ok: true, seq };
  }

  /** Drops the link's current connection as a network cut would (tests); false when it had none. */
  debugCutLink(node: string): boolean {
    return this.links.get(node)?.cut() ?? false;
  }

  stats(): FabricStats {
    const links: Record<string, LinkStats> = {};
    for (const [node, link] of this.links) links[node] = link.stats();
    return {
      self: this.cluster.self,
      incarnation: this.incarnation,
      authenticated: this.cluster.secret !== undefined,
      encrypted: this.cluster.tls !== undefined,
      refused: { ...this.refused },
      handshaking: this.pending.size,
      links,
    };
  }

  /** Stops every link, timer and connection, and the listener. Unacknowledged frames are not reported. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    for (const conn of this.pending.clear()) conn.drop();
    await this.listener?.close();
    this.listener = null;
    this.log.info('fabric closed');
  }

  /**
   * An inbound connection: it gets deadMs to finish its handshake (TLS,
   * HELLO and, with a secret, CHALLENGE and PROOF: auth.ts), then belongs
   * to that peer's link. Nothing of a link is touched before.
   */
  private accept(conn: Conn): void {
    if (this.closed) return conn.drop();
    this.pending.add(conn, hostOf(conn.wire.remote));
    /** The HELLO taken and the CHALLENGE sent, while the PROOF is awaited. */
    let asked: { hello: Hello; frame: Frame; t: Transcript } | null = null;
    const done = (): boolean => this.pending.delete(conn);
    conn.setHandlers({
      frame: (f) => {
        if (!this.pending.has(conn)) return;
        if (asked === null) {
          asked = this.hello(conn, f);
          return;
        }
        // The same HELLO again (a duplicated packet) while the PROOF is awaited: nothing new.
        if (f.type === LinkType.HELLO) return;
        done();
        this.proof(conn, f, asked);
      },
      bad: (e) => {
        done();
        this.refuse(conn, e.kind, e.message);
      },
      closed: () => {
        if (!done()) return;
        const tls = conn.wire.authFailure?.();
        if (tls) this.refuse(conn, 'badTls', tls);
      },
    });
  }

  /**
   * The first frame: a HELLO from a node of the cluster (over TLS, one its
   * certificate names). Without a secret it opens the link at once; with
   * one it is answered with a CHALLENGE, and returned.
   */
  private hello(conn: Conn, f: Frame): { hello: Hello; frame: Frame; t: Transcript } | null {
    const fail = (kind: BadKind, why: string): null => {
      this.pending.delete(conn);
      this.refuse(conn, kind, why);
      return null;
    };
    if (f.type !== LinkType.HELLO) return fail('badHello', `first frame has type ${f.type}, not HELLO`);
    const h = parseHello(f.payload);
    if (typeof h === 'string') return fail('badHello', h);
    const refusal = refuseHello(h, f.src, this.cluster);
    if (refusal) return fail(refusal.kind, refusal.why);
    const names = conn.wire.peerNames;
    if (this.cluster.tls && !names?.includes(h.from))
      return fail(
        'badTls',
        `HELLO says '${h.from}', its certificate names ${names?.join(', ') || 'no node'}`,
      );
    const secret = this.cluster.secret;
    if (!secret) {
      this.pending.delete(conn);
      this.links.get(h.from)!.adopt(conn, h, f.ack);
      return null;
    }
    if (h.nonce === undefined)
      return fail('badAuth', `HELLO from '${h.from}' without a nonce: the peer has no cluster secret`);
    const t: Transcript = {
      dialer: h.from,
      acceptor: this.cluster.self,
      dialerIncarnation: h.incarnation,
      acceptorIncarnation: this.incarnation,
      dialerNonce: h.nonce,
      acceptorNonce: newNonce(),
      hello: f.payload,
      helloAck: f.ack,
      binding: conn.wire.binding?.() ?? new Uint8Array(0),
    };
    const challenge = encodeChallenge({
      incarnation: this.incarnation,
      nonce: t.acceptorNonce,
      proof: proofOf(secret, 'acceptor', t),
    });
    conn.write(
      encodeFrame(
        {
          type: LinkType.CHALLENGE,
          flags: 0,
          src: this.selfIndex,
          seq: 0,
          ack: 0,
          channel: 0,
          socket: 0,
          value: 0,
        },
        [challenge],
      ),
    );
    return { hello: h, frame: f, t };
  }

  /** The frame after our CHALLENGE: a PROOF of the secret over this exchange, or the connection is refused. */
  private proof(conn: Conn, f: Frame, asked: { hello: Hello; frame: Frame; t: Transcript }): void {
    const from = asked.hello.from;
    if (f.type !== LinkType.PROOF)
      return this.refuse(conn, 'badAuth', `'${from}' sent frame type ${f.type} instead of its PROOF`);
    if (f.src !== asked.frame.src)
      return this.refuse(conn, 'badAuth', `PROOF with source id ${f.src}, the HELLO had ${asked.frame.src}`);
    const p = parseProof(f.payload);
    if (typeof p !== 'string') return this.refuse(conn, 'badAuth', p.bad);
    if (!proofMatches(this.cluster.secret!, 'dialer', asked.t, p))
      return this.refuse(
        conn,
        'badAuth',
        `'${from}' failed to prove the cluster secret (another secret, or a replayed exchange)`,
      );
    this.links.get(from)!.adopt(conn, asked.hello, asked.frame.ack);
  }

  private refuse(conn: Conn, kind: BadKind, why: string): void {
    this.refused[kind]++;
    this.warn.warn(
      `fabric-refused-${kind}`,
      { kind, remote: conn.wire.remote },
      `fabric connection refused: ${why}`,
    );
    conn.drop();
  }
}
