/**
 * A fresh clone stays clean: the setup (its host part: packages, `npm ci`,
 * libvfio-user, all cached outside the checkout) and the build rewrite no
 * tracked file and leave nothing git does not ignore. The guest steps write
 * only into the cache (guest/image-<checkout>.json and its files); .ci/run,
 * on a clean clone, runs them in full.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../../emulator/util/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'sgiov-clone-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a fresh clone', () => {
  it('is still clean after the setup (--host) and the build', () => {
    const clone = join(dir, 'sgiov');
    execFileSync('git', ['clone', '--quiet', '--local', '--no-hardlinks', repoRoot(), clone]);
    const setup = spawnSync('bash', ['scripts/setup.sh', '--host'], {
      cwd: clone,
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(setup.status, setup.stderr.slice(-2000)).toBe(0);
    expect(setup.stderr).toMatch(/\[setup\] npm-deps +\.\.\. ok/);
    const build = spawnSync('npm', ['run', 'build', '--silent'], {
      cwd: clone,
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(build.status, build.stderr.slice(-2000)).toBe(0);
    expect(execFileSync('git', ['status', '--porcelain'], { cwd: clone, encoding: 'utf8' })).toBe('');
  }, 300_000);
});
