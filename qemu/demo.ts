/**
 * npm run demo: starts the emulator, boots a VM against it, and prints the
 * guest's view of the device and the DMA self-test result. Exits 0 only
 * when the self-test passed.
 *   SGIOV_DEMO_SCENARIO=oddaccess|baddma|selftest (default selftest)
 *   SGIOV_DEMO_KEEP=1 keeps the run directory (console and emulator logs)
 */
import { EmulatorProcess, QemuVm, RunDir } from './vm.js';

async function main(): Promise<number> {
  const scenario = process.env.SGIOV_DEMO_SCENARIO ?? 'selftest';
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
    console.log(`emulator: pid ${emu.pid}, socket ${dir.file('sgiov.sock')}`);
    vm = new QemuVm({
      socketPath: dir.file('sgiov.sock'),
      consolePath: dir.file('console.log'),
      scenario,
      timeoutS: 150,
    });
    console.log(`qemu:     pid ${vm.pid}, TCG, 512 MiB shared guest RAM, scenario '${scenario}'`);
    let shown = 0;
    const show = setInterval(() => {
      for (; shown < vm!.lines.length; shown++) console.log(`  guest> ${vm!.lines[shown]!.raw}`);
    }, 100);
    try {
      await vm.waitFor((l) => l.kind === 'done', 140_000);
      await vm.exit(15_000);
    } finally {
      clearInterval(show);
      for (; shown < vm.lines.length; shown++) console.log(`  guest> ${vm.lines[shown]!.raw}`);
    }
    const dev = vm.find('device')[0];
    const tests = vm.find('selftest');
    const firstTest = tests[0];
    console.log('');
    console.log('the guest sees:');
    if (dev && dev.fields.bdf) {
      const f = dev.fields;
      console.log(
        `  ${f.bdf}  [${f.vendor?.slice(2)}:${f.device?.slice(2)}] class ${f.class} subsystem [${f.subsystem_vendor?.slice(2)}:${f.subsystem_device?.slice(2)}] rev ${f.revision}`,
      );
      for (const b of vm.find('bar'))
        console.log(`  BAR${b.fields.index}: ${b.fields.start} size ${b.fields.size}`);
      console.log(`  driver: ${vm.find('driver')[0]?.fields.name ?? 'none'}`);
    } else {
      console.log('  no SG-IOV device');
    }
    const passed = tests.filter((t) => t.fields.result === 'pass').length;
    ok = tests.length > 0 && passed === tests.length && vm.find('done')[0]?.fields.rc === '0';
    console.log(
      `self-test: ${passed}/${tests.length} passed` +
        (firstTest ? ` (64 KiB DMA read, invert, DMA write, MSI-X; first in ${firstTest.fields.us} us)` : ''),
    );
    if (firstTest)
      console.log(
        `boot to first self-test result: ${((firstTest.at - vm.startedAt) / 1000).toFixed(1)} s (QEMU start to the guest's report)`,
      );
    console.log(
      `result: ${ok ? 'PASS' : 'FAIL'} (VM ran ${((Date.now() - vm.startedAt) / 1000).toFixed(1)} s)`,
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

process.exitCode = await main();
