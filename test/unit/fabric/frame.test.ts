import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32 } from 'node:zlib';
import { libdeflateCrc32 } from '../../../emulator/native/libdeflate.js';
import {
  encodeFrame,
  FRAME_CRC_IMPL,
  FrameDecoder,
  FrameError,
  HEADER_LEN,
  PLACE_MIN,
  type Frame,
  type FrameErrorKind,
  type FrameHeader,
} from '../../../emulator/fabric/frame.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const header = fc.record({
  type: fc.integer({ min: 0, max: 255 }),
  flags: fc.integer({ min: 0, max: 0xffff }),
  src: fc.integer({ min: 0, max: 0xffff }),
  seq: fc.maxSafeNat(),
  ack: fc.maxSafeNat(),
  channel: u32,
  socket: u32,
  value: u32,
});
/** A payload as the sender holds it: up to three segments (a ring wrap gives two). */
const segments = fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 3 });

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Cuts `bytes` at the given points, as TCP may. */
function chunks(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.slice(prev, c));
    prev = c;
  }
  return out;
}

function decodeAll(stream: readonly Uint8Array[], max?: number): Frame[] {
  const got: Frame[] = [];
  const d = new FrameDecoder((f) => got.push(f), max);
  for (const c of stream) d.push(c);
  d.end();
  return got;
}

function errorOf(stream: readonly Uint8Array[], max?: number): FrameErrorKind | 'none' {
  try {
    decodeAll(stream, max);
    return 'none';
  } catch (e) {
    if (e instanceof FrameError) return e.kind;
    throw e;
  }
}

const H: FrameHeader = { type: 18, flags: 0, src: 1, seq: 7, ack: 3, channel: 10, socket: 20, value: 99 };

