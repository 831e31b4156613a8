/**
 * The cluster description: which emulator instances ("nodes") exist, where
 * each one listens, and which of them this process is.
 *
 *   { "self": "a", "nodes": { "a": "10.0.0.1:7000", "b": "10.0.0.2:7000" } }
 *
 * from a JSON file (--cluster FILE) or from flags (--node a=host:port
 * repeated, --self a). Every error names the field or flag it is about, so
 * a typo in a 20-node file is found without guessing.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { crc32c } from '../util/crc.js';

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
    const { self, nodes, ...rest } = doc as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) throw new Error(`${extra}: unknown field (expected self, nodes)`);
    if (self !== undefined && typeof self !== 'string') throw new Error('self: must be a string');
    if (typeof nodes !== 'object' || nodes === null || Array.isArray(nodes))
      throw new Error('nodes: must be an object of name: "host:port"');
    const entries = Object.entries(nodes as Record<string, unknown>).map(
      ([name, addr]): [string, string, string] => {
        if (typeof addr !== 'string') throw new Error(`nodes.${name}: must be a "host:port" string`);
        return [name, addr, `nodes.${name}`];
      },
    );
    return makeCluster(self, 'self', entries);
  } catch (e) {
    throw new Error(`${source}: ${(e as Error).message}`);
  }
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
}

/** The flags as node:util parseArgs returns them (so the CLI can add them to its own options). */
export function clusterFromOptions(o: ClusterOptions): Cluster {
  const nodes = o.node ?? [];
  if (o.cluster !== undefined) {
    if (nodes.length > 0) throw new Error('--node: give either --cluster FILE or --node flags, not both');
    const c = loadClusterFile(o.cluster);
    if (o.self === undefined) return c;
    return makeCluster(
      o.self,
      '--self',
      [...c.nodes].map(([n, a]): [string, string, string] => [
        n,
        formatAddress(a),
        `${o.cluster}: nodes.${n}`,
      ]),
    );
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

/** A command line of only the cluster flags; an unknown flag is an error naming it. */
export function parseClusterArgs(argv: readonly string[]): Cluster {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      cluster: { type: 'string' },
      node: { type: 'string', multiple: true },
      self: { type: 'string' },
    },
  });
  return clusterFromOptions(values);
}
