/**
 * IP addressing on the data plane (ABI 1.2): the sockets' local names
 * (BIND), the listeners by (address, port), the names of connected sockets
 * (NAME: getsockname/getpeername), and where an address lives (this node or
 * another node of the cluster, by the address plan).
 *
 * Addresses are 16-byte IPv6 (IPv4 v4-mapped, see abi/addr.ts). A wildcard
 * is :: (every address, or only IPv6 with V6ONLY) or 0.0.0.0 (every IPv4
 * address). Two bound sockets conflict on a port when the sets of addresses
 * they cover meet, as Linux judges bind() without SO_REUSEPORT; so a
 * listener on 10.77.0.1:80 and one on 10.77.0.2:80 coexist, and one on
 * [::]:80 (not V6ONLY) takes the whole port.
 */
import {
  addrEqual,
  isAny4,
  isAny6,
  isLoopback,
  isV4Mapped,
  planNode,
  v4,
  ADDR_ANY4,
  ADDR_ANY6,
  type Addr,
} from '../../abi/addr.js';
import { ENUMS } from '../../abi/abi.js';

const ST = ENUMS.STATUS;

export interface SockName {
  addr: Addr;
  port: number;
}

interface Bound extends SockName {
  sid: number;
  v6only: boolean;
  listening: boolean;
}

/** Linux's default ip_local_port_range. */
export const EPHEMERAL_LO = 32768;
export const EPHEMERAL_HI = 60999;

const LOOP6 = (() => {
  const a = new Uint8Array(16);
  a[15] = 1;
  return a;
})();

/** Whether bound entry `e` covers address `a` (as a destination or another bind's exact address). */
function covers(e: Bound, a: Addr): boolean {
  if (isAny6(e.addr)) return !e.v6only || !isV4Mapped(a);
  if (isAny4(e.addr)) return isV4Mapped(a);
  return addrEqual(e.addr, a);
}

function wildcard(e: Bound): boolean {
  return isAny6(e.addr) || isAny4(e.addr);
}

/** Whether two binds on one port cover a common address. */
function overlap(a: Bound, b: Bound): boolean {
  if (!wildcard(a)) return covers(b, a.addr);
  if (!wildcard(b)) return covers(a, b.addr);
  const all = (e: Bound): boolean => isAny6(e.addr) && !e.v6only;
  if (all(a) || all(b)) return true;
  return isAny4(a.addr) === isAny4(b.addr); // 0.0.0.0 and [::] V6ONLY split the port
}

export class AddressBook {
  /** Bound sockets by local port. */
  private readonly byPort = new Map<number, Bound[]>();
  private readonly bound = new Map<number, Bound>();
  /** Names of connected sockets (accepted ones' local names; every connected socket's peer). */
  private readonly localName = new Map<number, SockName>();
  private readonly peerName = new Map<number, SockName>();
  /** A connecting socket's destination, until the accept. */
  private readonly dest = new Map<number, SockName>();
  private nextEphemeral = EPHEMERAL_LO;

  /** BIND: the port given (or chosen, for 0), or a status as a negative number. */
  bind(sid: number, addr: Addr, port: number, v6only: boolean): number {
    if (this.bound.has(sid) || this.localName.has(sid)) return -ST.EINVAL;
    if (v6only && isV4Mapped(addr)) return -ST.EINVAL;
    const e: Bound = { sid, addr: Uint8Array.from(addr), port, v6only, listening: false };
    if (port === 0) {
      const span = EPHEMERAL_HI - EPHEMERAL_LO + 1;
      for (let i = 0; i < span && e.port === 0; i++) {
        const p = EPHEMERAL_LO + ((this.nextEphemeral - EPHEMERAL_LO + i) % span);
        if (!(this.byPort.get(p) ?? []).some((b) => overlap(b, { ...e, port: p }))) e.port = p;
      }
      if (e.port === 0) return -ST.EADDRNOTAVAIL;
      this.nextEphemeral = e.port + 1 > EPHEMERAL_HI ? EPHEMERAL_LO : e.port + 1;
    } else if ((this.byPort.get(port) ?? []).some((b) => overlap(b, e))) return -ST.EADDRINUSE;
    const list = this.byPort.get(e.port);
    if (list) list.push(e);
    else this.byPort.set(e.port, [e]);
    this.bound.set(sid, e);
    return e.port;
  }

