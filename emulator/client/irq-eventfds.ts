/**
 * The client's MSI-X vectors as the eventfds the device signals: one per
 * vector, counted without blocking, waited on with poll(2). Which
 * interrupts a waiter already took is kept here too, so that waitAny()
 * returns only new ones.
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, EINTR, type Libc, POLLIN, type Ptr } from '../native/libc.js';

export class IrqEventFds {
  private fds: number[] = [];
  private seen: number[] = [];
  private taken: number[] = [];
  private readonly scratch: Ptr;
  private readonly scratchView: DataView;
  private pollBuf: Ptr = 0n;
  private pollCap = 0;

  constructor(private readonly libc: Libc) {
    this.scratch = libc.alloc(16);
    this.scratchView = new DataView(libc.view(this.scratch, 16));
  }

  /** Vectors with an eventfd (0 before open()). */
  get count(): number {
    return this.fds.length;
  }

  /**
   * Opens one eventfd per vector 0..n-1 and gives them to `handOver` (which
   * hands them to the device): they are this object's when it returns,
   * closed when it (or opening one) throws.
   */
  open(n: number, handOver: (fds: readonly number[]) => void): void {
    const fds: number[] = [];
    try {
      for (let i = 0; i < n; i++) {
        const fd = this.libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) throw new Error(`eventfd failed: errno ${this.libc.errno()}`);
        fds.push(fd);
      }
      handOver(fds);
    } catch (e) {
      for (const fd of fds) this.libc.close(fd);
      throw e;
    }
    this.fds = fds;
    this.seen = fds.map(() => 0);
    this.taken = fds.map(() => 0);
  }

  /** Interrupts seen on `vector` since open() (reads its eventfd without blocking). */
  seenOn(vector: number): number {
    this.drain(vector);
    return this.seen[vector]!;
  }

  /** Forgets interrupts already seen on `vector`: the next wait waits for a new one. */
  clear(vector: number): void {
    this.drain(vector);
    this.taken[vector] = this.seen[vector]!;
  }

  /** Waits up to `timeoutMs` for an interrupt no earlier wait or clear took on one of `vectors`: the first that fired (now taken), or -1. */
  waitAny(vectors: readonly number[], timeoutMs: number): number {
    const ready = (): number => {
      for (const v of vectors) {
        this.drain(v);
        if (this.seen[v]! > this.taken[v]!) {
          this.taken[v] = this.seen[v]!;
          return v;
        }
      }
      return -1;
    };
    let hit = ready();
    if (hit >= 0) return hit;
    if (this.pollCap < vectors.length) {
      if (this.pollBuf) this.libc.free(this.pollBuf);
      this.pollCap = Math.max(vectors.length, 16);
      this.pollBuf = this.libc.alloc(8 * this.pollCap);
    }
    const pv = new DataView(this.libc.view(this.pollBuf, 8 * vectors.length));
    vectors.forEach((v, i) => {
      pv.setInt32(8 * i, this.fds[v]!, true);
      pv.setInt16(8 * i + 4, POLLIN, true);
      pv.setInt16(8 * i + 6, 0, true);
    });
    const end = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, end - Date.now());
      const r = this.libc.poll(this.pollBuf, vectors.length, left);
      if (r < 0 && this.libc.errno() !== EINTR)
        throw new Error(`poll on MSI-X eventfds failed: errno ${this.libc.errno()}`);
      hit = ready();
      if (hit >= 0) return hit;
      if (left === 0 || Date.now() >= end) return -1;
    }
  }

  /** Closes the eventfds (the device was told to drop them, or is gone). */
  closeFds(): void {
    for (const fd of this.fds) this.libc.close(fd);
    this.fds = [];
    this.seen = [];
    this.taken = [];
  }

  /** closeFds() and frees the native buffers; the object is not used again. */
  release(): void {
    this.closeFds();
    if (this.pollBuf) this.libc.free(this.pollBuf);
    this.pollBuf = 0n;
    if (this.scratch) this.libc.free(this.scratch);
  }

  /** Adds what the eventfd of `vector` counted since the last read. */
  private drain(vector: number): void {
    const fd = this.fds[vector];
    if (fd === undefined)
      throw new RangeError(`MSI-X vector ${vector} has no eventfd (enableMsix gave ${this.fds.length})`);
    for (;;) {
      const n = this.libc.read(fd, this.scratch, 8);
      if (n === 8) {
        this.seen[vector]! += Number(this.scratchView.getBigUint64(0, true));
        return;
      }
      if (n < 0 && this.libc.errno() === EINTR) continue;
      return; // EAGAIN: nothing new
    }
  }
}
