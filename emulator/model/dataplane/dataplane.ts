/**
 * The SG-IOV data plane: socket devices carried by warp pipes, signalled
 * through the Cross-FIFO.
 *
 * - H2D signals come from a FIFO in the shared-memory BAR the device polls
 *   (hybrid mode: it polls while busy, and when idle sets NEED_KICK and
 *   sleeps until the KICK doorbell; see README "Cross-FIFO").
 * - D2H signals go to a FIFO in guest memory; the producer index goes to a
 *   guest-memory word; MSI-X fires when the host armed it, moderated by
 *   count and age.
 * - Commands (create, listen, connect, accept, close) are 64-byte slots in
 *   guest memory, run on a CMD signal and answered with CMD_DONE.
 * - Each TX_TAIL publishes one message; a warp pipe moves it from the
 *   socket's tx ring through its transformations into the sink ring (the
 *   peer's rx ring, or its own for loopback) when the sink has room, cut
 *   into jobs by jobgen; RX_TAIL tells the receiver, TX_HEAD frees the
 *   sender's ring. A full sink holds the message (back-pressure); nothing
 *   is dropped.
 * - A bad signal puts only its socket in the error state (SOCK_ERROR, logged
 *   once); a signal naming no socket is answered with DEV_ERROR.
 *
 * This file holds the poll loop and the local pipes and executors; the H2D
 * FIFO is h2d.ts, the D2H FIFO and interrupt moderation d2h.ts, the commands
 * commands.ts, the fault points of a move move-faults.ts.
 */
import { CONSTANTS, ENUMS, SHM } from '../../abi/abi.js';
import { RateLimitedLog } from '../../util/log.js';
import { D2hFifo, type D2hOwner } from './d2h.js';
import { H2dFifo } from './h2d.js';
import { MoveFaults } from './move-faults.js';
import type { DeviceHost } from '../host.js';
import { runJob, generateJobs, split } from '../accel/jobgen.js';
import { crc32c, decodeChain, type Chain, type EngineKeys } from '../accel/engines.js';
import { AcceleratorFarm, type FarmConfig } from '../accel/farm.js';
import {
  FLAG_BLOCKED,
  FLAG_PEER_CLOSED,
  FLAG_READY,
  FLAG_SHUT_WR,
  FLAG_UNPAIRED,
  NO_PEER,
  RingIndex,
  SocketTable,
  SockState,
} from './sockets.js';
import { Commands, isPow2, STAGE_ENGINE } from './commands.js';
import { FaultInjector, type Fault } from '../../faults/injector.js';
import { POINT } from '../../faults/plan.js';
import { writeCorrupted, type GlobalFaultHandler } from '../fault-points.js';
import { RemotePipes, type PipeFabric, type PipeFabricEvents } from './remote.js';
import { TRACE, trace } from '../../util/trace.js';
import { signalFields } from '../names.js';
import { TenantTable } from './tenants.js';
import { AddressBook } from './addresses.js';

const SIG = ENUMS.SIG_H2D;
const D2H = ENUMS.SIG_D2H;
const SERR = ENUMS.SERR;
export interface DataPlaneConfig {
  h2dMode: number;
  d2hBase: bigint;
  d2hSlots: number;
  d2hVector: number;
  d2hProdAddr: bigint;
  cmdBase: bigint;
  cmdSlots: number;
  modCount: number;
  modUsecs: number;
}

export function defaultDataPlaneConfig(): DataPlaneConfig {
  return {
    h2dMode: ENUMS.H2D_MODE.HYBRID,
    d2hBase: 0n,
    d2hSlots: 0,
    d2hVector: 0,
    d2hProdAddr: 0n,
    cmdBase: 0n,
    cmdSlots: 0,
    modCount: 1,
    modUsecs: 0,
  };
}

export interface DataPlaneCounters {
  h2dSignals: number;
  d2hSignals: number;
  kicks: number;
  signalErrors: number;
  msgsMoved: number;
  bytesMoved: number;
  /** CREATEs that made a socket (a script checks that a program's sockets were the device's). */
  socketsCreated: number;
  interrupts: number;
  /** H2D signals ignored as repeats (a TX_TAIL or RX_HEAD that does not move, a CMD for a taken slot). */
  repeats: number;
  /** D2H signals written again on the driver's RESYNC. */
  resyncs: number;
}

/** How long the hybrid poller spins without work before it asks for kicks. */
export const HYBRID_IDLE_NS = 200_000;
const MOVE_BUDGET = 128;
/** The device's staging memory for executor F (bytes). */
export const STAGING_BYTES_DEFAULT = 64 << 20;

/** Messages of one socket in the accelerators at once (scheduled mode). */
const MAX_IN_FLIGHT = 8;

export { SignalQueue } from './d2h.js';

