/**
 * End to end across two nodes: two emulators, each in its own network
 * namespace (a veth pair the test makes, addresses of its own), each
 * serving its own VM; sgiov-stress split across them: the guest on node b
 * listens and accepts (-L), the guest on node a makes the connections to
 * node b's id (-C 2, SGIOV_IOC_CONNECT_NODE). 2,048 sockets in all (1,024
 * in each guest, 1,024 connections over the link), random sizes up to
 * 64 KiB on the big connections and 4 KiB on the others, every message
 * numbered and checksummed, both directions: zero lost, duplicated,
 * reordered or corrupted. Needs root (namespaces), the setup and a build.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { NetnsPair } from '../../qemu/netns.js';
import { FabricCredentials } from '../../qemu/fabric-credentials.js';
import { EmulatorProcess, guestListening, QemuVm, RunDir, type GuestLine } from '../../qemu/vm.js';

const SOCKETS = 2048;
const MSGS = 8;
const PORT = 7300;
const FABRIC_PORT = 7412;
const VM_S = 400;

let net: NetnsPair | null = null;
let dir: RunDir;
const emus: EmulatorProcess[] = [];
let keep = false;

beforeAll(async () => {
  if (!NetnsPair.available()) return;
  net = NetnsPair.create('vmxn');
  dir = new RunDir('sgiov-vmcross-');
  // Authenticated, as the device tests are (a secret made for the run).
  const creds = FabricCredentials.make(dir.file('fabric'), ['a', 'b']);
  for (const name of ['a', 'b'] as const) {
    const emu = new EmulatorProcess({
      socketPath: dir.file(`${name}.sock`),
      logPath: dir.file(`${name}.log`),
      logLevel: 'info',
      netns: net.node(name, FABRIC_PORT).netns,
      extraArgs: [
        ...net.node(name, FABRIC_PORT).cluster,
        '--control',
        dir.file(`${name}.ctl`),
        ...creds.flags(name, false),
      ],
    });
    emus.push(emu);
    await emu.ready();
  }
});

afterAll(async () => {
  await Promise.all(emus.map((e) => e.stop()));
  net?.remove();
  if (keep) process.stderr.write(`VM test files kept in ${dir.path}\n`);
  else dir?.remove();
});

const num = (l: GuestLine | undefined, k: string): number => Number(l?.fields[k]);

describe.skipIf(!NetnsPair.available())('cross-node pipes between two VMs', () => {
  it(
    `sgiov-stress across the link: ${SOCKETS} sockets, both directions, nothing lost, duplicated, reordered or corrupted`,
    async () => {
      onTestFailed(() => {
        keep = true;
      });
      const stress = (mode: string): string =>
        [
          `sgiov.stress=${mode},-n,${SOCKETS},-m,${MSGS},-s,65536,-b,8,-r,4096,-p,${PORT},-t,${VM_S - 80}`,
          'sgiov.sockcheck=skip',
          'sgiov.chains=skip',
          'sgiov.ping=skip',
          'sgiov.perf=skip',
          `sgiov.tool_timeout=${VM_S - 40}`,
        ].join(' ');
      const vmB = new QemuVm({
        socketPath: dir.file('b.sock'),
        consolePath: dir.file('b.console.log'),
        scenario: 'sockets',
        timeoutS: VM_S,
        extraAppend: stress('-L'),
      });
      let vmA: QemuVm | null = null;
      try {
        // Node a's guest connects once node b's guest is listening (as a client would retry).
        const listening = await guestListening(dir.file('b.ctl'), PORT, vmB);
        expect(listening, `node b's guest never listened:\n${vmB.output.slice(-3000)}`).toBe(true);
        vmA = new QemuVm({
          socketPath: dir.file('a.sock'),
          consolePath: dir.file('a.console.log'),
          scenario: 'sockets',
          timeoutS: VM_S,
          extraAppend: stress('-C,2'),
        });
        await Promise.all([
          vmA.waitFor((l) => l.kind === 'done', (VM_S - 10) * 1000),
          vmB.waitFor((l) => l.kind === 'done', (VM_S - 10) * 1000),
        ]);
        await Promise.all([vmA.exit(15_000), vmB.exit(15_000)]);
      } finally {
        if (vmA?.alive) await vmA.stop();
        if (vmB.alive) await vmB.stop();
      }
      for (const [name, vm] of [
        ['a', vmA!],
        ['b', vmB],
      ] as const) {
        process.stderr.write(
          vm.lines
            .filter((l) => ['stress', 'log', 'dp'].includes(l.kind))
            .map((l) => `${name}: ${l.raw}`)
            .join('\n') + '\n',
        );
        const st = vm.find('stress')[0];
        expect(st?.fields, st?.raw).toMatchObject({
          sockets: String(SOCKETS),
          conns: String(SOCKETS / 2),
          lost: '0',
          duplicated: '0',
          reordered: '0',
          corrupted: '0',
          errors: '0',
          failed: '0',
          rc: '0',
        });
        // Each guest sent its side's messages and received all of the other's.
        expect(num(st, 'sent')).toBe((SOCKETS / 2) * MSGS);
        expect(num(st, 'received')).toBe((SOCKETS / 2) * MSGS);
        expect(num(st, 'delivered')).toBe((SOCKETS / 2) * MSGS);
        expect(num(st, 'wrapped')).toBeGreaterThan(0);
        expect(vm.find('dp').at(-1)?.fields.sockets_open).toBe('0');
        expect(vm.find('done')[0]?.fields.rc).toBe('0');
      }
      // The traffic crossed the fabric.
      for (const e of emus) expect(e.log).not.toMatch(/link to node . failed/);
      for (const e of emus) expect(e.log).not.toMatch(/fabric is unauthenticated/);
    },
    VM_S * 1000 + 60_000,
  );
});
