/**
 * An unmodified program across two nodes: two emulators, each in its own
 * network namespace (the two-namespace set-up of cross-node.test.ts), each
 * serving its own VM with the plan's address (node a: 10.77.0.1, node b:
 * 10.77.1.1). iperf3 -s runs under sgiov-run on node b; iperf3 -c under
 * sgiov-run on node a connects to 10.77.1.1: the device maps the address to
 * node b, and the connection is a cross-node warp pipe. Checked: iperf3's
 * own totals, the sending device's BYTES_MOVED (read in the guest) rising
 * by at least the bytes iperf3 moved, the emulators' counters at the end, and
 * neither guest kernel's TCP carrying it. Needs root (namespaces), the
 * setup and a build.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsPair } from '../../qemu/netns.js';
import { RunDir } from '../../qemu/vm.js';
import { runInVm, type RunResult } from '../../qemu/run.js';
import { guestAddress } from '../../qemu/address-plan.js';
import { FEW_SEGMENTS, field, GUEST_HELPERS, iperfBytes, num, results } from '../support/guest-apps.js';

const FABRIC_PORT = 7413;

const SERVER = `#!/bin/sh
set -u
${GUEST_HELPERS}
mark
sgiov-run iperf3 -s -1 -p 5201 >/tmp/iperf-s.log 2>&1
rc=$?
result server rc=$rc addr=$SGIOV_ADDR $(delta)
`;

// The client retries while node b's guest boots and starts its server.
const CLIENT = `#!/bin/sh
set -u
${GUEST_HELPERS}
mark
for i in $(seq 1 120); do
	sgiov-run iperf3 -c 10.77.1.1 -p 5201 -t 3 -l 128K -J >/tmp/iperf.json 2>/tmp/iperf.err && break
	sleep 1
done
rc=$?
result client rc=$rc addr=$SGIOV_ADDR tries=$i $(delta) json=$(tr -d '\\n\\t' </tmp/iperf.json)
`;

let net: NetnsPair | null = null;
let dir: RunDir;
const runs: Partial<Record<'a' | 'b', RunResult & { out: string }>> = {};

beforeAll(async () => {
  if (!NetnsPair.available()) return;
  net = NetnsPair.create('vmxa');
  dir = new RunDir('sgiov-vmxapps-');
  mkdirSync(dir.file('t'));
  writeFileSync(dir.file('t/server.sh'), SERVER);
  writeFileSync(dir.file('t/client.sh'), CLIENT);
  chmodSync(dir.file('t/server.sh'), 0o755);
  chmodSync(dir.file('t/client.sh'), 0o755);
  const one = async (name: 'a' | 'b', plan: number, script: string): Promise<void> => {
    let out = '';
    const node = net!.node(name, FABRIC_PORT);
    const r = await runInVm({
      command: [`/opt/t/${script}`],
      copies: [{ host: dir.file('t'), guest: '/opt/t' }],
      smp: 2,
      memMiB: 768,
      addr: guestAddress(plan, 0),
      emulator: { netns: node.netns, extraArgs: node.cluster },
      out: (c) => {
        out += c.toString();
      },
      info: () => {},
      timeoutS: 400,
    });
    runs[name] = { ...r, out };
    process.stderr.write(`${name}: ${out.replace(/json=.*/, 'json=...')}`);
  };
  await Promise.all([one('b', 1, 'server.sh'), one('a', 0, 'client.sh')]);
}, 460_000);

afterAll(() => {
  net?.remove();
  dir?.remove();
});

describe.skipIf(!NetnsPair.available())('an unmodified program across two nodes', () => {
  it('iperf3 from node a to 10.77.1.1 on node b: a cross-node warp pipe, not the kernel TCP', () => {
    const c = results(runs.a!.out).get('client');
    const s = results(runs.b!.out).get('server');
    expect(field(c, 'addr')).toBe('10.77.0.1');
    expect(field(s, 'addr')).toBe('10.77.1.1');
    expect(field(c, 'rc')).toBe('0');
    expect(field(s, 'rc')).toBe('0');
    const { sent, received } = iperfBytes(c);
    expect(received).toBeGreaterThan(1 << 20);
    expect(sent).toBeGreaterThanOrEqual(received);
    // The sender's device counts what left its rings (BYTES_MOVED counts on the sending side);
    // node b's device sent iperf3's control messages and results.
    expect(num(c, 'dev')).toBeGreaterThanOrEqual(received);
    expect(num(s, 'dev')).toBeGreaterThan(0);
    expect(num(c, 'segs')).toBeLessThan(FEW_SEGMENTS);
    expect(num(s, 'segs')).toBeLessThan(FEW_SEGMENTS);
    expect(runs.a!.device.bytesMoved as number).toBeGreaterThanOrEqual(received);
    expect(runs.b!.device.bytesMoved as number).toBeGreaterThan(0);
  });
});
