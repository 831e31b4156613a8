/**
 * A user-space SG-IOV driver on the vfio-user client: what the kernel
 * module (guest-driver/kmod/sgiov.c) does at probe and in its DMA
 * self-test, with register names, bits and codes from the ABI
 * (emulator/abi/abi.ts), never literal offsets.
 *
 *   const drv = new SgiovDriver(VfioUserClient.connect(sock));
 *   drv.bringUp();
 *   const r = drv.dmaJob({ src: c.addr(0), dst: c.addr(65536), len: 4096, op: 'copy' });
 */
import { ABI_VERSION, BARS, BITS, CONSTANTS, DOORBELLS, ENUMS, reg } from '../abi/abi.js';
import type { VfioUserClient } from './vfio-user-client.js';

const bit = (n: number): number => (1 << n) >>> 0;

/** Vector use, as the kernel module: 0 for DMA completions, 1 for errors. */
export const VEC_DMA = 0;
export const VEC_ERR = 1;

export type DmaOpName = Lowercase<keyof typeof ENUMS.DMA_OP>;

export interface DmaJob {
  src: bigint;
  dst: bigint;
  len: number;
  /** 'copy', 'invert' or a raw DMA_OP value (to test bad opcodes). */
  op: DmaOpName | number;
  /** MSI-X vector for completion (default VEC_DMA). */
  vector?: number;
  /** Written to the doorbell, echoed in DMA_TAG (default: a fresh one per job). */
  tag?: number;
  /** 'irq': wait for the completion or error interrupt; 'poll': read DMA_TAG/DMA_STATUS until the job shows. Default 'irq' once MSI-X is on. */
  wait?: 'irq' | 'poll';
  timeoutMs?: number;
}

export interface DmaResult {
  /** DMA_STATUS after the job (ENUMS.DMA_STATE). */
  status: number;
  statusName: string;
  tag: number;
  /** The job finished in time (DMA_TAG shows it). */
  finished: boolean;
  /** The vector that fired: the job's, the error vector, or -1 (none, or polled). */
  irqVector: number;
  /** ERROR_CODE and ERROR_ADDR when the job failed (ERR.NONE otherwise). */
  errorCode: number;
  errorName: string;
  errorAddr: bigint;
  /** Writing the job's registers (5 trapped writes). */
  setupNs: number;
  /** From just before the doorbell write until the interrupt (or the poll that saw the job). */
  doorbellToDoneNs: number;
}

export interface BringUpInfo {
  id: number;
  version: { major: number; minor: number };
  caps: number;
  numVectors: number;
  /** Vectors with an eventfd. */
  vectors: number;
}

const nameOf = (table: Record<string, number>, v: number): string =>
  Object.entries(table).find(([, x]) => x === v)?.[0] ?? `unknown(${v})`;

export const errName = (code: number): string => nameOf(ENUMS.ERR, code);
export const dmaStateName = (s: number): string => nameOf(ENUMS.DMA_STATE, s);

export class SgiovDriver {
  private nextTag = 0x5347_0000;

  constructor(readonly client: VfioUserClient) {}

  // ---- registers by ABI name ---------------------------------------------------

  read(name: string, size: number = reg(name).width): bigint {
    return this.client.regionRead(BARS.REGS_BAR, reg(name).offset, size);
  }

  write(name: string, value: bigint | number, size: number = reg(name).width): void {
    this.client.regionWrite(BARS.REGS_BAR, reg(name).offset, size, BigInt(value));
  }

  read32(name: string): number {
    return Number(this.read(name, 4));
  }

  /** Rings the DMA doorbell with `tag`. */
  doorbell(tag: number, offset: number = DOORBELLS.DMA): void {
    this.client.regionWrite(BARS.REGS_BAR, offset, 4, BigInt(tag >>> 0));
  }

  // ---- bring-up ----------------------------------------------------------------

