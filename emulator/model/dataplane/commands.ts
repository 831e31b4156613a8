/**
 * The data plane's commands: 64-byte slots in guest memory, run on a CMD
 * signal and answered with CMD_DONE (status and result in the slot).
 * CREATE, LISTEN, BIND, NAME, SHUTDOWN, CONNECT, ACCEPT, CLOSE, TENANT and
 * TENANT_CREATE/DELETE/KEYS; a CONNECT to a listener here is answered at
 * accept time, a CLOSE with messages still queued when they have moved.
 */
import { BITS, CONSTANTS, ENUMS, STRUCTS } from '../../abi/abi.js';
import { addrFromWords, addrToWords } from '../../abi/addr.js';
import type { RateLimitedLog } from '../../util/log.js';
import { TRACE, trace } from '../../util/trace.js';
import type { DeviceHost } from '../host.js';
import { decodeChain, type EngineKeys } from '../accel/engines.js';
import type { AcceleratorFarm } from '../accel/farm.js';
import { CMD_OP_NAME, nameOf, STATUS_NAME } from '../names.js';
import {
  FLAG_PEER_CLOSED,
  FLAG_SHUT_PENDING,
  FLAG_SHUT_WR,
  FLAG_UNPAIRED,
  NO_PEER,
  type RingIndex,
  type SocketTable,
  SockState,
} from './sockets.js';
import type { RemotePipes } from './remote.js';
import { type TenantTable, tenantCommand } from './tenants.js';
import { type AddressBook, routeAddr, type SockName } from './addresses.js';
import type { D2hFifo } from './d2h.js';
import type { DataPlaneConfig, DataPlaneCounters } from './dataplane.js';

const D2H = ENUMS.SIG_D2H;
const ST = ENUMS.STATUS;
const SERR = ENUMS.SERR;
const OP = ENUMS.CMD_OP;
const CMD_FIELD = Object.fromEntries(STRUCTS.cmd!.fields.map((f) => [f.name, f.offset])) as Record<
  string,
  number
>;

const CMD_FLAG_ADDR = 1 << BITS.CMD_FLAG.ADDR;
const CMD_FLAG_V6ONLY = 1 << BITS.CMD_FLAG.V6ONLY;
const CMD_FLAG_PEER = 1 << BITS.CMD_FLAG.PEER;

export const isPow2 = (v: number): boolean => v > 0 && (v & (v - 1)) === 0;

/** The engine each stage runs on. */
export const STAGE_ENGINE: Record<number, string> = {
  [ENUMS.STAGE.ENCRYPT]: 'crypto',
  [ENUMS.STAGE.DECRYPT]: 'crypto',
  [ENUMS.STAGE.ENCAP]: 'encap',
  [ENUMS.STAGE.DECAP]: 'encap',
  [ENUMS.STAGE.CRC32C]: 'lookaside',
  [ENUMS.STAGE.LOOKASIDE_CRC32C]: 'lookaside',
};

/** What the commands need of their data plane. */
export interface CommandOwner {
  readonly cfg: DataPlaneConfig;
  readonly counters: DataPlaneCounters;
  readonly host: DeviceHost;
  readonly guestErr: RateLimitedLog;
  readonly d2h: D2hFifo;
  readonly socks: SocketTable;
  readonly rings: RingIndex;
  readonly addrs: AddressBook;
  readonly tenants: TenantTable;
  readonly keys: EngineKeys;
  readonly commandCounts: Map<number, number>;
  readonly farm: AcceleratorFarm | null;
  readonly remote: RemotePipes | null;
  /** Messages staged for executor F, by socket. */
  readonly staged: Map<number, Uint8Array[]>;
  /** rx ring owner -> sockets whose next message waits for room in it. */
  readonly waiters: Map<number, number[]>;
  /** Decoded chains (cleared when a tenant's keys change). */
  readonly chains: Map<number, unknown>;
  sockError(sid: number, code: number, why: string): void;
  devError(id: number, code: number, why: string): void;
  markReady(sid: number): void;
  dropStaged(sid: number): void;
}

