/**
 * End to end: the emulator process, a real QEMU (TCG) attached over
 * vfio-user, a real guest kernel with the sgiov module. Needs the setup
 * (scripts/setup.sh) and a build (npm run build); npm test does both.
 */
import { connect } from 'node:net';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { EmulatorProcess, QemuVm, RunDir, until, type GuestLine } from '../../qemu/vm.js';

const VM_MS = 120_000;

let dir: RunDir;
let emu: EmulatorProcess;
let keep = false;
const sock = (): string => dir.file('sgiov.sock');

beforeAll(async () => {
  dir = new RunDir('sgiov-vmtest-');
  emu = new EmulatorProcess({ socketPath: sock(), logPath: dir.file('emulator.log') });
  await emu.ready();
});

afterAll(async () => {
  await emu?.stop();
  if (emu) expect(existsSync(sock()), 'the emulator removes its socket when stopped').toBe(false);
  if (keep) process.stderr.write(`VM test files kept in ${dir.path}\n`);
  else dir?.remove();
});

function keepOnFailure(): void {
  onTestFailed(() => {
    keep = true;
  });
}

async function boot(scenario: string, name: string): Promise<QemuVm> {
  return new QemuVm({
    socketPath: sock(),
    consolePath: dir.file(`${name}.console.log`),
    scenario,
    timeoutS: 110,
  });
}

/** Boots a VM for `scenario`, waits for it to power off, and returns it. */
async function run(scenario: string): Promise<QemuVm> {
  const vm = await boot(scenario, scenario);
  try {
    await vm.waitFor((l) => l.kind === 'done', VM_MS - 10_000);
    await vm.exit(15_000);
  } finally {
    if (vm.alive) await vm.stop();
  }
  return vm;
}

const checks = (vm: QemuVm): Record<string, GuestLine> =>
  Object.fromEntries(vm.find('check').map((l) => [l.fields.name!, l]));

