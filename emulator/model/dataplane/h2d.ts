/**
 * The H2D side of the Cross-FIFO: signals from the guest, in a FIFO in the
 * shared-memory BAR the device polls (hybrid mode: it polls while busy, and
 * when idle sets NEED_KICK and sleeps until the KICK doorbell; see
 * docs/dataplane.md "Cross-FIFO"). The fault point signal.h2d loses, delays,
 * repeats or poisons a signal on its way.
 */
import { ENUMS, SHM } from '../../abi/abi.js';
import { corruptValue, type FaultInjector } from '../../faults/injector.js';
import { POINT } from '../../faults/plan.js';
import { atomicLoad64, atomicStore64 } from '../../util/atomics.js';
import { faultCode, type GlobalFaultHandler } from '../fault-points.js';
import type { DataPlaneCounters } from './dataplane.js';

const SIG = ENUMS.SIG_H2D;
const SERR = ENUMS.SERR;
/** Signals taken in one round. */
const SIGNAL_BUDGET = 512;
/** D2H signals waiting beyond this: the host is not reading, so its H2D signals are held. */
const D2H_BACKLOG_LIMIT = 1 << 16;

/** What the H2D FIFO needs of its data plane. */
export interface H2dOwner {
  readonly counters: DataPlaneCounters;
  readonly faults: FaultInjector;
  readonly running: boolean;
  /** D2H signals waiting for room in the guest's FIFO. */
  readonly d2hPending: number;
  /** Runs one signal. */
  signal(type: number, id: number, value: number): void;
  /** A fault point's context for socket `sid` (-1: none). */
  sockCtx(sid: number): { sid?: number; tenant?: number };
  /** No work before now + ns of device time. */
  pause(ns: number): void;
  /** A signal not run: SOCK_ERROR for the socket its id names when that exists, otherwise DEV_ERROR naming the id. */
  rejectSignal(sig: bigint, code: number, why: string): void;
}

export class H2dFifo {
  /** The consumer index: the next slot to read. */
  cons = 0;
  /** Faults: a slot held (dropped: waiting for the driver to write it again; delayed: taken after the pause). */
  private hold = -1;
  private holeWait = false;

  constructor(
    private readonly dp: H2dOwner,
    private readonly onGlobal: GlobalFaultHandler,
  ) {}

  /** The data plane starts: from the driver's consumer index, no fault state. */
  start(shm: DataView): void {
    this.cons = shm.getUint32(SHM.H2D_CONS, true);
    this.hold = -1;
  }

  /** Runs the signals published since the last round (at most SIGNAL_BUDGET); whether there were any. */
  consume(shm: DataView): boolean {
    const dp = this.dp;
    if (dp.d2hPending > D2H_BACKLOG_LIMIT) return false; // the host is not reading: hold its signals
    const prod = shm.getUint32(SHM.H2D_PROD, true);
    let n = 0;
    while (this.cons !== prod && n < SIGNAL_BUDGET && dp.running) {
      const slot = SHM.H2D_RING + (this.cons % SHM.H2D_SLOTS) * 8;
      // A slot the device waits at (a lost write) is written again by the driver while the device reads: one 8-byte load.
      const sig = this.hold === this.cons ? atomicLoad64(shm, slot) : shm.getBigUint64(slot, true);
      let times = 1;
      if (this.hold >= 0 || dp.faults.armed[POINT.SIGNAL_H2D]) {
        times = this.fault(shm, slot, sig);
        if (times < 0) break;
      }
      this.cons = (this.cons + 1) >>> 0;
      n++;
      dp.counters.h2dSignals++;
      for (let i = 0; i < times; i++)
        dp.signal(Number(sig >> 56n), Number((sig >> 32n) & 0xffffffn), Number(sig & 0xffffffffn));
    }
    if (n > 0) shm.setUint32(SHM.H2D_CONS, this.cons, true);
    return n > 0;
  }

  /**
   * signal.h2d on the signal in `slot`: how many times to run it (0: discarded,
   * 2: duplicated), or -1 to stop before it. drop: the driver's write of the
   * slot is lost: it reads 0 and the device waits there (the FIFO is in order)
   * until the driver writes it again; delay: taken once the pause is over;
   * corrupt: a poisoned signal, discarded and reported.
   */
  private fault(shm: DataView, slot: number, sig: bigint): number {
    if (this.hold === this.cons) {
      if (!this.holeWait) {
        this.hold = -1;
        return 1;
      } // delayed: its time has come
      if (sig === 0n) return -1;
      this.hold = -1; // written again: a new arrival, checked as such
    }
    if (!this.dp.faults.armed[POINT.SIGNAL_H2D]) return 1;
    const type = Number(sig >> 56n);
    const f = this.dp.faults.check(
      POINT.SIGNAL_H2D,
      this.dp.sockCtx(type === SIG.CMD ? -1 : Number((sig >> 33n) & 0x7fffffn)),
    );
    if (!f) return 1;
    if (this.onGlobal(f, 'signal.h2d')) return -1;
    switch (f.action) {
      case 'drop':
        atomicStore64(shm, slot, 0n); // the driver may be writing it again already
        this.hold = this.cons;
        this.holeWait = true;
        return -1;
      case 'delay':
        this.hold = this.cons;
        this.holeWait = false;
        this.dp.pause(f.ns);
        return -1;
      case 'duplicate':
        return 2;
      case 'corrupt': {
        const bad = corruptValue(sig, 8, f);
        if (bad === sig) return 1; // the bytes fell outside the signal: nothing changed
        this.dp.rejectSignal(bad, SERR.POISONED, 'poisoned H2D signal discarded');
        return 0;
      }
      case 'error':
        this.dp.rejectSignal(
          sig,
          faultCode(f, 'socket', SERR.DEVICE_FAULT),
          'H2D signal failed (fault injection)',
        );
        return 0;
      default:
        return 1;
    }
  }
}
