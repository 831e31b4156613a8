/**
 * `sgiov drf` as a user runs it: `node dist/emulator/cli/main.js drf ...`.
 * `npm test` builds first; when the built CLI is missing or older than its
 * sources (a lone `vitest run`), this file builds it with tsc.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../../emulator/util/paths.js';

const root = repoRoot();
const cli = join(root, 'dist', 'emulator', 'cli', 'main.js');
const sgiov = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
const WORKED = [
  'drf',
  '--resource',
  'rdma=100',
  '--resource',
  'crypto=60',
  '--tenant',
  'A=rdma,crypto',
  '--tenant',
  'B=rdma',
];

beforeAll(() => {
  const stale = (ts: string, js: string): boolean =>
    !existsSync(join(root, js)) || statSync(join(root, js)).mtimeMs < statSync(join(root, ts)).mtimeMs;
  const pairs = ['cli/main', 'cli/drf', 'sched/drf', 'sched/scheduler', 'sched/sim'].map(
    (f) => [`emulator/${f}.ts`, `dist/emulator/${f}.js`] as const,
  );
  if (pairs.some(([ts, js]) => stale(ts, js)))
    execFileSync(
      process.execPath,
      [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')],
      { stdio: 'inherit' },
    );
}, 120_000);

function within2(measured: Record<string, number>, expected: Record<string, number>): void {
  expect(Object.keys(measured).sort()).toEqual(Object.keys(expected).sort());
  for (const [k, e] of Object.entries(expected))
    expect(Math.abs(measured[k]! - e), `${k}: ${measured[k]} vs ${e}`).toBeLessThanOrEqual(
      Math.max(0.02 * e, 0.01),
    );
}

function json(args: string[]): { allocation: Record<string, number>; measured?: Record<string, number> } {
  const r = sgiov(...args, '--json');
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout.trim().split('\n')).toHaveLength(1);
  return JSON.parse(r.stdout);
}

describe('sgiov drf', () => {
  it('prints the worked example as exactly one JSON object', () => {
    expect(json(WORKED)).toEqual({ allocation: { A: 37.5, B: 62.5 } });
  });

  it('--simulate 2 with the drf scheduler: measured within 2% of computed', () => {
    const out = json([...WORKED, '--simulate', '2']);
    expect(Object.keys(out)).toEqual(['allocation', 'measured']);
    expect(out.allocation).toEqual({ A: 37.5, B: 62.5 });
    within2(out.measured!, out.allocation);
  });

  it('--weight A=2 and --cap B=40', () => {
    const w = json([...WORKED, '--weight', 'A=2', '--simulate', '1']);
    expect(w.allocation.A).toBeCloseTo(600 / 11, 12);
    expect(w.allocation.B).toBeCloseTo(500 / 11, 12);
    within2(w.measured!, w.allocation);
    const c = json([...WORKED, '--cap', 'B=40', '--simulate', '1']);
    expect(c.allocation).toEqual({ A: 60, B: 40 });
    within2(c.measured!, c.allocation);
  });

  it('drf within 2% when several bottlenecks bind in turn, with weights and a cap', () => {
    const out = json([
      'drf',
      '--resource',
      'X=10',
      '--resource',
      'Y=100',
      '--resource',
      'Z=40',
      '--tenant',
      'a=X',
      '--tenant',
      'b=Y,X',
      '--tenant',
      'c=Y',
      '--tenant',
      'd=Z,Y',
      '--weight',
      'c=3',
      '--cap',
      'd=12',
      '--simulate',
      '1',
    ]);
    // Y saturates first (b, c, d freeze at level 2/7), then a takes the rest of X.
    expect(out.allocation.b).toBeCloseTo(20 / 7, 12);
    expect(out.allocation.a).toBeCloseTo(50 / 7, 12);
    within2(out.measured!, out.allocation);
  });

  it.each([
    ['rr', { A: 50, B: 50 }],
    ['prio', { A: 60, B: 40 }], // A first by default; it is held by crypto, B gets the rest
    ['sriov', { A: 30, B: 50 }], // one VF each, half of every accelerator, not work-conserving
  ])('--scheduler %s measures what that scheduler gives', (kind, expected) => {
    const out = json([...WORKED, '--simulate', '1', '--scheduler', kind]);
    expect(out.allocation).toEqual({ A: 37.5, B: 62.5 });
    within2(out.measured!, expected);
  });

  it('--priority and --vfs', () => {
    const p = json([...WORKED, '--simulate', '1', '--scheduler', 'prio', '--priority', 'B=5']);
    within2(p.measured!, { A: 0, B: 100 });
    const s = json([...WORKED, '--simulate', '1', '--scheduler', 'sriov', '--vfs', '4']);
    within2(s.measured!, { A: 15, B: 25 });
  });

  it('prints a table: allocation, bottleneck, and with --simulate the measured rate and the difference', () => {
    const r = sgiov(...WORKED, '--cap', 'B=40');
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.find((l) => l.startsWith('tenant'))!.split(/\s+/)).toEqual([
      'tenant',
      'resources',
      'weight',
      'cap',
      'allocated',
      'bottleneck',
    ]);
    expect(lines.find((l) => l.startsWith('A '))!.split(/\s+/)).toEqual([
      'A',
      'rdma,crypto',
      '1',
      '-',
      '60.000',
      'rdma',
    ]);
    expect(lines.find((l) => l.startsWith('B '))!.split(/\s+/)).toEqual([
      'B',
      'rdma',
      '1',
      '40',
      '40.000',
      'cap',
    ]);
    expect(lines.find((l) => l.startsWith('crypto'))!.split(/\s+/)).toEqual([
      'crypto',
      '60',
      '60.000',
      'yes',
    ]);
    const s = sgiov(...WORKED, '--simulate', '2');
    expect(s.status).toBe(0);
    const sl = s.stdout.split('\n');
    expect(sl.find((l) => l.startsWith('tenant'))!.split(/\s+/)).toEqual([
      'tenant',
      'resources',
      'weight',
      'cap',
      'allocated',
      'bottleneck',
      'measured',
      'diff',
    ]);
    const a = sl.find((l) => l.startsWith('A '))!.split(/\s+/);
    expect(a.slice(0, 6)).toEqual(['A', 'rdma,crypto', '1', '-', '37.500', 'rdma']);
    expect(Math.abs(Number(a[6]) - 37.5)).toBeLessThan(0.75);
    expect(s.stdout).toMatch(/drf scheduler, 2 s of virtual time/);
  });

  it.each([
    [['--tenant', 'C=rdma,gpu'], /--tenant C=rdma,gpu: unknown resource 'gpu'/],
    [['--tenant', 'A=rdma'], /--tenant A=rdma: tenant 'A' is defined twice/],
    [['--resource', 'rdma=5'], /--resource rdma=5: resource 'rdma' is defined twice/],
    [['--tenant', 'C=rdma,rdma'], /--tenant C=rdma,rdma: resource 'rdma' named twice/],
    [['--weight', 'A=0'], /--weight A=0: weight must be > 0/],
    [['--weight', 'A=-2'], /--weight A=-2: weight must be > 0/],
    [['--weight', 'Q=2'], /--weight Q=2: unknown tenant 'Q'/],
    [['--weight', 'A=2', '--weight', 'A=3'], /--weight A=3: tenant 'A' given twice/],
    [
      ['--cap', 'B=140'],
      /--cap B=140: 140 Gbps is above the capacity of B's smallest resource 'rdma' \(100 Gbps\)/,
    ],
    [['--cap', 'A=61'], /--cap A=61: .*'crypto' \(60 Gbps\)/],
    [['--cap', 'B'], /--cap B: expected NAME=GBPS \(no '='\)/],
    [['--resource', 'dma'], /--resource dma: expected NAME=GBPS/],
    [['--resource', 'dma=fast'], /--resource dma=fast: 'fast' is not a number/],
    [['--resource', 'dma=0'], /--resource dma=0: capacity must be > 0/],
    [['--weight', 'A=1e999'], /--weight A=1e999: '1e999' is not a finite number/],
    [['--scheduler', 'fair'], /--scheduler fair: not one of drf, rr, prio, sriov/],
    [['--simulate', '0'], /--simulate 0: expected a number of seconds > 0/],
    [['--simulate=-1'], /--simulate -1: expected a number of seconds > 0/],
    [['--simulate', 'soon'], /--simulate soon: expected a number of seconds > 0/],
    [['--vfs', '0'], /--vfs 0: expected a whole number >= 1/],
    [['--bogus'], /bogus/],
    [['stray'], /unexpected argument 'stray'/],
  ])('rejects %j with exit 2 and a message naming it', (extra, msg) => {
    const r = sgiov(...WORKED, ...extra);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(msg);
    expect(r.stdout).toBe('');
  });

  it('requires resources and tenants', () => {
    expect(sgiov('drf', '--tenant', 'A=x').stderr).toMatch(/--resource NAME=GBPS is required/);
    expect(sgiov('drf', '--resource', 'x=1').stderr).toMatch(/--tenant NAME=RES.* is required/);
    expect(sgiov('drf').status).toBe(2);
  });

  it('is in the help', () => {
    const r = sgiov('--help');
    for (const opt of [
      'sgiov drf',
      '--resource',
      '--tenant',
      '--weight',
      '--cap',
      '--priority',
      '--simulate',
      '--scheduler',
      '--vfs',
      '--json',
    ])
      expect(r.stdout).toContain(opt);
  });
});
