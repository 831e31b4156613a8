/**
 * Device tests without a VM: the emulator as its own process (from dist/,
 * as the VM tests run it; `npm run build` first) and the vfio-user client
 * in this one. Every process is stopped by its PID; the run dir (socket,
 * log) is removed unless a test failed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../emulator/util/paths.js';
import { onTestFailed } from 'vitest';
import { EmulatorProcess, RunDir, until } from '../../qemu/vm.js';
import { VfioUserClient, type ConnectOptions } from '../../emulator/client/vfio-user-client.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';

export interface Rig {
  dir: RunDir;
  emu: EmulatorProcess;
  sock: string;
  /** Clients opened through connect(); closed by stop(). */
  clients: VfioUserClient[];
  connect(opts?: ConnectOptions): VfioUserClient;
  /** A connected client with the driver brought up. */
  driver(opts?: ConnectOptions): SgiovDriver;
  /** Closes every client connect() opened (the device resets as each goes). */
  closeAll(): void;
  /** Waits until the emulator logged `n` disconnects in all. */
  disconnects(n: number): Promise<boolean>;
  keepOnFailure(): void;
  stop(): Promise<void>;
}

/** Small guest memory by default: the tests need a few pages, not 64 MiB. */
export const TEST_MEM = 4 * 1024 * 1024;

export async function startRig(name: string): Promise<Rig> {
  const dir = new RunDir(`sgiov-devtest-${name}-`);
  const sock = dir.file('sgiov.sock');
  const emu = new EmulatorProcess({ socketPath: sock, logPath: dir.file('emulator.log'), logLevel: 'info' });
  let keep = false;
  const rig: Rig = {
    dir,
    emu,
    sock,
    clients: [],
    connect(opts = {}) {
      const c = VfioUserClient.connect(sock, { memBytes: TEST_MEM, ...opts });
      rig.clients.push(c);
      return c;
    },
    driver(opts = {}) {
      const d = new SgiovDriver(rig.connect(opts));
      d.bringUp();
      return d;
    },
    closeAll() {
      for (const c of rig.clients.splice(0)) c.close();
    },
    disconnects(n) {
      return until(() => (emu.log.match(/client gone/g) ?? []).length >= n, 10_000);
    },
    keepOnFailure() {
      onTestFailed(() => {
        keep = true;
      });
    },
    async stop() {
      rig.closeAll();
      await emu.stop();
      const sockLeft = existsSync(sock);
      if (keep) process.stderr.write(`device test files kept in ${dir.path}\n`);
      else dir.remove();
      if (sockLeft) throw new Error(`the emulator left its socket ${sock} behind`);
    },
  };
  try {
    await emu.ready();
  } catch (e) {
    await emu.stop();
    process.stderr.write(`emulator log kept in ${dir.path}\n`);
    throw e;
  }
  return rig;
}

/** The sgiov CLI (dist/), run to completion. */
export const sgiovCli = (...args: string[]) =>
  spawnSync(process.execPath, [cliPath(), ...args], { encoding: 'utf8', timeout: 15_000 });

export const cliPath = (): string => join(repoRoot(), 'dist', 'emulator', 'cli', 'main.js');

/** An emulator with a control socket (dir.file('ctl.sock')) and `extraArgs`, ready. */
export async function startControlled(
  name: string,
  extraArgs: string[] = [],
): Promise<{ dir: RunDir; emu: EmulatorProcess; ctl: string }> {
  const dir = new RunDir(`sgiov-${name}-`);
  const ctl = dir.file('ctl.sock');
  const emu = new EmulatorProcess({
    socketPath: dir.file('s.sock'),
    logPath: dir.file('e.log'),
    logLevel: 'info',
    extraArgs: ['--control', ctl, ...extraArgs],
  });
  await emu.ready();
  return { dir, emu, ctl };
}
