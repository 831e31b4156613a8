/**
 * A link's send window: the frames sent and not yet acknowledged, in seq
 * order, bounded in count and payload bytes. It holds the caller's payload
 * segments (views into guest memory), never copies, so the bound is what
 * keeps a slow or silent peer from pinning unbounded memory.
 */

/** A frame sent and kept until acknowledged; the segments are the caller's, not copies. */
export interface SentFrame {
  readonly seq: number;
  readonly type: number;
  readonly flags: number;
  readonly channel: number;
  readonly socket: number;
  readonly value: number;
  readonly segments: readonly Uint8Array[];
  readonly bytes: number;
  /** The payload's part of the CRC, so a retransmission does not hash the payload again. */
  readonly pcrc: number;
  transmitted: boolean;
}

export class SendWindow {
  // frames[head..] are held; released ones are cleared and compacted away now and then, not shift()ed one by one.
  private frames: SentFrame[] = [];
  private head = 0;
  private held = 0;
  private refused = false;

  constructor(
    private readonly maxFrames: number,
    private readonly maxBytes: number,
  ) {}

  get count(): number {
    return this.frames.length - this.head;
  }

  get bytes(): number {
    return this.held;
  }

  /**
   * Whether a frame of `bytes` may be added. An empty window takes any frame,
   * so one larger than maxBytes is slow, not stuck. A refusal is remembered
   * for drainDue().
   */
  admits(bytes: number): boolean {
    const n = this.count;
    if (n === 0 || (n < this.maxFrames && this.held + bytes <= this.maxBytes)) return true;
    this.refused = true;
    return false;
  }

  push(f: SentFrame): void {
    this.frames.push(f);
    this.held += f.bytes;
  }

  /** The held frames in seq order. */
  *[Symbol.iterator](): IterableIterator<SentFrame> {
    for (let i = this.head; i < this.frames.length; i++) yield this.frames[i]!;
  }

  /** Releases the frames with seq <= ack; whether there were any. */
  release(ack: number): boolean {
    const start = this.head;
    while (this.head < this.frames.length && this.frames[this.head]!.seq <= ack) {
      this.held -= this.frames[this.head]!.bytes;
      this.frames[this.head++] = undefined as unknown as SentFrame;
    }
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
    return this.head !== start;
  }

  /** Empties the window, returning what it held. */
  takeAll(): SentFrame[] {
    const all = this.frames.slice(this.head);
    this.frames = [];
    this.head = 0;
    this.held = 0;
    return all;
  }

  /**
   * True once after a refusal, when the window is back to half full or less
   * (not at the first free slot, so a sender refilling it is not woken for
   * every single ack).
   */
  drainDue(): boolean {
    if (!this.refused) return false;
    const n = this.count;
    if (n > 0 && (n > this.maxFrames / 2 || this.held > this.maxBytes / 2)) return false;
    this.refused = false;
    return true;
  }
}