export class DataPlane {
  readonly cfg: DataPlaneConfig = defaultDataPlaneConfig();
  readonly socks: SocketTable;
  private readonly rings = new RingIndex();
  readonly counters: DataPlaneCounters = {
    h2dSignals: 0,
    d2hSignals: 0,
    kicks: 0,
    signalErrors: 0,
    msgsMoved: 0,
    bytesMoved: 0,
    socketsCreated: 0,
    interrupts: 0,
    repeats: 0,
    resyncs: 0,
  };
  running = false;
  /** The hybrid poller is asleep, waiting for a kick. */
  sleeping = false;
  private ready: number[] = [];
  private readyAt = 0;
  /** rx ring owner -> sockets whose next message waits for room in it. */
  private waiters = new Map<number, number[]>();
  private lastWorkNs = 0;
  private readonly guestErr: RateLimitedLog;
  /** The engines' key material (the driver writes it through registers). */
  readonly keys: EngineKeys = { aesKey: new Uint8Array(32), vni: 0 };
  /** Decoded chains by code and the two ends' tenants (their keys). */
  private readonly chains = new Map<number, Chain>();
  /** Who the sockets belong to, with their own keys (tenants.ts). */
  readonly tenants: TenantTable;
  /** Scheduled accelerators, when configured (control interface); null: as fast as the host goes. */
  farm: AcceleratorFarm | null = null;
  /** Executor F: the device memory messages are staged in, and what is in it now. */
  stagingBytes = STAGING_BYTES_DEFAULT;
  stagingUsed = 0;
  /** Per socket: its staged messages, oldest first (already gone from its tx ring). */
  private readonly staged = new Map<number, Uint8Array[]>();
  /** Sockets with messages waiting for staging memory. */
  private stagingWaiters = new Set<number>();
  /** Cross-node pipes, when the carrier gave this device a fabric (attachFabric). */
  remote: RemotePipes | null = null;
  /** Commands answered, by op << 8 | status (metrics); the op each slot's command had. */
  readonly commandCounts = new Map<number, number>();
  /** Local names, listeners by address, connected sockets' names (ABI 1.2). */
  readonly addrs = new AddressBook();

  /** The device's fault injector (fault-injection points: dma.*, signal.*, irq, job.*; the fabric's fabric.*). */
  readonly faults: FaultInjector;
  /** The device applies reset and surprise_removal; without a device they are ignored. */
  private readonly onGlobal: GlobalFaultHandler;
  /** Faults: no work before this device time (a delay or stall held the engines). */
  private pausedUntil = 0;

  constructor(
    private readonly host: DeviceHost,
    maxSockets: number = CONSTANTS.MAX_SOCKETS_DEFAULT,
    faults?: FaultInjector,
    onGlobal?: GlobalFaultHandler,
    maxTenants: number = CONSTANTS.MAX_TENANTS_DEFAULT,
  ) {
    this.socks = new SocketTable(maxSockets);
    this.tenants = new TenantTable(this.keys, maxTenants);
    this.guestErr = new RateLimitedLog(host.log);
    this.faults = faults ?? new FaultInjector(host.log);
    this.onGlobal = onGlobal ?? (() => false);
    const dp = this;
    const owner: D2hOwner = {
      cfg: this.cfg,
      counters: this.counters,
      faults: this.faults,
      get running() {
        return dp.running;
      },
      shmView: () => this.shm(),
      sockCtx: (sid) => this.sockCtx(sid),
    };
    this.d2h = new D2hFifo(owner, host, this.guestErr, this.onGlobal);
    this.moveFaults = new MoveFaults({
      socks: this.socks,
      faults: this.faults,
      host,
      onGlobal: this.onGlobal,
      get farm() {
        return dp.farm;
      },
      refused: (sid, len, rxRing, code, why) => this.refused(sid, len, rxRing, code, why),
      pause: (ns) => this.pause(ns),
      chainOf: (sid) => this.chainOf(sid),
    });
    this.h2d = new H2dFifo(
      {
        counters: this.counters,
        faults: this.faults,
        get running() {
          return dp.running;
        },
        get d2hPending() {
          return dp.d2h.pending;
        },
        signal: (type, id, value) => this.signal(type, id, value),
        sockCtx: (sid) => this.sockCtx(sid),
        pause: (ns) => this.pause(ns),
        rejectSignal: (sig, code, why) => this.rejectSignal(sig, code, why),
      },
      this.onGlobal,
    );
    this.cmds = new Commands({
      cfg: this.cfg,
      counters: this.counters,
      host,
      guestErr: this.guestErr,
      d2h: this.d2h,
      socks: this.socks,
      rings: this.rings,
      addrs: this.addrs,
      tenants: this.tenants,
      keys: this.keys,
      commandCounts: this.commandCounts,
      get farm() {
        return dp.farm;
      },
      get remote() {
        return dp.remote;
      },
      staged: this.staged,
      waiters: this.waiters,
      chains: this.chains,
      sockError: (sid, code, why) => this.sockError(sid, code, why),
      devError: (id, code, why) => this.devError(id, code, why),
      markReady: (sid) => this.markReady(sid),
      dropStaged: (sid) => this.dropStaged(sid),
    });
  }

  /** The commands (CREATE ... TENANT_KEYS). */
  private readonly cmds: Commands;

  /** The H2D FIFO (signals from the guest). */
  private readonly h2d: H2dFifo;
  /** The D2H FIFO with interrupt moderation. */
  private readonly d2h: D2hFifo;
  /** The fault points of a move (dma.*, job.*). */
  private readonly moveFaults: MoveFaults;

  private shmMem: Uint8Array | null = null;
  private shmView: DataView | null = null;

  /** The shared-memory BAR as a DataView (cached: this runs on every poll). */
  private shm(): DataView | null {
    const m = this.host.deviceMemory();
    if (m !== this.shmMem) {
      this.shmMem = m;
      this.shmView = m ? new DataView(m.buffer, m.byteOffset, m.byteLength) : null;
    }
    return this.shmView;
  }

  // ---- control ---------------------------------------------------------------

