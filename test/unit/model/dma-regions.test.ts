import { describe, expect, it } from 'vitest';
import { DmaRegions, PIECE } from '../../../emulator/model/dma-regions.js';

describe('DMA regions', () => {
  it('translates addresses inside one region to views on its memory', () => {
    const d = new DmaRegions();
    const a = new Uint8Array(4096);
    const b = new Uint8Array(4096);
    d.add(0x1000n, 4096, a);
    d.add(0x3000n, 4096, b);
    d.view(0x1010n, 4)!.set([1, 2, 3, 4]);
    expect(Array.from(a.subarray(0x10, 0x14))).toEqual([1, 2, 3, 4]);
    d.view(0x3ffcn, 4)!.fill(9);
    expect(b[4095]).toBe(9);
  });

  it('refuses ranges that leave a region, span two, or fall in a hole', () => {
    const d = new DmaRegions();
    d.add(0x1000n, 4096, new Uint8Array(4096));
    d.add(0x2000n, 4096, new Uint8Array(4096));
    expect(d.view(0x1ff0n, 32)).toBeNull(); // spans two regions: not one mapping
    expect(d.view(0x3000n, 1)).toBeNull();
    expect(d.view(0x0n, 1)).toBeNull();
    expect(d.view(-1n, 1)).toBeNull();
  });

  it('forgets a region on remove, so no later view reaches its memory', () => {
    const d = new DmaRegions();
    d.add(0x1000n, 4096, new Uint8Array(4096));
    expect(d.view(0x1000n, 8)).not.toBeNull(); // primes the last-hit cache
    expect(d.remove(0x1000n, 4096)).toBe(1);
    expect(d.view(0x1000n, 8)).toBeNull();
    expect(d.list()).toEqual([]);
  });

  it('lists regions without a mapping but gives no view on them', () => {
    const d = new DmaRegions();
    d.add(0xfd000000n, 1 << 24, null);
    expect(d.list()).toEqual([{ iova: 0xfd000000n, len: 1 << 24, mapped: false }]);
    expect(d.view(0xfd000000n, 4)).toBeNull();
  });

  it('views a region of several GiB in overlapping pieces, so an access across a piece boundary still has one view', () => {
    const d = new DmaRegions();
    const len = 6 * PIECE + 4096;
    // The transport makes the pieces; here each is a stand-in whose subarray says where it points.
    const made: [number, number][] = [];
    d.add(0x1_0000_0000n, len, (off, n) => {
      made.push([off, n]);
      return {
        length: n,
        subarray: (a: number, b: number) => ({ piece: off, a, b }),
      } as unknown as Uint8Array;
    });
    expect(
      made.every(([, n]) => n <= 2 * PIECE),
      'no view longer than 2 pieces',
    ).toBe(true);
    expect(made.at(-1)![0] + made.at(-1)![1], 'the last piece reaches the end').toBe(len);
    const at = (off: number, n: number): unknown => d.view(0x1_0000_0000n + BigInt(off), n);
    expect(at(PIECE - 8, 16), 'across the first boundary: in piece 0').toEqual({
      piece: 0,
      a: PIECE - 8,
      b: PIECE + 8,
    });
    expect(at(3 * PIECE + 5, 4)).toEqual({ piece: 3 * PIECE, a: 5, b: 9 });
    expect(at(len - 8, 8), 'the last bytes').not.toBeNull();
    expect(at(len - 8, 16), 'past the end').toBeNull();
    expect(d.list()[0]!.mapped).toBe(true);
  });
});
