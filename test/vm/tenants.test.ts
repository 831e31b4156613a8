/**
 * End to end: two tenants sharing the device's accelerators, measured by a
 * real guest. The emulator is scheduled through its control socket before
 * the VM boots (RDMA 0.4 and crypto 0.24 Gbps, DRF: the paper's 100/60
 * scaled down); the guest's sgiov-tenants opens 2 connections per tenant
 * (sockets created as the tenant's, SGIOV_IOC_CREATE's tenant field), A
 * with ENCRYPT+DECRYPT (crypto and RDMA), B with no stage (RDMA only), and
 * pushes 128 KiB messages zero-copy from one epoll loop for 2 s of warm-up
 * and a 10 s window. DRF gives A 0.15 and B 0.25 Gbps. A second run sets
 * A's weight to 2 from the guest (SGIOV_IOC_SET_TENANT, before the load)
 * and moves B over executor F (FULL_COPY): weighted DRF gives A 0.2182
 * and B 0.1818 Gbps.
 *
 * Why these capacities: unscheduled, the same tool pushed 4.1-4.4 Gbps per
 * tenant (8.2-8.7 in all) under TCG on the 2-vCPU machine this was written
 * on, so 0.4 Gbps of RDMA is saturated with a margin of 20x even when the
 * machine is busy; the device, not the guest, sets the rates.
 *
 * Why 10%: the rates are enforced against the device clock and the guest
 * counts against its own (TCG's clock follows the host's); a window of
 * 10 s holds about 1,400 and 2,400 messages, so a message more or less at
 * either end is 0.1%; DRF converges within the warm-up; the host-side
 * snapshots that bound the emulator's window are taken when the guest's
 * phase lines arrive on the serial console (tens of ms late at worst: under
 * 1% of 10 s). Runs measured 0.1% or better; 10% leaves room for a loaded
 * machine that stalls the guest for a moment, and still tells DRF apart
 * from every other policy (rr would give 0.2 / 0.2, sriov 0.12 / 0.2, prio
 * 0.24 / 0.16).
 */
import { existsSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { EmulatorProcess, QemuVm, RunDir, until, type GuestLine } from '../../qemu/vm.js';

const VM_S = 240;
const WINDOW_S = 10;
const TOLERANCE = 0.1;
const SCHEDULE = {
  accelerators: { rdma: 0.4, crypto: 0.24 },
  tenants: [{ name: 'A' }, { name: 'B' }],
  policy: 'drf',
};

interface TenantReport {
  tenant: string;
  weight: number;
  uses: string[];
  bytes: number;
  measuredGbps: number;
  drfGbps: number | null;
}
interface Snapshot {
  atMs: number;
  tenants: TenantReport[];
}

/** One connection to the emulator's control socket; requests answered in order by id. */
class Control {
  private buf = '';
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    (r: { ok: boolean; result?: unknown; error?: string }) => void
  >();
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const r = JSON.parse(this.buf.slice(0, nl)) as {
          id: number;
          ok: boolean;
          result?: unknown;
          error?: string;
        };
        this.buf = this.buf.slice(nl + 1);
        this.waiting.get(r.id)?.(r);
        this.waiting.delete(r.id);
      }
    });
  }

  static open(path: string): Promise<Control> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(new Control(s)));
      s.once('error', reject);
    });
  }

  async cmd<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    const reply = await new Promise<{ ok: boolean; result?: unknown; error?: string }>((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`control: no reply to ${cmd} within 5 s`));
      }, 5000);
      this.waiting.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.sock.write(JSON.stringify({ id, cmd, args }) + '\n');
    });
    if (!reply.ok) throw new Error(`control ${cmd}: ${reply.error}`);
    return reply.result as T;
  }

  close(): void {
    this.sock.destroy();
  }
}

let dir: RunDir;
let emu: EmulatorProcess;
let ctl: Control | undefined;
let keep = false;
const sock = (): string => dir.file('sgiov.sock');
const ctlPath = (): string => dir.file('control.sock');

beforeAll(async () => {
  dir = new RunDir('sgiov-vmtenants-');
  emu = new EmulatorProcess({
    socketPath: sock(),
    logPath: dir.file('emulator.log'),
    logLevel: 'info',
    extraArgs: ['--control', ctlPath()],
  });
  await emu.ready();
  if (!(await until(() => existsSync(ctlPath()) || !emu.alive, 10_000)))
    throw new Error(`no control socket:\n${emu.log.slice(-2000)}`);
  ctl = await Control.open(ctlPath());
});

afterAll(async () => {
  ctl?.close();
  await emu?.stop();
  if (emu) expect(existsSync(sock())).toBe(false);
  if (keep) process.stderr.write(`VM test files kept in ${dir.path}\n`);
  else dir?.remove();
});

