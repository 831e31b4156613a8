/**
 * The fault points of a message's move: dma.read and dma.write on the rings,
 * job.start and job.complete on its engines (checked here unless the
 * accelerators are scheduled, then at them), and dma.read when executor F
 * stages a message. A fault fails the message (MSG_ERROR to its receiver),
 * corrupts it (caught by its CRC), or holds the engines (a pause).
 */
import { ENUMS } from '../../abi/abi.js';
import type { Fault, FaultContext, FaultInjector } from '../../faults/injector.js';
import { POINT, POINT_NAMES, type Point } from '../../faults/plan.js';
import type { DeviceHost } from '../host.js';
import type { Chain } from '../accel/engines.js';
import type { AcceleratorFarm } from '../accel/farm.js';
import { faultCode, readCorrupted, type GlobalFaultHandler } from '../fault-points.js';
import type { SocketTable } from './sockets.js';
import { STAGE_ENGINE } from './commands.js';

const SERR = ENUMS.SERR;

/** What the move fault points need of their data plane. */
export interface MoveFaultOwner {
  readonly socks: SocketTable;
  readonly faults: FaultInjector;
  readonly host: DeviceHost;
  readonly onGlobal: GlobalFaultHandler;
  readonly farm: AcceleratorFarm | null;
  /** A message refused: MSG_ERROR to its receiver, the sender's `len` bytes freed. */
  refused(sid: number, len: number, rxRing: number, code: number, why: string): 'moved';
  /** No work before now + ns of device time. */
  pause(ns: number): void;
  chainOf(sid: number): Chain;
}

export class MoveFaults {
  /** Staged messages whose read was found corrupted or failed: the code their receiver gets. */
  private readonly stagedFailed = new WeakMap<Uint8Array, number>();

  constructor(private readonly dp: MoveFaultOwner) {}

  /** The contexts of a message's jobs at job.*: one per engine of its chain (rdma between two sockets), with its executor. */
  private jobContexts(sid: number, peer: number, chain: Chain): FaultContext[] {
    const engines = chain.stages.map((st) => STAGE_ENGINE[st]).filter((e): e is string => e !== undefined);
    if (peer !== sid && !chain.lookAside) engines.push('rdma');
    const executor = chain.lookAside
      ? 'A'
      : chain.digestToReceiver
        ? 'M'
        : chain.fullCopy
          ? 'F'
          : peer === sid
            ? 'L'
            : engines.some((e) => e === 'crypto' || e === 'encap')
              ? 'I'
              : 'Z';
    const tenant = this.dp.socks.tenant[sid]!;
    return engines.length > 0
      ? engines.map((accel) => ({ accel, executor, sid, tenant }))
      : [{ executor, sid, tenant }];
  }