export class Commands {
  /** The op of the command last run in each slot (for CMD_DONE's counts and trace). */
  private readonly slotOp = new Uint8Array(65536);

  constructor(private readonly dp: CommandOwner) {}

  /** Runs the command in `slot` (a CMD signal). */
  run(slot: number): void {
    if (slot >= this.dp.cfg.cmdSlots)
      return this.dp.devError(
        slot,
        SERR.NO_SUCH_RING,
        `CMD for slot ${slot}, beyond the ${this.dp.cfg.cmdSlots} slots`,
      );
    const v = this.dp.host.dmaView(
      this.dp.cfg.cmdBase + BigInt(slot * CONSTANTS.CMD_SLOT_SIZE),
      CONSTANTS.CMD_SLOT_SIZE,
    );
    if (!v)
      return this.dp.devError(slot, SERR.RING_UNMAPPED, 'command slots no longer in mapped guest memory');
    const d = new DataView(v.buffer, v.byteOffset, v.byteLength);
    const op = d.getUint8(CMD_FIELD.op!);
    if (op === 0) {
      this.dp.counters.repeats++;
      return;
    } // taken already: a repeated CMD signal
    d.setUint8(CMD_FIELD.op!, 0);
    const sid = d.getUint32(CMD_FIELD.sid!, true);
    this.slotOp[slot] = op;
    if (TRACE.cmd_submit) trace('cmd_submit', { slot, op: nameOf(CMD_OP_NAME, op), sid });
    const flags = d.getUint8(CMD_FIELD.flags!);
    const slotAddr = (): SockName => ({
      addr: addrFromWords(d.getBigUint64(CMD_FIELD.tx_addr!, true), d.getBigUint64(CMD_FIELD.rx_addr!, true)),
      port: d.getUint16(CMD_FIELD.port!, true),
    });
    let status: number;
    let result = 0;
    switch (op) {
      case OP.CREATE:
        status = this.create(
          sid,
          Number(d.getBigUint64(CMD_FIELD.tx_addr!, true)),
          d.getUint32(CMD_FIELD.tx_size!, true),
          Number(d.getBigUint64(CMD_FIELD.rx_addr!, true)),
          d.getUint32(CMD_FIELD.rx_size!, true),
          d.getUint32(CMD_FIELD.tenant!, true),
        );
        break;
      case OP.LISTEN:
        status = this.listen(sid, d.getUint16(CMD_FIELD.port!, true), (flags & CMD_FLAG_ADDR) !== 0);
        break;
      case OP.BIND: {
        const n = slotAddr();
        [status, result] = this.bind(sid, n, (flags & CMD_FLAG_V6ONLY) !== 0);
        break;
      }
      case OP.NAME: {
        [status, result] = this.nameOf(sid, (flags & CMD_FLAG_PEER) !== 0, d);
        break;
      }
      case OP.SHUTDOWN:
        status = this.shutdown(sid, d.getUint32(CMD_FIELD.arg!, true));
        break;
      case OP.CONNECT: {
        const r = this.connect(
          sid,
          d.getUint16(CMD_FIELD.port!, true),
          slot,
          d.getUint32(CMD_FIELD.chain!, true),
          d.getUint32(CMD_FIELD.arg!, true),
          flags & CMD_FLAG_ADDR ? slotAddr().addr : null,
        );
        if (r === 'pending') return; // answered at accept time
        [status, result] = r;
        break;
      }
      case OP.ACCEPT:
        [status, result] = this.accept(sid, d.getUint32(CMD_FIELD.arg!, true));
        break;
      case OP.TENANT:
        status = this.setTenant(
          d.getUint32(CMD_FIELD.tenant!, true),
          d.getUint32(CMD_FIELD.arg!, true),
          d.getUint32(CMD_FIELD.cap_mbps!, true),
        );
        break;
      case OP.TENANT_CREATE:
      case OP.TENANT_DELETE:
      case OP.TENANT_KEYS:
        [status, result] = this.tenantCmd(op, d);
        break;
      case OP.CLOSE: {
        const r = this.close(sid, slot);
        if (r === 'pending') return; // answered when the tx ring has drained
        status = r;
        break;
      }
      default:
        status = ST.EINVAL;
        this.dp.guestErr.warn('cmd-op', { slot, op }, 'unknown command op');
    }
    this.answer(slot, status, result);
  }

