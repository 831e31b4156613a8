import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stat } from '../../../qemu/bench/dataplane.js';
import { drfOverTime } from '../../../qemu/bench/drf-time.js';
import { plotResult } from '../../../qemu/bench/plots.js';
import { benchRow } from '../../../qemu/bench/rows.js';

const dir = mkdtempSync(join(tmpdir(), 'sgiov-plots-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const samples = (base: number): number[] =>
  Array.from({ length: 500 }, (_, i) => base + (i % 50) * (base / 25));

describe('bench plots', () => {
  it('draws the latency CDFs, isolation, DRF over time and rows as SVG and PNG beside the JSON', async () => {
    const rtt = stat(samples(10));
    const result = {
      dataPlane: { pingPong: [{ mode: 'hybrid', rttUs: rtt }] },
      crossNode: {
        pingPong: { pipeUs: stat(samples(150)), tlsUs: stat(samples(200)), tcpUs: stat(samples(40)) },
      },
      isolation: [
        { policy: 'sriov', vfs: 128, rttUs: stat(samples(80)), busyGbps: 6 },
        { policy: 'drf', vfs: null, rttUs: rtt, busyGbps: 89 },
      ],
      drfOverTime: drfOverTime(0.05, 5),
      rows: [benchRow({ id: 'a.b', what: 'w', unit: 'us', value: 2, baseline: 1, goal: '<= 1.5' })],
    };
    const files = await plotResult(result, join(dir, 'run.json'));
    expect(files.map((f) => f.slice(dir.length + 1)).sort()).toEqual(
      ['drf', 'isolation', 'latency', 'rows'].flatMap((n) => [`run-${n}.png`, `run-${n}.svg`]).sort(),
    );
    for (const f of files) {
      const b = readFileSync(f);
      if (f.endsWith('.png')) {
        expect(b.subarray(0, 8).equals(PNG), f).toBe(true);
        expect(b.readUInt32BE(16), `${f} width`).toBeGreaterThan(400); // IHDR width, zoomed 2x
      } else {
        const svg = b.toString();
        expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
        expect(svg).toMatch(/<\/svg>\s*$/);
      }
    }
    // The data made it into the drawing: titles and a legend entry.
    expect(readFileSync(join(dir, 'run-latency.svg'), 'utf8')).toContain('cross-node pipe, TLS');
    expect(readFileSync(join(dir, 'run-drf.svg'), 'utf8')).toContain('virtual time (s)');
  });

  it('draws nothing for a result without the parts (a skipped cross-node bench)', async () => {
    expect(await plotResult({ crossNode: undefined, isolation: [] }, join(dir, 'empty.json'))).toEqual([]);
  });
});
