import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../../emulator/util/paths.js';
import { benchRow } from '../../../qemu/bench/rows.js';

const dir = mkdtempSync(join(tmpdir(), 'sgiov-compare-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'bench', ...args], { encoding: 'utf8' });

function result(name: string, rows: ReturnType<typeof benchRow>[]): string {
  const f = join(dir, name);
  writeFileSync(f, JSON.stringify({ when: '2026-12-02T00:00:00Z', commit: name, rows }));
  return f;
}
const row = (id: string, value: number, baseline: number, goal = '>= 0.8') =>
  benchRow({ id, what: id, unit: 'GB/s', value, baseline, goal });

describe('sgiov bench compare', () => {
  it('sets two results side by side by row id, with the change, ratios, goals; exit 1 when a met goal is missed', () => {
    const a = result('a.json', [row('s.stream', 1.8, 2), row('s.gone', 1, 1)]);
    const b = result('b.json', [row('s.stream', 1.2, 2), row('s.added', 3, 1)]);
    const r = run('compare', a, b);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toContain('commit a.json');
    expect(lines.find((l) => l.startsWith('s.stream'))).toMatch(
      /^s\.stream\s+GB\/s\s+1\.800\s+1\.200\s+-33\.3%\s+0\.900\s+0\.600\s+>= 0\.8\s+met\s+NOT$/,
    );
    expect(lines.find((l) => l.startsWith('s.gone'))).toMatch(/gone/);
    expect(lines.find((l) => l.startsWith('s.added'))).toMatch(/added/);
    expect(r.stdout).toMatch(/goals met in A and missed in B: s\.stream/);
    expect(r.status).toBe(1);
    expect(run('compare', a, a).status).toBe(0);
  });

  it('takes bench:apps rows (value named "sgiov")', () => {
    const apps = join(dir, 'apps.json');
    writeFileSync(
      apps,
      JSON.stringify({
        rows: [{ id: 'apps.x', unit: 'Gbps', sgiov: 2, baseline: 1, ratio: 2, goal: '>= 1.0', met: true }],
      }),
    );
    const r = run('compare', apps, apps);
    expect(r.stdout).toMatch(/apps\.x\s+Gbps\s+2\.000\s+2\.000\s+0\.0%/);
    expect(r.status).toBe(0);
  });

  it('refuses a file that is not a bench result, and bad usage, in one line', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"stream": {}}');
    const r = run('compare', bad, bad);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^sgiov bench compare: .*bad\.json: no "rows" list/);
    expect(run('compare', join(dir, 'missing.json'), bad).stderr).toMatch(/missing\.json: ENOENT/);
    const u = run('compare', bad);
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/usage: sgiov bench compare A\.json B\.json/);
  });
});