  answer(slot: number, status: number, result: number): void {
    const key = (this.slotOp[slot & 0xffff]! << 8) | (status & 0xff);
    this.dp.commandCounts.set(key, (this.dp.commandCounts.get(key) ?? 0) + 1);
    if (TRACE.cmd_done)
      trace('cmd_done', {
        slot,
        op: nameOf(CMD_OP_NAME, this.slotOp[slot & 0xffff]!),
        status: nameOf(STATUS_NAME, status),
        result,
      });
    const v = this.dp.host.dmaView(
      this.dp.cfg.cmdBase + BigInt(slot * CONSTANTS.CMD_SLOT_SIZE),
      CONSTANTS.CMD_SLOT_SIZE,
    );
    if (v) {
      const d = new DataView(v.buffer, v.byteOffset, v.byteLength);
      d.setUint32(CMD_FIELD.status!, status, true);
      d.setUint32(CMD_FIELD.result!, result, true);
    }
    this.dp.d2h.emit(D2H.CMD_DONE, slot, status);
  }

  private create(
    sid: number,
    txAddr: number,
    txSize: number,
    rxAddr: number,
    rxSize: number,
    tenant = 0,
  ): number {
    const s = this.dp.socks;
    if (sid >= s.max) return ST.EINVAL;
    if (s.exists(sid)) return ST.EEXIST;
    for (const size of [txSize, rxSize])
      if (!isPow2(size) || size < CONSTANTS.RING_MIN || size > CONSTANTS.RING_MAX) return ST.EINVAL;
    if (txAddr % 4096 !== 0 || rxAddr % 4096 !== 0) return ST.EINVAL;
    if (!this.dp.host.dmaView(BigInt(txAddr), txSize) || !this.dp.host.dmaView(BigInt(rxAddr), rxSize))
      return ST.EFAULT;
    if (txAddr < rxAddr + rxSize && rxAddr < txAddr + txSize) return ST.EBUSY;
    if (this.dp.rings.overlap(txAddr, txSize) >= 0 || this.dp.rings.overlap(rxAddr, rxSize) >= 0)
      return ST.EBUSY;
    if (this.dp.tenants.refuses(tenant, this.dp.farm !== null)) return ST.EINVAL; // no such tenant
    s.create(sid, txAddr, txSize, rxAddr, rxSize);
    this.dp.counters.socketsCreated++;
    s.tenant[sid] = tenant;
    this.dp.rings.add(txAddr, txSize, sid);
    this.dp.rings.add(rxAddr, rxSize, sid);
    return ST.OK;
  }

  /** TENANT_CREATE, TENANT_DELETE, TENANT_KEYS (emulator/model/dataplane/tenants.ts). */
  private tenantCmd(op: number, d: DataView): [number, number] {
    return tenantCommand(
      {
        op,
        tenant: d.getUint32(CMD_FIELD.tenant!, true),
        weightMilli: d.getUint32(CMD_FIELD.arg!, true),
        capMbps: d.getUint32(CMD_FIELD.cap_mbps!, true),
        cfgAddr: d.getBigUint64(CMD_FIELD.tx_addr!, true),
      },
      {
        table: this.dp.tenants,
        farm: this.dp.farm,
        readCfg: (addr) => this.dp.host.dmaView(addr, STRUCTS.tenant_cfg!.size),
        socketsOf: (id) => {
          let n = 0;
          for (let sid = 0; sid < this.dp.socks.capacity; sid++)
            if (this.dp.socks.tenant[sid] === id && this.dp.socks.exists(sid)) n++;
          return n;
        },
        changed: () => this.dp.chains.clear(),
        refused: (what, ctx, why) => this.dp.guestErr.warn(what, ctx, why),
        info: (ctx, msg) => this.dp.host.log.info(ctx, msg),
      },
    );
  }

