/**
 * npm run demo: SG-IOV in one VM run, in four parts, each judged PASS or
 * FAIL on what the guest and the emulator report, then a summary table;
 * exits 0 only when every part passed.
 *   1. the device: the guest sees the PCIe function, sgiov.ko binds it and
 *      runs the DMA self-test (64 KiB DMA read, invert, DMA write, MSI-X);
 *   2. sockets over warp pipes: a 128 KiB stream (sgiov-perf) and a 4 KiB
 *      ping-pong (sgiov-ping) between socket devices of the VM;
 *   3. two tenants sharing the accelerators: the emulator is scheduled
 *      when the guest gets there (RDMA 0.2, crypto 0.12 Gbps, DRF: the
 *      paper's 100 and 60 scaled down to what a TCG guest saturates even on
 *      a busy machine), and the rates the guest measures are set beside the
 *      DRF allocation the emulator computes (PASS within 15%);
 *   4. a fault: D2H signals dropped by a rule added at run time while
 *      sgiov-stress runs; the driver finds each hole and recovers, and
 *      nothing is lost, duplicated, reordered or corrupted.
 * The guest side is one job script run by `sgiov vm`'s runner (run.ts); the
 * host reacts to its `demo_phase` lines through the control socket.
 *
 *   SGIOV_DEMO_SCENARIO=NAME   instead: boot qemu/init's scenario NAME (selftest,
 *                              oddaccess, baddma, sockets, tenants, shell, ...) and
 *                              show its console; PASS when the guest's run passed
 *   SGIOV_DEMO_KEEP=1          keeps the run directory (console and emulator logs)
 */
import { runInVm } from './run.js';
import { controlCall, EmulatorProcess, parseGuestLine, QemuVm, RunDir, type GuestLine } from './vm.js';

interface Part {
  name: string;
  ok: boolean;
  result: string;
}

/** What the host does when the guest reaches a phase; the guest waits a moment after announcing it. */
const SCHEDULE = {
  accelerators: { rdma: 0.2, crypto: 0.12 },
  tenants: [{ name: 'A' }, { name: 'B' }],
  policy: 'drf',
};
const FAULT_RULE = {
  name: 'demo-d2h-lost',
  point: 'signal.d2h',
  trigger: { every: 40, count: 4 },
  do: { action: 'drop' },
};

/** The guest's half: each part announces itself, then runs; the tools print key=value lines. */
const JOB = `
set -u
DEV=
for d in /sys/bus/pci/drivers/sgiov/0000:*; do DEV=$d; done
echo "demo_phase name=device"
echo "demo_device bdf=\${DEV##*/} vendor=$(cat "$DEV/vendor") device=$(cat "$DEV/device") class=$(cat "$DEV/class") driver=$(basename "$(readlink "$DEV/driver")")"
for i in 1 2 3; do
  echo 1 > "$DEV/selftest" || echo "demo_selftest iter=$i result=write-failed"
  echo "demo_selftest iter=$i result=$(cat "$DEV/selftest" | tr ' ' _) us=$(cat "$DEV/selftest_us")"
done
echo "demo_phase name=sockets"
sgiov-perf -t 2 -s 131072; echo "demo_rc tool=perf rc=$?"
sgiov-ping; echo "demo_rc tool=ping rc=$?"
echo "demo_phase name=tenants"
sleep 1
sgiov-tenants -t 4 -w 1 -n 2 -u 2; echo "demo_rc tool=tenants rc=$?"
echo "demo_phase name=fault"
sleep 1
sgiov-stress -n 32 -s 4096 -m 256 -t 60; echo "demo_rc tool=stress rc=$?"
echo "demo_driver $(cat "$DEV/dp")"
`;

const num = (l: GuestLine | undefined, k: string): number => Number(l?.fields[k]);

interface FaultsReply {
  rules?: { id?: string; rule?: { name?: unknown }; injections?: number }[];
}

interface TenantReport {
  tenant: string;
  bytes: number;
  drfGbps: number | null;
}