  isBound(sid: number): boolean {
    return this.bound.has(sid);
  }

  /** LISTEN on the socket's bound name: 0 or a status. */
  listen(sid: number): number {
    const e = this.bound.get(sid);
    if (!e) return ST.EINVAL; // the driver binds first (Linux would pick an ephemeral port)
    e.listening = true;
    return ST.OK;
  }

  /** The listener a connection to (addr, port) reaches: an exact address first, then a wildcard; -1: none. */
  lookup(addr: Addr, port: number): number {
    let wild = -1;
    for (const e of this.byPort.get(port) ?? []) {
      if (!e.listening || !covers(e, addr)) continue;
      if (!wildcard(e)) return e.sid;
      if (wild < 0) wild = e.sid;
    }
    return wild;
  }

  /** A connecting socket without a name gets one: an ephemeral port on the loopback address it connects to, or on the wildcard. */
  autoBind(sid: number, dst: Addr): number {
    if (this.bound.has(sid)) return this.bound.get(sid)!.port;
    const v4dst = isV4Mapped(dst);
    const addr = isLoopback(dst) ? (v4dst ? v4(127, 0, 0, 1) : LOOP6) : v4dst ? ADDR_ANY4 : ADDR_ANY6;
    return this.bind(sid, addr, 0, false);
  }

  /** CONNECT (flag ADDR) from `sid` to (addr, port) is waiting for the listener's accept. */
  connecting(sid: number, dst: SockName): void {
    const d = { addr: Uint8Array.from(dst.addr), port: dst.port };
    this.dest.set(sid, d);
    this.peerName.set(sid, d);
  }

  /** The connection `connector` -> listener was accepted into `acceptor`: both learn their names. */
  accepted(connector: number, acceptor: number): void {
    const dst = this.dest.get(connector);
    this.dest.delete(connector);
    if (!dst) return; // a port-only connection: no names
    const from = this.name(connector, false);
    this.localName.set(acceptor, dst);
    if (from) this.peerName.set(acceptor, from);
  }

  /** A connection from another node was accepted into `acceptor`: its names as the fabric gave them. */
  acceptedRemote(acceptor: number, local: SockName, peer: SockName): void {
    this.localName.set(acceptor, local);
    this.peerName.set(acceptor, peer);
  }

  /** A connect that did not go through (refused, or the connector closed). */
  withdrawn(sid: number): void {
    this.dest.delete(sid);
  }

  /** The socket's own name (or its peer's): null when it has none. */
  name(sid: number, peer: boolean): SockName | null {
    if (peer) return this.peerName.get(sid) ?? null;
    const n = this.localName.get(sid) ?? this.bound.get(sid);
    return n ? { addr: n.addr, port: n.port } : null;
  }

  release(sid: number): void {
    const e = this.bound.get(sid);
    if (e) {
      this.bound.delete(sid);
      const list = this.byPort.get(e.port)!;
      list.splice(list.indexOf(e), 1);
      if (list.length === 0) this.byPort.delete(e.port);
    }
    this.localName.delete(sid);
    this.peerName.delete(sid);
    this.dest.delete(sid);
  }

  clear(): void {
    this.byPort.clear();
    this.bound.clear();
    this.localName.clear();
    this.peerName.clear();
    this.dest.clear();
  }
}

/**
 * Where an address lives: 0 for this node (loopback, this node's plan
 * prefix, or any address outside the plan), else the node id (1 + the
 * plan node's index) of another node of the cluster; -1 for a plan
 * address of a node the cluster does not have.
 */
export function routeAddr(a: Addr, selfId: number, nodes: number): number {
  if (isLoopback(a)) return 0;
  const n = planNode(a);
  if (n < 0) return 0;
  if (n + 1 === selfId || (nodes === 0 && n === 0)) return 0;
  return n < nodes ? n + 1 : -1;
}
