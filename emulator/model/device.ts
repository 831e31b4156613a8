/**
 * The SG-IOV device model: the MMIO dispatch over the BAR0 register file
 * (its state and behaviours in registers.ts), the trapped doorbells and
 * the DMA engine. One state object, one MMIO dispatch, access sizes checked,
 * DMA ranges checked, guest errors latched in ERROR_CODE and logged, never
 * thrown (see emulator/abi/abi.ts for the register map).
 */
import { BARS, BITS, CONSTANTS, DOORBELLS, ENUMS, SHM } from '../abi/abi.js';
import { RateLimitedLog } from '../util/log.js';
import type { DeviceHost, FabricPort, PciDeviceModel } from './host.js';
import { DataPlane, defaultDataPlaneConfig } from './dataplane/dataplane.js';
import type { PipeFabric, PipeFabricEvents } from './dataplane/remote.js';
import { FaultInjector, corruptValue, applyCorrupt, type Fault } from '../faults/injector.js';
import { POINT } from '../faults/plan.js';
import { faultCode, raiseIrq } from './fault-points.js';
import { crc32c } from './accel/engines.js';
import {
  bit,
  type DeviceState,
  type ErrorCode,
  powerOnState,
  type Register,
  registerTable,
  U32,
  U64,
} from './registers.js';

export type { ErrorCode } from './registers.js';
import { hex, TRACE, trace } from '../util/trace.js';

const errName = (code: number): string =>
  Object.entries(ENUMS.ERR).find(([, v]) => v === code)?.[0] ?? String(code);
const ERR = ENUMS.ERR;

export interface DeviceConfig {
  msixVectors: number;
  maxSockets?: number;
  /** The device's fault injector (default: one with no rules). */
  faults?: FaultInjector;
}

export class SgiovDevice implements PciDeviceModel, FabricPort {
  private s: DeviceState = powerOnState();
  private readonly guestErr: RateLimitedLog;
  /** offset -> register, for the dispatch; built from the ABI table. */
  private readonly byOffset: Map<number, Register>;
  readonly dp: DataPlane;
  /** Fault injection: one injector for the whole device (the data plane and the fabric use it too). */
  readonly faults: FaultInjector;
  /**
   * Surprise removal (a fault): MMIO reads return all-ones, writes are
   * ignored, no DMA, no interrupts, the data plane stopped. Cleared by a
   * reset from the host side (control `reset` or faults `reinsert`, a new client).
   */
  removed = false;
  /** Fault resets applied (device.reset-point removals are counted by the injector). */
  faultResets = 0;
  /** The DMA engine since start (a reset does not clear them; metrics): jobs done, their bytes, jobs failed. */
  readonly dmaStats = { jobs: 0, bytes: 0, errors: 0 };

  constructor(
    private readonly host: DeviceHost,
    private readonly cfg: DeviceConfig = { msixVectors: BARS.MSIX_VECTORS },
  ) {
    this.guestErr = new RateLimitedLog(host.log);
    this.faults = cfg.faults ?? new FaultInjector(host.log);
    this.dp = new DataPlane(host, cfg.maxSockets ?? CONSTANTS.MAX_SOCKETS_DEFAULT, this.faults, (f, where) =>
      this.globalFault(f, where),
    );
    this.byOffset = registerTable({
      dp: this.dp,
      msixVectors: cfg.msixVectors,
      busMasterEnabled: () => host.busMasterEnabled(),
      guestReset: (reason) => this.guestReset(reason),
      latchError: (code, addr, why) => this.latchError(code, addr, why),
      refuseWrite: (offset, why) => this.badAccess('write', 0, offset, 4, why, 0n),
    });
  }

  poll(): boolean {
    if (this.removed) return false;
    return this.dp.poll();
  }

  /** What the control interface's `status` shows. */
  status(): Record<string, unknown> {
    const st = this.s;
    const dp = this.dp;
    return {
      enabled: (st.control & bit(BITS.CONTROL.ENABLE)) !== 0,
      busMaster: this.host.busMasterEnabled(),
      error: { code: st.errorCode, name: errName(st.errorCode), addr: '0x' + st.errorAddr.toString(16) },
      irqCount: st.irqCount,
      badAccessCount: st.badAccessCount,
      dma: { completed: st.dmaCompleted, state: st.dmaStatus, tag: st.dmaTag },
      dataPlane: {
        running: dp.running,
        sleeping: dp.sleeping,
        mode: dp.cfg.h2dMode,
        maxSockets: dp.socks.max,
        socketsOpen: dp.socks.open,
        counters: { ...dp.counters },
        staging: { usedBytes: dp.stagingUsed, bytes: dp.stagingBytes },
      },
      faults: {
        removed: this.removed,
        resets: this.faultResets,
        state: this.faults.state,
        rules: this.faults.list().rules.length,
        injections: this.faults.list().injections,
      },
    };
  }

