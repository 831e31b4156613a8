/**
 * What the cross-node device tests share: two emulator processes, each in
 * its own network namespace (a veth pair made here), each with its own
 * VM-less client in the test's process; cleanup by PID; the control socket.
 * The fabric is authenticated (a cluster secret made for the run) and, with
 * `tls`, encrypted (certificates from scripts/fabric-certs.sh).
 */
import { onTestFailed } from 'vitest';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { FabricCredentials } from './fabric.js';
import { NetnsPair } from '../../qemu/netns.js';
import { controlCall, EmulatorProcess, RunDir, until } from '../../qemu/vm.js';

export const PORT = 7411;
/** Node ids: 1 + the index in the sorted names. */
export const NODE_A = 1;
export const NODE_B = 2;

export interface Node {
  emu: EmulatorProcess;
  client: VfioUserClient;
  drv: SgiovSocketDriver;
  ctl: string;
}
export interface Cluster {
  net: NetnsPair;
  dir: RunDir;
  a: Node;
  b: Node;
  keep: boolean;
}

let live: Cluster | null = null;

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function startNode(
  net: NetnsPair,
  dir: RunDir,
  name: 'a' | 'b',
  deadlineMs: number,
  extraArgs: readonly string[],
  security: readonly string[],
): Promise<Node> {
  const sock = dir.file(`${name}.sock`);
  const emu = new EmulatorProcess({
    socketPath: sock,
    logPath: dir.file(`${name}.log`),
    logLevel: 'info',
    netns: net.node(name, PORT).netns,
    extraArgs: [
      ...net.node(name, PORT).cluster,
      '--link-deadline',
      String(deadlineMs),
      '--control',
      dir.file(`${name}.ctl`),
      ...security,
      ...extraArgs,
    ],
  });
  await emu.ready();
  const client = VfioUserClient.connect(sock, { memBytes: 64 << 20 });
  const d = new SgiovDriver(client);
  d.bringUp();
  const drv = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 65536, timeoutMs: 30_000 });
  return { emu, client, drv, ctl: dir.file(`${name}.ctl`) };
}

/**
 * Emulators a and b, their links up. `args(dir)` gives each node extra
 * command-line arguments (files it names go in `dir`, the test's run directory).
 */
export async function startCluster(
  deadlineMs: number,
  args: (dir: RunDir) => { a?: string[]; b?: string[] } = () => ({}),
  opts: { tls?: boolean } = {},
): Promise<Cluster> {
  const net = NetnsPair.create('xn');
  const dir = new RunDir('sgiov-crossnode-');
  const c: Cluster = { net, dir, a: null as unknown as Node, b: null as unknown as Node, keep: false };
  live = c;
  const extra = args(dir);
  const creds = FabricCredentials.make(dir.file('fabric'), ['a', 'b']);
  const tls = opts.tls === true;
  c.a = await startNode(net, dir, 'a', deadlineMs, extra.a ?? [], creds.flags('a', tls));
  c.b = await startNode(net, dir, 'b', deadlineMs, extra.b ?? [], creds.flags('b', tls));
  onTestFailed(() => {
    c.keep = true;
  });
  // Both links up before traffic: the fabric logs each state change.
  if (
    !(await until(
      () => /"state":"up"|link up/.test(c.a.emu.log) && /"state":"up"|link up/.test(c.b.emu.log),
      10_000,
    ))
  ) {
    throw new Error(`the link did not come up:\n${c.a.emu.log.slice(-1500)}\n${c.b.emu.log.slice(-1500)}`);
  }
  return c;
}

/** For afterEach: stops the cluster's emulators (by PID), removes its namespaces, and its files unless the test failed. */
export async function stopCluster(): Promise<void> {
  const c = live;
  live = null;
  if (!c) return;
  for (const n of [c.a, c.b]) {
    try {
      n?.client.close();
    } catch {
      /* gone */
    }
  }
  await Promise.all([c.a?.emu.stop(), c.b?.emu.stop()]);
  c.net.remove();
  if (c.keep) process.stderr.write(`cross-node test files kept in ${c.dir.path}\n`);
  else c.dir.remove();
}

/** Waits on both devices (the TS drivers spin; the emulators run in their own processes). */
export const both = (c: Cluster) => ({
  wait: (pred: () => boolean, what: string) =>
    c.a.drv.waitUntil(() => {
      c.b.drv.process();
      return pred();
    }, what),
  tick: () => {
    c.a.drv.dev.wait();
    c.a.drv.process();
    c.b.drv.process();
  },
});

/** One control command to a node's emulator. */
export const control = (n: Node, cmd: string, args: Record<string, unknown> = {}): Promise<unknown> =>
  controlCall(n.ctl, cmd, args);
