/**
 * fabric.send / fabric.recv between two emulator processes in two network
 * namespaces (issue #6): the stress workload across the link while the
 * wire loses, repeats, corrupts and holds frames or goes down, with plans
 * given at start (`--faults`) or through the control `faults` command.
 * Every message is delivered once, in order and intact, or its socket fails
 * with LINK_FAILED and reports it: lost 0, duplicated 0, corrupted 0,
 * received + failedReported = sent. Needs root for the namespaces.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openCrossPairs, stressPairs, type PairsReport } from '../../emulator/client/stress.js';
import { NetnsPair } from '../../qemu/netns.js';
import {
  NODE_A,
  NODE_B,
  both,
  control,
  startCluster,
  stopCluster,
  type Cluster,
  type Node,
} from '../support/cross-node.js';

afterEach(stopCluster);

const plan = (name: string): string => join(process.cwd(), 'faults', name);

type Injections = Record<string, Record<string, number>>;
const injections = async (n: Node): Promise<Injections> =>
  ((await control(n, 'faults')) as { injections: Injections }).injections;
const total = (i: Injections, point: string): number =>
  Object.values(i[point] ?? {}).reduce((a, b) => a + b, 0);

interface LinkStat {
  rtoResets: number;
  reconnects: number;
  duplicates: number;
  retransmitted: number;
  failures: number;
  bad: Record<string, number>;
}
const linkOf = async (n: Node, peer: string): Promise<LinkStat> =>
  ((await control(n, 'fabric')) as { links: Record<string, LinkStat> }).links[peer]!;

/** Stress both ways: 12 pairs a -> b and 12 b -> a, 150 messages each of 1..16 KiB. */
function stress(c: Cluster, basePort: number, seed: number): PairsReport[] {
  const ab = openCrossPairs(c.a.drv, c.b.drv, NODE_B, 24, 16384, basePort);
  const ba = openCrossPairs(c.b.drv, c.a.drv, NODE_A, 24, 16384, basePort + 100);
  const w = both(c);
  const o = { messagesPerPair: 150, minSize: 1, maxSize: 16384, ringSize: 16384 };
  return [
    stressPairs(ab.pairs, { ...o, seed }, w.wait, w.tick),
    stressPairs(ba.pairs, { ...o, seed: seed + 1 }, w.wait, w.tick),
  ];
}

/** The contract: nothing lost, repeated, reordered or corrupted; every message received or reported failed. */
function contract(reports: PairsReport[], failuresAllowed: boolean): void {
  for (const r of reports) {
    expect(r).toMatchObject({ lost: 0, duplicated: 0, reordered: 0, corrupted: 0 });
    expect(r.received + r.failedReported).toBe(r.sent);
    if (!failuresAllowed) expect(r).toMatchObject({ sent: 1800, received: 1800, failedPairs: 0 });
  }
}

describe.skipIf(!NetnsPair.available())('fault injection on the wire between two emulators', () => {
  it('plans at start (--faults): frames dropped on a, repeated on b; nothing lost or repeated', async () => {
    const c = await startCluster(20_000, () => ({
      a: ['--faults', plan('fabric-drop.json')],
      b: ['--faults', plan('fabric-duplicate.json')],
    }));
    contract(stress(c, 9600, 21), false);
    const ia = await injections(c.a);
    const ib = await injections(c.b);
    expect(ia['fabric.send']?.drop).toBeGreaterThan(0);
    expect(ia['fabric.recv']?.drop).toBeGreaterThan(0);
    expect(ib['fabric.send']?.duplicate).toBeGreaterThan(100);
    expect(ib['fabric.recv']?.duplicate).toBeGreaterThan(100);
    const la = await linkOf(c.a, 'b');
    const lb = await linkOf(c.b, 'a');
    expect(la.reconnects + lb.reconnects).toBeGreaterThan(0); // each loss was recovered by a reset and a resume
    expect(la.duplicates + lb.duplicates).toBeGreaterThan(100);
    expect(la.failures + lb.failures).toBe(0);
  }, 180_000);

  it('corrupted frames at start and delays added through the control interface: no corrupted message delivered', async () => {
    const c = await startCluster(20_000, () => ({ a: ['--faults', plan('fabric-corrupt.json')] }));
    await control(c.b, 'faults', {
      op: 'add',
      rule: {
        name: 'slow',
        point: 'fabric.send',
        trigger: { every: 100, count: 10 },
        do: { action: 'delay', ms: 30 },
      },
    });
    await control(c.b, 'faults', {
      op: 'add',
      rule: {
        name: 'slow-in',
        point: 'fabric.recv',
        match: { node: NODE_A },
        trigger: { every: 120, count: 10 },
        do: { action: 'delay', ms: 30 },
      },
    });
    contract(stress(c, 9800, 31), false);
    const ia = await injections(c.a);
    expect(ia['fabric.send']?.corrupt).toBeGreaterThan(0);
    expect(ia['fabric.recv']?.corrupt).toBeGreaterThan(0);
    expect(
      total(await injections(c.b), 'fabric.send') + total(await injections(c.b), 'fabric.recv'),
    ).toBeGreaterThan(0);
    const la = await linkOf(c.a, 'b');
    const lb = await linkOf(c.b, 'a');
    expect(la.bad.badCrc! + lb.bad.badCrc!).toBeGreaterThan(0);
    expect(la.failures + lb.failures).toBe(0);
  }, 180_000);

  it('link_down shorter than the deadline (control): the sessions resume, nothing lost', async () => {
    const c = await startCluster(20_000);
    await control(c.a, 'faults', {
      op: 'add',
      rule: {
        name: 'outage',
        point: 'fabric.send',
        match: { node: 'b' },
        trigger: { every: 700, count: 3 },
        do: { action: 'link_down', ms: 300 },
      },
    });
    await control(c.b, 'faults', {
      op: 'add',
      rule: {
        name: 'outage-in',
        point: 'fabric.recv',
        trigger: { every: 900, count: 2 },
        do: { action: 'link_down', ms: 300 },
      },
    });
    contract(stress(c, 10_000, 41), false);
    expect((await injections(c.a))['fabric.send']?.link_down).toBeGreaterThan(0);
    expect((await linkOf(c.a, 'b')).failures).toBe(0);
    expect(c.a.emu.log + c.b.emu.log).toMatch(/resumed/);
  }, 180_000);

  it('link_down past the deadline (control): the paired sockets fail with LINK_FAILED, every message received or reported', async () => {
    const c = await startCluster(1_000);
    await control(c.a, 'faults', {
      op: 'add',
      rule: {
        name: 'long-outage',
        point: 'fabric.send',
        trigger: { after: 400, once: true },
        do: { action: 'link_down', ms: 2500 },
      },
    });
    const reports = stress(c, 10_200, 51);
    contract(reports, true);
    expect(reports[0]!.failedPairs + reports[1]!.failedPairs).toBeGreaterThan(0);
    expect(reports[0]!.failedReported + reports[1]!.failedReported).toBeGreaterThan(0);
    expect((await injections(c.a))['fabric.send']?.link_down).toBe(1);
    expect((await linkOf(c.a, 'b')).failures).toBeGreaterThan(0);
  }, 180_000);
});
