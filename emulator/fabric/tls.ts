/**
 * Encryption of the fabric's connections (`--fabric-tls`): node:tls,
 * TLS 1.3 only, both ends presenting a certificate from the cluster's CA
 * (mutual TLS), each certificate naming its node (subject CN or a DNS
 * subjectAltName). The fabric checks that a peer's certificate names the
 * node it claims to be (or the node dialed), so with TLS a node's identity
 * is its own key, not only the cluster secret every node shares.
 *
 * Why node:tls and not kernel TLS: kTLS would let the device loop keep
 * reading the sockets itself (tcp.ts, "Reads"), but this kernel offers no
 * "tls" upper layer protocol (/proc/sys/net/ipv4/tcp_available_ulp), so it
 * could be neither used nor tested here; the TLS connections are read by
 * node in the event loop instead (docs/fabric-security.md has the cost).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { readOwnerOnly } from './auth.js';

export interface FabricTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

/** PEM contents, checked: the key fits the certificate, the CA signed it, and it names this node. */
export interface FabricTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

/** The label of the keying material the authentication binds to (RFC 5705 / 8446 exporter). */
export const EXPORTER_LABEL = 'EXPORTER-sgiov-fabric-auth';
export const EXPORTER_BYTES = 32;

function read(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${what}: cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Loads and checks the files; `what(field)` names a field in errors ("--fabric-cert"). */
export function loadFabricTls(
  files: FabricTlsFiles,
  self: string,
  what: (f: keyof FabricTlsFiles) => string,
): FabricTls {
  const ca = read(files.ca, what('ca'));
  const cert = read(files.cert, what('cert'));
  const key = readOwnerOnly(files.key, what('key'));
  let x: X509Certificate;
  let caX: X509Certificate;
  try {
    caX = new X509Certificate(ca);
  } catch (e) {
    throw new Error(`${what('ca')}: ${files.ca} is not a PEM certificate: ${(e as Error).message}`);
  }
  try {
    x = new X509Certificate(cert);
  } catch (e) {
    throw new Error(`${what('cert')}: ${files.cert} is not a PEM certificate: ${(e as Error).message}`);
  }
  try {
    if (!x.checkPrivateKey(createPrivateKey(key)))
      throw new Error(`${files.key} is not the key of ${files.cert}`);
  } catch (e) {
    throw new Error(`${what('key')}: ${(e as Error).message}`);
  }
  if (!x.verify(caX.publicKey))
    throw new Error(`${what('cert')}: ${files.cert} is not signed by ${files.ca}`);
  const names = x509Names(x.subject, x.subjectAltName);
  if (!names.includes(self))
    throw new Error(
      `${what('cert')}: ${files.cert} names ${names.length ? names.join(', ') : 'no node'}, not this node '${self}' (subject CN or DNS subjectAltName)`,
    );
  return { ca, cert, key };
}

/** Node names in a certificate's subject CN and DNS subjectAltNames. */
function x509Names(subject: string | undefined, altNames: string | undefined): string[] {
  const out: string[] = [];
  for (const line of (subject ?? '').split('\n')) if (line.startsWith('CN=')) out.push(line.slice(3));
  for (const part of (altNames ?? '').split(',')) {
    const p = part.trim();
    if (p.startsWith('DNS:')) out.push(p.slice(4));
  }
  return [...new Set(out)];
}

/** The node names a verified peer certificate carries. */
export function peerCertNames(c: PeerCertificate): string[] {
  const cn = c.subject?.CN;
  const cns = cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
  return [...new Set([...cns, ...x509Names(undefined, c.subjectaltname)])];
}

/** The options both ends use. */
export function tlsOptions(t: FabricTls) {
  return {
    ca: t.ca,
    cert: t.cert,
    key: t.key,
    minVersion: 'TLSv1.3' as const,
    rejectUnauthorized: true,
  };
}