  attachFabric(fabric: PipeFabric): PipeFabricEvents {
    return this.dp.attachFabric(fabric);
  }

  socketTenant(sid: number): number | undefined {
    return this.dp.socks.tenant[sid];
  }

  /** Device time in nanoseconds (the carrier's clock). */
  nowNs(): number {
    return this.host.nowNs();
  }

  reset(reason: string): void {
    this.removed = false;
    this.s = powerOnState();
    this.dp.stop(reason);
    Object.assign(this.dp.cfg, defaultDataPlaneConfig());
    const shm = this.host.deviceMemory();
    if (shm) shm.fill(0, 0, Math.min(SHM.H2D_RING, shm.length)); // indexes and flags back to 0
    this.host.log.info({ reason }, 'device reset');
  }

  /** A reset the guest asked for: the device.reset point sees it (a surprise removal there makes the reset the last thing the device does). */
  private guestReset(reason: string): void {
    const f = this.faults.armed[POINT.DEVICE_RESET] ? this.faults.check(POINT.DEVICE_RESET) : null;
    this.reset(reason);
    if (f) this.globalFault(f, 'device.reset');
  }

  /**
   * reset and surprise_removal, from any point. A reset is the device
   * resetting itself as if the guest had: the driver is told first (D2H
   * DEV_ERROR DEVICE_RESET while the FIFO is configured), then everything
   * goes back to power-on and ERROR_CODE latches DEVICE_RESET (DP_STATUS
   * reads 0). It runs after the current access or round (the data plane is
   * halted at once). Returns true when `f` was one of them.
   */
  private globalFault(f: Fault, where: string): boolean {
    if (f.action === 'surprise_removal') {
      if (!this.removed) {
        this.removed = true;
        this.dp.halt();
        this.host.log.warn(
          { where, rule: f.rule },
          'surprise removal (fault injection): the device stops answering',
        );
      }
      return true;
    }
    if (f.action !== 'reset') return false;
    this.dp.halt();
    this.host.schedule(0, () => {
      if (this.removed) return;
      this.dp.announceReset();
      this.faultResets++;
      this.reset(`fault injection at ${where} (rule ${f.rule})`);
      this.s.errorCode = ERR.DEVICE_RESET;
    });
    return true;
  }

  /** A copy of the state, for tests and the control interface. */
  snapshot(): Readonly<DeviceState> {
    return { ...this.s };
  }

  // ---- MMIO dispatch -------------------------------------------------------

  barRead(bar: number, offset: number, size: number): bigint {
    const v = this.barRead1(bar, offset, size);
    if (TRACE.mmio_read) trace('mmio_read', { bar, offset: hex(offset), size, value: hex(v) });
    return v;
  }

  private barRead1(bar: number, offset: number, size: number): bigint {
    const ones = size >= 8 ? U64 : (1n << BigInt(size * 8)) - 1n;
    if (this.removed) return ones;
    if (this.faults.armed[POINT.MMIO_READ]) {
      const f = this.faults.check(
        POINT.MMIO_READ,
        bar === BARS.REGS_BAR ? { reg: offset, addr: offset, len: size } : { addr: offset, len: size },
      );
      if (f && !this.globalFault(f, 'mmio.read')) {
        // A failed read completes with all-ones (a completer abort), a poisoned one too; both are latched.
        if (f.action === 'all_ones') return ones;
        if (f.action === 'error')
          return this.mmioFailed(
            faultCode(f, 'device', ERR.ACCESS_FAILED),
            offset,
            'MMIO read failed (fault injection)',
            ones,
          );
        if (f.action === 'corrupt') {
          const v = this.read(bar, offset, size, ones);
          return corruptValue(v, size, f) === v
            ? v
            : this.mmioFailed(ERR.POISONED, offset, 'poisoned MMIO read completion', ones);
        }
      }
      if (this.removed) return ones;
    }
    return this.read(bar, offset, size, ones);
  }

