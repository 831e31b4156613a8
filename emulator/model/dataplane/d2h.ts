/**
 * The D2H side of the Cross-FIFO: signals from the device to the guest.
 *
 * Signals wait in a backlog (never dropped) until the guest's FIFO has room;
 * the producer index goes to a guest-memory word; MSI-X fires when the host
 * armed it, moderated by count and age. The fault point signal.d2h drops,
 * delays, corrupts or repeats signals on their way; a lost one is written
 * again when the driver asks (RESYNC).
 */
import { SHM } from '../../abi/abi.js';
import type { RateLimitedLog } from '../../util/log.js';
import type { DeviceHost } from '../host.js';
import { corruptValue, type FaultInjector } from '../../faults/injector.js';
import { POINT } from '../../faults/plan.js';
import { atomicStore64 } from '../../util/atomics.js';
import { d2hRepeatable, d2hSocket, raiseIrq, type GlobalFaultHandler } from '../fault-points.js';
import { TRACE, trace } from '../../util/trace.js';
import { signalFields } from '../names.js';
import type { DataPlaneConfig, DataPlaneCounters } from './dataplane.js';

/** A FIFO of 64-bit signals as u32 halves, growing as needed (no per-signal allocation). */
export class SignalQueue {
  private buf = new Uint32Array(2048);
  private head = 0;
  length = 0;

  push(hi: number, lo: number): void {
    const cap = this.buf.length >>> 1;
    if (this.length === cap) {
      const b = new Uint32Array(this.buf.length * 2);
      for (let i = 0; i < this.length; i++) {
        b[2 * i] = this.hi(i);
        b[2 * i + 1] = this.lo(i);
      }
      this.buf = b;
      this.head = 0;
    }
    const at = ((this.head + this.length) % (this.buf.length >>> 1)) * 2;
    this.buf[at] = hi;
    this.buf[at + 1] = lo;
    this.length++;
  }

  hi(i: number): number {
    return this.buf[((this.head + i) % (this.buf.length >>> 1)) * 2]!;
  }
  lo(i: number): number {
    return this.buf[((this.head + i) % (this.buf.length >>> 1)) * 2 + 1]!;
  }

  drop(n: number): void {
    this.head = (this.head + n) % (this.buf.length >>> 1);
    this.length -= n;
  }

  clear(): void {
    this.head = 0;
    this.length = 0;
  }
}

/** What the D2H FIFO needs of its data plane. */
export interface D2hOwner {
  readonly cfg: DataPlaneConfig;
  readonly counters: DataPlaneCounters;
  readonly faults: FaultInjector;
  readonly running: boolean;
  /** The shared-memory BAR, or null when unmapped. */
  shmView(): DataView | null;
  /** A fault point's context for socket `sid` (-1: none). */
  sockCtx(sid: number): { sid?: number; tenant?: number };
}

export class D2hFifo {
  private prod = 0;
  /** D2H signals waiting for room in the guest's FIFO (never dropped). */
  private readonly backlog = new SignalQueue();
  private irqPending = 0;
  private irqTimer = false;
  /** Faults: the head of the backlog is held until this time, then written unchecked. */
  private holdUntil = -1;
  /** Faults: signals lost on their way, by FIFO index, until the driver asks (RESYNC). */
  private readonly lost = new Map<number, [number, number]>();

  constructor(
    private readonly dp: D2hOwner,
    private readonly host: DeviceHost,
    private readonly guestErr: RateLimitedLog,
    private readonly onGlobal: GlobalFaultHandler,
  ) {}

  /** Signals waiting in the backlog. */
  get pending(): number {
    return this.backlog.length;
  }

  /** The data plane starts: the producer index from 0, no fault state. */
  start(): void {
    this.prod = 0;
    this.holdUntil = -1;
    this.lost.clear();
    this.writeProd();
  }

  /** The data plane stops: its signals are dropped. */
  clear(): void {
    this.backlog.clear();
    this.irqPending = 0;
  }

  emit(type: number, id: number, value: number): void {
    if (TRACE.signal_d2h) trace('signal_d2h', signalFields(type, id, value));
    // Two u32 halves rather than a BigInt: this runs twice per message.
    this.backlog.push(((type << 24) | (id & 0xffffff)) >>> 0, value >>> 0);
  }

  flush(shm: DataView): void {
    if (this.backlog.length === 0) return;
    const c = this.dp.cfg;
    const fifo = this.host.dmaView(c.d2hBase, c.d2hSlots * 8);
    if (!fifo) {
      this.guestErr.warn('d2h-unmapped', {}, 'D2H FIFO no longer in mapped guest memory; signals held');
      return;
    }
    const f = new DataView(fifo.buffer, fifo.byteOffset, fifo.byteLength);
    const cons = shm.getUint32(SHM.D2H_CONS, true);
    let room = c.d2hSlots - ((this.prod - cons) >>> 0);
    if (room < 0 || room > c.d2hSlots) room = 0; // a corrupt consumer index: wait for a sane one
    let n = 0;
    let slots = 0;
    const q = this.backlog;
    if (this.holdUntil >= 0 || this.dp.faults.armed[POINT.SIGNAL_D2H]) {
      [n, slots] = this.flushFaults(f, room);
    } else {
      while (n < q.length && n < room) {
        const at = ((this.prod + n) % c.d2hSlots) * 8;
        f.setUint32(at, q.lo(n), true);
        f.setUint32(at + 4, q.hi(n), true);
        n++;
      }
      slots = n;
    }
    if (slots === 0) return;
    q.drop(n);
    this.prod = (this.prod + slots) >>> 0;
    this.dp.counters.d2hSignals += slots;
    this.writeProd();
    this.irqPending += slots;
    this.maybeInterrupt(shm);
  }