async function story(): Promise<number> {
  const lines: GuestLine[] = [];
  const parts: Part[] = [];
  let ctl = '';
  let pending: Promise<unknown> = Promise.resolve();
  const snaps = new Map<string, { atMs: number; tenants: TenantReport[] }>();
  const hostErrors: string[] = [];
  // The rule's injections, read when sgiov-stress is done (the emulator stops with the VM).
  let injections = 0;
  const later = (what: string, f: () => Promise<unknown>): void => {
    pending = pending.then(f).catch((e: unknown) => hostErrors.push(`${what}: ${(e as Error).message}`));
  };
  const onLine = (l: GuestLine): void => {
    lines.push(l);
    if (l.kind === 'demo_phase') {
      console.log(`\n== ${l.fields.name} ==`);
      if (l.fields.name === 'tenants')
        later('schedule', () => controlCall(ctl, 'schedule', SCHEDULE as Record<string, unknown>));
      if (l.fields.name === 'fault')
        later('faults add', () => controlCall(ctl, 'faults', { op: 'add', rule: FAULT_RULE }));
      return;
    }
    if (l.kind === 'tenants_phase' && (l.fields.name === 'measure' || l.fields.name === 'stop')) {
      const name = l.fields.name;
      later('tenants', async () => {
        const r = (await controlCall(ctl, 'tenants')) as { tenants: TenantReport[] };
        snaps.set(name, { atMs: performance.now(), tenants: r.tenants });
      });
    }
    if (l.kind === 'demo_rc' && l.fields.tool === 'stress')
      later('faults', async () => {
        const f = (await controlCall(ctl, 'faults')) as FaultsReply;
        injections =
          f.rules?.find((r) => r.id === FAULT_RULE.name || r.rule?.name === FAULT_RULE.name)?.injections ?? 0;
      });
    if (!['tenants_conn', 'check'].includes(l.kind)) console.log(`  guest> ${l.raw}`);
  };
  let buf = '';
  const t0 = Date.now();
  const run = await runInVm({
    command: ['/bin/sh', '-c', JOB],
    tty: false,
    timeoutS: 300,
    keep: process.env.SGIOV_DEMO_KEEP === '1',
    info: (m) => console.log(m),
    beforeBoot: async (path) => {
      ctl = path;
      console.log(`emulator up (control socket ${path}); booting the VM (TCG)`);
    },
    out: (b) => {
      buf += b.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const raw = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const l = parseGuestLine(`SGIOV: ${raw}`);
        if (l) onLine(l);
        else if (raw.trim()) console.log(`  guest> ${raw}`);
      }
    },
  });
  await pending;
  const find = (kind: string): GuestLine[] => lines.filter((l) => l.kind === kind);
  const rc = (tool: string): string | undefined =>
    find('demo_rc').find((l) => l.fields.tool === tool)?.fields.rc;

  // 1. the device
  const tests = find('demo_selftest');
  const passed = tests.filter((t) => t.fields.result === 'pass').length;
  const dev = find('demo_device')[0];
  parts.push({
    name: 'device: PCIe function bound, DMA self-test',
    ok: tests.length === 3 && passed === 3 && dev?.fields.driver === 'sgiov',
    result: `${dev?.fields.bdf ?? '?'} [${dev?.fields.vendor?.slice(2)}:${dev?.fields.device?.slice(2)}] class ${dev?.fields.class}, driver ${dev?.fields.driver ?? 'none'}; self-test ${passed}/${tests.length} passed (${tests.map((t) => `${t.fields.us} us`).join(', ')}); boot ${run.bootSeconds.toFixed(1)} s`,
  });

  // 2. sockets over warp pipes
  const perf = find('perf')[0];
  const ping = find('ping').at(-1);
  parts.push({
    name: 'sockets over warp pipes',
    ok: rc('perf') === '0' && rc('ping') === '0' && num(perf, 'errors') === 0 && num(perf, 'gbps') > 0,
    result: `128 KiB stream ${num(perf, 'gbps').toFixed(2)} Gbps; 4 KiB ping-pong median ${ping?.fields.median_us ?? '?'} us, p99 ${ping?.fields.p99_us ?? '?'} us (TCG)`,
  });

  // 3. DRF: the guest's rates beside the emulator's allocation
  const m = snaps.get('measure');
  const s = snaps.get('stop');
  const shares = (['A', 'B'] as const).map((name) => {
    const g = find('tenants').find((l) => l.fields.name === name);
    const drf = s?.tenants.find((t) => t.tenant === name)?.drfGbps ?? null;
    return { name, guest: num(g, 'gbps'), drf, lost: num(g, 'sent') - num(g, 'received') };
  });
  const within = (a: number, b: number | null): boolean => b !== null && b > 0 && Math.abs(a - b) <= 0.15 * b;
  parts.push({
    name: 'two tenants, DRF over RDMA 0.2 / crypto 0.12 Gbps',
    ok:
      rc('tenants') === '0' && m !== undefined && shares.every((x) => within(x.guest, x.drf) && x.lost === 0),
    result: shares
      .map((x) => `${x.name} ${x.guest.toFixed(3)} Gbps (DRF ${x.drf === null ? '?' : x.drf.toFixed(3)})`)
      .join('; '),
  });

  // 4. a fault, recovered
  const st = find('stress')[0];
  const bad = ['lost', 'duplicated', 'reordered', 'corrupted'].reduce((a, k) => a + num(st, k), 0);
  parts.push({
    name: 'fault: D2H signals dropped, recovered',
    ok: rc('stress') === '0' && injections > 0 && bad === 0 && num(st, 'sent') > 0,
    result: `${injections} signals dropped; ${num(st, 'sent')} messages sent, ${num(st, 'delivered')} delivered, ${bad} lost/duplicated/reordered/corrupted`,
  });

  const w = Math.max(...parts.map((p) => p.name.length));
  console.log('\nsummary');
  for (const p of parts) console.log(`  ${p.ok ? 'PASS' : 'FAIL'}  ${p.name.padEnd(w)}  ${p.result}`);
  for (const e of hostErrors) console.log(`  host: ${e}`);
  const ok = parts.every((p) => p.ok) && run.exitCode === 0 && hostErrors.length === 0;
  console.log(
    `result: ${ok ? 'PASS' : 'FAIL'} in ${((Date.now() - t0) / 1000).toFixed(1)} s; the device moved ${String(run.device.msgsMoved)} messages, ${String(run.device.bytesMoved)} bytes`,
  );
  return ok ? 0 : 1;
}