  /** TENANT: weight (thousandths) and demand cap (Mbps, 0: none) of a tenant of the scheduled accelerators. */
  private setTenant(tenant: number, weightMilli: number, capMbps: number): number {
    const farm = this.dp.farm;
    if (!farm) {
      this.dp.guestErr.warn(
        'tenant-unscheduled',
        { tenant },
        'TENANT while the accelerators are not scheduled',
      );
      return ST.ENOENT;
    }
    const cur = this.dp.tenants.has(tenant) ? farm.tenants[tenant] : undefined;
    if (!cur || weightMilli === 0) {
      this.dp.guestErr.warn(
        'tenant-bad',
        { tenant, weightMilli },
        'TENANT for an unknown tenant or with weight 0',
      );
      return cur ? ST.EINVAL : ST.ENOENT;
    }
    try {
      const spec = {
        ...cur,
        weight: weightMilli / 1000,
        ...(capMbps > 0 ? { capGbps: capMbps / 1000 } : { capGbps: undefined }),
      };
      farm.setTenant(tenant, spec);
      this.dp.tenants.update(tenant, spec);
    } catch (e) {
      this.dp.guestErr.warn('tenant-bad', { tenant, why: (e as Error).message }, 'TENANT refused');
      return ST.EINVAL;
    }
    this.dp.host.log.info(
      { tenant: cur.name, weight: weightMilli / 1000, capGbps: capMbps > 0 ? capMbps / 1000 : null },
      'tenant set by the driver',
    );
    return ST.OK;
  }

  private listen(sid: number, port: number, byAddr = false): number {
    const s = this.dp.socks;
    if (!s.exists(sid)) return ST.ENOENT;
    if (s.state[sid] !== SockState.CREATED) return ST.EINVAL;
    if (byAddr) {
      const st = this.dp.addrs.listen(sid);
      if (st === ST.OK) {
        s.state[sid] = SockState.LISTENING;
        s.port[sid] = this.dp.addrs.name(sid, false)!.port;
      }
      return st;
    }
    if (this.dp.addrs.isBound(sid)) return ST.EINVAL; // a bound socket listens on its name (flag ADDR)
    if (port === CONSTANTS.PORT_LOOPBACK) return ST.EINVAL;
    if (s.listeners.has(port)) return ST.EADDRINUSE;
    s.state[sid] = SockState.LISTENING;
    s.port[sid] = port;
    s.listeners.set(port, sid);
    return ST.OK;
  }

  /** BIND: [status, the port]. */
  private bind(sid: number, n: SockName, v6only: boolean): [number, number] {
    const s = this.dp.socks;
    if (!s.exists(sid)) return [ST.ENOENT, 0];
    if (s.state[sid] !== SockState.CREATED) return [ST.EINVAL, 0];
    const r = this.dp.addrs.bind(sid, n.addr, n.port, v6only);
    return r < 0 ? [-r, 0] : [ST.OK, r];
  }

  /** NAME: writes the name into the slot; [status, 1 when the socket has one]. */
  private nameOf(sid: number, peer: boolean, d: DataView): [number, number] {
    if (!this.dp.socks.exists(sid)) return [ST.ENOENT, 0];
    const n = this.dp.addrs.name(sid, peer);
    const [lo, hi] = n ? addrToWords(n.addr) : [0n, 0n];
    d.setBigUint64(CMD_FIELD.tx_addr!, lo, true);
    d.setBigUint64(CMD_FIELD.rx_addr!, hi, true);
    d.setUint16(CMD_FIELD.port!, n?.port ?? 0, true);
    return [ST.OK, n ? 1 : 0];
  }

