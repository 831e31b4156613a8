import { describe, expect, it } from 'vitest';
import { DmaRegions } from '../../../emulator/model/dma-regions.js';

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
});