  /** An MMIO access a fault failed: latched (STATUS.ERROR, ERROR_CODE, the error interrupt) and answered with `value`. */
  private mmioFailed(code: ErrorCode | number, offset: number, why: string, value: bigint): bigint {
    this.latchError(code as ErrorCode, BigInt(offset), why);
    return value;
  }

  private read(bar: number, offset: number, size: number, ones: bigint): bigint {
    if (bar === BARS.SHM_BAR)
      return (
        this.shmAccess(offset, size) ??
        this.badAccess(
          'read',
          bar,
          offset,
          size,
          'shared-memory BAR takes aligned 4- or 8-byte accesses',
          ones,
        )
      );
    if (bar !== BARS.REGS_BAR) return this.badAccess('read', bar, offset, size, 'no such BAR', ones);
    if (offset >= DOORBELLS.BASE && offset < DOORBELLS.BASE + DOORBELLS.SIZE) {
      if (size !== 4 || offset % 4 !== 0)
        return this.badAccess('read', bar, offset, size, 'doorbells take aligned 4-byte accesses', ones);
      return 0n; // doorbells are write-only; reads return 0
    }
    const hit = this.locate(offset, size);
    if (typeof hit === 'string')
      return this.badAccess('read', bar, offset, size, hit, hit === 'undefined register' ? 0n : ones);
    const full = hit.r.b.read(this.s);
    return hit.high ? full >> 32n : size === 4 ? full & U32 : full;
  }

  barWrite(bar: number, offset: number, size: number, value: bigint): void {
    if (TRACE.mmio_write) trace('mmio_write', { bar, offset: hex(offset), size, value: hex(value) });
    if (this.removed) return;
    if (this.faults.armed[POINT.MMIO_WRITE]) {
      const f = this.faults.check(
        POINT.MMIO_WRITE,
        bar === BARS.REGS_BAR ? { reg: offset, addr: offset, len: size } : { addr: offset, len: size },
      );
      if (f && !this.globalFault(f, 'mmio.write')) {
        if (f.action === 'drop') return; // a lost posted write: only a read-back shows it
        if (f.action === 'error') {
          this.mmioFailed(
            faultCode(f, 'device', ERR.ACCESS_FAILED),
            offset,
            'MMIO write failed (fault injection)',
            0n,
          );
          return;
        }
        if (f.action === 'corrupt' && corruptValue(value, size, f) !== value) {
          this.mmioFailed(ERR.POISONED, offset, 'poisoned MMIO write discarded', 0n);
          return;
        }
      }
      if (this.removed) return;
    }
    this.write(bar, offset, size, value);
  }

  private write(bar: number, offset: number, size: number, value: bigint): void {
    if (bar === BARS.SHM_BAR) {
      if (this.shmAccess(offset, size, value) === null)
        this.badAccess(
          'write',
          bar,
          offset,
          size,
          'shared-memory BAR takes aligned 4- or 8-byte accesses',
          0n,
        );
      return;
    }
    if (bar !== BARS.REGS_BAR) {
      this.badAccess('write', bar, offset, size, 'no such BAR', 0n);
      return;
    }
    if (offset >= DOORBELLS.BASE && offset < DOORBELLS.BASE + DOORBELLS.SIZE) {
      if (size !== 4 || offset % 4 !== 0) {
        this.badAccess('write', bar, offset, size, 'doorbells take aligned 4-byte accesses', 0n);
        return;
      }
      this.doorbell(offset, Number(value & U32));
      return;
    }
    const hit = this.locate(offset, size);
    if (typeof hit === 'string') {
      this.badAccess('write', bar, offset, size, hit, 0n);
      return;
    }
    const { def, b } = hit.r;
    if (!b.write || def.access === 'ro') {
      this.badAccess('write', bar, offset, size, `register ${def.name} is read-only`, 0n);
      return;
    }
    if (def.width === 8 && size === 4) {
      const cur = b.read(this.s);
      const v = hit.high ? (cur & U32) | ((value & U32) << 32n) : (cur & (U32 << 32n)) | (value & U32);
      b.write(this.s, v);
    } else {
      b.write(this.s, value);
    }
  }