  /** SHUTDOWN: how 0 (SHUT_RD: nothing for the device), 1 (SHUT_WR), 2 (both). */
  private shutdown(sid: number, how: number): number {
    const s = this.dp.socks;
    if (!s.exists(sid)) return ST.ENOENT;
    if (how > 2) return ST.EINVAL;
    if (s.state[sid] !== SockState.CONNECTED) return ST.ENOTCONN;
    if (how === 0 || s.flags[sid]! & FLAG_SHUT_WR) return ST.OK;
    s.flags[sid] = s.flags[sid]! | FLAG_SHUT_WR | FLAG_SHUT_PENDING;
    if ((s.txQueue.get(sid)?.length ?? 0) === 0 && !this.dp.staged.has(sid)) this.shutPending(sid);
    return ST.OK;
  }

  /** A SHUT_WR whose messages have all moved: the peer hears it (EOF after them). */
  shutPending(sid: number): void {
    const s = this.dp.socks;
    if (!(s.flags[sid]! & FLAG_SHUT_PENDING) || s.flags[sid]! & FLAG_UNPAIRED) return; // unpaired: at the accept
    if (this.dp.remote?.has(sid)) {
      // Across nodes: a frame after the messages sent (kept pending while the fabric's window is full).
      if (this.dp.remote.shutdown(sid)) s.flags[sid] = s.flags[sid]! & ~FLAG_SHUT_PENDING;
      return;
    }
    s.flags[sid] = s.flags[sid]! & ~FLAG_SHUT_PENDING;
    const peer = s.peer[sid]!;
    if (peer !== NO_PEER && s.exists(peer)) this.dp.d2h.emit(D2H.EVENT, peer, ENUMS.EVENT.PEER_SHUTDOWN);
  }

