import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../../emulator/util/paths.js';

const run = (script: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(repoRoot(), 'dist', 'qemu', script), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });

describe('the harness commands: --help and usage errors', () => {
  for (const [script, npm, flag] of [
    ['campaign.js', 'npm run faults', '--messages N'],
    ['bench/bench.js', 'npm run bench', '--quick'],
    ['bench/apps.js', 'npm run bench:apps', '--seconds S'],
  ] as const) {
    it(`${npm} -- --help lists its options; an unknown one is one line and status 2`, () => {
      const h = run(script, '--help');
      expect(h.status).toBe(0);
      expect(h.stdout.split('\n')[0]).toBe(
        `${npm} -- [options]${script === 'campaign.js' ? ' [PLAN.json ...]' : ''}`,
      );
      expect(h.stdout).toContain(flag);
      expect(h.stdout).toContain('-h, --help');
      const bad = run(script, '--no-such-flag');
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/^\S+: Unknown option '--no-such-flag'\nRun with --help for usage\.\n/);
      expect(bad.stderr).not.toMatch(/at \S+ \(/); // no stack trace
    });
  }
});
