/**
 * Fault injection on the wire: what a network does to frames, asked of the
 * owner frame by frame. The fabric knows nothing of fault plans: the owner
 * (host/fabric-carrier.ts, from the device's FaultInjector) answers
 * send() for each frame a link writes and recv() for each frame a link's
 * connection decodes, and the link applies the answer (link-faults.ts):
 *
 *   drop       the frame is not written / not taken (a lost packet)
 *   duplicate  written twice / taken twice
 *   corrupt    `xor` at `offset` of the frame as on the wire (header bytes
 *              0..47, then the payload); the receiver's frame CRC refuses it
 *   delay      the link's output / input is held `ns`, order kept
 *   link_down  the connection is cut and not re-made for `ns` (an outage)
 *   error      the connection is reset (redialled at once)
 *
 * The link recovers from each (reconnect and resume, the retransmission
 * timeout for a frame lost with nothing after it) or fails the session past
 * its deadline, as for any outage.
 */
export type WireFault =
  | { readonly action: 'drop' | 'duplicate' | 'error' }
  | { readonly action: 'delay' | 'link_down'; readonly ns: number }
  | { readonly action: 'corrupt'; readonly offset: number; readonly xor: Uint8Array };

/** The frame a fault is asked about: its type, seq (0 on link frames), the owner's ids and its payload size. */
export interface WireFrame {
  readonly type: number;
  readonly seq: number;
  readonly channel: number;
  readonly socket: number;
  readonly bytes: number;
}

export interface WireFaults {
  /**
   * armed[sendPoint] (armed[recvPoint]) is non-zero when send() (recv())
   * could answer with a fault now: read for every frame, so it is an array
   * the owner keeps current (the injector's), never a call.
   */
  readonly armed: ArrayLike<number>;
  readonly sendPoint: number;
  readonly recvPoint: number;
  /** A frame about to be written to `peer`. */
  send(peer: string, f: WireFrame): WireFault | null;
  /** A frame decoded from `peer`'s connection, before its CRC is checked. */
  recv(peer: string, f: WireFrame): WireFault | null;
}

/**
 * `chunks` (a frame: header, then payload segments) with `xor` applied at
 * `offset` of their concatenation; bytes past the end change nothing. With
 * `copy` (a frame being sent) the chunks it touches are copied, never
 * changed: the payload is the owner's (a guest ring, kept for
 * retransmission). Without (a frame received: the receiver's own bytes),
 * in place.
 */
export function corruptChunks(
  chunks: readonly Uint8Array[],
  offset: number,
  xor: Uint8Array,
  copy = true,
): Uint8Array[] {
  const out = [...chunks];
  let base = 0;
  for (let i = 0; i < out.length; i++) {
    let c = out[i]!;
    const lo = Math.max(offset, base);
    const hi = Math.min(offset + xor.length, base + c.length);
    if (lo < hi) {
      if (copy) out[i] = c = Uint8Array.from(c);
      for (let p = lo; p < hi; p++) c[p - base] = c[p - base]! ^ xor[p - offset]!;
    }
    base += c.length;
  }
  return out;
}

/**
 * A link's output or input held by injected delays: while held, items queue
 * in order; when the last delay has passed they are released together.
 */
export class Hold<T> {
  private queue: T[] | null = null;
  private until = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly release: (items: T[]) => void) {}

  get active(): boolean {
    return this.queue !== null;
  }

  /** Queues `item` behind the held ones (only while active). */
  push(item: T): void {
    this.queue?.push(item);
  }

  /** Holds for `ms` more from now (a longer hold already running stands). */
  extend(ms: number): void {
    this.until = Math.max(this.until, performance.now() + ms);
    this.queue ??= [];
    if (!this.timer) this.timer = setTimeout(this.flush, ms);
  }

  /** Drops what is held (its connection is gone). */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = null;
    this.until = 0;
  }

  private readonly flush = (): void => {
    const wait = this.until - performance.now();
    if (wait > 0.5) {
      this.timer = setTimeout(this.flush, wait);
      return;
    }
    this.timer = null;
    const items = this.queue ?? [];
    this.queue = null;
    this.release(items);
  };
}
