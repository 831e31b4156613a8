/**
 * The cluster description: which emulator instances ("nodes") exist, where
 * each one listens, and which of them this process is.
 *
 *   { "self": "a", "nodes": { "a": "10.0.0.1:7000", "b": "10.0.0.2:7000" },
 *     "secret": "fabric.secret",
 *     "tls": { "ca": "ca.pem", "cert": "a.pem", "key": "a.key" } }
 *
 * from a JSON file (--cluster FILE; its paths relative to the file) or from
 * flags (--node a=host:port repeated, --self a, --fabric-secret FILE,
 * --fabric-tls with --fabric-ca/--fabric-cert/--fabric-key). The secret is
 * always a file, never text on the command line (auth.ts); "tls" or
 * --fabric-tls encrypts the links (tls.ts) and needs the secret too. Every
 * error names the field or flag it is about, so a typo in a 20-node file is
 * found without guessing.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { crc32c } from '../util/crc.js';
import { loadSecret } from './auth.js';
import { loadFabricTls, type FabricTls, type FabricTlsFiles } from './tls.js';

export interface NodeAddress {
  host: string;
  port: number;
}

export interface Cluster {
  self: string;
  /** Every node, self included. */
  nodes: ReadonlyMap<string, NodeAddress>;
  /** The names, sorted: a node's index here is its source id in frame headers. */
  names: readonly string[];
  /**
   * CRC32C of the sorted names. Both ends of a link must agree on who is in
   * the cluster; addresses are left out because a node may be reached at
   * another address than the one it listens on (0.0.0.0, NAT, port 0 in tests).
   */
  hash: number;
  /** The cluster secret (auth.ts); absent: the fabric is unauthenticated. */
  secret?: Uint8Array;
  /** TLS on every link (tls.ts); absent: plain TCP. */
  tls?: FabricTls;
  /** Where they came from, so that another thread can load them again (the worker gets plain data). */
  files?: { secret?: string; tls?: FabricTlsFiles };
}

const NAME = /^[a-z0-9_-]{1,32}$/;
/** Source ids are u16 in the frame header. */
const MAX_NODES = 0xffff;

export function formatAddress(a: NodeAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** "host:port" or "[v6]:port"; `field` names the input in the error. */
export function parseAddress(text: string, field: string): NodeAddress {
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw new Error(`${field}: '${text}' is not host:port`);
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === '' || /[\s[\]/]/.test(host)) throw new Error(`${field}: '${text}' has no valid host`);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new Error(`${field}: port '${portText}' is not in 1..65535`);
  }
  return { host, port: Number(portText) };
}

function checkName(name: string, field: string): void {
  if (!NAME.test(name)) throw new Error(`${field}: node name '${name}' must match [a-z0-9_-]{1,32}`);
}

/**
 * Builds a cluster from (name, address text) pairs. `field(name)` is how the
 * caller's input names that entry in an error ("nodes.b", "--node b=...").
 */
function makeCluster(
  self: string | undefined,
  selfField: string,
  entries: ReadonlyArray<[string, string, string]>,
): Cluster {
  const nodes = new Map<string, NodeAddress>();
  for (const [name, addr, field] of entries) {
    checkName(name, field);
    if (nodes.has(name)) throw new Error(`${field}: node '${name}' is listed twice`);
    nodes.set(name, parseAddress(addr, field));
  }
  if (nodes.size === 0) throw new Error('nodes: no node is listed');
  if (nodes.size > MAX_NODES) throw new Error(`nodes: ${nodes.size} nodes, at most ${MAX_NODES}`);
  if (self === undefined) throw new Error(`${selfField}: missing`);
  checkName(self, selfField);
  if (!nodes.has(self))
    throw new Error(
      `${selfField}: '${self}' is not one of the listed nodes (${[...nodes.keys()].join(', ')})`,
    );
  const names = [...nodes.keys()].sort();
  return { self, nodes, names, hash: crc32c(new TextEncoder().encode(names.join(','))) };
}

