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
import { FIRST_DATA_TYPE, FRAME_CRC_IMPL, LinkType, type Frame, type FrameHeader } from './frame.js';
import { parseHello, refuseHello } from './hello.js';
import {
  DEFAULT_LINK_OPTIONS,
  Link,
  zeroBadCounts,
  type BadCounts,
  type BadKind,
  type LinkOptions,
  type LinkState,
  type LinkStateInfo,
  type LinkStats,
} from './link.js';
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
  /** Connections refused before they could belong to a link (bad first frame, bad or foreign HELLO). */
  refused: BadCounts;
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
  /** Accepted connections that have not sent their HELLO yet, with the timer that gives up on them. */
  private readonly pending = new Map<Conn, NodeJS.Timeout>();
  private readonly refused = zeroBadCounts();
  private readonly cluster: Cluster;
  private readonly transport: FabricTransport;
  private readonly log: Logger;
  private readonly warn: RateLimitedLog;
  private readonly opts: LinkOptions;
  private listener: FabricListener | null = null;
  private closed = false;

  constructor(
    options: FabricOptions,
    private readonly events: FabricEvents,
  ) {
    const { cluster, transport, log, faults, ...linkOpts } = options;
    this.cluster = cluster;
    this.transport = transport ?? new TcpTransport();
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
      },
      'fabric listening',
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
    return { self: this.cluster.self, incarnation: this.incarnation, refused: { ...this.refused }, links };
  }

  /** Stops every link, timer and connection, and the listener. Unacknowledged frames are not reported. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    for (const [conn, timer] of this.pending) {
      clearTimeout(timer);
      conn.drop();
    }
    this.pending.clear();
    await this.listener?.close();
    this.listener = null;
    this.log.info('fabric closed');
  }

  /** An inbound connection: it gets deadMs to present a valid HELLO, then belongs to that peer's link. */
  private accept(conn: Conn): void {
    if (this.closed) return conn.drop();
    const forget = (): void => {
      clearTimeout(this.pending.get(conn));
      this.pending.delete(conn);
    };
    this.pending.set(
      conn,
      setTimeout(() => {
        forget();
        this.refuse(conn, 'badHello', `no HELLO within ${this.opts.deadMs} ms`);
      }, this.opts.deadMs),
    );
    conn.setHandlers({
      frame: (f) => {
        forget();
        this.hello(conn, f);
      },
      bad: (e) => {
        forget();
        this.refuse(conn, e.kind, e.message);
      },
      closed: forget,
    });
  }

  private hello(conn: Conn, f: Frame): void {
    if (f.type !== LinkType.HELLO)
      return this.refuse(conn, 'badHello', `first frame has type ${f.type}, not HELLO`);
    const h = parseHello(f.payload);
    if (typeof h === 'string') return this.refuse(conn, 'badHello', h);
    const refusal = refuseHello(h, f.src, this.cluster);
    if (refusal) return this.refuse(conn, refusal.kind, refusal.why);
    this.links.get(h.from)!.adopt(conn, h, f.ack);
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