const num = (l: GuestLine | undefined, k: string): number => Number(l?.fields[k]);
const within = (got: number, want: number, tol: number): boolean => Math.abs(got - want) <= tol * want;

interface Expect {
  /** Guest tool arguments after the common ones. */
  toolArgs: string[];
  chains: { A: string; B: string };
  drf: { A: number; B: number };
  weights: { A: number; B: number };
}

/** Boots the guest's tenants scenario against the scheduled emulator and checks the rates against DRF. */
async function runTenants(x: Expect): Promise<void> {
  const set = await ctl!.cmd<{ scheduled: boolean }>('schedule', SCHEDULE);
  expect(set.scheduled).toBe(true);

  const args = [
    `sgiov.tenants=${['-t', String(WINDOW_S), '-w', '2', '-n', '2', '-u', '2', ...x.toolArgs].join(',')}`,
    `sgiov.tool_timeout=${VM_S - 60}`,
  ].join(' ');
  const vm = new QemuVm({
    socketPath: sock(),
    consolePath: dir.file('tenants.console.log'),
    scenario: 'tenants',
    timeoutS: VM_S,
    extraAppend: args,
  });
  // The device's view at the guest's phase lines (before the module is
  // unloaded: stopping the data plane resets the accelerators' counters).
  const snaps = new Map<string, Snapshot>();
  try {
    let seen = 0;
    const ok = await (async () => {
      const end = Date.now() + (VM_S - 10) * 1000;
      while (Date.now() < end && vm.alive) {
        while (seen < vm.lines.length) {
          const l = vm.lines[seen++]!;
          if (l.kind === 'tenants_phase' && (l.fields.name === 'measure' || l.fields.name === 'stop')) {
            const r = await ctl!.cmd<{ policy: string; tenants: TenantReport[] }>('tenants');
            snaps.set(l.fields.name, { atMs: performance.now(), tenants: r.tenants });
          }
          if (l.kind === 'done') return true;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      return vm.lines.some((l) => l.kind === 'done');
    })();
    if (!ok)
      throw new Error(
        `the guest did not finish (console: ${dir.file('tenants.console.log')})\n${vm.output.slice(-3000)}`,
      );
    await vm.exit(15_000);
  } finally {
    if (vm.alive) await vm.stop();
  }
  const report = vm.lines
    .filter((l) =>
      [
        'check',
        'tenant_set',
        'tenants',
        'tenants_conn',
        'tenants_phase',
        'tenants_done',
        'log',
        'dp',
      ].includes(l.kind),
    )
    .map((l) => l.raw)
    .join('\n');
  process.stderr.write(`${report}\n`);

  expect(vm.find('insmod')[0]?.fields.rc).toBe('0');
  expect(vm.find('dp')[0]?.raw).toMatch(/^dp running dev=\/dev\/sgiov /);
  for (const c of vm.find('check')) expect(c.fields.ok, c.raw).toBe('1');
  // Binaries built before tenants (8-byte CREATE, 64-byte INFO) still work, as tenant 0; reserved flags are refused.
  for (const name of [
    'create_v0',
    'info_v0',
    'info_v0_state',
    'info_v0_size',
    'create_v0_tenant',
    'create_flags_einval',
  ]) {
    expect(
      vm.find('check').some((c) => c.fields.name === name && c.fields.ok === '1'),
      name,
    ).toBe(true);
  }
  // A tenant the device does not know: CREATE fails with EINVAL; SET_TENANT with ENOENT; a weight of 0 or a cap above capacity with EINVAL.
  expect(vm.find('check').find((c) => c.fields.name === 'unknown_tenant_einval')?.fields).toMatchObject({
    ok: '1',
    got: '22',
  });
  expect(vm.find('check').find((c) => c.fields.name === 'set_unknown_tenant_enoent')?.fields).toMatchObject({
    ok: '1',
    got: '2',
  });
  expect(vm.find('check').find((c) => c.fields.name === 'set_weight_zero_einval')?.fields).toMatchObject({
    ok: '1',
    got: '22',
  });
  expect(
    vm.find('check').find((c) => c.fields.name === 'set_cap_above_capacity_einval')?.fields,
  ).toMatchObject({ ok: '1', got: '22' });
  expect(vm.find('tenants_done')[0]?.fields.rc).toBe('0');

  const guest = new Map(vm.find('tenants').map((l) => [l.fields.name!, l]));
  for (const name of ['A', 'B']) {
    const g = guest.get(name);
    expect(g?.fields, g?.raw ?? `no tenants line for ${name}`).toMatchObject({
      conns: '2',
      msg_size: '131072',
      errors: '0',
    });
    expect(num(g, 'received'), g?.raw).toBe(num(g, 'sent')); // nothing lost
    expect(num(g, 'seconds')).toBeGreaterThan(WINDOW_S * 0.99);
  }
  expect(guest.get('A')?.fields.chain).toBe(x.chains.A);
  expect(guest.get('B')?.fields.chain).toBe(x.chains.B);

  const m = snaps.get('measure');
  const s = snaps.get('stop');
  expect(m, 'no device snapshot at the start of the window').toBeDefined();
  expect(s, 'no device snapshot at the end of the window').toBeDefined();
  const windowS = (s!.atMs - m!.atMs) / 1000;
  const rows = (['A', 'B'] as const).map((name, i) => {
    const dev = s!.tenants.find((t) => t.tenant === name)!;
    const before = m!.tenants.find((t) => t.tenant === name)!;
    return {
      name,
      i,
      dev,
      guestGbps: num(guest.get(name), 'gbps'),
      windowGbps: ((dev.bytes - before.bytes) * 8) / windowS / 1e9,
    };
  });
  process.stderr.write(
    `tenant  weight  uses         drfGbps  guestGbps  emulator(window)  emulator(measuredGbps)\n` +
      rows
        .map(
          (r) =>
            `${r.name.padEnd(8)}${String(r.dev.weight).padEnd(8)}${r.dev.uses.slice().sort().join(',').padEnd(13)}${r.dev.drfGbps!.toFixed(4).padEnd(9)}${r.guestGbps.toFixed(4).padEnd(11)}${r.windowGbps.toFixed(4).padEnd(18)}${r.dev.measuredGbps.toFixed(4)}`,
        )
        .join('\n') +
      '\n',
  );

  // The emulator's allocation for what each tenant used: DRF by progressive filling.
  expect(rows[0]!.dev.uses.slice().sort()).toEqual(['crypto', 'rdma']);
  expect(rows[1]!.dev.uses).toEqual(['rdma']);
  for (const r of rows) {
    expect(r.dev.weight).toBe(x.weights[r.name]);
    expect(r.dev.drfGbps).toBeCloseTo(x.drf[r.name], 9);
    const drf = r.dev.drfGbps!;
    expect(within(r.guestGbps, drf, TOLERANCE), `${r.name}: guest ${r.guestGbps} Gbps vs DRF ${drf}`).toBe(
      true,
    );
    expect(
      within(r.guestGbps, r.dev.measuredGbps, TOLERANCE),
      `${r.name}: guest ${r.guestGbps} vs emulator measured ${r.dev.measuredGbps}`,
    ).toBe(true);
    expect(
      within(r.windowGbps, drf, TOLERANCE),
      `${r.name}: emulator window ${r.windowGbps} vs DRF ${drf}`,
    ).toBe(true);
  }
  // RDMA, the shared bottleneck, was saturated.
  expect(within(rows[0]!.guestGbps + rows[1]!.guestGbps, 0.4, TOLERANCE)).toBe(true);

  const after = vm.find('dp').at(-1);
  expect(after?.fields.sockets_open).toBe('0');
  expect(after?.fields.dev_errors).toBe('0');
  expect(vm.find('rmmod')[0]?.fields.rc).toBe('0');
  expect(vm.find('done')[0]?.fields.rc).toBe('0');
  expect(emu.log).not.toMatch(/socket error/);
  expect(emu.alive).toBe(true);
}

describe.sequential('tenants sharing scheduled accelerators, from a real guest', () => {
  it(
    'DRF divides RDMA 0.4 / crypto 0.24 Gbps as A (crypto+RDMA) 0.15 and B (RDMA) 0.25, measured by the guest within 10%',
    async () => {
      onTestFailed(() => {
        keep = true;
      });
      await runTenants({
        toolArgs: [],
        chains: { A: '0x201', B: '0x0' },
        drf: { A: 0.15, B: 0.25 },
        weights: { A: 1, B: 1 },
      });
    },
    VM_S * 1000 + 30_000,
  );

  it(
    'weights set by the guest (SGIOV_IOC_SET_TENANT: A 2, B 1; B on executor F): A 0.2182, B 0.1818 Gbps within 10%',
    async () => {
      onTestFailed(() => {
        keep = true;
      });
      // Weighted DRF: A's rate is 2 x 0.24 x L, B's 1 x 0.4 x L; RDMA saturates at 0.88 L = 0.4.
      await runTenants({
        toolArgs: ['-T', 'A:0:enc+dec:2', '-T', 'B:1:copy:1'],
        chains: { A: '0x201', B: '0x7' },
        drf: { A: (0.48 * 0.4) / 0.88, B: (0.4 * 0.4) / 0.88 },
        weights: { A: 2, B: 1 },
      });
    },
    VM_S * 1000 + 30_000,
  );
});