describe.sequential('the SG-IOV device in a real VM', () => {
  it(
    'survives a client that sends garbage and one that disconnects mid-message',
    async () => {
      keepOnFailure();
      // The front door (host/front-door.ts) drops a client that is not speaking vfio-user, with the reason.
      const handshakes = (): number =>
        (emu.log.match(/failed the vfio-user handshake; dropped: /g) ?? []).length;
      const dropped = (): number => (emu.log.match(/client gone/g) ?? []).length;
      const client = (steps: Buffer[]): Promise<void> =>
        new Promise((resolve, reject) => {
          const c = connect(sock());
          // The emulator may drop us while we still write: that is its answer.
          c.on('error', (e: NodeJS.ErrnoException) => {
            if (e.code === 'ECONNRESET' || e.code === 'EPIPE') resolve();
            else reject(e);
          });
          c.on('connect', () => {
            const [first, ...rest] = steps;
            if (rest.length === 0) {
              c.end(first!);
              return;
            }
            c.write(first!);
            c.once('data', () => c.end(rest[0]!)); // the server answered the first message
          });
          c.on('close', () => resolve());
        });
      const header = (cmd: number, size: number): Buffer => {
        const h = Buffer.alloc(16);
        h.writeUInt16LE(1, 0);
        h.writeUInt16LE(cmd, 2);
        h.writeUInt32LE(size, 4);
        return h;
      };
      // 1. not vfio-user at all
      await client([Buffer.from('this is not a vfio-user message, not even close'.repeat(4))]);
      expect(await until(() => handshakes() >= 1, 10_000)).toBe(true);
      // 2. a proper version handshake, then a header that promises 4 KiB and a hang-up
      const caps = Buffer.from('{"capabilities":{"max_msg_fds":8}}\0');
      const version = Buffer.concat([header(1, 16 + 4 + caps.length), Buffer.from([0, 0, 1, 0]), caps]);
      const before = dropped();
      await client([version, header(9 /* REGION_READ */, 4096)]);
      expect(await until(() => dropped() > before, 10_000)).toBe(true);
      expect(emu.alive).toBe(true);
      // the VM tests below then prove the emulator still serves a real client
    },
    VM_MS,
  );

  it(
    'is listed with its ids by the guest, probed by the module, and passes the DMA self-test with MSI-X',
    async () => {
      keepOnFailure();
      const vm = await run('selftest');
      const dev = vm.find('device')[0];
      expect(dev?.fields).toMatchObject({
        vendor: '0x1234',
        device: '0x5347',
        subsystem_vendor: '0x1234',
        subsystem_device: '0x0001',
        class: '0x028000',
      });
      expect(vm.find('insmod')[0]?.fields.rc).toBe('0');
      expect(vm.find('driver')[0]?.fields.bound).toBe('1');
      const st = vm.find('selftest');
      expect(st.length).toBeGreaterThanOrEqual(4);
      for (const s of st) expect(s.fields.result, s.raw).toBe('pass');
      // every run took one interrupt: the count rose with each
      const irqs = st.map((s) => Number(s.fields.irq_count));
      for (let i = 1; i < irqs.length; i++) expect(irqs[i]!).toBeGreaterThan(irqs[i - 1]!);
      expect(vm.find('rmmod')[0]?.fields.rc).toBe('0');
      expect(vm.find('done')[0]?.fields.rc).toBe('0');
      // The emulator saw the DMA through the guest's shared memory and raised MSI-X.
      expect(emu.alive).toBe(true);
    },
    VM_MS,
  );

  it(
    'ignores writes to undefined registers and reads of odd sizes, counts them, and keeps working',
    async () => {
      keepOnFailure();
      const vm = await run('oddaccess');
      const c = checks(vm);
      expect(Object.keys(c).length).toBeGreaterThan(3);
      for (const [name, l] of Object.entries(c)) expect(l.fields.ok, `${name}: ${l.raw}`).toBe('1');
      // 1-, 2- and 8-byte reads, writes to undefined and read-only registers: each counted by the device
      const counted = vm.find('oddaccess').find((l) => l.fields.bad_access_count !== undefined);
      expect(Number(counted?.fields.bad_access_count)).toBeGreaterThanOrEqual(7);
      const st = vm.find('selftest');
      expect(st.at(-1)?.fields.result).toBe('pass');
      expect(vm.find('done')[0]?.fields.rc).toBe('0');
      // The emulator logged the guest's bad accesses rather than failing.
      expect(emu.log).toMatch(/guest MMIO (read|write) ignored/);
    },
    VM_MS,
  );

  it(
    'reports a DMA to unmapped memory and bad doorbell arguments as error codes the driver reads',
    async () => {
      keepOnFailure();
      const vm = await run('baddma');
      const c = checks(vm);
      for (const name of [
        'unmapped_error_code',
        'unmapped_dma_status',
        'bad_length_error_code',
        'bad_opcode_error_code',
      ]) {
        expect(c[name]?.fields.ok, `${name}: ${c[name]?.raw}`).toBe('1');
      }
      for (const [name, l] of Object.entries(c)) expect(l.fields.ok, `${name}: ${l.raw}`).toBe('1');
      const unmapped = vm.find('baddma').find((l) => l.fields.case === 'unmapped');
      expect(BigInt(unmapped?.fields.error_addr ?? '0')).toBe(0x7f0000000000n); // the address that faulted
      expect(Number(unmapped?.fields.error_irq_count)).toBeGreaterThan(0); // the error interrupt reached the driver
      expect(vm.find('selftest').at(-1)?.fields.result).toBe('pass');
      expect(emu.log).toMatch(/DMA read from guest memory no region covers/);
    },
    VM_MS,
  );

  it(
    'serves a second VM after the first QEMU is killed mid-run',
    async () => {
      keepOnFailure();
      const first = await boot('loop', 'killed');
      try {
        // Let it complete a few self-tests, then kill it in the middle of more.
        await first.waitFor((l) => l.kind === 'selftest' && Number(l.fields.iter) >= 3, VM_MS / 2);
        await first.kill();
      } finally {
        if (first.alive) await first.kill();
      }
      expect(first.find('selftest').every((l) => l.fields.result === 'pass')).toBe(true);
      expect(
        await until(() => /client gone/.test(emu.log.slice(emu.log.lastIndexOf('client attached'))), 10_000),
      ).toBe(true);
      expect(emu.alive).toBe(true);
      const second = await run('selftest');
      expect(second.find('selftest').length).toBeGreaterThan(0);
      for (const s of second.find('selftest')) expect(s.fields.result).toBe('pass');
      expect(second.find('done')[0]?.fields.rc).toBe('0');
    },
    VM_MS * 2,
  );
});