  /**
   * The module's probe: check ID and ABI major, bus mastering, quiesce and
   * acknowledge, MSI-X (one eventfd per vector, at least 2), error vector,
   * interrupt mask, enable. Throws when the device is not an SG-IOV device.
   */
  bringUp(opts: { vectors?: number } = {}): BringUpInfo {
    const c = this.client;
    const id = this.read32('ID');
    if (id !== CONSTANTS.ID_MAGIC)
      throw new Error(
        `ID register reads 0x${id.toString(16)}, expected 0x${CONSTANTS.ID_MAGIC.toString(16)}`,
      );
    const v = this.read32('VERSION');
    const version = { major: v >>> 16, minor: v & 0xffff };
    if (version.major !== ABI_VERSION.major)
      throw new Error(`device ABI ${version.major}.${version.minor}, driver speaks ${ABI_VERSION.major}.x`);
    const caps = this.read32('CAPS');
    const numVectors = this.read32('NUM_VECTORS');
    c.enableBusMaster();
    this.quiesce();
    this.write('IRQ_STATUS', bit(BITS.IRQ.DMA_DONE) | bit(BITS.IRQ.ERROR));
    const vectors = opts.vectors ?? Math.min(numVectors, c.msixCount);
    if (vectors < 2)
      throw new Error(
        `need at least 2 MSI-X vectors (DMA and error), the device offers ${Math.min(numVectors, c.msixCount)}`,
      );
    c.enableMsix(vectors);
    this.write('ERR_VECTOR', VEC_ERR);
    this.write('IRQ_MASK', bit(BITS.IRQ.DMA_DONE) | bit(BITS.IRQ.ERROR));
    this.write('CONTROL', bit(BITS.CONTROL.ENABLE));
    return { id, version, caps, numVectors, vectors };
  }

  /** Stops the device: no interrupts, not enabled (the module's quiesce). */
  quiesce(): void {
    this.write('IRQ_MASK', 0);
    this.write('CONTROL', 0);
    this.read32('STATUS'); // flush, as the module does
  }

  /** The latched error (ERROR_CODE, ERROR_ADDR). */
  error(): { code: number; name: string; addr: bigint } {
    const code = this.read32('ERROR_CODE');
    return { code, name: errName(code), addr: this.read('ERROR_ADDR', 8) };
  }

  /** Clears the latched error (any write to ERROR_CODE) and acknowledges IRQ_STATUS.ERROR. */
  clearError(): void {
    this.write('ERROR_CODE', 0);
    this.write('IRQ_STATUS', bit(BITS.IRQ.ERROR));
  }

  // ---- DMA ------------------------------------------------------------------------

  /**
   * One DMA job: program the engine, ring the doorbell, wait for the
   * completion or error interrupt (or poll), then read what the device
   * reports. Acknowledges IRQ_STATUS like the module's interrupt handlers.
   */
  dmaJob(job: DmaJob): DmaResult {
    const c = this.client;
    const vector = job.vector ?? VEC_DMA;
    const tag = (job.tag ?? this.nextTag++) >>> 0;
    const op =
      typeof job.op === 'number' ? job.op : ENUMS.DMA_OP[job.op.toUpperCase() as keyof typeof ENUMS.DMA_OP];
    const timeoutMs = job.timeoutMs ?? 5000;
    const useIrq = (job.wait ?? (c.msixVectors > 0 ? 'irq' : 'poll')) === 'irq';
    const watch = useIrq ? [...new Set([vector, VEC_ERR])].filter((x) => x < c.msixVectors) : [];
    for (const x of watch) c.clearIrq(x);

    const t0 = process.hrtime.bigint();
    this.write('DMA_SRC', job.src, 8);
    this.write('DMA_DST', job.dst, 8);
    this.write('DMA_LEN', job.len);
    this.write('DMA_OP', op);
    this.write('DMA_VECTOR', vector);
    const t1 = process.hrtime.bigint();
    this.doorbell(tag);
    let irqVector = -1;
    let finished = false;
    if (watch.length > 0) {
      irqVector = c.waitAnyIrq(watch, timeoutMs);
      finished = irqVector >= 0;
    } else {
      const end = Date.now() + timeoutMs;
      while (!finished && Date.now() < end)
        finished = this.read32('DMA_TAG') === tag && this.read32('DMA_STATUS') !== ENUMS.DMA_STATE.IDLE;
    }
    const t2 = process.hrtime.bigint();

    const status = this.read32('DMA_STATUS');
    const gotTag = this.read32('DMA_TAG');
    finished = finished && gotTag === tag;
    let errorCode: number = ENUMS.ERR.NONE;
    let errorAddr = 0n;
    if (status === ENUMS.DMA_STATE.ERROR || irqVector === VEC_ERR) {
      const e = this.error();
      errorCode = e.code;
      errorAddr = e.addr;
    }
    if (useIrq) {
      const st = this.read32('IRQ_STATUS');
      if (st !== 0) this.write('IRQ_STATUS', st);
    }
    return {
      status,
      statusName: dmaStateName(status),
      tag: gotTag,
      finished,
      irqVector,
      errorCode,
      errorName: errName(errorCode),
      errorAddr,
      setupNs: Number(t1 - t0),
      doorbellToDoneNs: Number(t2 - t1),
    };
  }
}
