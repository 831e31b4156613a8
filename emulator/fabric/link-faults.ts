/**
 * The wire faults (faults.ts) as one link applies them: what the network
 * does to each frame the link writes and to each frame its connection
 * decodes (dropped, repeated, corrupted, held in order, the connection
 * reset or cut for an outage during which none is made). The link hands
 * every write and every decoded frame through here; with no fault in play
 * they pass straight on.
 */
import type { Conn } from './conn.js';
import { corruptChunks, Hold, type WireFault, type WireFaults, type WireFrame } from './faults.js';
import { announcedLength, peekHeader, type Frame } from './frame.js';

/** What the faults need of their link. */
export interface FaultedLink {
  readonly peer: string;
  /** The link's current connection, or null. */
  current(): Conn | null;
  /** A frame off the current connection, in order, past every fault: the link takes it. */
  take(f: Frame): void;
  /** `conn` is gone (or is being let go): the link goes down. */
  lost(conn: Conn, why: string): void;
}

export class LinkFaults {
  /** No connection before this (performance.now(), ms): an injected outage. */
  private outageUntil = 0;
  /** Output or input held in order by an injected delay. */
  private readonly txHold = new Hold<readonly Uint8Array[]>((q) => {
    for (const chunks of q) this.link.current()?.write(chunks);
  });
  private readonly rxHold = new Hold<Frame>((q) => {
    const conn = this.link.current();
    for (const f of q) {
      if (this.link.current() !== conn || this.rxHold.active) break;
      this.link.take(f);
    }
  });
  /** The fault the tap drew for the frame being decoded, applied when the frame comes out. */
  private rxFault: WireFault | null = null;

  /** `fx` absent: no faults, every frame passes. */
  constructor(
    private readonly fx: WireFaults | undefined,
    private readonly link: FaultedLink,
  ) {}

  /** How long (ms) an injected outage still forbids a connection; 0 or less: none. */
  outageLeftMs(): number {
    return this.outageUntil - performance.now();
  }

  /** Whether the frame decoded next comes out as it is and at once (no receive fault possible or in play). */
  rxClear(): boolean {
    if (this.rxHold.active || this.rxFault !== null) return false;
    const fx = this.fx;
    return !fx?.armed[fx.recvPoint];
  }

  /** Ends what belongs to a connection: frames held (the resume resends what they carried), a fault drawn. */
  cancel(): void {
    this.txHold.cancel();
    this.rxHold.cancel();
    this.rxFault = null;
  }

  /** The tap for each connection (Conn.setTap), or null with no faults. */
  get tap(): ((head: Uint8Array, payload: () => Uint8Array) => boolean) | null {
    return this.fx ? this.tapFrame : null;
  }

  /** A frame `f` (`chunks`: header, then payload) to write to `conn`, asking the owner's send() what the network does to it. */
  write(conn: Conn, chunks: readonly Uint8Array[], f: WireFrame): void {
    const fx = this.fx;
    const fault = fx?.armed[fx.sendPoint] ? fx.send(this.link.peer, f) : null;
    if (fault === null) this.out(conn, chunks);
    else this.sendFault(conn, chunks, fault);
  }

  /** A frame `conn` decoded (and found sound): the fault the tap drew applied, then on to the link in order. */
  frame(conn: Conn, f: Frame): void {
    const fault = this.rxFault;
    this.rxFault = null;
    if (conn !== this.link.current()) return;
    if (fault !== null && this.recvFault(conn, f, fault)) return;
    this.rx(conn, f);
  }

  /** A frame off the connection, in order: taken now, or queued behind those an injected delay holds. */
  private rx(conn: Conn, f: Frame): void {
    if (conn !== this.link.current()) return;
    if (this.rxHold.active) this.rxHold.push(f);
    else this.link.take(f);
  }

  /** Writes a frame, or queues it behind those an injected delay holds. */
  private out(conn: Conn, chunks: readonly Uint8Array[]): void {
    if (this.txHold.active) this.txHold.push(chunks);
    else conn.write(chunks);
  }

  /** What the network does to a frame being sent. */
  private sendFault(conn: Conn, chunks: readonly Uint8Array[], f: WireFault): void {
    switch (f.action) {
      case 'drop':
        return;
      case 'duplicate':
        this.out(conn, chunks);
        return this.out(conn, chunks);
      case 'corrupt':
        return this.out(conn, corruptChunks(chunks, f.offset, f.xor));
      case 'delay':
        this.txHold.extend(f.ns / 1e6);
        return this.out(conn, chunks);
      case 'link_down':
        this.outageUntil = Math.max(this.outageUntil, performance.now() + f.ns / 1e6);
        return this.cutSoon(conn, `link down for ${f.ns / 1e6} ms (fault injection)`);
      case 'error':
        return this.cutSoon(conn, 'connection reset (fault injection)');
    }
  }

  /**
   * The connection goes now (nothing more is written), the link learns it
   * after the current call: a fault may strike in the middle of the link's
   * goUp() or of the owner's send().
   */
  private cutSoon(conn: Conn, why: string): void {
    conn.drop();
    queueMicrotask(() => this.link.lost(conn, why));
  }

  /**
   * Sees each frame the connection decodes, before its CRC check: asks the
   * owner's recv() and applies a `corrupt` to the bytes (the CRC check that
   * follows refuses the frame); any other fault waits for frame().
   */
  private readonly tapFrame = (head: Uint8Array, payload: () => Uint8Array): boolean => {
    const fx = this.fx!;
    if (!fx.armed[fx.recvPoint]) return false;
    const h = peekHeader(head);
    const f = fx.recv(this.link.peer, {
      type: h.type,
      seq: h.seq,
      channel: h.channel,
      socket: h.socket,
      bytes: announcedLength(head),
    });
    if (f === null) return false;
    if (f.action === 'corrupt') {
      corruptChunks([head, payload()], f.offset, f.xor, false);
      return true;
    }
    this.rxFault = f;
    return false;
  };

  /** What the network does to a frame received; true when the frame is not to be taken as it is. */
  private recvFault(conn: Conn, f: Frame, fault: WireFault): boolean {
    switch (fault.action) {
      case 'drop':
        return true;
      case 'duplicate':
        this.rx(conn, f);
        this.rx(conn, f);
        return true;
      case 'delay':
        this.rxHold.extend(fault.ns / 1e6);
        return false;
      case 'link_down':
        this.outageUntil = Math.max(this.outageUntil, performance.now() + fault.ns / 1e6);
        this.link.lost(conn, `link down for ${fault.ns / 1e6} ms (fault injection)`);
        return true;
      case 'error':
        this.link.lost(conn, 'connection reset (fault injection)');
        return true;
      case 'corrupt':
        return false; // applied by the tap, and the frame passed its CRC: the bytes hit were outside it
    }
  }
}
