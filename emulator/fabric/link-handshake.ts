/**
 * The link's handshake as decisions the link acts on: link.ts keeps the
 * connection and the session, this says what the handshake frames mean.
 *
 *  - helloOf: the HELLO (dialer) or WELCOME (acceptor) an end sends;
 *  - acceptVerdict: whether a HELLO the acceptor took resumes its session;
 *  - DialerHandshake: the dialer's side of one connection: its HELLO with a
 *    fresh nonce, the acceptor's CHALLENGE checked and the PROOF to answer
 *    with (auth.ts);
 *  - checkWelcome: the WELCOME that ends the dialer's handshake.
 *
 * A refusal names the kind the link counts it under; the link then resets
 * the connection (a reconnect starts the handshake over).
 */
import { encodeProof, newNonce, parseChallenge, proofMatches, proofOf, type Transcript } from './auth.js';
import type { Cluster } from './cluster.js';
import { LinkType, type Frame } from './frame.js';
import { encodeHello, parseHello, refuseHello, type Hello } from './hello.js';
import type { BadKind, LinkOptions } from './link-types.js';

/** The two ends of a link. */
export interface LinkEnds {
  readonly cluster: Cluster;
  /** This process's incarnation. */
  readonly incarnation: string;
  readonly peer: string;
}

/** Input refused: counted under `kind`, and the connection reset. */
export interface Refusal {
  readonly kind: BadKind;
  readonly why: string;
}

/** What this end says in its HELLO or WELCOME: who it is, its session, the session it last failed, its window. */
export function helloOf(ends: LinkEnds, session: string, left: string, o: LinkOptions): Hello {
  const { cluster } = ends;
  return {
    from: cluster.self,
    to: ends.peer,
    cluster: cluster.hash,
    incarnation: ends.incarnation,
    session,
    left,
    windowFrames: o.windowFrames,
    windowBytes: o.windowBytes,
  };
}

/**
 * The acceptor's verdict on a HELLO it took, given its own session and the
 * peer's incarnation it knew: `resume` when both name the same session;
 * `unseen` when the dialer has no session, did not leave ours and has not
 * restarted: it never saw the WELCOME that opened ours (the connection went
 * first) and holds nothing of it, so the session goes on from its first
 * frame instead of failing everything sent in it; else `fresh`.
 */
export function acceptVerdict(
  hello: Hello,
  session: string,
  peerIncarnation: string,
): 'resume' | 'unseen' | 'fresh' {
  if (hello.session !== '' && hello.session === session) return 'resume';
  const unseen =
    hello.session === '' &&
    session !== '' &&
    (hello.left ?? '') !== session &&
    hello.incarnation === peerIncarnation;
  return unseen ? 'unseen' : 'fresh';
}

/**
 * The dialer's side of the authentication on one connection: its HELLO
 * (nonce, payload, the ack it carried) and, once the CHALLENGE checked out,
 * the acceptor's transcript.
 */
export class DialerHandshake {
  /** The HELLO's payload, as sent. */
  readonly hello: Uint8Array;
  private readonly nonce = newNonce();
  private provenT: Transcript | null = null;

  /** `hello` is sent with a fresh nonce and `ack` in its header. */
  constructor(
    private readonly ends: LinkEnds,
    hello: Hello,
    private readonly ack: number,
  ) {
    this.hello = encodeHello({ ...hello, nonce: this.nonce });
  }

  /** The acceptor's transcript once its CHALLENGE checked out, else null. */
  get proven(): Transcript | null {
    return this.provenT;
  }

  /**
   * The acceptor proves the secret over our fresh nonce and its own: the
   * PROOF payload to answer with, 'duplicate' when a CHALLENGE already
   * checked out on this connection, or a refusal. `binding` gives the TLS
   * session's keying material (empty without TLS).
   */
  challenge(f: Frame, binding: () => Uint8Array): Uint8Array | 'duplicate' | Refusal {
    const { cluster, peer } = this.ends;
    const secret = cluster.secret;
    if (!secret)
      return {
        kind: 'badAuth',
        why: `'${peer}' asks for authentication, and this node has no cluster secret (--fabric-secret)`,
      };
    if (this.provenT !== null) return 'duplicate';
    const c = parseChallenge(f.payload);
    if (typeof c === 'string') return { kind: 'badAuth', why: c };
    const t: Transcript = {
      dialer: cluster.self,
      acceptor: peer,
      dialerIncarnation: this.ends.incarnation,
      acceptorIncarnation: c.incarnation,
      dialerNonce: this.nonce,
      acceptorNonce: c.nonce,
      hello: this.hello,
      helloAck: this.ack,
      binding: binding(),
    };
    if (!proofMatches(secret, 'acceptor', t, c.proof))
      return {
        kind: 'badAuth',
        why: `'${peer}' failed to prove the cluster secret (another secret, or a replayed exchange)`,
      };
    this.provenT = t;
    return encodeProof(proofOf(secret, 'dialer', t));
  }
}

/**
 * The frame that should be the WELCOME answering our HELLO (`auth`: this
 * connection's handshake, null if none): the acceptor's Hello, or a
 * refusal. With a cluster secret the acceptor must have proven it first,
 * from the incarnation that WELCOMEs us.
 */
export function checkWelcome(f: Frame, ends: LinkEnds, auth: DialerHandshake | null): Hello | Refusal {
  if (f.type !== LinkType.WELCOME)
    return { kind: 'unexpected', why: `expected WELCOME, got frame type ${f.type}` };
  const proven = auth?.proven ?? null;
  if (ends.cluster.secret && proven === null)
    return {
      kind: 'badAuth',
      why: `'${ends.peer}' answered without authenticating (it has no cluster secret)`,
    };
  const h = parseHello(f.payload);
  if (typeof h === 'string') return { kind: 'badHello', why: h };
  if (h.session === '') return { kind: 'badHello', why: 'WELCOME without a session' };
  const refusal = refuseHello(h, f.src, ends.cluster, ends.peer);
  if (refusal) return refusal;
  if (proven !== null && h.incarnation !== proven.acceptorIncarnation)
    return {
      kind: 'badAuth',
      why: `WELCOME from incarnation ${h.incarnation}, the CHALLENGE from ${proven.acceptorIncarnation}`,
    };
  return h;
}

/** Whether a handshake step's answer is a refusal. */
export function isRefusal(x: unknown): x is Refusal {
  return typeof x === 'object' && x !== null && 'why' in x;
}
