import { describe, expect, it } from 'vitest';
import { SendWindow, type SentFrame } from '../../../emulator/fabric/window.js';

const frame = (seq: number, bytes: number): SentFrame => ({
  seq,
  type: 16,
  flags: 0,
  channel: 0,
  socket: 0,
  value: seq,
  segments: [new Uint8Array(bytes)],
  bytes,
  pcrc: 0,
  transmitted: false,
});

describe('fabric send window', () => {
  it('holds exactly the unreleased frames, in order, across many releases', () => {
    const w = new SendWindow(100, 1 << 20);
    let next = 1;
    let released = 0;
    // Fill and release in uneven steps, far past the point where the array is compacted.
    for (let round = 0; round < 200; round++) {
      while (w.admits(10)) w.push(frame(next++, 10));
      released = Math.min(next - 1, released + 1 + (round % 7) * 13);
      w.release(released);
      const seqs = [...w].map((f) => f.seq);
      expect(seqs).toEqual(Array.from({ length: next - 1 - released }, (_, i) => released + 1 + i));
      expect(w.count).toBe(seqs.length);
      expect(w.bytes).toBe(10 * seqs.length);
    }
    expect(next).toBeGreaterThan(2000);
    expect(w.takeAll().length).toBe(next - 1 - released);
    expect([w.count, w.bytes, [...w].length]).toEqual([0, 0, 0]);
  });

  it('bounds count and bytes, takes any frame when empty, and signals room once per refusal', () => {
    const w = new SendWindow(4, 1000);
    expect(w.admits(5000)).toBe(true); // empty: even a frame larger than the window
    w.push(frame(1, 5000));
    expect(w.admits(1)).toBe(false);
    expect(w.release(0)).toBe(false);
    expect(w.release(1)).toBe(true);
    expect(w.drainDue()).toBe(true);
    expect(w.drainDue()).toBe(false); // once

    for (let s = 2; s <= 5; s++) w.push(frame(s, 100));
    expect(w.admits(1)).toBe(false); // 4 frames
    w.release(2);
    expect(w.drainDue()).toBe(false); // 3 of 4 held: not yet half empty
    w.release(3);
    expect(w.drainDue()).toBe(true);
    expect(w.admits(801)).toBe(false); // 200 + 801 bytes > 1000
    expect(w.admits(800)).toBe(true);
  });
});