  /** Checks the configuration and starts; returns the offending register name, or null. */
  start(): string | null {
    const c = this.cfg;
    if (!isPow2(c.d2hSlots) || c.d2hSlots < 64 || c.d2hSlots > 1 << 20) return 'D2H_SLOTS';
    if (!this.host.dmaView(c.d2hBase, c.d2hSlots * 8)) return 'D2H_BASE';
    if (!this.host.dmaView(c.d2hProdAddr, 4)) return 'D2H_PROD_ADDR';
    if (!isPow2(c.cmdSlots) || c.cmdSlots > 65536) return 'CMD_SLOTS';
    if (!this.host.dmaView(c.cmdBase, c.cmdSlots * CONSTANTS.CMD_SLOT_SIZE)) return 'CMD_BASE';
    if (c.h2dMode > 2) return 'H2D_MODE';
    if (!this.shm()) return 'DP_CONTROL';
    this.running = true;
    this.sleeping = false;
    this.lastWorkNs = this.host.nowNs();
    const shm = this.shm()!;
    this.h2d.start(shm);
    this.pausedUntil = 0;
    this.d2h.start();
    this.host.log.info({ d2hSlots: c.d2hSlots, cmdSlots: c.cmdSlots, mode: c.h2dMode }, 'data plane started');
    return null;
  }

  stop(reason: string): void {
    if (!this.running && !this.halted && this.socks.open === 0) return;
    this.running = false;
    this.halted = false;
    for (let sid = 0; sid < this.socks.capacity; sid++) this.socks.free(sid);
    this.socks.listeners.clear();
    this.addrs.clear();
    this.rings.clear();
    this.ready = [];
    this.readyAt = 0;
    this.waiters.clear();
    this.staged.clear();
    this.stagingUsed = 0;
    this.stagingWaiters.clear();
    this.remote?.reset();
    this.d2h.clear();
    if (this.farm) this.farm = new AcceleratorFarm(this.farm.cfg); // queued jobs die with their sockets
    this.host.log.info({ reason }, 'data plane stopped');
  }

  /** Stops all work at once, in the middle of a round, without freeing anything (a fault reset or removal; stop() follows). */
  halt(): void {
    this.running = false;
    this.halted = true;
  }

  private halted = false;

  /** A fault reset is coming: tell the driver through the D2H FIFO while it is still configured (DEV_ERROR id 0xffffff). */
  announceReset(): void {
    const shm = this.shm();
    if (!shm || this.cfg.d2hSlots === 0) return;
    this.d2h.emit(D2H.DEV_ERROR, 0xffffff, SERR.DEVICE_RESET);
    this.d2h.flush(shm);
  }

  kick(): void {
    this.counters.kicks++;
    this.sleeping = false;
    this.lastWorkNs = this.host.nowNs();
    const shm = this.shm();
    if (shm) shm.setUint32(SHM.H2D_FLAGS, 0, true);
  }

  // ---- the poll loop ---------------------------------------------------------

  /**
   * One round of work: H2D signals, message moves, D2H backlog. Returns true
   * while the carrier should call again at once (busy, or polling mode).
   */
  poll(): boolean {
    if (!this.running) return false;
    if (this.sleeping) return false;
    if (this.pausedUntil > 0 && this.host.nowNs() < this.pausedUntil) return false; // a scheduled event wakes the carrier
    const shm = this.shm()!;
    let work = this.h2d.consume(shm);
    work = this.moveMessages() || work;
    if (this.remote) work = this.remote.flush() || work;
    this.d2h.flush(shm);
    const now = this.host.nowNs();
    if (work) this.lastWorkNs = now;
    const more =
      this.readyAt < this.ready.length ||
      this.d2h.pending > 0 ||
      (this.farm !== null && this.farm.pending > 0);
    switch (this.cfg.h2dMode) {
      case ENUMS.H2D_MODE.POLL:
        return true;
      case ENUMS.H2D_MODE.KICK:
        if (!more && !work) this.sleeping = true;
        return more || work;
      default: {
        if (work || more || now - this.lastWorkNs < HYBRID_IDLE_NS) return true;
        // Idle: ask for kicks, then look once more so a signal published
        // just before the flag was seen is not left waiting.
        shm.setUint32(SHM.H2D_FLAGS, 1 << 0, true);
        if (shm.getUint32(SHM.H2D_PROD, true) !== this.h2d.cons) {
          shm.setUint32(SHM.H2D_FLAGS, 0, true);
          return true;
        }
        this.sleeping = true;
        return false;
      }
    }
  }

  /** One H2D signal (also the entry point for tests). */
  signal(type: number, id: number, value: number): void {
    if (TRACE.signal_h2d) trace('signal_h2d', signalFields(type, id, value));
    switch (type) {
      case SIG.TX_TAIL:
        return this.txTail(id, value);
      case SIG.RX_HEAD:
        return this.rxHead(id, value);
      case SIG.CMD:
        return this.cmds.run(id);
      case SIG.NOP:
        return;
      case SIG.RESYNC:
        return this.d2h.resync(value);
      default: {
        const sid = id >>> 1;
        if (this.socks.exists(sid))
          this.sockError(sid, SERR.UNKNOWN_SIGNAL, `unknown signal type 0x${type.toString(16)}`);
        else this.devError(id, SERR.UNKNOWN_SIGNAL, `unknown signal type 0x${type.toString(16)}`);
      }
    }
  }

  // ---- signals ---------------------------------------------------------------

  /** The socket a ring id names, when it exists and is usable; otherwise reports and returns -1. */
  private ringOwner(ringId: number, dir: number, what: string): number {
    const sid = ringId >>> 1;
    if ((ringId & 1) !== dir || !this.socks.exists(sid)) {
      this.devError(ringId, SERR.NO_SUCH_RING, `${what} for ring ${ringId}, which does not exist`);
      return -1;
    }
    const st = this.socks.state[sid];
    if (st === SockState.ERROR) {
      this.counters.signalErrors++;
      return -1;
    } // counted, already reported once
    if (st === SockState.CLOSING) {
      this.sockError(sid, SERR.SOCKET_CLOSED, `${what} on a closing socket`);
      return -1;
    }
    return sid;
  }

