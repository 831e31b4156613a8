/**
 * The fabric's frame: a fixed 48-byte header and a payload, on a byte stream.
 *
 *   off size
 *     0  u32  magic 'SGFB'
 *     4  u8   version (1)
 *     5  u8   type (link types below; the owner's from FIRST_DATA_TYPE)
 *     6  u16  flags (none defined; carried for the owner)
 *     8  u16  source node: its index in the cluster's sorted names
 *    10  u16  reserved, 0
 *    12  u64  link seq (data frames; 0 on link frames)
 *    20  u64  cumulative ack: the last seq the sender has delivered
 *    28  u32  channel  } opaque to the fabric: the owner's ids
 *    32  u32  socket   }
 *    36  u32  value    }
 *    40  u32  payload length
 *    44  u32  CRC-32 (IEEE, zlib's) over the payload, then header bytes 0..43
 *
 * Big-endian. CRC-32 rather than CRC32C: libdeflate computes it at 24 GB/s
 * here and node's zlib at 3.4 GB/s where libdeflate is missing (0.27 GB/s
 * for a JavaScript CRC32C), and the
 * frame check must not be what limits a link. The CRC covers the payload first so a sender computes the
 * payload's part once and a retransmission (new ack, same payload) only
 * re-hashes 44 header bytes. The payload goes out as the caller's segments
 * (views into guest memory; a message that wraps a ring is two), never
 * concatenated.
 */
import { crc32 } from 'node:zlib';
import { libdeflateCrc32 } from '../native/libdeflate.js';
import { byteLength, joinBytes } from '../util/bytes.js';

const fastCrc = libdeflateCrc32();
/** Below this many bytes zlib's table code is as quick as a native call. */
const FAST_CRC_MIN = 512;
/** Which CRC-32 code the frames use (for the fabric's start-up log line). */
export const FRAME_CRC_IMPL = fastCrc ? 'libdeflate' : 'zlib';

/** CRC-32 of `data`, continuing from `crc`. */
const frameCrc = (data: Uint8Array, crc = 0): number =>
  fastCrc !== null && data.length >= FAST_CRC_MIN ? fastCrc(crc, data) : crc32(data, crc);

export const MAGIC = 0x53474642;
export const VERSION = 1;
export const HEADER_LEN = 48;
const CRC_OFF = 44;
/** Payloads from this size may be placed (FrameDecoder.placer): below it a copy costs less than the extra read. */
export const PLACE_MIN = 16 << 10;
/** A 16 MiB payload: far above the data plane's 1 MiB messages, low enough that a bad length cannot make us allocate gigabytes. */
export const DEFAULT_MAX_PAYLOAD = 16 << 20;

/**
 * The fabric's own frame types: never delivered to the owner. CHALLENGE
 * and PROOF are the authentication between HELLO and WELCOME (auth.ts).
 */
export const LinkType = { HELLO: 1, WELCOME: 2, ACK: 3, HEARTBEAT: 4, CHALLENGE: 5, PROOF: 6 } as const;
/**
 * Types from here up are the owner's (the data plane numbers its CONNECT,
 * MSG, CREDIT, ... from here): sequenced, acked, retransmitted, delivered
 * in order, and never looked into.
 */
export const FIRST_DATA_TYPE = 16;

export interface FrameHeader {
  type: number;
  flags: number;
  src: number;
  seq: number;
  ack: number;
  channel: number;
  socket: number;
  value: number;
}

export interface Frame extends FrameHeader {
  /**
   * The payload as it arrived: one view into a received chunk, or, for a
   * payload that spanned several socket reads, a view into each (never
   * copied together: the receiver writes them where they go). Never reused.
   */
  parts: readonly Uint8Array[];
  /** The payload in one piece: `parts[0]`, or the parts copied together (made on first use). */
  readonly payload: Uint8Array;
  /** Payload bytes. */
  readonly length: number;
}

/** A decoded frame; `payload` joins its parts only when someone asks for it. */
class DecodedFrame implements Frame {
  private joined: Uint8Array | null = null;
  readonly length: number;
  constructor(
    readonly type: number,
    readonly flags: number,
    readonly src: number,
    readonly seq: number,
    readonly ack: number,
    readonly channel: number,
    readonly socket: number,
    readonly value: number,
    readonly parts: readonly Uint8Array[],
  ) {
    this.length = byteLength(parts);
  }

  get payload(): Uint8Array {
    return (this.joined ??= joinBytes(this.parts));
  }
}

const TWO32 = 2 ** 32;
const EMPTY = new Uint8Array(0);

/** The payload's part of the frame CRC. */
export function payloadCrc(segments: readonly Uint8Array[]): number {
  let crc = 0;
  for (const s of segments) crc = frameCrc(s, crc);
  return crc;
}

