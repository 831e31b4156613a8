/**
 * Lifecycle faults end to end (issue #6): QEMU killed in the middle of
 * transfers, a guest that reboots, the emulator killed under blocked calls,
 * a device reset under blocked calls, and the module's bounded waits and
 * polling fallback. Each test runs its own emulator process; every process
 * is stopped by its PID in `finally`, and the run directory is removed
 * (kept when a test fails).
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { controlCall, EmulatorProcess, QemuVm, RunDir, until, type GuestLine } from '../../qemu/vm.js';

const VM_MS = 150_000;

let dir: RunDir;
let keep = false;

beforeAll(() => {
  dir = new RunDir('sgiov-lifecycle-');
});
afterAll(() => {
  if (keep) process.stderr.write(`lifecycle test files kept in ${dir.path}\n`);
  else dir?.remove();
});

function keepOnFailure(): void {
  onTestFailed(() => {
    keep = true;
  });
}

async function emulator(name: string, control = false): Promise<EmulatorProcess> {
  const e = new EmulatorProcess({
    socketPath: dir.file(`${name}.sock`),
    logPath: dir.file(`${name}.emulator.log`),
    extraArgs: control ? ['--control', dir.file(`${name}.ctl`)] : [],
  });
  await e.ready();
  return e;
}

function vm(e: EmulatorProcess, name: string, scenario: string, extra = '', reboot = false): QemuVm {
  return new QemuVm({
    socketPath: e.opts.socketPath,
    consolePath: dir.file(`${name}.console.log`),
    scenario,
    timeoutS: VM_MS / 1000 - 10,
    extraAppend: extra,
    reboot,
  });
}

/** An emulator of its own and one VM against it for `body`; both stopped by PID afterwards. */
async function withVm(
  name: string,
  scenario: string,
  extra: string,
  opts: { control?: boolean; reboot?: boolean },
  body: (e: EmulatorProcess, v: QemuVm) => Promise<void>,
): Promise<void> {
  const e = await emulator(name, opts.control);
  let v: QemuVm | undefined;
  try {
    v = vm(e, name, scenario, extra, opts.reboot);
    await body(e, v);
  } finally {
    await v?.stop();
    await e.stop();
  }
}

const num = (l: GuestLine | undefined, k: string): number => Number(l?.fields[k]);
const waits = (v: QemuVm): Record<string, GuestLine> =>
  Object.fromEntries(v.find('wait').map((l) => [l.fields.op!, l]));
const clientsGone = (e: EmulatorProcess): number => (e.log.match(/client gone/g) ?? []).length;

/** The stress contract: every message sent is delivered or reported failed; nothing silent. */
function expectNoSilentLoss(s: GuestLine | undefined): void {
  expect(s, 'a stress line').toBeDefined();
  expect(num(s, 'lost'), s!.raw).toBe(0);
  expect(num(s, 'duplicated'), s!.raw).toBe(0);
  expect(num(s, 'reordered'), s!.raw).toBe(0);
  expect(num(s, 'corrupted'), s!.raw).toBe(0);
  expect(num(s, 'sent'), s!.raw).toBe(num(s, 'delivered') + num(s, 'failed'));
}

/** A surprise removal under blocked calls: each ends with an errno, later calls fail at once, rmmod works. */
function expectRemovalHandled(v: QemuVm): { w: Record<string, GuestLine>; s: GuestLine | undefined } {
  const w = waits(v);
  for (const op of ['read', 'write', 'accept']) {
    expect(['ENODEV', 'ETIMEDOUT'], `${op}: ${w[op]?.raw}`).toContain(w[op]?.fields.errno);
  }
  expect(num(w.poll, 'revents') & 0x18, w.poll?.raw).toBe(0x18); // POLLERR | POLLHUP
  for (const op of ['read', 'write', 'accept', 'poll']) {
    const l = w[op]!;
    for (const k of ['after_write', 'after_info', 'after_open'])
      expect(l.fields[k], `${op} ${k}: ${l.raw}`).toBe('ENODEV');
    expect(num(l, 'after_ms'), l.raw).toBeLessThan(1000); // promptly: nothing waits any more
  }
  for (const l of v.find('wait_done')) expect(l.fields.rc, l.raw).toBe('0');
  const s = v.find('stress')[0];
  expectNoSilentLoss(s);
  expect(num(s, 'failed_socks'), s?.raw).toBeGreaterThan(0);
  expect(s?.fields.first_errno, s?.raw).toBe('ENODEV');
  expect(v.find('stress_done')[0]?.fields.rc).toBe('0');
  expect(v.find('dp').at(-1)?.raw).toMatch(/^dp gone/);
  expect(v.find('rmmod')[0]?.fields.rc, v.find('rmmod')[0]?.raw).toBe('0');
  return { w, s };
}