  private txTail(ringId: number, tail: number): void {
    const sid = this.ringOwner(ringId, ENUMS.RING_DIR.TX, 'TX_TAIL');
    if (sid < 0) return;
    const s = this.socks;
    const size = s.txSize[sid]!;
    const len = (tail - s.txTail[sid]!) >>> 0;
    if (len === 0) {
      this.counters.repeats++;
      return;
    } // a repeated tail (a retrying driver): no news
    if (len > size || (tail - s.txHead[sid]!) >>> 0 > size) {
      return this.sockError(
        sid,
        SERR.BAD_TAIL,
        `TX_TAIL ${tail} moves the tail by ${len} in a ${size}-byte ring`,
      );
    }
    if (s.state[sid] !== SockState.CONNECTED)
      return this.sockError(sid, SERR.NOT_CONNECTED, 'send on a socket that is not connected');
    if (s.flags[sid]! & FLAG_PEER_CLOSED)
      return this.sockError(sid, SERR.NOT_CONNECTED, 'send after the peer closed');
    if (s.flags[sid]! & FLAG_SHUT_WR)
      return this.sockError(sid, SERR.NOT_CONNECTED, 'send after SHUTDOWN (SHUT_WR)');
    const peer = s.peer[sid]!;
    const chain = this.chainOf(sid);
    const out = chain.transform.outLen(len);
    const peerRx = this.remote?.has(sid) ? this.remote.peerRxSize(sid) : s.rxSize[peer]!;
    if (!chain.lookAside && peer !== NO_PEER && typeof out === 'number' && out > peerRx)
      return this.sockError(
        sid,
        SERR.MSG_TOO_LARGE,
        `message of ${len} bytes${out !== len ? ` (${out} after ${chain.transform.name})` : ''} larger than the peer's ${peerRx}-byte ring`,
      );
    s.txTail[sid] = tail;
    const q = s.txQueue.get(sid);
    if (q) q.push(len);
    else s.txQueue.set(sid, [len]);
    this.markReady(sid);
  }

  private rxHead(ringId: number, head: number): void {
    const sid = this.ringOwner(ringId, ENUMS.RING_DIR.RX, 'RX_HEAD');
    if (sid < 0) return;
    const s = this.socks;
    const adv = (head - s.rxHead[sid]!) >>> 0;
    if (adv === 0) {
      this.counters.repeats++;
      return;
    }
    if (adv > s.rxUsed(sid))
      return this.sockError(
        sid,
        SERR.BAD_HEAD,
        `RX_HEAD ${head} passes the ${s.rxUsed(sid)} bytes delivered`,
      );
    s.rxHead[sid] = head;
    if (this.remote?.has(sid)) this.remote.rxConsumed(sid, adv);
    const w = this.waiters.get(sid);
    if (w) {
      this.waiters.delete(sid);
      for (const src of w) {
        s.flags[src] = s.flags[src]! & ~FLAG_BLOCKED;
        this.markReady(src);
      }
    }
  }

  private markReady(sid: number): void {
    const f = this.socks.flags[sid]!;
    if (f & (FLAG_READY | FLAG_BLOCKED | FLAG_UNPAIRED)) return;
    this.socks.flags[sid] = f | FLAG_READY;
    this.ready.push(sid);
  }

  // ---- warp pipes ------------------------------------------------------------

  /** The decoded chain of a socket's pipes (validated at CONNECT, so it decodes). */
  private chainOf(sid: number): Chain {
    const s = this.socks;
    const code = s.chain[sid]!;
    const tx = s.tenant[sid]!;
    const peer = s.peer[sid]!;
    const rx = peer === NO_PEER || !s.exists(peer) ? tx : s.tenant[peer]!;
    // The sender's tenant's keys encrypt and encapsulate, the receiver's decrypt and decapsulate.
    const key = code * 2 ** 20 + (tx & 0x3ff) * 1024 + (rx & 0x3ff);
    let c = this.chains.get(key);
    if (!c) {
      c = decodeChain(code, this.tenants.keysOf(tx), this.tenants.keysOf(rx)) as Chain;
      this.chains.set(key, c);
    }
    return c;
  }

  private moveMessages(): boolean {
    if (this.farm) return this.moveScheduled(this.farm);
    const s = this.socks;
    let moved = 0;
    while (this.readyAt < this.ready.length && moved < MOVE_BUDGET) {
      const sid = this.ready[this.readyAt++]!;
      s.flags[sid] = s.flags[sid]! & ~FLAG_READY;
      const q = s.txQueue.get(sid);
      if (s.state[sid] === SockState.FREE || s.state[sid] === SockState.ERROR) continue;
      if (this.remote?.has(sid)) {
        if (this.moveRemote(sid, q)) moved++;
        continue;
      }
      if (this.chainOf(sid).fullCopy) {
        if (this.moveStaged(sid, q)) moved++;
        continue;
      }
      if (!q || q.length === 0) continue;
      // Round-robin: one message per socket per turn.
      const r = this.moveOne(sid, q[0]!);
      if (r === 'moved') {
        moved++;
        this.dequeued(sid, q);
      } else if (r === 'blocked') {
        this.waitForRoom(sid, s.peer[sid]!);
      }
    }
    if (this.readyAt >= this.ready.length) {
      this.ready = [];
      this.readyAt = 0;
    } else if (this.readyAt > 4096) {
      this.ready = this.ready.slice(this.readyAt);
      this.readyAt = 0;
    }
    return moved > 0;
  }

