/**
 * An in-memory bus for the device model: guest memory is a plain buffer,
 * interrupts are recorded, scheduled events run when the test says so.
 * It implements the same DeviceHost contract as the vfio-user transport.
 */
import { BARS } from '../abi/abi.js';
import type { DeviceHost } from '../model/host.js';
import { DmaRegions } from '../model/dma-regions.js';
import { EventQueue } from '../util/event-queue.js';
import { silentLogger, type Logger } from '../util/log.js';

export class MemoryBus implements DeviceHost {
  readonly mem: Uint8Array;
  readonly regions = new DmaRegions();
  busMaster = true;
  /** Vectors the guest has set up; raiseMsix fails for others. */
  enabledVectors = new Set<number>(Array.from({ length: 16 }, (_, i) => i));
  readonly interrupts: number[] = [];
  /** The shared-memory BAR. */
  readonly shm = new Uint8Array(BARS.SHM_BAR_SIZE);
  private readonly queue = new EventQueue();
  private now = 0;

  constructor(
    readonly base = 0x10_0000n,
    size = 1 << 20,
    readonly log: Logger = silentLogger(),
  ) {
    this.mem = new Uint8Array(size);
    this.regions.add(base, size, this.mem);
  }

  dmaView(addr: bigint, len: number): Uint8Array | null {
    return this.regions.view(addr, len);
  }

  busMasterEnabled(): boolean {
    return this.busMaster;
  }

  raiseMsix(vector: number): boolean {
    if (!this.enabledVectors.has(vector)) return false;
    this.interrupts.push(vector);
    return true;
  }

  schedule(delayNs: number, fn: () => void): void {
    this.queue.schedule(this.now + delayNs, fn);
  }

  nowNs(): number {
    return this.now;
  }

  deviceMemory(): Uint8Array {
    return this.shm;
  }

  /** Moves device time forward, running the events that fall due. */
  advance(ns: number): void {
    const until = this.now + ns;
    for (let ev = this.queue.takeDue(until); ev; ev = this.queue.takeDue(until)) {
      this.now = Math.max(this.now, ev.due);
      ev.fn();
    }
    this.now = until;
  }

  /** Runs every scheduled event (and those they schedule); returns how many. */
  runAll(): number {
    let n = 0;
    for (let ev = this.queue.takeDue(Infinity); ev; ev = this.queue.takeDue(Infinity)) {
      this.now = Math.max(this.now, ev.due);
      ev.fn();
      n++;
    }
    return n;
  }

  /** Guest address of byte `off` of the bus memory. */
  addr(off: number): bigint {
    return this.base + BigInt(off);
  }
}