  private writeProd(): void {
    const p = this.host.dmaView(this.dp.cfg.d2hProdAddr, 4);
    if (p) new DataView(p.buffer, p.byteOffset, 4).setUint32(0, this.prod, true);
  }

  private maybeInterrupt(shm: DataView): void {
    if (this.irqPending === 0) return;
    if (shm.getUint32(SHM.D2H_ARM, true) === 0) {
      this.irqPending = 0;
      return;
    } // the host polls
    const c = this.dp.cfg;
    if (this.irqPending >= Math.max(1, c.modCount)) {
      this.fire(shm);
      return;
    }
    if (c.modUsecs > 0 && !this.irqTimer) {
      this.irqTimer = true;
      this.host.schedule(c.modUsecs * 1000, () => {
        this.irqTimer = false;
        const m = this.dp.shmView();
        if (m && this.dp.running && this.irqPending > 0 && m.getUint32(SHM.D2H_ARM, true) !== 0) this.fire(m);
      });
    }
  }

  private fire(shm: DataView): void {
    shm.setUint32(SHM.D2H_ARM, 0, true);
    this.irqPending = 0;
    this.dp.counters.interrupts += raiseIrq(
      this.dp.faults,
      this.host,
      this.dp.cfg.d2hVector,
      this.onGlobal,
      () => this.dp.running,
    );
  }

  /**
   * signal.d2h while flushing: returns [signals taken from the backlog, FIFO
   * slots used]. drop / error: the slot's write is lost (the slot is left as
   * it was; the signal is kept for RESYNC); corrupt: a poisoned write the
   * host discards, the same; duplicate: a repeatable signal takes two slots;
   * delay: the FIFO holds from this signal on, which is written unchecked later.
   */
  private flushFaults(f: DataView, room: number): [number, number] {
    const q = this.backlog;
    const slotsN = this.dp.cfg.d2hSlots;
    const faults = this.dp.faults;
    let n = 0;
    let slots = 0;
    const put = (hi: number, lo: number): void => {
      const at = ((this.prod + slots) % slotsN) * 8;
      f.setUint32(at, lo, true);
      f.setUint32(at + 4, hi, true);
      slots++;
    };
    while (n < q.length && slots < room) {
      const hi = q.hi(n);
      const lo = q.lo(n);
      if (this.holdUntil >= 0) {
        if (this.host.nowNs() < this.holdUntil) break;
        this.holdUntil = -1;
        put(hi, lo);
        n++;
        continue;
      }
      const ft = faults.armed[POINT.SIGNAL_D2H]
        ? faults.check(POINT.SIGNAL_D2H, this.dp.sockCtx(d2hSocket(hi >>> 24, hi & 0xffffff)))
        : null;
      if (ft && this.onGlobal(ft, 'signal.d2h')) break;
      const sig = (BigInt(hi) << 32n) | BigInt(lo);
      if (ft?.action === 'delay') {
        this.holdUntil = this.host.nowNs() + ft.ns;
        this.host.schedule(ft.ns, () => {});
        break;
      } else if (
        ft?.action === 'drop' ||
        ft?.action === 'error' ||
        (ft?.action === 'corrupt' && corruptValue(sig, 8, ft) !== sig)
      ) {
        this.lost.set((this.prod + slots) >>> 0, [hi, lo]);
        slots++;
      } else {
        put(hi, lo);
        if (ft?.action === 'duplicate' && d2hRepeatable(hi >>> 24, lo) && slots < room) put(hi, lo);
      }
      n++;
    }
    return [n, slots];
  }

  /** RESYNC: the driver found D2H slot `index` empty; write the signal lost there again. */
  resync(index: number): void {
    const lost = this.lost.get(index);
    const c = this.dp.cfg;
    const fifo = lost ? this.host.dmaView(c.d2hBase, c.d2hSlots * 8) : null;
    if (!lost || !fifo) {
      this.dp.counters.repeats++;
      return;
    }
    // The driver polls this slot while it waits: one 8-byte store, never a half-written signal.
    atomicStore64(
      new DataView(fifo.buffer, fifo.byteOffset, fifo.byteLength),
      (index % c.d2hSlots) * 8,
      (BigInt(lost[0]) << 32n) | BigInt(lost[1]),
    );
    this.lost.delete(index);
    this.dp.counters.resyncs++;
  }
}