  /** A socket with a remote peer: its next message goes to the fabric when the peer's ring has room. */
  private moveRemote(sid: number, q: number[] | undefined): boolean {
    if (!q || q.length === 0) return false;
    if (this.remote!.sendMessage(sid, q[0]!) !== 'sent') return false; // credit or window will wake it
    this.dequeued(sid, q);
    return true;
  }

  /**
   * Executor F: copies what fits of `sid`'s queued messages into staging
   * memory (its sender's ring space freed at once), then lands staged
   * messages in order while the sink has room. A message larger than all
   * staging memory, with none staged ahead of it, moves as Z does. Returns
   * whether anything moved.
   */
  private moveStaged(sid: number, q: number[] | undefined): boolean {
    const s = this.socks;
    let progress = false;
    let st = this.staged.get(sid);
    while (q && q.length > 0 && q[0]! <= this.stagingBytes) {
      const len = q[0]!;
      if (this.stagingUsed + len > this.stagingBytes) {
        this.stagingWaiters.add(sid);
        break;
      }
      const src = this.host.dmaView(BigInt(s.txAddr[sid]!), s.txSize[sid]!);
      if (!src) {
        this.sockError(sid, SERR.RING_UNMAPPED, 'tx ring no longer in mapped guest memory');
        return progress;
      }
      const buf = new Uint8Array(len);
      let at = 0;
      const pos = s.txHead[sid]! & (s.txSize[sid]! - 1);
      for (const seg of split(src.length, pos, len)) {
        buf.set(src.subarray(seg.off, seg.off + seg.len), at);
        at += seg.len;
      }
      if (this.faults.armed[POINT.DMA_READ]) this.moveFaults.stagingReadFault(sid, src, pos, len, buf);
      this.stagingUsed += len;
      if (st) st.push(buf);
      else this.staged.set(sid, (st = [buf]));
      this.consumed(sid, len);
      q.shift();
      progress = true;
    }
    let blocked = false;
    while (st && st.length > 0) {
      const buf = st[0]!;
      const r = this.moveOne(sid, buf.length, buf);
      if (r === 'failed') return progress;
      if (r === 'blocked') {
        // The sender is not held: its new messages are still staged meanwhile.
        this.waitForRoom(sid, s.peer[sid]!, false);
        blocked = true;
        break;
      }
      st.shift();
      this.stagingUsed -= buf.length;
      progress = true;
      this.wakeStagingWaiters();
    }
    if (st && st.length === 0) {
      this.staged.delete(sid);
      st = undefined;
    }
    if (!st && q && q.length > 0 && q[0]! > this.stagingBytes) {
      const r = this.moveOne(sid, q[0]!);
      if (r === 'moved') {
        q.shift();
        progress = true;
      } else if (r === 'blocked') {
        this.waitForRoom(sid, s.peer[sid]!);
        blocked = true;
      }
    }
    if (q && q.length === 0) s.txQueue.delete(sid);
    if (!st && !s.txQueue.has(sid)) {
      if (s.state[sid] === SockState.CLOSING) this.cmds.finishClose(sid);
      else this.cmds.shutPending(sid);
    } else if (progress && !blocked && !this.stagingWaiters.has(sid)) {
      this.markReady(sid);
    }
    return progress;
  }

  private wakeStagingWaiters(): void {
    if (this.stagingWaiters.size === 0) return;
    const w = this.stagingWaiters;
    this.stagingWaiters = new Set();
    for (const sid of w) if (this.socks.exists(sid)) this.markReady(sid);
  }

  /** Frees `sid`'s staged messages (its socket failed or was released). */
  private dropStaged(sid: number): void {
    const st = this.staged.get(sid);
    if (!st) return;
    for (const b of st) this.stagingUsed -= b.length;
    this.staged.delete(sid);
    this.stagingWaiters.delete(sid);
    this.wakeStagingWaiters();
  }

