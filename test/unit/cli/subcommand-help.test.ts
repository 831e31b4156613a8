/**
 * Each subcommand's --help lists its own options (and not the others'),
 * exits 0; the global help names every subcommand.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../../../emulator/util/paths.js';

const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
const sgiov = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 10_000 });

const CASES: [string, string[], string[]][] = [
  [
    'serve',
    [
      '--socket PATH',
      '--control PATH',
      '--faults PLAN',
      '--metrics HOST:PORT',
      '--trace PATTERN',
      '--trace-rate N',
      '--log-format FORMAT',
      '--log-level LEVEL',
      'mmio_read',
      'fault_inject',
    ],
    ['vm options', 'drf options', '--packages'],
  ],
  [
    'vm',
    ['--packages P1,P2', '--copy HOST:GUEST', '--mem SIZE', '--smp N', '--shell', '--json'],
    ['serve options', '--metrics'],
  ],
  [
    'drf',
    ['--resource NAME=GBPS', '--tenant NAME=R1,R2', '--simulate SECONDS', '--scheduler KIND'],
    ['serve options', '--packages'],
  ],
  ['top', ['--control PATH', '--interval S', '--once', '(default 1 s)'], ['serve options', '--metrics']],
  ['ctl', ['--control PATH', 'methods'], ['serve options']],
];

describe('per-subcommand help', () => {
  for (const [cmd, has, hasNot] of CASES)
    it(`sgiov ${cmd} --help (and -h) lists its options`, () => {
      for (const flag of ['--help', '-h']) {
        const r = sgiov(cmd, flag);
        expect(r.status).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^sgiov ${cmd} - `));
        expect(r.stdout).toContain(`Usage:\n  sgiov ${cmd} `);
        for (const h of has) expect(r.stdout).toContain(h);
        for (const h of hasNot) expect(r.stdout).not.toContain(h);
      }
    });

  it('the global help names every subcommand', () => {
    const r = sgiov('--help');
    expect(r.status).toBe(0);
    for (const c of ['serve', 'ctl', 'top', 'vm', 'drf']) expect(r.stdout).toContain(`sgiov ${c} `);
  });

  it("a subcommand's usage error points at its own help", () => {
    const r = sgiov('drf', '--resource', 'x');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Run 'sgiov drf --help' for usage\./);
  });
});
