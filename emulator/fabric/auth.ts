/**
 * Peer authentication at the fabric's handshake: each end proves it knows
 * the cluster secret with an HMAC-SHA-256 over a transcript that holds a
 * fresh nonce from each side, both node names and both incarnations.
 *
 *   dialer                                          acceptor
 *   HELLO {from, to, incarnation Id, nonce Nd, ...}  ->
 *                                                    <-  CHALLENGE {incarnation Ia, nonce Na, proof: MAC('acceptor', T)}
 *   PROOF {proof: MAC('dialer', T)}                  ->
 *                                                    <-  WELCOME (the session verdict: link-handshake.ts)
 *
 * T = the names, incarnations and nonces of both, a hash of the HELLO's
 * payload and its ack (so nothing the acceptor acts on can be changed),
 * and, over TLS, keying material exported from the TLS session (a proof
 * made for one TLS connection is worthless on another). A reply replayed
 * from an earlier exchange fails: the other side's nonce is new. The role
 * is in the MAC, so an acceptor's proof cannot be reflected as a dialer's.
 * The acceptor checks PROOF, and the dialer CHALLENGE, before either looks
 * at any session: a peer that fails cannot resume, replace or fail one.
 *
 * The secret is the same for every node of the cluster: a node that holds
 * it can claim any name (per-node identity comes with the TLS certificates,
 * tls.ts). Without TLS the frames after the handshake are not protected
 * from someone on the path (docs/fabric-security.md).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';

/** 32 random bytes, hex. */
const HEX32 = /^[0-9a-f]{64}$/;
const ID = /^[0-9a-f]{1,32}$/;
const LABEL = 'sgiov-fabric-auth-v1';
/** Bounds on the secret file's content (after trailing white space, e.g. the newline of `openssl rand -hex 32`). */
const SECRET_MIN = 16;
const SECRET_MAX = 4096;

export type Role = 'dialer' | 'acceptor';

export const newNonce = (): string => randomBytes(32).toString('hex');
export const isNonce = (s: unknown): s is string => typeof s === 'string' && HEX32.test(s);

/**
 * A file only its owner may read or write (mode 0600 or 0400): `what` names
 * the flag or field in errors. Refused rather than warned about: a secret
 * others could read is no secret, and a start that fails says so at once.
 */
export function readOwnerOnly(path: string, what: string): Buffer {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new Error(`${what}: cannot read ${path}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`${what}: ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0)
    throw new Error(
      `${what}: ${path} has mode ${(st.mode & 0o777).toString(8)}: group or others may read or write it (chmod 600 ${path})`,
    );
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The cluster secret from its file (owner-only, 16..4096 bytes once trailing white space is cut). */
export function loadSecret(path: string, what: string): Uint8Array {
  const raw = readOwnerOnly(path, what);
  let end = raw.length;
  while (end > 0 && (raw[end - 1] === 0x0a || raw[end - 1] === 0x0d || raw[end - 1] === 0x20)) end--;
  if (end < SECRET_MIN || end > SECRET_MAX)
    throw new Error(
      `${what}: ${path} holds ${end} bytes; a secret has ${SECRET_MIN}..${SECRET_MAX} (e.g. openssl rand -hex 32)`,
    );
  return new Uint8Array(raw.subarray(0, end));
}

/** What both proofs of one handshake cover. */
export interface Transcript {
  dialer: string;
  acceptor: string;
  dialerIncarnation: string;
  acceptorIncarnation: string;
  dialerNonce: string;
  acceptorNonce: string;
  /** The HELLO's payload and its header's ack. */
  hello: Uint8Array;
  helloAck: number;
  /** Keying material exported from the TLS session; empty without TLS. */
  binding: Uint8Array;
}

/** HMAC-SHA-256 over the transcript, each field length-prefixed (no two transcripts encode alike). */
export function proofOf(secret: Uint8Array, role: Role, t: Transcript): string {
  const mac = createHmac('sha256', secret);
  const field = (v: string | Uint8Array): void => {
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    mac.update(len);
    mac.update(b);
  };
  field(LABEL);
  field(role);
  field(t.dialer);
  field(t.acceptor);
  field(t.dialerIncarnation);
  field(t.acceptorIncarnation);
  field(t.dialerNonce);
  field(t.acceptorNonce);
  field(createHash('sha256').update(t.hello).digest());
  field(String(t.helloAck));
  field(t.binding);
  return mac.digest('hex');
}

/** Whether `proof` is `role`'s for `t` (compared in constant time). */
export function proofMatches(secret: Uint8Array, role: Role, t: Transcript, proof: string): boolean {
  if (!HEX32.test(proof)) return false;
  return timingSafeEqual(Buffer.from(proofOf(secret, role, t), 'hex'), Buffer.from(proof, 'hex'));
}

/** The acceptor's answer to a HELLO. */
export interface Challenge {
  incarnation: string;
  nonce: string;
  proof: string;
}

const json = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));

function parseObject(payload: Uint8Array, what: string): Record<string, unknown> | string {
  try {
    const v: unknown = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* below */
  }
  return `${what} payload is not a JSON object`;
}

export const encodeChallenge = (c: Challenge): Uint8Array => json(c);

export function parseChallenge(payload: Uint8Array): Challenge | string {
  const o = parseObject(payload, 'CHALLENGE');
  if (typeof o === 'string') return o;
  if (typeof o.incarnation !== 'string' || !ID.test(o.incarnation)) return 'CHALLENGE: bad incarnation';
  if (!isNonce(o.nonce)) return 'CHALLENGE: bad nonce';
  if (typeof o.proof !== 'string' || !HEX32.test(o.proof)) return 'CHALLENGE: bad proof';
  return { incarnation: o.incarnation, nonce: o.nonce, proof: o.proof };
}

export const encodeProof = (proof: string): Uint8Array => json({ proof });

export function parseProof(payload: Uint8Array): string | { bad: string } {
  const o = parseObject(payload, 'PROOF');
  if (typeof o === 'string') return { bad: o };
  if (typeof o.proof !== 'string' || !HEX32.test(o.proof)) return { bad: 'PROOF: bad proof' };
  return o.proof;
}