  /**
   * Moves the next message of `sid` through its chain into its sink ring,
   * when there is room: from its tx ring (Z: zero-copy, its space freed
   * now), or from `staged` (F: the space was freed when it was staged).
   */
  private moveOne(
    sid: number,
    len: number,
    staged?: Uint8Array,
    jobDone?: Fault | null,
  ): 'moved' | 'blocked' | 'failed' {
    const s = this.socks;
    const peer = s.peer[sid]!;
    if (peer === NO_PEER || !s.exists(peer) || s.state[peer] === SockState.ERROR) {
      this.sockError(sid, SERR.NOT_CONNECTED, 'the peer is gone; queued messages cannot be delivered');
      return 'failed';
    }
    const chain = this.chainOf(sid);
    const src = staged ?? this.host.dmaView(BigInt(s.txAddr[sid]!), s.txSize[sid]!);
    if (!src) {
      this.sockError(sid, SERR.RING_UNMAPPED, 'tx ring no longer in mapped guest memory');
      return 'failed';
    }
    const srcPos = staged ? 0 : s.txHead[sid]! & (s.txSize[sid]! - 1);
    const txRing = (sid << 1) | ENUMS.RING_DIR.TX;
    const rxRing = (peer << 1) | ENUMS.RING_DIR.RX;
    if (chain.lookAside) {
      const pre = this.faultsArmed(0)
        ? this.moveFaults.preMoveFaults(sid, peer, chain, src, srcPos, len, rxRing, staged)
        : null;
      if (typeof pre === 'string') return pre;
      // Executor A: the engine reads the message; only its digest goes back to the sender.
      let crc = 0;
      for (const seg of split(src.length, srcPos, len))
        crc = crc32c(src.subarray(seg.off, seg.off + seg.len), crc);
      this.consumed(sid, len);
      this.d2h.emit(D2H.DIGEST, txRing, crc);
      return 'moved';
    }
    const t = chain.transform;
    const outLen = t.outLen(len);
    if (typeof outLen === 'string')
      return this.refused(sid, staged ? 0 : len, rxRing, chain.errorCode, outLen);
    if (s.rxFree(peer) < outLen) return 'blocked';
    const dst = this.host.dmaView(BigInt(s.rxAddr[peer]!), s.rxSize[peer]!);
    if (!dst) {
      this.sockError(peer, SERR.RING_UNMAPPED, 'rx ring no longer in mapped guest memory');
      return 'failed';
    }
    const dstPos = s.rxTail[peer]! & (s.rxSize[peer]! - 1);
    let after: Fault[] | null = null;
    if (jobDone || this.faultsArmed(1)) {
      const pre = this.moveFaults.preMoveFaults(
        sid,
        peer,
        chain,
        src,
        srcPos,
        len,
        rxRing,
        staged,
        BigInt(s.rxAddr[peer]! + dstPos),
        outLen,
      );
      if (typeof pre === 'string') return pre;
      after = pre;
      if (jobDone) (after ??= []).push(jobDone);
    }
    if (t.bytewise && srcPos + len <= src.length && dstPos + len <= dst.length) {
      // The common case, no wrap on either side: one job, no job list.
      t.map!(src.subarray(srcPos, srcPos + len), dst.subarray(dstPos, dstPos + len));
    } else {
      const jobs = generateJobs({
        srcSize: src.length,
        srcPos,
        len,
        dstSize: dst.length,
        dstPos,
        outLen,
        bytewise: t.bytewise,
      });
      for (const job of jobs) {
        const e = runJob(t, job, src, dst);
        if (e !== null) return this.refused(sid, staged ? 0 : len, rxRing, chain.errorCode, e); // nothing was written
      }
    }
    if (after) {
      // Written: the data path's CRC of what was meant against what landed (dma.write, job.complete).
      for (const f of after) {
        if (f.action === 'corrupt' && writeCorrupted(dst, dstPos, outLen, f))
          return this.refused(
            sid,
            staged ? 0 : len,
            rxRing,
            SERR.CORRUPTED,
            'message corrupted on its way into the sink ring (data-path CRC)',
          );
      }
    }
    s.rxTail[peer] = (s.rxTail[peer]! + outLen) >>> 0;
    this.d2h.emit(D2H.RX_TAIL, rxRing, s.rxTail[peer]!);
    if (chain.digestToReceiver) {
      // Executor M: the digest of what was delivered, beside it.
      let crc = 0;
      for (const seg of split(dst.length, dstPos, outLen))
        crc = crc32c(dst.subarray(seg.off, seg.off + seg.len), crc);
      this.d2h.emit(D2H.DIGEST, rxRing, crc);
    }
    if (staged) this.delivered(len);
    else this.consumed(sid, len);
    return 'moved';
  }

  /**
   * Scheduled mode: hand ready messages to the accelerators (each with its
   * sink space reserved, so a finished job always fits), let the
   * accelerators run what their schedulers pick, and move the messages
   * whose chains are done.
   */
  private moveScheduled(farm: AcceleratorFarm): boolean {
    const s = this.socks;
    let work = false;
    while (this.readyAt < this.ready.length) {
      const sid = this.ready[this.readyAt++]!;
      s.flags[sid] = s.flags[sid]! & ~FLAG_READY;
      const q = s.txQueue.get(sid);
      if (!q || s.state[sid] === SockState.FREE || s.state[sid] === SockState.ERROR) continue;
      if (this.remote?.has(sid)) {
        work = this.moveRemote(sid, q) || work;
        continue;
      } // not scheduled: the link is the limit
      const peer = s.peer[sid]!;
      if (peer === NO_PEER || !s.exists(peer)) {
        this.sockError(sid, SERR.NOT_CONNECTED, 'the peer is gone; queued messages cannot be delivered');
        continue;
      }
      const chain = this.chainOf(sid);
      while (s.inFlight[sid]! < q.length && s.inFlight[sid]! < MAX_IN_FLIGHT) {
        const len = q[s.inFlight[sid]!]!;
        const out = chain.lookAside ? 0 : chain.transform.outLen(len);
        const need = typeof out === 'number' ? out : 0;
        if (s.rxFree(peer) - s.rxReserved[peer]! < need) {
          this.waitForRoom(sid, peer);
          break;
        }
        s.rxReserved[peer] = s.rxReserved[peer]! + need;
        s.inFlight[sid] = s.inFlight[sid]! + 1;
        const engines = chain.stages.map((st) => STAGE_ENGINE[st] ?? '');
        if (peer !== sid) engines.push('rdma');
        const accels = farm.accels(engines);
        const tag: { sid: number; need: number; fail?: number; done?: Fault | null } = { sid, need };
        const startNs = this.faults.armed[POINT.JOB_START]
          ? this.moveFaults.jobFaultsScheduled(POINT.JOB_START, farm, tag, len)
          : 0;
        // Engines the farm does not model cost nothing: such a message moves at once.
        if (accels.length === 0) this.finishScheduled(sid, need, tag);
        else if (startNs > 0)
          this.host.schedule(startNs, () => {
            if (this.farm === farm && this.running)
              farm.submit(s.tenant[sid]!, accels, len, tag, this.host.nowNs());
          });
        else farm.submit(s.tenant[sid]!, accels, len, tag, this.host.nowNs());
        work = true;
      }
    }
    this.ready = [];
    this.readyAt = 0;
    farm.pump(this.host.nowNs(), (tag) => {
      const t = tag as { sid: number; need: number; fail?: number; done?: Fault | null };
      const wait = this.faults.armed[POINT.JOB_COMPLETE]
        ? this.moveFaults.jobFaultsScheduled(POINT.JOB_COMPLETE, farm, t, 0)
        : 0;
      if (wait > 0)
        this.host.schedule(wait, () => {
          if (this.farm === farm && this.running) this.finishScheduled(t.sid, t.need, t);
        });
      else this.finishScheduled(t.sid, t.need, t);
      work = true;
    });
    return work;
  }