  /**
   * A trapped access to the shared-memory BAR (a client that does not map
   * it): the same memory the device polls. Returns the value read (or 0n
   * for a write), or null for an unsupported access.
   */
  private shmAccess(offset: number, size: number, value?: bigint): bigint | null {
    const m = this.host.deviceMemory();
    if (!m || (size !== 4 && size !== 8) || offset % size !== 0 || offset + size > m.length) return null;
    const d = new DataView(m.buffer, m.byteOffset, m.byteLength);
    if (value === undefined)
      return size === 4 ? BigInt(d.getUint32(offset, true)) : d.getBigUint64(offset, true);
    if (size === 4) d.setUint32(offset, Number(value & U32), true);
    else d.setBigUint64(offset, value, true);
    return 0n;
  }

  /** Finds the register an access hits, or says why it hits none. */
  private locate(offset: number, size: number): { r: Register; high: boolean } | string {
    if (size !== 4 && size !== 8) return `unsupported access size ${size}`;
    if (offset % size !== 0) return 'misaligned access';
    const r = this.byOffset.get(offset);
    if (r) {
      if (size > r.def.width) return `${size}-byte access to 4-byte register ${r.def.name}`;
      return { r, high: false };
    }
    const lower = this.byOffset.get(offset - 4);
    if (lower && lower.def.width === 8 && size === 4) return { r: lower, high: true };
    return 'undefined register';
  }

  private badAccess(
    kind: 'read' | 'write',
    bar: number,
    offset: number,
    size: number,
    why: string,
    readValue: bigint,
  ): bigint {
    this.s.badAccessCount = (this.s.badAccessCount + 1) >>> 0;
    this.guestErr.warn(
      `mmio-${kind}`,
      { bar, offset: '0x' + offset.toString(16), size, why },
      `guest MMIO ${kind} ignored`,
    );
    return readValue;
  }

  // ---- doorbells and the DMA engine ---------------------------------------

  private doorbell(offset: number, tag: number): void {
    if (offset === DOORBELLS.KICK) {
      this.dp.kick();
      return;
    }
    if (offset !== DOORBELLS.DMA) {
      this.latchError(ERR.BAD_DOORBELL, BigInt(offset), 'write to an undefined doorbell');
      return;
    }
    // The job runs after the MMIO write returns, as on hardware: the
    // driver sees completion by interrupt or DMA_STATUS, never inline.
    const job = {
      src: this.s.dmaSrc,
      dst: this.s.dmaDst,
      len: this.s.dmaLen,
      op: this.s.dmaOp,
      vector: this.s.dmaVector,
      tag,
    };
    this.host.schedule(0, () => this.runDma(job));
  }