  private connect(
    sid: number,
    port: number,
    slot: number,
    chain: number,
    node = 0,
    dst: Uint8Array | null = null,
  ): [number, number] | 'pending' {
    const s = this.dp.socks;
    if (!s.exists(sid)) return [ST.ENOENT, 0];
    if (dst) {
      // By address: the address plan says which node (the node field is not used).
      const fab = this.dp.remote?.fabric;
      const r = routeAddr(dst, fab?.selfId ?? 0, fab?.names.length ?? 0);
      if (r < 0) return [ST.ENETUNREACH, 0];
      node = r;
      if (node !== 0) {
        if (!this.dp.remote?.isRemote(node)) return [ST.ENETUNREACH, 0];
        if (s.state[sid] !== SockState.CREATED)
          return [s.state[sid] === SockState.CONNECTED ? ST.EISCONN : ST.EINVAL, 0];
        const b = this.dp.addrs.autoBind(sid, dst);
        if (b < 0) return [-b, 0];
        this.dp.addrs.connecting(sid, { addr: dst, port });
        const rr = this.dp.remote.connect(sid, node, port, slot, chain, {
          dst: { addr: dst, port },
          src: this.dp.addrs.name(sid, false),
        });
        return rr === 'pending' ? rr : [rr, 0];
      }
    }
    if (node !== 0 && !this.dp.remote) return [ST.ENETUNREACH, 0]; // no fabric: only this node exists
    if (node !== 0 && this.dp.remote!.isRemote(node)) {
      if (s.state[sid] === SockState.CONNECTED) return [ST.EISCONN, 0];
      if (s.state[sid] !== SockState.CREATED || port === CONSTANTS.PORT_LOOPBACK) return [ST.EINVAL, 0];
      const r = this.dp.remote!.connect(sid, node, port, slot, chain);
      return r === 'pending' ? r : [r, 0];
    }
    const c = decodeChain(chain, this.dp.keys);
    if (typeof c === 'string') {
      this.dp.guestErr.warn(
        'chain',
        { sid, chain: '0x' + chain.toString(16), why: c },
        'CONNECT with a bad chain',
      );
      return [ST.EINVAL, 0];
    }
    if (c.lookAside && (dst || port !== CONSTANTS.PORT_LOOPBACK)) return [ST.EINVAL, 0]; // executor A has no peer
    if (this.dp.farm) {
      // With scheduled accelerators the device has only those: a chain naming another engine is refused.
      const missing = c.stages
        .map((st) => STAGE_ENGINE[st])
        .filter((e): e is string => e !== undefined && this.dp.farm!.accels([e]).length === 0);
      if (missing.length > 0) {
        this.dp.guestErr.warn(
          'chain-engine',
          { sid, missing },
          'CONNECT with a chain that needs an engine the device does not have',
        );
        return [ST.EINVAL, 0];
      }
    }
    s.chain[sid] = chain;
    if (s.state[sid] === SockState.CONNECTED) return [ST.EISCONN, 0];
    if (s.state[sid] !== SockState.CREATED) return [ST.EINVAL, 0];
    if (!dst && port === CONSTANTS.PORT_LOOPBACK) {
      // Executor L: the socket's own rx ring is the sink of its tx pipe.
      s.state[sid] = SockState.CONNECTED;
      s.peer[sid] = sid;
      return [ST.OK, sid];
    }
    const l = dst ? this.dp.addrs.lookup(dst, port) : (s.listeners.get(port) ?? -1);
    if (l < 0) return [ST.ECONNREFUSED, 0];
    if (dst) {
      const b = this.dp.addrs.autoBind(sid, dst);
      if (b < 0) return [-b, 0];
      this.dp.addrs.connecting(sid, { addr: dst, port });
      s.state[sid] = SockState.CONNECTED;
      s.flags[sid] = s.flags[sid]! | FLAG_UNPAIRED;
      const q = s.backlog.get(l);
      if (q) q.push(sid);
      else s.backlog.set(l, [sid]);
      this.dp.d2h.emit(D2H.EVENT, l, ENUMS.EVENT.CONN_PENDING);
      return [ST.OK, NO_PEER];
    }
    s.state[sid] = SockState.CONNECTING;
    s.pendingCmd[sid] = slot;
    const b = s.backlog.get(l);
    if (b) b.push(sid);
    else s.backlog.set(l, [sid]);
    this.dp.d2h.emit(D2H.EVENT, l, ENUMS.EVENT.CONN_PENDING);
    return 'pending';
  }

  private accept(sid: number, listener: number): [number, number] {
    const s = this.dp.socks;
    if (!s.exists(sid) || !s.exists(listener)) return [ST.ENOENT, 0];
    if (s.state[listener] !== SockState.LISTENING || s.state[sid] !== SockState.CREATED)
      return [ST.EINVAL, 0];
    const b = s.backlog.get(listener);
    const peer = b?.shift();
    if (b && b.length === 0) s.backlog.delete(listener);
    if (peer === undefined) return [ST.EAGAIN, 0];
    if (peer < 0) return this.dp.remote!.accept(sid, peer); // a connection from another node
    s.state[sid] = SockState.CONNECTED;
    s.peer[sid] = peer;
    s.chain[sid] = s.chain[peer]!; // both directions run the chain
    s.state[peer] = SockState.CONNECTED;
    s.peer[peer] = sid;
    this.dp.addrs.accepted(peer, sid);
    if (s.flags[peer]! & FLAG_UNPAIRED) {
      // Connected by address, answered already: what it sent meanwhile moves now.
      s.flags[peer] = s.flags[peer]! & ~FLAG_UNPAIRED;
      if (s.txQueue.has(peer)) this.dp.markReady(peer);
      if (s.flags[peer]! & FLAG_SHUT_PENDING && !s.txQueue.has(peer)) this.shutPending(peer);
      return [ST.OK, peer];
    }
    const slot = s.pendingCmd[peer]!;
    s.pendingCmd[peer] = NO_PEER;
    this.answer(slot, ST.OK, sid);
    return [ST.OK, peer];
  }