  /** A message's chain has run on the accelerators: do the real work now. */
  private finishScheduled(sid: number, need: number, tag?: { fail?: number; done?: Fault | null }): void {
    const s = this.socks;
    if (s.inFlight[sid]! > 0) s.inFlight[sid] = s.inFlight[sid]! - 1;
    const peer = s.peer[sid]!;
    if (peer !== NO_PEER && s.exists(peer)) s.rxReserved[peer] = Math.max(0, s.rxReserved[peer]! - need);
    const q = s.txQueue.get(sid);
    if (!q || q.length === 0 || s.state[sid] === SockState.FREE || s.state[sid] === SockState.ERROR) return;
    if (tag?.fail && peer !== NO_PEER && s.exists(peer)) {
      this.refused(
        sid,
        q[0]!,
        (peer << 1) | ENUMS.RING_DIR.RX,
        tag.fail,
        'accelerator job failed (fault injection)',
      );
      this.dequeued(sid, q);
      return;
    }
    if (this.moveOne(sid, q[0]!, undefined, tag?.done) === 'moved') this.dequeued(sid, q);
  }

  /** The head message of `sid`'s queue has moved: go on with the next, or finish a pending close. */
  private dequeued(sid: number, q: number[]): void {
    q.shift();
    if (q.length > 0) {
      this.markReady(sid);
      return;
    }
    this.socks.txQueue.delete(sid);
    if (this.socks.state[sid] === SockState.CLOSING) this.cmds.finishClose(sid);
    else this.cmds.shutPending(sid);
  }

  /**
   * `sid`'s next message waits for room in `peer`'s rx ring; an RX_HEAD there
   * wakes it. `holdSender` false (executor F): its new messages still go to
   * staging meanwhile.
   */
  private waitForRoom(sid: number, peer: number, holdSender = true): void {
    const w = this.waiters.get(peer);
    if (holdSender) {
      // Held (FLAG_BLOCKED): nothing marks it ready again before the RX_HEAD, so it is listed once.
      this.socks.flags[sid] = this.socks.flags[sid]! | FLAG_BLOCKED;
      if (w) w.push(sid);
      else this.waiters.set(peer, [sid]);
    } else if (!w) {
      this.waiters.set(peer, [sid]);
    } else if (!w.includes(sid)) {
      w.push(sid); // not held: it may come back here before the RX_HEAD
    }
  }

  /**
   * Gives the device a fabric to other nodes (the carrier's, or an in-memory
   * one in tests); returns the events the carrier reports to.
   */
  attachFabric(fabric: PipeFabric): PipeFabricEvents {
    this.remote = new RemotePipes(
      {
        socks: this.socks,
        host: this.host,
        keys: this.keys,
        addrs: this.addrs,
        emit: (t, i, v) => this.d2h.emit(t, i, v),
        sockError: (sid, code, why) => this.sockError(sid, code, why),
        consumed: (sid, len) => this.consumed(sid, len),
        markReady: (sid) => this.markReady(sid),
        answer: (slot, status, result) => this.cmds.answer(slot, status, result),
        queueConnection: (l, id) => {
          const b = this.socks.backlog.get(l);
          if (b) b.push(id);
          else this.socks.backlog.set(l, [id]);
          this.d2h.emit(D2H.EVENT, l, ENUMS.EVENT.CONN_PENDING);
        },
      },
      fabric,
    );
    // Whatever the fabric reports may leave D2H signals to flush: a sleeping poller wakes.
    const ev = this.remote.events;
    const wake = (): void => {
      this.sleeping = false;
      this.lastWorkNs = this.host.nowNs();
    };
    return {
      frame: (...a) => {
        ev.frame(...a);
        wake();
      },
      acked: (n, q) => {
        ev.acked(n, q);
        wake();
      },
      failed: (n, why) => {
        ev.failed(n, why);
        wake();
      },
      drain: (n) => {
        ev.drain(n);
        wake();
      },
      place: ev.place,
    };
  }

  /** Scheduled mode: configure the accelerators and tenants, or go back to unscheduled (null). */
  configureFarm(cfg: FarmConfig | null): void {
    if (this.farm && this.farm.pending > 0)
      throw new Error(`${this.farm.pending} jobs are in the accelerators; stop the traffic first`);
    this.farm = cfg ? new AcceleratorFarm(cfg) : null;
    for (let sid = 0; sid < this.socks.capacity; sid++) {
      this.socks.inFlight[sid] = 0;
      this.socks.rxReserved[sid] = 0;
    }
    this.host.log.info(
      { accelerators: cfg?.accels, tenants: cfg?.tenants.map((t) => t.name), policy: cfg?.policy },
      cfg ? 'accelerators scheduled' : 'accelerators unscheduled',
    );
  }

