/**
 * A VM with 8 GiB of RAM: QEMU maps its RAM above 4 GiB as one DMA region
 * of more than 4 GiB (one view of that size aborted Node: issue 10), and the
 * DMA self-test must pass. A real QEMU (TCG), as test/vm/device.test.ts.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { EmulatorProcess, QemuVm, RunDir } from '../../qemu/vm.js';

const VM_MS = 180_000;
let dir: RunDir;
let emu: EmulatorProcess;
let keep = false;

beforeAll(async () => {
  dir = new RunDir('sgiov-vmtest-8g-');
  emu = new EmulatorProcess({ socketPath: dir.file('sgiov.sock'), logPath: dir.file('emulator.log') });
  await emu.ready();
});

afterAll(async () => {
  await emu?.stop();
  if (emu) expect(existsSync(dir.file('sgiov.sock'))).toBe(false);
  if (keep) process.stderr.write(`VM test files kept in ${dir.path}\n`);
  else dir?.remove();
});

describe('a VM with 8 GiB of RAM', () => {
  it(
    'maps a DMA region larger than 4 GiB and passes the DMA self-test',
    async () => {
      onTestFailed(() => {
        keep = true;
      });
      const vm = new QemuVm({
        socketPath: dir.file('sgiov.sock'),
        consolePath: dir.file('selftest.console.log'),
        scenario: 'selftest',
        memMiB: 8192,
        timeoutS: 170,
      });
      try {
        await vm.waitFor((l) => l.kind === 'done', VM_MS - 20_000);
        await vm.exit(15_000);
      } finally {
        if (vm.alive) await vm.stop();
      }
      const st = vm.find('selftest');
      expect(st.length).toBeGreaterThanOrEqual(4);
      for (const s of st) expect(s.fields.result, s.raw).toBe('pass');
      // QEMU registered RAM above 4 GiB as one region longer than 4 GiB.
      const big = emu
        .records()
        .filter((r) => r.msg === 'DMA region registered' && r.mapped === true)
        .map((r) => Number(r.len));
      expect(Math.max(...big), 'the largest DMA region (bytes)').toBeGreaterThan(4 * 2 ** 30);
      expect(emu.alive).toBe(true);
    },
    VM_MS,
  );
});