/** The JSON form; `source` (a file name) prefixes every error. */
export function parseClusterJson(text: string, source = 'cluster'): Cluster {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not JSON: ${(e as Error).message}`);
  }
  try {
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      throw new Error('top level: must be an object');
    const { self, nodes, secret, tls, ...rest } = doc as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw new Error(`${extra}: unknown field (expected self, nodes, secret, tls)`);
    if (self !== undefined && typeof self !== 'string') throw new Error('self: must be a string');
    if (typeof nodes !== 'object' || nodes === null || Array.isArray(nodes))
      throw new Error('nodes: must be an object of name: "host:port"');
    const entries = Object.entries(nodes as Record<string, unknown>).map(
      ([name, addr]): [string, string, string] => {
        if (typeof addr !== 'string') throw new Error(`nodes.${name}: must be a "host:port" string`);
        return [name, addr, `nodes.${name}`];
      },
    );
    const c = makeCluster(self, 'self', entries);
    const files = securityFiles(secret, tls, source);
    return files ? { ...c, files } : c;
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
}

/** The file's "secret" and "tls" fields as paths (relative to the cluster file's directory); not loaded yet. */
function securityFiles(secret: unknown, tls: unknown, source: string): Cluster['files'] {
  const at = (p: string): string => resolve(dirname(source), p);
  const out: NonNullable<Cluster['files']> = {};
  if (secret !== undefined) {
    if (typeof secret !== 'string' || secret === '')
      throw new Error('secret: must be the path of the secret file');
    out.secret = at(secret);
  }
  if (tls !== undefined) {
    if (typeof tls !== 'object' || tls === null || Array.isArray(tls))
      throw new Error('tls: must be an object of ca, cert, key (file paths)');
    const t = tls as Record<string, unknown>;
    const extra = Object.keys(t).find((k) => !['ca', 'cert', 'key'].includes(k));
    if (extra !== undefined) throw new Error(`tls.${extra}: unknown field (expected ca, cert, key)`);
    const path = (k: 'ca' | 'cert' | 'key'): string => {
      const v = t[k];
      if (typeof v !== 'string' || v === '') throw new Error(`tls.${k}: must be a file path`);
      return at(v);
    };
    out.tls = { ca: path('ca'), cert: path('cert'), key: path('key') };
  }
  return out.secret !== undefined || out.tls !== undefined ? out : undefined;
}

/** How the caller's input names the security settings in errors. */
interface SecurityFields {
  secret: string;
  tls: string;
  tlsFile: (f: keyof FabricTlsFiles) => string;
}

/**
 * Loads the secret and the TLS files a cluster names (for its own node).
 * TLS without a secret is refused: the secret is what the handshake
 * authenticates with; TLS adds confidentiality, integrity and per-node names.
 */
function loadSecurity(c: Cluster, what: SecurityFields): Cluster {
  const f = c.files;
  if (!f) return c;
  if (f.tls && f.secret === undefined)
    throw new Error(`${what.tls}: needs the cluster secret too (${what.secret})`);
  return {
    ...c,
    ...(f.secret !== undefined ? { secret: loadSecret(f.secret, what.secret) } : {}),
    ...(f.tls ? { tls: loadFabricTls(f.tls, c.self, what.tlsFile) } : {}),
  };
}

export function loadClusterFile(path: string): Cluster {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`--cluster: cannot read ${path}: ${(e as Error).message}`);
  }
  return parseClusterJson(text, path);
}

export interface ClusterOptions {
  /** --cluster FILE */
  cluster?: string | undefined;
  /** --node name=host:port, repeated */
  node?: readonly string[] | undefined;
  /** --self name (overrides the file's "self") */
  self?: string | undefined;
  /** --fabric-secret FILE (overrides the file's "secret") */
  'fabric-secret'?: string | undefined;
  /** --fabric-tls, with --fabric-ca/--fabric-cert/--fabric-key FILE (override the file's "tls") */
  'fabric-tls'?: boolean | undefined;
  'fabric-ca'?: string | undefined;
  'fabric-cert'?: string | undefined;
  'fabric-key'?: string | undefined;
}

/** The security flags over what the file said (or nothing), as files. */
function flagFiles(o: ClusterOptions, fromFile: Cluster['files']): Cluster['files'] {
  const out = { ...fromFile };
  if (o['fabric-secret'] !== undefined) out.secret = o['fabric-secret'];
  const given = (['ca', 'cert', 'key'] as const).filter((k) => o[`fabric-${k}`] !== undefined);
  if (given.length > 0 && o['fabric-tls'] !== true)
    throw new Error(`--fabric-${given[0]}: only with --fabric-tls`);
  if (o['fabric-tls'] === true) {
    const pick = (k: 'ca' | 'cert' | 'key'): string => {
      const v = o[`fabric-${k}`] ?? fromFile?.tls?.[k];
      if (v === undefined)
        throw new Error(
          `--fabric-tls: needs --fabric-${k} FILE (or "tls": {"${k}": ...} in the cluster file)`,
        );
      return v;
    };
    out.tls = { ca: pick('ca'), cert: pick('cert'), key: pick('key') };
  }
  return out.secret !== undefined || out.tls !== undefined ? out : undefined;
}

/** The flags as node:util parseArgs returns them (so the CLI can add them to its own options). */
export function clusterFromOptions(o: ClusterOptions): Cluster {
  const c = clusterOnly(o);
  const files = flagFiles(o, c.files);
  const file = o.cluster;
  const fromFile = (k: string): boolean => file !== undefined && c.files !== undefined && k in c.files;
  return loadSecurity(files ? { ...c, files } : c, {
    secret: o['fabric-secret'] === undefined && fromFile('secret') ? `${file}: secret` : '--fabric-secret',
    tls: o['fabric-tls'] === true ? '--fabric-tls' : `${file}: tls`,
    tlsFile: (k) =>
      o[`fabric-${k}`] !== undefined || !fromFile('tls') ? `--fabric-${k}` : `${file}: tls.${k}`,
  });
}

function clusterOnly(o: ClusterOptions): Cluster {
  const nodes = o.node ?? [];
  if (o.cluster !== undefined) {
    if (nodes.length > 0) throw new Error('--node: give either --cluster FILE or --node flags, not both');
    const c = loadClusterFile(o.cluster);
    if (o.self === undefined) return c;
    const again = makeCluster(
      o.self,
      '--self',
      [...c.nodes].map(([n, a]): [string, string, string] => [
        n,
        formatAddress(a),
        `${o.cluster}: nodes.${n}`,
      ]),
    );
    return c.files ? { ...again, files: c.files } : again;
  }
  const entries = nodes.map((arg): [string, string, string] => {
    const eq = arg.indexOf('=');
    if (eq < 0) throw new Error(`--node ${arg}: expected name=host:port`);
    return [arg.slice(0, eq), arg.slice(eq + 1), `--node ${arg}`];
  });
  if (entries.length === 0)
    throw new Error('--node: no node given (--node name=host:port, repeated, or --cluster FILE)');
  return makeCluster(o.self, '--self', entries);
}

/** The cluster flags as node:util parseArgs options (the CLI adds them to its own). */
export const CLUSTER_ARGS = {
  cluster: { type: 'string' },
  node: { type: 'string', multiple: true },
  self: { type: 'string' },
  'fabric-secret': { type: 'string' },
  'fabric-tls': { type: 'boolean' },
  'fabric-ca': { type: 'string' },
  'fabric-cert': { type: 'string' },
  'fabric-key': { type: 'string' },
} as const;

/** A command line of only the cluster flags; an unknown flag is an error naming it. */
export function parseClusterArgs(argv: readonly string[]): Cluster {
  const { values } = parseArgs({ args: [...argv], strict: true, options: CLUSTER_ARGS });
  return clusterFromOptions(values);
}
