/**
 * Test support: the hostile test peer. It speaks the fabric's wire
 * protocol by hand over plain TCP, frame by frame, so a test can send what
 * a real node never would: a HELLO without the secret, a replayed
 * exchange, another node's name, a handshake never finished. It plays node
 * 'a' (source id 0) talking to 'b' unless told otherwise, and can
 * authenticate as the real node would (auth.ts) when given the secret.
 */
import { connect, type Socket } from 'node:net';
import {
  encodeChallenge,
  encodeProof,
  newNonce,
  parseChallenge,
  parseProof,
  proofMatches,
  proofOf,
  type Transcript,
} from './auth.js';
import {
  encodeFrame,
  FIRST_DATA_TYPE,
  FrameDecoder,
  LinkType,
  type Frame,
  type FrameHeader,
} from './frame.js';
import { encodeHello, parseHello, type Hello } from './hello.js';

/** A data frame type, as the data plane would number one. */
export const RAW_MSG = FIRST_DATA_TYPE + 2;
const NO_BINDING = new Uint8Array(0);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class RawPeer {
  /** Every peer made and not yet destroyed, for a test's cleanup (destroyAll). */
  private static readonly live = new Set<RawPeer>();
  readonly frames: Frame[] = [];
  closed = false;
  /** Every byte this peer wrote, frame by frame (a captured exchange, for replaying). */
  readonly sent: Uint8Array[] = [];
  /** This end's port: how the node's log lines name the connection ("remote"). */
  readonly port: number;
  private readonly decoder = new FrameDecoder((f) => this.frames.push(f));

  private constructor(
    readonly socket: Socket,
    /** Cluster.hash, for the HELLOs it sends. */
    private readonly hash: number,
  ) {
    this.port = socket.localPort ?? 0;
    RawPeer.live.add(this);
    socket.on('data', (c) => this.decoder.push(c));
    socket.on('close', () => {
      this.closed = true;
      RawPeer.live.delete(this);
    });
    socket.on('error', () => {});
  }

  static async connect(port: number, hash: number, host = '127.0.0.1'): Promise<RawPeer> {
    const s = connect(port, host);
    await new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject));
    return new RawPeer(s, hash);
  }

  /** A connection a node made to a listener of the test's. */
  static wrap(s: Socket, hash: number): RawPeer {
    return new RawPeer(s, hash);
  }

  static destroyAll(): void {
    for (const p of RawPeer.live) p.socket.destroy();
    RawPeer.live.clear();
  }

  send(h: Partial<FrameHeader>, payload: Uint8Array[] = []): void {
    const chunks = encodeFrame(
      { type: RAW_MSG, flags: 0, src: 0, seq: 0, ack: 0, channel: 0, socket: 0, value: 0, ...h },
      payload,
    );
    this.sent.push(Buffer.concat(chunks));
    for (const c of chunks) this.socket.write(c);
  }

  /** Sends a HELLO (with a fresh nonce unless `over` says otherwise); returns what the proofs will cover. */
  hello(over: Partial<Hello> = {}, head: Partial<FrameHeader> = {}): { payload: Uint8Array; hello: Hello } {
    const h: Hello = {
      from: 'a',
      to: 'b',
      cluster: this.hash,
      incarnation: 'feed',
      session: '',
      nonce: newNonce(),
      windowFrames: 64,
      windowBytes: 1 << 20,
      ...over,
    };
    const payload = encodeHello(h);
    this.send({ type: LinkType.HELLO, ...head }, [payload]);
    return { payload, hello: h };
  }

  /** The next frame the node sends, or null if none comes within `ms` (it closed the connection, say). */
  async next(ms = 5_000): Promise<Frame | null> {
    const end = Date.now() + ms;
    while (this.frames.length === 0 && !this.closed && Date.now() < end) await sleep(5);
    return this.frames.shift() ?? null;
  }

  async gone(ms = 5_000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!this.closed && Date.now() < end) await sleep(5);
    return this.closed;
  }

  /**
   * The dialer's handshake by hand: HELLO, the node's CHALLENGE (its proof
   * checked against `check`, the real secret), our PROOF made with
   * `secret`. Throws when no CHALLENGE comes or its proof is wrong.
   */
  async authenticate(
    secret: Uint8Array,
    o: { session?: string; ack?: number; check?: Uint8Array; over?: Partial<Hello> } = {},
  ): Promise<{ t: Transcript; challenge: Frame }> {
    const ack = o.ack ?? 0;
    const { payload, hello } = this.hello({ session: o.session ?? '', ...o.over }, { ack });
    const ch = await this.next();
    if (ch?.type !== LinkType.CHALLENGE) throw new Error(`no CHALLENGE (got ${ch?.type ?? 'nothing'})`);
    const c = parseChallenge(ch.payload);
    if (typeof c === 'string') throw new Error(c);
    const t: Transcript = {
      dialer: hello.from,
      acceptor: hello.to,
      dialerIncarnation: hello.incarnation,
      acceptorIncarnation: c.incarnation,
      dialerNonce: hello.nonce!,
      acceptorNonce: c.nonce,
      hello: payload,
      helloAck: ack,
      binding: NO_BINDING,
    };
    if (!proofMatches(o.check ?? secret, 'acceptor', t, c.proof))
      throw new Error("the node's CHALLENGE does not prove the secret");
    this.send({ type: LinkType.PROOF }, [encodeProof(proofOf(secret, 'dialer', t))]);
    return { t, challenge: ch };
  }

  /** Authenticates and returns the WELCOME's session and the last seq the node says it delivered. */
  async join(secret: Uint8Array, session = '', ack = 0): Promise<{ session: string; delivered: number }> {
    await this.authenticate(secret, { session, ack });
    const w = await this.next();
    if (w?.type !== LinkType.WELCOME) throw new Error(`no WELCOME (got ${w?.type ?? 'nothing'})`);
    const h = parseHello(w.payload);
    if (typeof h === 'string') throw new Error(h);
    return { session: h.session, delivered: w.ack };
  }

  /**
   * The acceptor's handshake by hand, as node `self` (source id `src`) for
   * the node's dial on this connection: its HELLO, our CHALLENGE made with
   * `secret`, its PROOF checked against `check`. Returns its HELLO, or null
   * when it closed before a PROOF; throws when the PROOF is wrong.
   */
  async accept(
    secret: Uint8Array,
    o: { self?: string; src?: number; incarnation?: string; check?: Uint8Array } = {},
  ): Promise<Hello | null> {
    const hf = await this.next();
    if (hf?.type !== LinkType.HELLO) throw new Error(`no HELLO (got ${hf?.type ?? 'nothing'})`);
    const h = parseHello(hf.payload);
    if (typeof h === 'string') throw new Error(h);
    const incarnation = o.incarnation ?? 'cafe';
    const t: Transcript = {
      dialer: h.from,
      acceptor: o.self ?? 'c',
      dialerIncarnation: h.incarnation,
      acceptorIncarnation: incarnation,
      dialerNonce: h.nonce!,
      acceptorNonce: newNonce(),
      hello: hf.payload,
      helloAck: hf.ack,
      binding: NO_BINDING,
    };
    this.send({ type: LinkType.CHALLENGE, src: o.src ?? 2 }, [
      encodeChallenge({ incarnation, nonce: t.acceptorNonce, proof: proofOf(secret, 'acceptor', t) }),
    ]);
    const pf = await this.next();
    if (pf === null) return null;
    const p = pf.type === LinkType.PROOF ? parseProof(pf.payload) : { bad: `frame type ${pf.type}` };
    if (typeof p !== 'string' || !proofMatches(o.check ?? secret, 'dialer', t, p))
      throw new Error('no valid PROOF from the dialer');
    return h;
  }
}