  /**
   * dma.read and job.start (unscheduled) before a message moves, dma.write
   * and job.complete (unscheduled) decided before its output is written when
   * `dstAddr` is given. error: the message fails (MSG_ERROR to the receiver,
   * the sender's space freed); corrupt on the read side: the CRC of the bytes
   * as read is checked against the sender's and a mismatch fails it;
   * delay / stall: the engines hold (pause). Returns the move's result when it
   * ends here, else the faults to apply once the output is written.
   */
  preMoveFaults(
    sid: number,
    peer: number,
    chain: Chain,
    src: Uint8Array,
    srcPos: number,
    len: number,
    rxRing: number,
    staged: Uint8Array | undefined,
    dstAddr?: bigint,
    outLen = 0,
  ): 'moved' | 'failed' | Fault[] | null {
    const s = this.dp.socks;
    const refuse = (code: number, why: string): 'moved' =>
      this.dp.refused(sid, staged ? 0 : len, rxRing, code, why);
    const failed = staged ? this.stagedFailed.get(staged) : undefined;
    if (failed !== undefined) return refuse(failed, 'the message failed when it was staged');
    let after: Fault[] | null = null;
    const apply = (
      f: Fault | null,
      where: string,
      read: boolean,
      fallback: number,
    ): 'moved' | 'failed' | null => {
      if (!f) return null;
      if (this.dp.onGlobal(f, where)) return 'failed';
      switch (f.action) {
        case 'error':
          return refuse(faultCode(f, 'socket', fallback), `${where} failed (fault injection)`);
        case 'delay':
        case 'stall':
          this.dp.pause(f.ns);
          return null;
        case 'corrupt':
          if (read)
            return readCorrupted(src, srcPos, len, f)
              ? refuse(SERR.CORRUPTED, `message corrupted at ${where} (CRC mismatch)`)
              : null;
          (after ??= []).push(f);
          return null;
        default:
          return null;
      }
    };
    /** A dma.* point on `len` bytes at `addr` of socket `who`'s ring. */
    const dma = (point: Point, addr: bigint, len: number, who: number): Fault | null =>
      this.dp.faults.check(point, { addr, len, sid: who, tenant: s.tenant[who]! });
    const a = this.dp.faults.armed;
    const jobs = this.dp.farm === null ? this.jobContexts(sid, peer, chain) : [];
    let r: 'moved' | 'failed' | null = null;
    if (!staged && a[POINT.DMA_READ])
      r = apply(
        dma(POINT.DMA_READ, BigInt(s.txAddr[sid]! + srcPos), len, sid),
        'dma.read',
        true,
        SERR.DMA_ERROR,
      );
    if (a[POINT.JOB_START])
      for (let i = 0; i < jobs.length && !r; i++)
        r = apply(this.dp.faults.check(POINT.JOB_START, jobs[i]!), 'job.start', true, SERR.DEVICE_FAULT);
    if (dstAddr !== undefined) {
      if (!r && a[POINT.DMA_WRITE])
        r = apply(dma(POINT.DMA_WRITE, dstAddr, outLen, peer), 'dma.write', false, SERR.DMA_ERROR);
      if (a[POINT.JOB_COMPLETE])
        for (let i = 0; i < jobs.length && !r; i++)
          r = apply(
            this.dp.faults.check(POINT.JOB_COMPLETE, jobs[i]!),
            'job.complete',
            false,
            SERR.DEVICE_FAULT,
          );
    }
    return r ?? after;
  }

  /** dma.read of executor F, when a message is copied into staging memory: a failure is remembered and reported when it lands. */
  stagingReadFault(sid: number, src: Uint8Array, pos: number, len: number, buf: Uint8Array): void {
    const f = this.dp.faults.check(POINT.DMA_READ, {
      addr: BigInt(this.dp.socks.txAddr[sid]! + pos),
      len,
      sid,
      tenant: this.dp.socks.tenant[sid]!,
    });
    if (!f || this.dp.onGlobal(f, 'dma.read')) return;
    if (f.action === 'error') this.stagedFailed.set(buf, faultCode(f, 'socket', SERR.DMA_ERROR));
    else if (f.action === 'corrupt' && readCorrupted(src, pos, len, f))
      this.stagedFailed.set(buf, SERR.CORRUPTED);
    else if (f.action === 'delay') this.dp.pause(f.ns);
  }

  /**
   * job.start / job.complete with scheduled accelerators, once per engine of
   * the message: error (or a corrupt input, caught by the job's CRC) fails it
   * when it reaches the head of its queue; corrupt at completion corrupts
   * what is written (and is caught there); stall holds an accelerator; delay
   * returns the ns to hold the job.
   */
  jobFaultsScheduled(
    point: Point,
    farm: AcceleratorFarm,
    tag: { sid: number; fail?: number; done?: Fault | null },
    len: number,
  ): number {
    const sid = tag.sid;
    if (!this.dp.socks.exists(sid)) return 0;
    let wait = 0;
    for (const ctx of this.jobContexts(sid, this.dp.socks.peer[sid]!, this.dp.chainOf(sid))) {
      const f = this.dp.faults.check(point, ctx);
      if (!f || this.dp.onGlobal(f, POINT_NAMES[point])) continue;
      if (f.action === 'error') tag.fail ??= faultCode(f, 'socket', SERR.DEVICE_FAULT);
      else if (f.action === 'corrupt') {
        if (point === POINT.JOB_COMPLETE) tag.done = f;
        else if (f.offset < len) tag.fail ??= SERR.CORRUPTED;
      } else if (f.action === 'delay') wait = Math.max(wait, f.ns);
      else if (f.action === 'stall')
        farm.stall(farm.accels([f.accel ?? ctx.accel ?? 'rdma']), this.dp.host.nowNs() + f.ns);
    }
    return wait;
  }
}