describe.sequential('lifecycle faults in real VMs', () => {
  it(
    'serves a new VM after QEMU is killed in the middle of transfers',
    async () => {
      keepOnFailure();
      const e = await emulator('killqemu');
      let first: QemuVm | undefined, second: QemuVm | undefined;
      try {
        first = vm(e, 'killqemu-1', 'busy');
        // Transfers in flight: the D2H count moves between two samples.
        const a = await first.waitFor((l) => l.kind === 'busy' && num(l, 'dp_d2h') > 0, 90_000);
        const b = await first.waitFor(
          (l) => l.kind === 'busy' && num(l, 't') > num(a, 't') && num(l, 'dp_d2h') > num(a, 'dp_d2h'),
          20_000,
        );
        const before = clientsGone(e);
        await first.kill();
        expect(first.proc.signalCode).toBe('SIGKILL');
        expect(await until(() => clientsGone(e) > before, 10_000), 'the emulator sees the client go').toBe(
          true,
        );
        expect(e.alive).toBe(true);
        process.stderr.write(
          `lifecycle: QEMU killed with ${num(b, 'dp_d2h')} D2H signals seen by the guest\n`,
        );

        second = vm(e, 'killqemu-2', 'round', 'sgiov.stress=-n,64,-m,16,-s,65536');
        const round = await second.waitFor((l) => l.kind === 'reboot_round', 90_000);
        expect(second.find('insmod')[0]?.fields.rc).toBe('0');
        const st = second.find('selftest');
        expect(st.map((l) => l.fields.result)).toEqual(['pass', 'pass']);
        expect(second.find('dp')[0]?.raw).toMatch(/^dp running/);
        const s = second.find('stress')[0];
        expect(s?.fields.rc, s?.raw).toBe('0');
        expectNoSilentLoss(s);
        expect(num(s, 'delivered')).toBe(64 * 16);
        expect(round.fields.rc).toBe('0');
        expect(e.alive).toBe(true);
      } finally {
        await first?.kill();
        await second?.stop();
        await e.stop();
      }
    },
    VM_MS * 2,
  );

  it(
    'works again after the guest reboots: DMA regions remapped, self-test and sockets pass',
    async () => {
      keepOnFailure();
      await withVm('reboot', 'round', 'sgiov.stress=-n,64,-m,16,-s,65536', { reboot: true }, async (e, v) => {
        await v.waitFor((l) => l.kind === 'reboot_round', 90_000);
        const regionsAtReboot = (e.log.match(/DMA region registered/g) ?? []).length;
        await v.waitFor((l) => l.kind === 'start' && v.find('start').length >= 2, 60_000);
        await v.waitFor((l) => l.kind === 'reboot_round' && v.find('reboot_round').length >= 2, 90_000);
        const rounds = v.find('reboot_round');
        expect(rounds[0]!.fields.boot_id).not.toBe(rounds[1]!.fields.boot_id); // two boots of one QEMU
        for (const r of rounds) expect(r.fields.rc).toBe('0');
        const st = v.find('selftest');
        expect(st.length).toBeGreaterThanOrEqual(4);
        for (const l of st) expect(l.fields.result, l.raw).toBe('pass');
        const stress = v.find('stress');
        expect(stress.length).toBeGreaterThanOrEqual(2);
        for (const s of stress) {
          expect(s.fields.rc, s.raw).toBe('0');
          expectNoSilentLoss(s);
        }
        // The second boot's memory map reached the device again.
        expect((e.log.match(/DMA region registered/g) ?? []).length).toBeGreaterThan(regionsAtReboot);
        expect(e.log).toMatch(/DMA region unregistered/);
        process.stderr.write(
          `lifecycle: reboot: ${(e.log.match(/DMA region registered/g) ?? []).length} DMA regions registered, ${(e.log.match(/DMA region unregistered/g) ?? []).length} unregistered, ${(e.log.match(/device reset/g) ?? []).length} device resets\n`,
        );
      });
    },
    VM_MS * 2,
  );

  it(
    'fails every blocked call cleanly when the emulator is killed (surprise removal), and unloads',
    async (ctx) => {
      keepOnFailure();
      // QEMU 11.1.3's vfio-user client sometimes aborts itself when its server
      // vanishes (util/error.c: error_setv: Assertion `*errp == NULL' failed),
      // taking the guest with it: nothing of the guest's to test then. That
      // run is reported and the kill tried again, up to five times in all (in
      // one CI run it aborted twice before a third went through); when QEMU
      // aborts every time, the test reports itself skipped, not passed (the
      // fault injector's surprise_removal below tests the driver's side either way).
      for (let attempt = 1; ; attempt++) {
        let qemuAborted = false;
        await withVm(`removal${attempt}`, 'pull', 'sgiov.pull=removal', {}, async (e, v) => {
          await v.waitFor((l) => l.kind === 'pull_ready', 90_000);
          const killedAt = Date.now();
          process.kill(e.pid, 'SIGKILL');
          await until(() => !e.alive, 5000);
          await until(
            () => v.lines.some((l) => l.kind === 'wait_done' && l.fields.op === 'poll') || !v.alive,
            60_000,
          );
          if (!v.alive && /error_setv: Assertion/.test(v.output)) {
            qemuAborted = true;
            process.stderr.write(
              `lifecycle: emulator killed: QEMU aborted on the vanished server (attempt ${attempt}): ${v.output.match(/.*Assertion.*/)?.[0] ?? ''}\n`,
            );
            return;
          }
          await killedRemovalChecks(v, killedAt);
        });
        if (!qemuAborted) break;
        if (attempt === 5) {
          process.stderr.write(
            'lifecycle: emulator killed: QEMU aborted in all 5 attempts; the guest side was not observed\n',
          );
          ctx.skip();
        }
      }
    },
    VM_MS * 5,
  );

  /** After the emulator was killed: every blocked call failed cleanly, the stress run lost nothing, the module unloaded. */
  async function killedRemovalChecks(v: QemuVm, killedAt: number): Promise<void> {
    {
      const lastWait = await v.waitFor((l) => l.kind === 'wait_done' && l.fields.op === 'poll', 60_000);
      const done = await v.waitFor((l) => l.kind === 'done', 60_000);
      const { w, s } = expectRemovalHandled(v);
      expect(done.fields.rc).toBe('0');
      // What QEMU 11 does when its vfio-user server vanishes: it keeps the VM
      // running, BAR reads return all-ones, and it logs each failed access.
      expect(v.output).toMatch(/vfio_region_read\(.*\) failed/);
      const exitedAlone = await until(() => !v.alive, 15_000);
      process.stderr.write(
        `lifecycle: emulator killed: waits reported ${((lastWait.at - killedAt) / 1000).toFixed(1)} s after the kill (read ${w.read?.fields.errno} after ${w.read?.fields.ms} ms in all), stress ${s?.raw}; QEMU ${exitedAlone ? 'powered off' : 'still running after poweroff'}\n`,
      );
    }
  }

  it(
    'fails every blocked call cleanly when the device is pulled by the fault injector (surprise_removal)',
    async () => {
      keepOnFailure();
      await withVm('yank', 'pull', 'sgiov.pull=removal', { control: true }, async (e, v) => {
        await v.waitFor((l) => l.kind === 'pull_ready', 90_000);
        // The next MMIO read (the module's health check, or any other) finds the card gone.
        await controlCall(dir.file('yank.ctl'), 'faults', {
          op: 'add',
          rule: { point: 'mmio.read', do: { action: 'surprise_removal' } },
        });
        const done = await v.waitFor((l) => l.kind === 'done', 90_000);
        expectRemovalHandled(v);
        expect(done.fields.rc).toBe('0');
        expect(e.alive).toBe(true);
      });
    },
    VM_MS,
  );

  it(
    'rides out lost D2H interrupts and repeated D2H signals without losing a message',
    async () => {
      keepOnFailure();
      await withVm('flaky', 'round', 'sgiov.stress=-n,64,-m,64,-s,65536', { control: true }, async (e, v) => {
        // Armed before the guest boots (the VM's QEMU connects once the emulator answers).
        for (const rule of [
          {
            name: 'lose-irq',
            point: 'irq',
            match: { vector: 2 },
            trigger: { probability: 0.3 },
            do: { action: 'drop' },
          },
          { name: 'twice', point: 'signal.d2h', trigger: { every: 40 }, do: { action: 'duplicate' } },
        ])
          await controlCall(dir.file('flaky.ctl'), 'faults', { op: 'add', rule });
        await v.waitFor((l) => l.kind === 'reboot_round', 120_000);
        const s = v.find('stress')[0];
        expect(s?.fields.rc, s?.raw).toBe('0');
        expectNoSilentLoss(s);
        expect(num(s, 'delivered')).toBe(64 * 64);
        for (const l of v.find('selftest')) expect(l.fields.result, l.raw).toBe('pass');
        const injected = JSON.stringify(await controlCall(dir.file('flaky.ctl'), 'faults', { op: 'list' }));
        process.stderr.write(
          `lifecycle: lost interrupts and repeats: ${s?.raw}; injector: ${injected.slice(0, 600)}\n`,
        );
        expect(e.alive).toBe(true);
      });
    },
    VM_MS,
  );

  it(
    'fails the sockets with ECONNRESET when the device is reset, and new sockets work',
    async () => {
      keepOnFailure();
      await withVm('reset', 'pull', 'sgiov.pull=reset', { control: true }, async (e, v) => {
        await v.waitFor((l) => l.kind === 'pull_ready', 90_000);
        expect(await controlCall(dir.file('reset.ctl'), 'reset')).toEqual({ reset: true });
        const done = await v.waitFor((l) => l.kind === 'done', 90_000);
        const w = waits(v);
        for (const op of ['read', 'write', 'accept'])
          expect(w[op]?.fields.errno, w[op]?.raw).toBe('ECONNRESET');
        expect(num(w.poll, 'revents') & 0x8, w.poll?.raw).toBe(0x8); // POLLERR
        for (const op of ['read', 'write', 'accept', 'poll']) {
          const l = w[op]!;
          expect(l.fields.after_write, l.raw).toBe('ECONNRESET');
          expect(l.fields.after_info, l.raw).toBe('ok');
          expect(l.fields.after_open, l.raw).toBe('ok'); // a new socket on the restarted data plane
        }
        for (const l of v.find('wait_done')) expect(l.fields.rc, l.raw).toBe('0');
        const [during, after] = v.find('stress');
        expectNoSilentLoss(during);
        expect(during?.fields.first_errno, during?.raw).toBe('ECONNRESET');
        expectNoSilentLoss(after);
        expect(after?.fields.rc, after?.raw).toBe('0');
        expect(num(after, 'delivered')).toBe(64 * 16);
        expect(v.find('selftest').at(-1)?.fields.result).toBe('pass');
        expect(num(v.find('dp').at(-1), 'resets')).toBe(1);
        expect(v.find('rmmod')[0]?.fields.rc).toBe('0');
        expect(done.fields.rc).toBe('0');
        expect(e.log).toMatch(/reset through the control interface/);
      });
    },
    VM_MS,
  );

  it(
    'bounds every wait (ETIMEDOUT) and recovers interrupts that never come by polling',
    async () => {
      keepOnFailure();
      await withVm('timeouts', 'timeouts', '', {}, async (e, v) => {
        const done = await v.waitFor((l) => l.kind === 'done', 120_000);
        const w = waits(v);
        for (const op of ['read', 'write', 'accept']) {
          expect(w[op]?.fields.errno, w[op]?.raw).toBe('ETIMEDOUT');
          expect(num(w[op], 'ms'), w[op]?.raw).toBeGreaterThanOrEqual(1400); // io_timeout_ms=1500
          expect(num(w[op], 'ms'), w[op]?.raw).toBeLessThan(5000);
          expect(w[op]?.fields.after_open, w[op]?.raw).toBe('ok'); // the device is fine
        }
        const ping = v.find('ping')[0];
        expect(ping?.fields.rc, ping?.raw).toBe('0');
        expect(num(ping, 'count')).toBe(50);
        expect(num(ping, 'errors')).toBe(0);
        // Without interrupts every D2H signal was found by the timer.
        const dp = v.find('dp').at(-1);
        expect(num(dp, 'polled'), dp?.raw).toBeGreaterThan(0);
        expect(num(dp, 'd2h_irqs'), dp?.raw).toBe(0);
        expect(done.fields.rc).toBe('0');
        process.stderr.write(
          `lifecycle: no interrupts: ping median ${ping?.fields.median_us} us, p99 ${ping?.fields.p99_us} us; ${dp?.raw}\n`,
        );
      });
    },
    VM_MS,
  );
});