export const payloadLength: (segments: readonly Uint8Array[]) => number = byteLength;

/** The header for a payload of `length` bytes whose CRC part is `pcrc` (payloadCrc). */
export function encodeHeader(h: FrameHeader, length: number, pcrc: number): Uint8Array {
  const b = new Uint8Array(HEADER_LEN);
  const v = new DataView(b.buffer);
  v.setUint32(0, MAGIC);
  v.setUint8(4, VERSION);
  v.setUint8(5, h.type);
  v.setUint16(6, h.flags);
  v.setUint16(8, h.src);
  v.setUint32(12, Math.floor(h.seq / TWO32));
  v.setUint32(16, h.seq >>> 0);
  v.setUint32(20, Math.floor(h.ack / TWO32));
  v.setUint32(24, h.ack >>> 0);
  v.setUint32(28, h.channel);
  v.setUint32(32, h.socket);
  v.setUint32(36, h.value);
  v.setUint32(40, length);
  v.setUint32(CRC_OFF, frameCrc(b.subarray(0, CRC_OFF), pcrc));
  return b;
}

/** Header and payload segments, ready for a writev. */
export function encodeFrame(h: FrameHeader, segments: readonly Uint8Array[]): Uint8Array[] {
  return [encodeHeader(h, payloadLength(segments), payloadCrc(segments)), ...segments];
}

export type FrameErrorKind = 'badMagic' | 'badVersion' | 'tooLarge' | 'badCrc' | 'truncated';