  private close(sid: number, slot: number): number | 'pending' {
    const s = this.dp.socks;
    if (!s.exists(sid)) return ST.ENOENT;
    const st = s.state[sid];
    if (st === SockState.CLOSING) return ST.EINVAL;
    if (st === SockState.LISTENING) {
      for (const c of s.backlog.get(sid) ?? []) {
        if (c < 0) {
          this.dp.remote!.refuse(c);
          continue;
        }
        if (s.flags[c]! & FLAG_UNPAIRED) {
          // Connected, never accepted: as a reset.
          s.flags[c] = s.flags[c]! & ~FLAG_UNPAIRED;
          this.dp.sockError(c, SERR.NOT_CONNECTED, 'the listener closed before accepting the connection');
          continue;
        }
        const cs = s.pendingCmd[c]!;
        s.pendingCmd[c] = NO_PEER;
        s.state[c] = SockState.CREATED;
        this.dp.addrs.withdrawn(c);
        this.answer(cs, ST.ECONNREFUSED, 0);
      }
      if (s.listeners.get(s.port[sid]!) === sid) s.listeners.delete(s.port[sid]!);
    }
    if (st === SockState.CONNECTING) {
      for (const [l, b] of s.backlog) {
        const i = b.indexOf(sid);
        if (i >= 0) {
          b.splice(i, 1);
          if (b.length === 0) s.backlog.delete(l);
        }
      }
      this.dp.addrs.withdrawn(sid);
      this.answer(s.pendingCmd[sid]!, ST.ECONNREFUSED, 0);
    }
    if (s.flags[sid]! & FLAG_UNPAIRED) {
      // Connected by address and never accepted: leaves the backlog (what it sent is lost, as with a reset).
      for (const [l, b] of s.backlog) {
        const i = b.indexOf(sid);
        if (i >= 0) {
          b.splice(i, 1);
          if (b.length === 0) s.backlog.delete(l);
        }
      }
      s.txQueue.delete(sid);
    }
    if (st === SockState.CONNECTED && ((s.txQueue.get(sid)?.length ?? 0) > 0 || this.dp.staged.has(sid))) {
      // Graceful: what was sent is still delivered, then the peer sees EOF.
      s.state[sid] = SockState.CLOSING;
      s.pendingCmd[sid] = slot;
      return 'pending';
    }
    this.release(sid);
    return ST.OK;
  }

  finishClose(sid: number): void {
    const slot = this.dp.socks.pendingCmd[sid]!;
    this.release(sid);
    this.answer(slot, ST.OK, 0);
  }

  /** Frees a socket; its peer learns it closed. */
  private release(sid: number): void {
    const s = this.dp.socks;
    const peer = s.peer[sid]!;
    if (this.dp.remote?.has(sid))
      this.dp.remote.closed(sid); // the peer hears CLOSE after what was sent
    else if (peer !== NO_PEER && peer !== sid && s.exists(peer)) {
      s.flags[peer] = s.flags[peer]! | FLAG_PEER_CLOSED;
      s.peer[peer] = NO_PEER;
      this.dp.d2h.emit(D2H.EVENT, peer, ENUMS.EVENT.PEER_CLOSED);
      // A sender blocked on our ring, or with messages queued for us, is told.
      if ((s.txQueue.get(peer)?.length ?? 0) > 0 || this.dp.staged.has(peer))
        this.dp.sockError(peer, SERR.NOT_CONNECTED, 'the peer closed with messages still queued for it');
    }
    this.dp.waiters.delete(sid);
    this.dp.dropStaged(sid);
    this.dp.addrs.release(sid);
    this.dp.rings.remove(s.txAddr[sid]!, s.txSize[sid]!);
    this.dp.rings.remove(s.rxAddr[sid]!, s.rxSize[sid]!);
    s.free(sid);
  }
}