describe('fabric frame codec', () => {
  it('decodes what it encodes, however the stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(header, segments), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (frames, cuts) => {
          const stream = concat(frames.flatMap(([h, segs]) => encodeFrame(h, segs)));
          const got = decodeAll(chunks(stream, cuts));
          expect(got.length).toBe(frames.length);
          got.forEach((f, i) => {
            const [h, segs] = frames[i]!;
            const { type, flags, src, seq, ack, channel, socket, value } = f;
            expect({ type, flags, src, seq, ack, channel, socket, value }).toEqual({ ...h });
            expect(Buffer.from(f.payload).equals(Buffer.from(concat(segs)))).toBe(true);
            expect(f.length).toBe(f.payload.length);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('hands out a payload spanning socket reads as views of each, not joined', () => {
    const stream = concat(encodeFrame(H, [new Uint8Array(1000).fill(7)]));
    const cuts = [stream.subarray(0, 300), stream.subarray(300, 700), stream.subarray(700)];
    const [f] = decodeAll(cuts);
    expect(f!.parts.length).toBe(3);
    expect(f!.parts[1]!.buffer).toBe(cuts[1]!.buffer); // a view of the second read, not a copy
    expect(f!.length).toBe(1000);
    expect(f!.payload.every((b) => b === 7)).toBe(true);
  });

  it('hands out a payload lying whole in one chunk as a view of it, without copying', () => {
    const stream = concat(encodeFrame(H, [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5])]));
    const [f] = decodeAll([stream]);
    expect(f!.payload.buffer).toBe(stream.buffer);
    expect([...f!.payload]).toEqual([1, 2, 3, 4, 5]);
  });

  it('reassembles a 1 MiB payload arriving in 64 KiB chunks', () => {
    const payload = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
    const stream = concat(encodeFrame(H, [payload.subarray(0, 100), payload.subarray(100)]));
    const cuts = Array.from({ length: Math.floor(stream.length / 65536) }, (_, i) => (i + 1) * 65536);
    const [f] = decodeAll(chunks(stream, cuts));
    expect(Buffer.from(f!.payload).equals(Buffer.from(payload))).toBe(true);
  });

  it('detects each kind of malformed input', () => {
    const good = concat(encodeFrame(H, [new Uint8Array(64).fill(7)]));
    const patched = (off: number, byte: number): Uint8Array => {
      const b = good.slice();
      b[off] = byte;
      return b;
    };
    expect(errorOf([good])).toBe('none');
    expect(errorOf([patched(0, 0x00)])).toBe('badMagic');
    expect(errorOf([patched(4, 2)])).toBe('badVersion');
    // A length above the maximum is refused from the header alone, before any payload arrives.
    expect(errorOf([good.subarray(0, HEADER_LEN)], 63)).toBe('tooLarge');
    expect(errorOf([patched(HEADER_LEN + 10, 8)])).toBe('badCrc');
    expect(errorOf([patched(30, 0xee)])).toBe('badCrc'); // a header field (channel) damaged
    expect(errorOf([good.subarray(0, good.length - 1)])).toBe('truncated');
    expect(errorOf([good.subarray(0, 20)])).toBe('truncated');
  });

  it('stops at the first malformed frame and delivers nothing after it', () => {
    const good = concat(encodeFrame(H, []));
    const bad = good.slice();
    bad[0] = 0;
    const got: Frame[] = [];
    const d = new FrameDecoder((f) => got.push(f));
    expect(() => d.push(concat([good, bad, good]))).toThrow(FrameError);
    d.push(good);
    expect(got.length).toBe(1);
  });
});

describe('the frame CRC', () => {
  it("libdeflate (installed by the setup) gives zlib's CRC-32 for any view, length and starting value", () => {
    const fast = libdeflateCrc32();
    expect(fast, 'libdeflate0 is installed by scripts/setup.sh').not.toBeNull();
    expect(FRAME_CRC_IMPL).toBe('libdeflate');
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 70_000 }),
        fc.nat(),
        fc.nat(),
        u32,
        (bytes, a, b, start) => {
          const from = a % (bytes.length + 1);
          const to = from + (b % (bytes.length - from + 1));
          const view = bytes.subarray(from, to);
          expect(fast!(start, view)).toBe(crc32(view, start));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('placement (the receiver writes a large payload straight to where it goes)', () => {
  /**
   * A wire as the device loop reads it: `stream` is what the peer sent;
   * reads take at most `maxRead` bytes (48 when the decoder asks for a
   * header alone), and pull() serves exactly n bytes only when n are
   * "waiting", i.e. within the next `waiting` bytes.
   */
  function readAll(
    stream: Uint8Array,
    opts: { maxRead: number; waiting: number; place: (i: number) => boolean },
  ): { frames: Frame[]; placed: number } {
    const frames: Frame[] = [];
    let pos = 0;
    let placed = 0;
    let frameNo = 0;
    const d = new FrameDecoder((f) => frames.push(f));
    d.placer = (head) => {
      const len = new DataView(head.buffer, head.byteOffset).getUint32(40);
      if (!opts.place(frameNo)) return null;
      // Two pieces, as a ring that wraps gives.
      const a = new Uint8Array(Math.floor(len / 3));
      return [a, new Uint8Array(len - a.length)];
    };
    d.pull = (views, n) => {
      if (n > opts.waiting) return false;
      let off = 0;
      for (const v of views) {
        const k = Math.min(v.length, n - off);
        v.set(stream.subarray(pos, pos + k), 0);
        pos += k;
        off += k;
      }
      placed++;
      return true;
    };
    while (pos < stream.length) {
      const max = d.headerNext ? HEADER_LEN : opts.maxRead;
      const c = stream.slice(pos, pos + max);
      pos += c.length;
      const before = frames.length;
      d.push(c);
      frameNo += frames.length - before;
    }
    d.end();
    return { frames, placed };
  }

  it('delivers every frame intact, placed or not, however reads are cut and whatever is waiting', () => {
    const big = fc.uint8Array({ minLength: PLACE_MIN, maxLength: PLACE_MIN * 3 });
    const small = fc.uint8Array({ maxLength: 2000 });
    fc.assert(
      fc.property(
        fc.array(fc.oneof(big, small), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 70_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.nat(),
        (payloads, maxRead, waiting, mask) => {
          const stream = concat(payloads.flatMap((p, i) => encodeFrame({ ...H, seq: i + 1 }, [p])));
          const { frames, placed } = readAll(stream, {
            maxRead,
            waiting,
            place: (i) => ((mask >> (i % 30)) & 1) === 0,
          });
          expect(frames.length).toBe(payloads.length);
          frames.forEach((f, i) => {
            expect(f.seq).toBe(i + 1);
            expect(Buffer.from(f.payload).equals(Buffer.from(payloads[i]!))).toBe(true);
          });
          expect(placed).toBeLessThanOrEqual(payloads.filter((p) => p.length >= PLACE_MIN).length);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("places a large payload when the rest of it is waiting: the frame's parts are the placer's views", () => {
    const p = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7) & 0xff);
    const stream = concat([...encodeFrame({ ...H, seq: 1 }, [p]), ...encodeFrame({ ...H, seq: 2 }, [p])]);
    // The first read takes a header and some payload; the second frame's header is read alone.
    const { frames, placed } = readAll(stream, { maxRead: 4096, waiting: 1 << 20, place: () => true });
    expect(placed).toBe(2);
    for (const f of frames) {
      expect(f.parts.length).toBe(2);
      expect(Buffer.from(f.payload).equals(Buffer.from(p))).toBe(true);
    }
  });

  it('a placed payload that fails its CRC is refused like any other', () => {
    const p = new Uint8Array(PLACE_MIN * 2).fill(5);
    const stream = concat(encodeFrame({ ...H, seq: 1 }, [p]));
    stream[HEADER_LEN + 10_000] = stream[HEADER_LEN + 10_000]! ^ 1;
    expect(() => readAll(stream, { maxRead: 1000, waiting: 1 << 20, place: () => true })).toThrow(FrameError);
  });
});
