/**
 * A connection as the fabric sees it: a wire with a frame decoder on its
 * input. Whoever owns it (first the fabric, waiting for a HELLO, then a
 * link) sets the handlers; a connection we drop ourselves reports nothing
 * more, so an owner never hears about a connection it already let go.
 */
import { FrameDecoder, FrameError, type Frame } from './frame.js';
import type { Wire } from './transport.js';

export interface ConnHandlers {
  frame(f: Frame): void;
  /** Malformed input; the connection is already dropped. */
  bad(e: FrameError): void;
  /** The other side (or the network) ended the connection. */
  closed(reason: string): void;
}

export class Conn {
  private dropped = false;
  private readonly decoder: FrameDecoder;
  private h: ConnHandlers = { frame: () => {}, bad: () => {}, closed: () => {} };

  /** The owner sets the handlers at once: the wire reports nothing before the next tick. */
  constructor(
    readonly wire: Wire,
    maxPayload: number,
  ) {
    this.decoder = new FrameDecoder((f) => this.h.frame(f), maxPayload);
    wire.onData((chunk) => this.guard(() => this.decoder.push(chunk)), {
      headerNext: () => this.decoder.headerNext,
    });
    if (wire.readExactly) this.decoder.pull = (views, n) => wire.readExactly!(views, n);
    wire.onClose((error) => {
      if (this.dropped) return;
      this.guard(() => this.decoder.end());
      if (this.dropped) return;
      this.dropped = true;
      this.h.closed(error ? `connection error: ${error.message}` : 'peer closed the connection');
    });
  }

  get open(): boolean {
    return !this.dropped;
  }

  setHandlers(h: ConnHandlers): void {
    this.h = h;
  }

  /** Sees each frame's bytes before the CRC check (FrameDecoder.tap: fault injection). */
  setTap(tap: (head: Uint8Array, payload: () => Uint8Array) => boolean): void {
    this.decoder.tap = tap;
  }

  /** Where a large payload may go straight from the wire (FrameDecoder.placer); used only when the wire can read exactly. */
  setPlacer(placer: (head: Uint8Array) => Uint8Array[] | null): void {
    this.decoder.placer = placer;
  }

  /** The largest payload accepted from here on. */
  setMaxPayload(n: number): void {
    this.decoder.maxPayload = n;
  }

  write(chunks: readonly Uint8Array[]): void {
    if (!this.dropped) this.wire.write(chunks);
  }

  /** Closes the connection; nothing more is delivered from it. */
  drop(): void {
    if (this.dropped) return;
    this.dropped = true;
    this.decoder.stop();
    this.wire.close();
  }

  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      // Only malformed input is ours to handle; an owner's exception is a bug and propagates.
      if (!(e instanceof FrameError)) throw e;
      this.drop();
      this.h.bad(e);
    }
  }
}