/** Malformed input: the stream cannot be trusted past it, so the connection goes. */
export class FrameError extends Error {
  constructor(
    readonly kind: FrameErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** The payload length an encoded header announces. */
export function announcedLength(h: Uint8Array): number {
  return u32(h, 40);
}

/** The frame an encoded header describes (not checked: a decoder's tap reads one before the CRC). */
export function peekHeader(h: Uint8Array, payload: Uint8Array | readonly Uint8Array[] = EMPTY): Frame {
  return new DecodedFrame(
    h[5]!,
    (h[6]! << 8) | h[7]!,
    (h[8]! << 8) | h[9]!,
    u32(h, 12) * TWO32 + u32(h, 16),
    u32(h, 20) * TWO32 + u32(h, 24),
    u32(h, 28),
    u32(h, 32),
    u32(h, 36),
    payload instanceof Uint8Array ? [payload] : payload,
  );
}

/**
 * An incremental parser over a byte stream cut anywhere. The header is
 * gathered in a 48-byte scratch buffer; a payload is handed out as views of
 * the chunks it arrived in (one when it lay whole in one chunk), never
 * copied together.
 */
export class FrameDecoder {
  private readonly head = new Uint8Array(HEADER_LEN);
  private readonly headCrcPart = this.head.subarray(0, CRC_OFF);
  private headFill = 0;
  /** Set while a payload is being gathered across chunks: views of them. */
  private body: Uint8Array[] | null = null;
  private bodyFill = 0;
  private bodyCrc = 0;
  private stopped = false;
  /**
   * Sees each whole frame's header (this decoder's scratch buffer) before
   * the CRC check, and its payload in one piece if it calls `payload()`
   * (which copies a payload that spans chunks together: a tap with no
   * rule armed must not call it); true when it changed their bytes (fault
   * injection: the CRC is then computed over what it left). Null: no cost
   * but the test.
   */
  tap: ((head: Uint8Array, payload: () => Uint8Array) => boolean) | null = null;
  /**
   * Placement (the receiver's zero-copy path): for a header whose payload
   * of PLACE_MIN bytes or more did not all come in the chunk, `placer` may
   * name where the payload goes (views whose lengths add up to it: a sink
   * ring, say), and `pull` reads exactly the rest of it from the wire into
   * those views now, if that much is waiting (false: nothing read). Both
   * succeed or the frame takes the usual path; the payload is then handed
   * out as the placer's views. Everything happens within one push(), so
   * the views are never written after the placer's checks could go stale.
   */
  placer: ((head: Uint8Array) => Uint8Array[] | null) | null = null;
  pull: ((views: readonly Uint8Array[], n: number) => boolean) | null = null;
  /** Whether the last payload was a placeable size: the reader then reads the next header alone. */
  private lastLarge = false;

  /** `maxPayload` may change between frames (a connection is held to less until it has said who it is). */
  constructor(
    private readonly onFrame: (f: Frame) => void,
    public maxPayload = DEFAULT_MAX_PAYLOAD,
  ) {}

  /** Bytes of an unfinished frame held. */
  get pending(): number {
    return this.headFill + this.bodyFill;
  }

  /** At a frame boundary after a large payload: the next read is best a header alone (so a placed payload is read straight to its place). */
  get headerNext(): boolean {
    return (
      this.lastLarge &&
      this.headFill === 0 &&
      this.body === null &&
      this.placer !== null &&
      this.pull !== null
    );
  }

  /** No more frames from this decoder (the connection is being dropped). */
  stop(): void {
    this.stopped = true;
  }

  /** Parses `chunk`, calling onFrame for each whole frame; throws FrameError on malformed input and stops. */
  push(chunk: Uint8Array): void {
    let pos = 0;
    while (!this.stopped) {
      if (this.headFill < HEADER_LEN) {
        if (pos === chunk.length) return;
        const n = Math.min(HEADER_LEN - this.headFill, chunk.length - pos);
        this.head.set(chunk.subarray(pos, pos + n), this.headFill);
        this.headFill += n;
        pos += n;
        if (this.headFill < HEADER_LEN) return;
        this.checkHead();
      }
      const len = u32(this.head, 40);
      if (this.body === null) this.lastLarge = len >= PLACE_MIN;
      if (
        this.body === null &&
        len >= PLACE_MIN &&
        chunk.length - pos < len &&
        this.place(chunk.subarray(pos), len)
      ) {
        pos = chunk.length;
        continue;
      }
      if (this.body === null && chunk.length - pos >= len) {
        // The common case: the whole payload is in this chunk. No copy.
        const payload = len === 0 ? EMPTY : chunk.subarray(pos, pos + len);
        pos += len;
        this.finish(payload, frameCrc(payload));
        continue;
      }
      if (pos === chunk.length) return;
      if (this.body === null) {
        this.body = [];
        this.bodyCrc = 0;
      }
      const n = Math.min(len - this.bodyFill, chunk.length - pos);
      const piece = chunk.subarray(pos, pos + n);
      this.body.push(piece);
      this.bodyCrc = frameCrc(piece, this.bodyCrc);
      this.bodyFill += n;
      pos += n;
      if (this.bodyFill === len) {
        const body = this.body;
        this.body = null;
        this.bodyFill = 0;
        this.finish(body, this.bodyCrc);
      }
    }
  }

  /**
   * The payload of the header in `head` (`len` bytes, `first` of them in
   * hand) straight to where the placer says, the rest pulled from the
   * wire; true when the frame was finished that way.
   */
  private place(first: Uint8Array, len: number): boolean {
    if (this.placer === null || this.pull === null) return false;
    const views = this.placer(this.head);
    if (views === null) return false;
    // What is in hand goes first; the pull takes the rest, or nothing.
    let skip = first.length;
    const rest: Uint8Array[] = [];
    for (const v of views) {
      if (skip >= v.length) {
        skip -= v.length;
        continue;
      }
      rest.push(skip > 0 ? v.subarray(skip) : v);
      skip = 0;
    }
    if (!this.pull(rest, len - first.length)) return false;
    let off = 0;
    let crc = 0;
    for (const v of views) {
      const n = Math.min(v.length, first.length - off);
      if (n > 0) v.set(first.subarray(off, off + n));
      off += Math.max(0, n);
      crc = frameCrc(v, crc);
    }
    this.finish(views, crc);
    return true;
  }

  /** The stream ended: an unfinished frame is a truncated one. */
  end(): void {
    if (this.stopped || this.pending === 0) return;
    this.fail('truncated', `stream ended ${this.pending} bytes into a frame`);
  }

  private checkHead(): void {
    const magic = u32(this.head, 0);
    if (magic !== MAGIC) this.fail('badMagic', `bad magic 0x${magic.toString(16)}`);
    if (this.head[4] !== VERSION) this.fail('badVersion', `unsupported version ${this.head[4]}`);
    const len = u32(this.head, 40);
    if (len > this.maxPayload)
      this.fail('tooLarge', `payload length ${len} above the maximum ${this.maxPayload}`);
  }

  private finish(parts: Uint8Array | Uint8Array[], pcrc: number): void {
    const h = this.head;
    this.headFill = 0;
    if (this.tap !== null) {
      // Fault injection sees (and may change) the payload in one piece, made only when it asks: the rare path.
      let joined: Uint8Array | null = null;
      const whole = parts;
      const payload = (): Uint8Array => (joined ??= whole instanceof Uint8Array ? whole : joinBytes(whole));
      const changed = this.tap(h, payload);
      if (joined !== null) parts = joined;
      if (changed) pcrc = frameCrc(payload());
    }
    const want = u32(h, CRC_OFF);
    const got = frameCrc(this.headCrcPart, pcrc);
    if (got !== want) this.fail('badCrc', `CRC32C 0x${got.toString(16)}, header says 0x${want.toString(16)}`);
    this.onFrame(peekHeader(h, parts));
  }

  private fail(kind: FrameErrorKind, message: string): never {
    this.stopped = true;
    throw new FrameError(kind, message);
  }
}
