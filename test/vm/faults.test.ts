/**
 * The fault campaign in a VM, short (issue #6): the VM workload of
 * `npm run faults` (qemu/campaign.ts: an emulator with --faults per plan,
 * a VM running sgiov.ko and sgiov-stress -E) under a subset of plans, and
 * the contract on every row: nothing lost, duplicated, reordered or
 * delivered corrupted, sent = delivered + failed-and-reported, the device
 * working again afterwards. Two plans are the test's own, denser than the
 * examples so that they fire within a small run: D2H signals lost (the
 * module must RESYNC each one) and repeated (ignored). Needs the setup and
 * a build, like the other VM tests; about a minute.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { broken, runCampaign, type CampaignRow } from '../../qemu/campaign-memory.js';
import { repoRoot } from '../../emulator/util/paths.js';
import { vmWorkload } from '../../qemu/campaign.js';
import { RunDir } from '../../qemu/vm.js';

let dir: RunDir;
let keep = false;

beforeAll(() => {
  dir = new RunDir('sgiov-vmfaults-');
});
afterAll(() => {
  if (keep) process.stderr.write(`VM fault campaign files kept in ${dir.path}\n`);
  else dir?.remove();
});

function plan(name: string, rule: Record<string, unknown>): string {
  const f = dir.file(`${name}.json`);
  writeFileSync(f, JSON.stringify({ description: `test: ${name}`, seed: 9, rules: [{ name, ...rule }] }));
  return f;
}

describe('fault campaign in a VM', () => {
  it('under lost and repeated D2H signals, a DMA error, a device reset and a surprise removal: nothing lost, duplicated or corrupted', async () => {
    onTestFailed(() => {
      keep = true;
    });
    const files = [
      plan('d2h-lost', { point: 'signal.d2h', trigger: { every: 300, count: 6 }, do: { action: 'drop' } }),
      plan('d2h-twice', {
        point: 'signal.d2h',
        trigger: { every: 200, count: 10 },
        do: { action: 'duplicate' },
      }),
      ...['dma-error', 'reset', 'surprise-removal'].map((p) => join(repoRoot(), 'faults', `${p}.json`)),
    ];
    const w = vmWorkload({ dir, stress: ['-n', '32', '-s', '4096', '-T', '2', '-c', '4'], timeoutS: 120 });
    const rows = await runCampaign(w, files, { messagesPerPair: 128 });
    const by = Object.fromEntries(rows.map((r) => [r.plan, r])) as Record<string, CampaignRow>;
    process.stderr.write(rows.map((r) => `${r.plan}: ${JSON.stringify(r)}\n`).join(''));

    expect(broken(rows)).toEqual([]);
    for (const r of rows) {
      expect(r.injections, r.plan).toBeGreaterThan(0);
      expect(r.sent, r.plan).toBeGreaterThan(0);
      expect(r.lost, r.plan).toBe(0);
      expect(r.duplicated, r.plan).toBe(0);
      expect(r.corrupted, r.plan).toBe(0);
      expect(r.reordered, r.plan).toBe(0);
      expect(r.delivered + r.failed, r.plan).toBe(r.sent);
      expect(r.unrecovered, r.plan).toBe(false);
      expect(r.recoverMs, r.plan).not.toBeNull();
    }
    // Every lost D2H signal found as an empty slot and asked for again; none failed anything.
    const lost = by['d2h-lost']!;
    expect(lost.injections).toBe(6);
    expect(lost.failed).toBe(0);
    expect(lost.deviceLost).toBeNull();
    expect(lost.driver).toMatch(/holes=6 resyncs=\d+/);
    // Repeated state signals: no news.
    const twice = by['d2h-twice']!;
    expect(twice.failed).toBe(0);
    expect(twice.driver).toMatch(/repeats=\d+/);
    expect(by['dma-error']!.failed).toBeGreaterThan(0);
    expect(by['reset']!.deviceLost).toBe('DEVICE_RESET');
    expect(by['surprise-removal']!.deviceLost).toBe('DEVICE_REMOVED');
  }, 240_000);
});
