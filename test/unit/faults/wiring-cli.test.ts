/** `sgiov serve --faults PLAN`: a bad plan stops the start with a non-zero exit naming the field; a good one is loaded. */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EmulatorProcess, RunDir, until } from '../../../qemu/vm.js';
import { repoRoot } from '../../../emulator/util/paths.js';

const cli = join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');
const sgiov = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 10_000 });

describe('sgiov serve --faults', () => {
  it('names --faults in the help', () => {
    expect(sgiov('--help').stdout).toContain('--faults PLAN');
  });

  it.each([
    [
      { rules: [{ point: 'irq', trigger: { probability: 2 }, do: { action: 'drop' } }] },
      /rules\[0\]\.trigger\.probability: must be a number in \[0, 1\]/,
    ],
    [
      { rules: [{ point: 'irq', do: { action: 'stall', ms: 1 } }] },
      /rules\[0\]\.do\.action: 'stall' is not allowed at irq/,
    ],
    [{ rules: [], sede: 1 }, /sede: unknown field/],
  ])('refuses a bad plan %j with exit 2 and the field', (plan, msg) => {
    const dir = new RunDir();
    try {
      const f = dir.file('plan.json');
      writeFileSync(f, JSON.stringify(plan));
      const r = sgiov('serve', '-s', dir.file('s.sock'), '--faults', f);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/--faults: faults plan '.*plan\.json': /);
      expect(r.stderr).toMatch(msg);
    } finally {
      dir.remove();
    }
  });

  it('refuses a missing file and a file that is not JSON', () => {
    const dir = new RunDir();
    try {
      expect(sgiov('serve', '-s', dir.file('s.sock'), '--faults', dir.file('nope.json')).stderr).toMatch(
        /no such file/,
      );
      writeFileSync(dir.file('bad.json'), '{rules: [');
      const r = sgiov('serve', '-s', dir.file('s.sock'), '--faults', dir.file('bad.json'));
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/not JSON/);
    } finally {
      dir.remove();
    }
  });

  it('loads a good plan at start (its rules are logged)', async () => {
    const dir = new RunDir();
    const emu = new EmulatorProcess({
      socketPath: dir.file('s.sock'),
      logPath: dir.file('e.log'),
      logLevel: 'info',
      extraArgs: ['--faults', join(repoRoot(), 'faults', 'reset.json')],
    });
    try {
      await emu.ready();
      expect(await until(() => emu.log.includes('fault plan loaded'), 5000)).toBe(true);
      expect(emu.records().find((r) => r.msg === 'fault plan loaded')).toMatchObject({
        seed: 13,
        rules: ['arm-on-start', 'reset-mid-traffic'],
      });
    } finally {
      await emu.stop();
      dir.remove();
    }
  });
});