  private runDma(
    job: { src: bigint; dst: bigint; len: number; op: number; vector: number; tag: number },
    checked = 0,
  ): void {
    if (this.removed) return; // a vanished device does no DMA
    const fail = (code: ErrorCode, addr: bigint, why: string): void => {
      this.dmaStats.errors++;
      if (TRACE.dma_error) trace('dma_error', { tag: job.tag, code: errName(code), addr: hex(addr), why });
      this.s.dmaStatus = ENUMS.DMA_STATE.ERROR;
      this.s.dmaTag = job.tag;
      this.latchError(code, addr, why);
    };
    if (!(this.s.control & bit(BITS.CONTROL.ENABLE)))
      return fail(ERR.NOT_ENABLED, 0n, 'DMA doorbell while the device is not enabled');
    if (!this.host.busMasterEnabled())
      return fail(ERR.DMA_BUS_MASTER_OFF, job.src, 'DMA with bus mastering disabled');
    if (job.len < 1 || job.len > CONSTANTS.DMA_MAX_LEN)
      return fail(ERR.DMA_BAD_LENGTH, BigInt(job.len), `DMA length ${job.len} out of range`);
    if (job.op !== ENUMS.DMA_OP.COPY && job.op !== ENUMS.DMA_OP.INVERT)
      return fail(ERR.BAD_OPCODE, BigInt(job.op), `unknown DMA op ${job.op}`);
    if (job.vector >= this.cfg.msixVectors)
      return fail(ERR.BAD_VECTOR, BigInt(job.vector), `MSI-X vector ${job.vector} out of range`);
    const src = this.host.dmaView(job.src, job.len);
    if (!src) return fail(ERR.DMA_UNMAPPED, job.src, 'DMA read from guest memory no region covers');
    const dst = this.host.dmaView(job.dst, job.len);
    if (!dst) return fail(ERR.DMA_UNMAPPED, job.dst, 'DMA write to guest memory no region covers');
    // dma.read, then dma.write: error fails the job as an unmapped DMA does; delay runs it later
    // (checked: the points already decided); corrupt is caught by the engine's CRC of the data.
    type Corrupt = Fault & { action: 'corrupt' };
    const bad: (Corrupt | null)[] = [null, null];
    for (const [point, addr, bit] of [
      [POINT.DMA_READ, job.src, 1],
      [POINT.DMA_WRITE, job.dst, 2],
    ] as const) {
      if ((checked & bit) !== 0 || !this.faults.armed[point]) continue;
      const f = this.faults.check(point, { addr, len: job.len });
      checked |= bit;
      if (!f || this.globalFault(f, point === POINT.DMA_READ ? 'dma.read' : 'dma.write')) {
        if (this.removed) return;
        continue;
      }
      if (f.action === 'error')
        return fail(
          faultCode(f, 'device', ERR.DMA_UNMAPPED) as ErrorCode,
          addr,
          'DMA failed (fault injection)',
        );
      if (f.action === 'delay') {
        this.host.schedule(f.ns, () => this.runDma(job, checked));
        return;
      }
      if (f.action === 'corrupt') bad[bit - 1] = f as Corrupt;
    }
    if (bad[0]) {
      // The data read is corrupted in flight: the engine checks it against the source's CRC before it writes.
      const got = src.slice();
      applyCorrupt(got, bad[0]);
      if (crc32c(got) !== crc32c(src))
        return fail(
          ERR.DMA_CORRUPTED,
          job.src,
          'DMA data corrupted on the read (CRC mismatch); nothing written',
        );
    }
    if (job.op === ENUMS.DMA_OP.COPY) {
      dst.set(src); // TypedArray.set copies as if through a temporary when the ranges overlap
    } else {
      const from = src.buffer === dst.buffer ? src.slice() : src;
      for (let i = 0; i < job.len; i++) dst[i] = ~from[i]! & 0xff;
    }
    if (bad[1]) {
      // The data lands corrupted: the engine's CRC of what it wrote against what is there.
      const meant = crc32c(dst);
      applyCorrupt(dst, bad[1]);
      if (crc32c(dst) !== meant)
        return fail(ERR.DMA_CORRUPTED, job.dst, 'DMA data corrupted on the write (CRC mismatch)');
    }
    this.s.dmaStatus = ENUMS.DMA_STATE.DONE;
    this.s.dmaTag = job.tag;
    this.s.dmaCompleted = (this.s.dmaCompleted + 1) >>> 0;
    this.dmaStats.jobs++;
    this.dmaStats.bytes += job.len;
    if (TRACE.dma_done)
      trace('dma_done', {
        tag: job.tag,
        src: hex(job.src),
        dst: hex(job.dst),
        len: job.len,
        op: job.op === ENUMS.DMA_OP.COPY ? 'copy' : 'invert',
      });
    this.interrupt(BITS.IRQ.DMA_DONE, job.vector);
  }

  /** Latches the first error until the driver clears it, and signals it. */
  private latchError(code: ErrorCode, addr: bigint, why: string): void {
    if (this.s.errorCode === ERR.NONE) {
      this.s.errorCode = code;
      this.s.errorAddr = addr;
    }
    this.guestErr.warn(`err-${code}`, { code, addr: '0x' + addr.toString(16), why }, 'guest error');
    this.interrupt(BITS.IRQ.ERROR, this.s.errVector);
  }

  private interrupt(cause: number, vector: number): void {
    if (this.removed) return;
    this.s.irqStatus = (this.s.irqStatus | bit(cause)) >>> 0;
    if (!(this.s.irqMask & bit(cause))) return;
    if (vector >= this.cfg.msixVectors) return;
    if (this.faults.armed[POINT.IRQ]) {
      // Through the irq point: dropped, delayed or duplicated (the driver recovers by reading IRQ_STATUS / DMA_STATUS).
      this.s.irqCount =
        (this.s.irqCount +
          raiseIrq(
            this.faults,
            this.host,
            vector,
            (f, w) => this.globalFault(f, w),
            () => !this.removed,
          )) >>>
        0;
      return;
    }
    if (this.host.raiseMsix(vector)) this.s.irqCount = (this.s.irqCount + 1) >>> 0;
    else
      this.guestErr.warn('msix', { vector }, 'MSI-X vector not set up by the guest; interrupt not delivered');
  }
}
