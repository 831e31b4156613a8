import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COPY,
  generateJobs,
  INVERT,
  runMessage,
  split,
  type Transform,
} from '../../../emulator/model/accel/jobgen.js';

/** Size-changing transformations for the tests: a header added (like encapsulation) and one stripped. */
const ENCAP: Transform = {
  name: 'encap',
  bytewise: false,
  outLen: (len) => len + 8,
  whole: (input) => {
    const out = new Uint8Array(input.length + 8);
    new DataView(out.buffer).setUint32(0, input.length, true);
    out.set([0x5e, 0x61, 0x0f, 0x00], 4);
    out.set(input, 8);
    return out;
  },
};
const DECAP: Transform = {
  name: 'decap',
  bytewise: false,
  outLen: (len) => (len < 8 ? 'shorter than a header' : len - 8),
  whole: (input) => input.slice(8),
};

/** The plain reference: read the message byte by byte around the ring, transform it whole, write it byte by byte. */
function reference(
  t: Transform,
  src: Uint8Array,
  srcPos: number,
  len: number,
  dst: Uint8Array,
  dstPos: number,
): number | string {
  const msg = new Uint8Array(len);
  for (let i = 0; i < len; i++) msg[i] = src[(srcPos + i) % src.length]!;
  let out: Uint8Array;
  if (t.bytewise) {
    out = new Uint8Array(len);
    t.map!(msg, out);
  } else {
    const o = t.whole!(msg);
    if (typeof o === 'string') return o;
    out = o;
  }
  for (let i = 0; i < out.length; i++) dst[(dstPos + i) % dst.length] = out[i]!;
  return out.length;
}

const pow2 = fc.integer({ min: 4, max: 12 }).map((e) => 1 << e);
const scenario = fc.record({
  srcSize: pow2,
  dstSize: pow2,
  t: fc.constantFrom(COPY, INVERT, ENCAP, DECAP),
  seed: fc.integer(),
  srcAt: fc.nat(),
  dstAt: fc.nat(),
  lenAt: fc.nat(),
});

function fill(a: Uint8Array, seed: number): void {
  let x = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = x & 0xff;
  }
}

describe('job generation', () => {
  it('splits a ring range at the wrap point, recursively', () => {
    expect(split(16, 4, 8)).toEqual([{ off: 4, len: 8 }]);
    expect(split(16, 12, 8)).toEqual([
      { off: 12, len: 4 },
      { off: 0, len: 4 },
    ]);
    expect(split(16, 0, 16)).toEqual([{ off: 0, len: 16 }]);
    expect(split(16, 3, 0)).toEqual([]);
  });

  it('cuts a byte-wise message wrapping both rings into three jobs at the two wrap points', () => {
    const jobs = generateJobs({
      srcSize: 16,
      srcPos: 10,
      len: 12,
      dstSize: 32,
      dstPos: 28,
      outLen: 12,
      bytewise: true,
    });
    expect(jobs).toEqual([
      { src: [{ off: 10, len: 4 }], dst: [{ off: 28, len: 4 }], msgOffset: 0 },
      { src: [{ off: 14, len: 2 }], dst: [{ off: 0, len: 2 }], msgOffset: 4 },
      { src: [{ off: 0, len: 6 }], dst: [{ off: 2, len: 6 }], msgOffset: 6 },
    ]);
  });

  it('rejects requests no ring could hold', () => {
    expect(() =>
      generateJobs({ srcSize: 16, srcPos: 0, len: 17, dstSize: 64, dstPos: 0, outLen: 17, bytewise: true }),
    ).toThrow(/larger than its 16-byte source ring/);
    expect(() =>
      generateJobs({ srcSize: 16, srcPos: 16, len: 1, dstSize: 64, dstPos: 0, outLen: 1, bytewise: true }),
    ).toThrow(RangeError);
    expect(() =>
      generateJobs({ srcSize: 64, srcPos: 0, len: 8, dstSize: 16, dstPos: 0, outLen: 20, bytewise: false }),
    ).toThrow(/sink ring/);
    expect(() =>
      generateJobs({ srcSize: 64, srcPos: 0, len: 8, dstSize: 64, dstPos: 0, outLen: 9, bytewise: true }),
    ).toThrow(/byte-wise/);
  });

  it('matches the reference model over random sizes and ring positions, in all 8 cases', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(scenario, (s) => {
        const src = new Uint8Array(s.srcSize);
        fill(src, s.seed);
        const srcPos = s.srcAt % s.srcSize;
        const dstPos = s.dstAt % s.dstSize;
        const probe = s.t.outLen(0);
        const grow = typeof probe === 'number' ? probe : -8; // DECAP shrinks by 8
        const maxLen = Math.min(s.srcSize, s.dstSize - Math.max(0, grow));
        const len = Math.max(s.t === DECAP ? 8 : 0, s.lenAt % (maxLen + 1));
        if (len > maxLen) return; // no message of this transformation fits
        const outLen = s.t.outLen(len) as number;
        const dstA = new Uint8Array(s.dstSize);
        fill(dstA, ~s.seed);
        const dstB = dstA.slice();
        const srcCopy = src.slice();
        expect(runMessage(s.t, src, srcPos, len, dstA, dstPos)).toBe(outLen);
        expect(reference(s.t, src, srcPos, len, dstB, dstPos)).toBe(outLen);
        // same bytes in the sink, nothing touched outside the output; the source ring never written
        expect(Buffer.compare(dstA, dstB)).toBe(0);
        expect(Buffer.compare(src, srcCopy)).toBe(0);
        const jobs = generateJobs({
          srcSize: s.srcSize,
          srcPos,
          len,
          dstSize: s.dstSize,
          dstPos,
          outLen,
          bytewise: s.t.bytewise,
        });
        for (const j of jobs) {
          for (const seg of j.src) expect(seg.off + seg.len).toBeLessThanOrEqual(s.srcSize);
          for (const seg of j.dst) expect(seg.off + seg.len).toBeLessThanOrEqual(s.dstSize);
        }
        expect(jobs.flatMap((j) => j.src).reduce((n, x) => n + x.len, 0)).toBe(len);
        expect(jobs.flatMap((j) => j.dst).reduce((n, x) => n + x.len, 0)).toBe(outLen);
        if (s.t.bytewise) expect(jobs.length).toBeLessThanOrEqual(3);
        else expect(jobs.length).toBeLessThanOrEqual(1);
        if (len > 0) seen.add(`${srcPos + len > s.srcSize}/${dstPos + outLen > s.dstSize}/${outLen !== len}`);
      }),
      { numRuns: 3000, seed: 20261122 },
    );
    expect([...seen].sort()).toEqual([
      'false/false/false',
      'false/false/true',
      'false/true/false',
      'false/true/true',
      'true/false/false',
      'true/false/true',
      'true/true/false',
      'true/true/true',
    ]);
  });

  it('reports a transformation error and writes nothing', () => {
    const dst = new Uint8Array(64).fill(7);
    expect(runMessage(DECAP, new Uint8Array(64), 0, 4, dst, 0)).toBe('shorter than a header');
    expect(dst.every((b) => b === 7)).toBe(true);
  });
});