  /** The sender's message has left its ring. */
  private consumed(sid: number, len: number): void {
    const s = this.socks;
    s.txHead[sid] = (s.txHead[sid]! + len) >>> 0;
    this.counters.msgsMoved++;
    this.counters.bytesMoved += len;
    this.d2h.emit(D2H.TX_HEAD, (sid << 1) | ENUMS.RING_DIR.TX, s.txHead[sid]!);
  }

  /** A staged message has landed (its sender's space was freed when it was staged). */
  private delivered(len: number): void {
    this.counters.msgsMoved++;
    this.counters.bytesMoved += len;
  }

  /** A transformation refused the message: the receiver learns (MSG_ERROR), the sender's ring moves on (len 0: it already has). */
  private refused(sid: number, len: number, rxRing: number, code: number, why: string): 'moved' {
    this.guestErr.warn(`refused-${code}`, { sid, code, why }, 'message refused by a transformation');
    this.d2h.emit(D2H.MSG_ERROR, rxRing, code);
    if (len > 0) this.consumed(sid, len);
    return 'moved';
  }

  /** Each live tenant's measured rate and DRF allocation (scheduled accelerators), with its id. */
  tenantReport(): (ReturnType<AcceleratorFarm['report']>[number] & { id: number })[] {
    if (!this.farm) return [];
    return this.farm
      .report()
      .map((r, id) => ({ id, ...r }))
      .filter((r) => this.tenants.has(r.id));
  }

  // ---- errors ----------------------------------------------------------------

  private sockError(sid: number, code: number, why: string): void {
    const s = this.socks;
    this.counters.signalErrors++;
    if (s.state[sid] === SockState.ERROR) return;
    s.state[sid] = SockState.ERROR;
    s.err[sid] = code;
    s.txQueue.delete(sid);
    this.remote?.closed(sid);
    this.dropStaged(sid);
    this.host.log.warn({ sid, code, why }, 'socket error');
    this.d2h.emit(D2H.SOCK_ERROR, sid, code);
  }

  private devError(id: number, code: number, why: string): void {
    this.counters.signalErrors++;
    this.guestErr.warn(`dev-${code}`, { id, code, why }, 'signal rejected');
    this.d2h.emit(D2H.DEV_ERROR, id, code);
  }

  // ---- fault injection ---------------------------------------------------------

  /** A point's context for socket `sid` (-1: none). */
  private sockCtx(sid: number): { sid?: number; tenant?: number } {
    if (sid < 0) return {};
    return this.socks.exists(sid) ? { sid, tenant: this.socks.tenant[sid]! } : { sid };
  }

  /** No work before now + ns of device time (a delay or a stall holds the engines); a scheduled event wakes the carrier. */
  private pause(ns: number): void {
    const until = this.host.nowNs() + ns;
    if (until <= this.pausedUntil) return;
    this.pausedUntil = until;
    this.host.schedule(ns, () => {});
  }

  /** A signal not run: SOCK_ERROR for the socket its id names when that exists, otherwise DEV_ERROR naming the id. */
  private rejectSignal(sig: bigint, code: number, why: string): void {
    const type = Number(sig >> 56n);
    const id = Number((sig >> 32n) & 0xffffffn);
    const sid = type === SIG.CMD ? -1 : id >>> 1;
    if (sid >= 0 && this.socks.exists(sid)) this.sockError(sid, code, why);
    else this.devError(id, code, why);
  }

  /** Whether a move must look at the read side (0) or both sides (1) of its points. */
  private faultsArmed(withWrite: 0 | 1): boolean {
    const a = this.faults.armed;
    const jobs = this.farm === null; // scheduled: job.* are checked at the accelerators
    return (
      a[POINT.DMA_READ] !== 0 ||
      (jobs && a[POINT.JOB_START] !== 0) ||
      (withWrite === 1 && (a[POINT.DMA_WRITE] !== 0 || (jobs && a[POINT.JOB_COMPLETE] !== 0)))
    );
  }

  /** Sockets from id `from` on, at most `limit`, for the control interface. */
  describeSockets(
    from: number,
    limit: number,
  ): { total: number; sockets: Record<string, unknown>[]; next: number | null } {
    const s = this.socks;
    const names = ['free', 'created', 'listening', 'connecting', 'connected', 'closing', 'error'];
    const out: Record<string, unknown>[] = [];
    let sid = from;
    for (; sid < s.capacity && out.length < limit; sid++) {
      if (!s.exists(sid)) continue;
      out.push({
        sid,
        state: names[s.state[sid]!],
        peer: s.peer[sid] === NO_PEER ? null : s.peer[sid],
        port: s.port[sid] || null,
        chain: s.chain[sid],
        txSize: s.txSize[sid],
        rxSize: s.rxSize[sid],
        txQueued: s.txQueue.get(sid)?.length ?? 0,
        staged: this.staged.get(sid)?.length ?? 0,
        remote: this.remote?.describe(sid) ?? null,
        txUsed: s.txUsed(sid),
        rxUsed: s.rxUsed(sid),
        error: s.err[sid] || null,
      });
    }
    while (sid < s.capacity && !s.exists(sid)) sid++;
    return { total: s.open, sockets: out, next: sid < s.capacity ? sid : null };
  }

  /** Bytes of typed-array state per socket slot (for the memory figures). */
  static stateBytesPerSocket(): number {
    return SocketTable.bytesPerSlot();
  }
}