/** One of qemu/init's scenarios, its console shown; PASS when the guest's own run passed (its `done rc=0`). */
async function scenario(name: string): Promise<number> {
  const dir = new RunDir('sgiov-demo-');
  const emu = new EmulatorProcess({
    socketPath: dir.file('sgiov.sock'),
    logPath: dir.file('emulator.log'),
    logLevel: 'info',
  });
  let vm: QemuVm | null = null;
  let ok = false;
  try {
    await emu.ready();
    const shell = name === 'shell';
    vm = new QemuVm({
      socketPath: dir.file('sgiov.sock'),
      consolePath: dir.file('console.log'),
      scenario: name,
      timeoutS: shell ? 86_400 : 600,
      stdin: shell,
    });
    console.log(`emulator pid ${emu.pid}; qemu pid ${vm.pid}, TCG, scenario '${name}'`);
    const v = vm;
    if (shell) v.proc.stdout!.pipe(process.stdout);
    let shown = 0;
    const show = setInterval(() => {
      if (!shell) for (; shown < v.lines.length; shown++) console.log(`  guest> ${v.lines[shown]!.raw}`);
    }, 100);
    try {
      await v.waitFor((l) => l.kind === 'done', shell ? 86_400_000 : 590_000);
      await v.exit(15_000);
    } finally {
      clearInterval(show);
      if (!shell) for (; shown < v.lines.length; shown++) console.log(`  guest> ${v.lines[shown]!.raw}`);
    }
    ok = v.find('done')[0]?.fields.rc === '0';
    console.log(
      `result: ${ok ? 'PASS' : 'FAIL'} (the guest's run ended with rc=${v.find('done')[0]?.fields.rc})`,
    );
  } catch (e) {
    console.error(`demo failed: ${(e as Error).message}`);
  } finally {
    if (vm?.alive) await vm.stop();
    await emu.stop();
    if (ok && !process.env.SGIOV_DEMO_KEEP) dir.remove();
    else console.log(`logs kept in ${dir.path}`);
  }
  return ok ? 0 : 1;
}

const which = process.env.SGIOV_DEMO_SCENARIO || undefined;
process.exitCode = await (which ? scenario(which) : story()).catch((e: unknown) => {
  console.error(`demo failed: ${(e as Error).message}`);
  return 1;
});
