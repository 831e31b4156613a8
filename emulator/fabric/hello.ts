/**
 * The handshake frames. The dialer sends HELLO, the acceptor answers
 * WELCOME (with the cluster secret, after CHALLENGE and PROOF: auth.ts); both carry the same JSON payload, and in the header's ack field
 * the last link seq the sender delivered (so the other side knows what to
 * retransmit). In WELCOME, `session` is the acceptor's verdict: the
 * dialer's session when it resumes, a new one otherwise.
 */
import { isNonce } from './auth.js';
import type { Cluster } from './cluster.js';

export interface Hello {
  /** The sender's node name. */
  from: string;
  /** The node the sender thinks it is talking to. */
  to: string;
  /** Cluster.hash of the sender's description. */
  cluster: number;
  /** Random per process start: a change means the peer restarted. */
  incarnation: string;
  /** The link session the sender is in ('' for none). */
  session: string;
  /**
   * The last session the sender failed ('' for none; absent from older
   * senders). With `session` '' it tells "I left your session" from "I
   * never saw the WELCOME that opened it".
   */
  left?: string;
  /** The dialer's fresh nonce for the authentication (auth.ts); absent from older senders. */
  nonce?: string;
  /** The sender's unacked window, so the receiver acks well before it fills. */
  windowFrames: number;
  windowBytes: number;
}

export type HelloRefusal = { kind: 'unknownNode' | 'badHello'; why: string };

const ID = /^[0-9a-f]{0,32}$/;

export function encodeHello(h: Hello): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(h));
}

/** The payload as a Hello, or why it is not one. */
export function parseHello(payload: Uint8Array): Hello | string {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return 'HELLO payload is not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'HELLO payload is not an object';
  const o = v as Record<string, unknown>;
  const str = (k: string, re: RegExp): boolean => typeof o[k] === 'string' && re.test(o[k]);
  const count = (k: string): boolean => Number.isSafeInteger(o[k]) && (o[k] as number) > 0;
  if (!str('from', /^[a-z0-9_-]{1,32}$/) || !str('to', /^[a-z0-9_-]{1,32}$/)) return 'HELLO: bad from/to';
  if (!str('incarnation', ID) || !str('session', ID)) return 'HELLO: bad incarnation/session';
  if (o.left !== undefined && !str('left', ID)) return 'HELLO: bad left';
  if (o.nonce !== undefined && !isNonce(o.nonce)) return 'HELLO: bad nonce';
  if (!Number.isInteger(o.cluster) || !count('windowFrames') || !count('windowBytes'))
    return 'HELLO: bad cluster/window';
  return o as unknown as Hello;
}

/**
 * Whether `h` (sent with source id `src`) may open a link to us: null if
 * so. `expect` is the node we dialed when `h` is the WELCOME answering our
 * dial; without it `h` is a HELLO we accepted, whose sender must be the
 * node that dials us.
 */
export function refuseHello(h: Hello, src: number, cluster: Cluster, expect?: string): HelloRefusal | null {
  if (!cluster.nodes.has(h.from))
    return { kind: 'unknownNode', why: `node '${h.from}' is not in the cluster description` };
  if (h.from === cluster.self) return { kind: 'badHello', why: `peer claims to be this node ('${h.from}')` };
  if (h.to !== cluster.self)
    return {
      kind: 'badHello',
      why: `'${h.from}' thinks it is talking to '${h.to}', this is '${cluster.self}'`,
    };
  if (h.cluster !== cluster.hash)
    return {
      kind: 'badHello',
      why: `'${h.from}' has another cluster description (hash ${h.cluster}, ours ${cluster.hash})`,
    };
  if (cluster.names[src] !== h.from) return { kind: 'badHello', why: `'${h.from}' uses source id ${src}` };
  if (expect !== undefined && h.from !== expect)
    return { kind: 'badHello', why: `dialed '${expect}' but '${h.from}' answered` };
  if (expect === undefined && !dials(h.from, cluster.self))
    return { kind: 'badHello', why: `'${h.from}' dialed, but '${cluster.self}' is the one that dials it` };
  return null;
}

/**
 * Which end of a link dials: the node with the lower name. One fixed rule
 * means two nodes never dial each other at once, so there are no crossed
 * connections to break ties on; a second connection from the same dialer
 * can only mean the first is dead, and replaces it.
 */
export function dials(a: string, b: string): boolean {
  return a < b;
}
