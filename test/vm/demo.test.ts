/**
 * `npm run demo` as a user runs it (after the setup and a build): one VM,
 * four parts, a summary. The demo judges each part itself; this test checks
 * that it says PASS for each with the figures behind it, and exits 0.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../emulator/util/paths.js';
import { stopProcess } from '../../qemu/vm.js';

function runDemo(): Promise<{ code: number | null; out: string }> {
  const p = spawn(process.execPath, [join(repoRoot(), 'dist', 'qemu', 'demo.js')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SGIOV_DEMO_SCENARIO: '' },
  });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => void stopProcess(p, 2000), 280_000);
  return new Promise((resolve) =>
    p.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    }),
  );
}

describe('npm run demo', () => {
  it('tells the story in one VM: device, sockets, DRF tenants, a recovered fault; PASS each, exit 0', async () => {
    const { code, out } = await runDemo();
    const summary = out.slice(out.lastIndexOf('\nsummary'));
    expect(summary, out.slice(-4000)).toMatch(/PASS {2}device: .*self-test 3\/3 passed/);
    expect(summary).toMatch(
      /PASS {2}sockets over warp pipes .*128 KiB stream [\d.]+ Gbps; 4 KiB ping-pong median [\d.]+ us/,
    );
    expect(summary).toMatch(
      /PASS {2}two tenants, DRF .* A [\d.]+ Gbps \(DRF 0\.075\); B [\d.]+ Gbps \(DRF 0\.125\)/,
    );
    expect(summary).toMatch(
      /PASS {2}fault: .* [1-9]\d* signals dropped; (\d+) messages sent, \1 delivered, 0 lost/,
    );
    expect(summary).not.toMatch(/FAIL/);
    expect(summary).toMatch(/result: PASS in [\d.]+ s; the device moved [1-9]\d* messages/);
    expect(code).toBe(0);
  }, 300_000);
});
