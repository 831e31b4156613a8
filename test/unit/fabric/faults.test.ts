/**
 * fabric.send and fabric.recv: two Fabric nodes on 127.0.0.1, each with its
 * own FaultInjector loaded with a plan, traffic both ways with checksummed
 * payloads. Whatever the wire does to frames (lost, repeated, corrupted,
 * held, the link cut), every frame is delivered exactly once and in order,
 * or (an outage past the deadline) handed back through onFailed.
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { Fabric, type FabricOptions, type LinkStats } from '../../../emulator/fabric/fabric.js';
import { freePorts, localCluster } from '../../support/fabric.js';
import { FaultInjector } from '../../../emulator/faults/injector.js';
import { POINT, validatePlan, type PointName } from '../../../emulator/faults/plan.js';
import { PIPE_FRAME } from '../../../emulator/model/dataplane/remote.js';
import { wireFaults } from '../../../emulator/host/fabric-carrier.js';
import { silentLogger } from '../../../emulator/util/log.js';
import { until } from '../../../qemu/vm.js';

/** The data plane's MSG, between socket 3 on each side: a rule matching sid 3 hits data frames only. */
const MSG = PIPE_FRAME.MSG;
const SID = 3;
const FAST: Partial<FabricOptions> = { heartbeatMs: 100, backoffMinMs: 10, backoffMaxMs: 200 };

/** Frame i's payload: u32 index, u32 CRC-32 of the rest, random bytes; 8..1,508 bytes. */
function payload(i: number): Uint8Array {
  const p = new Uint8Array(8 + Math.floor(Math.random() * 1500));
  p.set(randomBytes(p.length - 8), 8);
  const v = new DataView(p.buffer);
  v.setUint32(0, i);
  v.setUint32(4, crc32(p.subarray(8)));
  return p;
}

/** A node, its injector, and what its owner saw. */
interface Node {
  name: string;
  fabric: Fabric;
  inj: FaultInjector;
  /** Indexes delivered, in arrival order. */
  got: number[];
  /** Payloads whose checksum did not match (must stay 0). */
  corrupted: number;
  /** Indexes of the frames this node sent that came back through onFailed. */
  failed: Set<number>;
  failures: number;
  drain: () => void;
  ackedSeq: number;
}

const fabrics: Fabric[] = [];
afterEach(async () => {
  await Promise.all(fabrics.splice(0).map((f) => f.close()));
});

async function node(
  name: string,
  ports: Record<string, number>,
  plan: unknown,
  opts: Partial<FabricOptions>,
): Promise<Node> {
  const cluster = localCluster(name, ports);
  const inj = new FaultInjector(silentLogger(), validatePlan(plan));
  const n: Node = {
    name,
    fabric: null as unknown as Fabric,
    inj,
    got: [],
    corrupted: 0,
    failed: new Set(),
    failures: 0,
    drain: () => {},
    ackedSeq: 0,
  };
  n.fabric = new Fabric(
    {
      cluster,
      ...FAST,
      ...opts,
      faults: wireFaults(inj, silentLogger(), (p) => cluster.names.indexOf(p) + 1),
    },
    {
      onFrame: (_peer, f) => {
        const v = new DataView(f.payload.buffer, f.payload.byteOffset, f.payload.length);
        if (f.payload.length < 8 || crc32(f.payload.subarray(8)) !== v.getUint32(4)) n.corrupted++;
        else n.got.push(v.getUint32(0));
      },
      onFailed: (_peer, frames) => {
        n.failures++;
        for (const f of frames) n.failed.add(f.value);
      },
      onAcked: (_peer, seq) => void (n.ackedSeq = seq),
      onDrain: () => n.drain(),
    },
  );
  fabrics.push(n.fabric);
  await n.fabric.start();
  return n;
}

/** Nodes a (the dialer) and b, each with its own plan (default: the same). */
async function pair(
  planA: unknown,
  planB: unknown = planA,
  opts: Partial<FabricOptions> = {},
): Promise<{ a: Node; b: Node }> {
  const [pa, pb] = await freePorts(2);
  const ports = { a: pa!, b: pb! };
  return { a: await node('a', ports, planA, opts), b: await node('b', ports, planB, opts) };
}

/** Sends frames 0..count-1 (value = index) to the other node, waiting for onDrain when the window is full. */
function pump(from: Node, to: Node, count: number): Promise<void> {
  let i = 0;
  return new Promise((resolve) => {
    const go = (): void => {
      for (; i < count; i++) {
        const r = from.fabric.send(to.name, MSG, { channel: SID, socket: SID }, i, [payload(i)]);
        if (!r.ok) {
          expect(r.reason).toBe('full');
          return;
        }
      }
      resolve();
    };
    from.drain = go;
    go();
  });
}

/** Every frame delivered exactly once, in order, intact. */
function exactlyOnce(n: Node, count: number): void {
  expect(n.corrupted).toBe(0);
  expect(n.got.length).toBe(count);
  n.got.forEach((v, k) => {
    if (v !== k) expect.fail(`${n.name}: frame ${k} is ${v}`);
  });
}

const link = (n: Node): LinkStats => n.fabric.stats().links[n.name === 'a' ? 'b' : 'a']!;
const sum = (a: Node, b: Node, f: (s: LinkStats) => number): number => f(link(a)) + f(link(b));

/** Traffic both ways: 2,400 frames a -> b, 1,200 b -> a. */
async function run(a: Node, b: Node, timeoutMs = 60_000): Promise<void> {
  await Promise.all([pump(a, b, 2400), pump(b, a, 1200)]);
  expect(
    await until(
      () => b.got.length + b.corrupted >= 2400 && a.got.length + a.corrupted >= 1200,
      timeoutMs,
      20,
    ),
  ).toBe(true);
  exactlyOnce(b, 2400);
  exactlyOnce(a, 1200);
  // Everything acknowledged in the end: nothing left to resend, nothing failed.
  expect(await until(() => link(a).unackedFrames === 0 && link(b).unackedFrames === 0, 10_000)).toBe(true);
  expect(a.failures + b.failures).toBe(0);
}

const plan = (point: PointName, rule: Record<string, unknown>, seed = 7) => ({
  seed,
  rules: [{ name: 'r', point, ...rule }],
});
const POINTS = ['fabric.send', 'fabric.recv'] as const;
const pointNo = (p: PointName) => (p === 'fabric.send' ? POINT.FABRIC_SEND : POINT.FABRIC_RECV);
const injected = (
  a: Node,
  b: Node,
  p: PointName,
  action: 'drop' | 'duplicate' | 'corrupt' | 'delay' | 'link_down',
) => a.inj.injected(pointNo(p), action) + b.inj.injected(pointNo(p), action);

describe.each(POINTS)('fault injection at %s', (point) => {
  it('drop: lost frames (data, acks, heartbeats) leave gaps the link fills', async () => {
    const { a, b } = await pair(plan(point, { trigger: { every: 53, count: 12 }, do: { action: 'drop' } }));
    await run(a, b);
    expect(injected(a, b, point, 'drop')).toBe(24);
    // Each lost data frame was found by the gap behind it or by the retransmission timeout.
    expect(sum(a, b, (s) => s.bad.outOfSequence + s.rtoResets)).toBeGreaterThan(0);
    expect(sum(a, b, (s) => s.retransmitted)).toBeGreaterThan(0);
  }, 90_000);

  it('duplicate: repeated frames are dropped by their seq', async () => {
    const { a, b } = await pair(plan(point, { trigger: { every: 5 }, do: { action: 'duplicate' } }));
    await run(a, b);
    expect(injected(a, b, point, 'duplicate')).toBeGreaterThan(500);
    expect(sum(a, b, (s) => s.duplicates)).toBeGreaterThan(300);
  }, 90_000);

  it('corrupt: the frame CRC refuses every altered frame (payload and header), the resume resends it', async () => {
    const p = {
      seed: 3,
      rules: [
        {
          name: 'payload',
          point,
          match: { sid: SID },
          trigger: { every: 71, count: 8 },
          do: { action: 'corrupt', offset: 60, xor: [0xff, 0x01] },
        },
        {
          name: 'header',
          point,
          trigger: { every: 89, count: 6 },
          do: { action: 'corrupt', offset: 21, xor: 0x40 },
        },
        // The length: on the wire the stream is misframed, so the CRC fails wherever the receiver thinks the frame ends.
        {
          name: 'length',
          point,
          match: { sid: SID },
          trigger: { every: 113, count: 3 },
          do: { action: 'corrupt', offset: 42, xor: [0x01, 0x10] },
        },
      ],
    };
    const { a, b } = await pair(p);
    await run(a, b);
    expect(injected(a, b, point, 'corrupt')).toBe(34);
    expect(sum(a, b, (s) => s.bad.badCrc)).toBeGreaterThan(0);
  }, 90_000);

  it('delay: the link is held, order kept', async () => {
    const { a, b } = await pair(
      plan(point, { trigger: { every: 150, count: 10 }, do: { action: 'delay', ms: 40 } }),
    );
    await run(a, b);
    expect(injected(a, b, point, 'delay')).toBeGreaterThanOrEqual(10);
  }, 90_000);

  it('link_down shorter than the deadline: the session resumes, nothing lost or repeated', async () => {
    const { a, b } = await pair(
      plan(point, { trigger: { every: 500, count: 3 }, do: { action: 'link_down', ms: 150 } }),
    );
    await run(a, b);
    expect(injected(a, b, point, 'link_down')).toBeGreaterThanOrEqual(4);
    expect(sum(a, b, (s) => s.reconnects)).toBeGreaterThan(0);
  }, 90_000);

  it('error: the connection is reset (a TCP RST), the resume resends', async () => {
    const { a, b } = await pair(
      plan(point, { trigger: { every: 400, count: 3 }, do: { action: 'error', status: 'ECONNRESET' } }),
    );
    await run(a, b);
    expect(
      a.inj.injected(pointNo(point), 'error') + b.inj.injected(pointNo(point), 'error'),
    ).toBeGreaterThanOrEqual(4);
    expect(sum(a, b, (s) => s.reconnects)).toBeGreaterThan(0);
  }, 90_000);

  it('link_down past the deadline: the session fails, every frame delivered once or reported failed', async () => {
    // Only a's link goes down (at its 300th frame at this point), for 1.5 s against a 400 ms deadline.
    const { a, b } = await pair(
      plan(point, { trigger: { nth: 300 }, do: { action: 'link_down', ms: 1500 } }),
      { rules: [] },
      { deadlineMs: 400 },
    );
    await Promise.all([pump(a, b, 2400), pump(b, a, 1200)]);
    const settled = (to: Node, from: Node, n: number): boolean =>
      new Set([...to.got, ...from.failed]).size === n;
    expect(await until(() => settled(b, a, 2400) && settled(a, b, 1200), 60_000, 20)).toBe(true);
    expect(await until(() => link(a).unackedFrames === 0 && link(b).unackedFrames === 0, 10_000)).toBe(true);
    expect(a.failures).toBeGreaterThan(0);
    expect(b.failures).toBeGreaterThan(0);
    for (const [to, from, n] of [
      [b, a, 2400],
      [a, b, 1200],
    ] as const) {
      expect(to.corrupted).toBe(0);
      // Never twice, always in order (each session numbers from 1, the owner's order is one stream).
      expect(new Set(to.got).size).toBe(to.got.length);
      to.got.forEach((v, k) => {
        if (k > 0 && v <= to.got[k - 1]!) expect.fail(`${to.name}: ${v} after ${to.got[k - 1]}`);
      });
      // What failed was the tail of the old session: some frames were, others were not, delivered.
      expect(from.failed.size).toBeGreaterThan(0);
      expect(to.got.length + [...from.failed].filter((v) => !to.got.includes(v)).length).toBe(n);
    }
    // After the outage a fresh session carries frames again.
    expect(await until(() => link(a).state === 'up', 10_000)).toBe(true);
    const before = b.got.length;
    expect(a.fabric.send('b', MSG, { channel: SID, socket: SID }, 9999, [payload(9999)]).ok).toBe(true);
    expect(await until(() => b.got.length === before + 1, 5_000)).toBe(true);
    expect(b.got.at(-1)).toBe(9999);
  }, 90_000);
});

describe('recovery of a lone loss', () => {
  it('a single frame dropped with nothing after it is delivered (retransmission timeout)', async () => {
    const { a, b } = await pair(
      plan('fabric.send', { match: { sid: SID }, trigger: { nth: 1 }, do: { action: 'drop' } }),
      { rules: [] },
    );
    expect(await until(() => link(a).state === 'up' && link(b).state === 'up', 10_000)).toBe(true);
    expect(a.fabric.send('b', MSG, { channel: SID, socket: SID }, 0, [payload(0)]).ok).toBe(true);
    expect(await until(() => b.got.length === 1, 5_000, 10)).toBe(true);
    expect(b.got).toEqual([0]);
    expect(a.inj.injected(POINT.FABRIC_SEND, 'drop')).toBe(1);
    expect(link(a).rtoResets).toBe(1);
    expect(await until(() => a.ackedSeq === 1, 5_000)).toBe(true);
  }, 30_000);

  it("a WELCOME lost on the wire: the dialer comes back without a session and the acceptor's session goes on, nothing failed", async () => {
    // a dials b (the lower name dials); b's first frame to a is the WELCOME that opens the session.
    // b's frames are queued before the link is up, so the session has frames in flight when it opens.
    const { a, b } = await pair(
      { rules: [] },
      plan('fabric.send', { trigger: { nth: 1 }, do: { action: 'drop' } }),
    );
    await Promise.all([pump(a, b, 300), pump(b, a, 300)]);
    expect(await until(() => a.got.length === 300 && b.got.length === 300, 20_000, 10)).toBe(true);
    exactlyOnce(a, 300);
    exactlyOnce(b, 300);
    expect(b.inj.injected(POINT.FABRIC_SEND, 'drop')).toBe(1);
    expect(a.failures + b.failures).toBe(0);
    expect(link(a).failures + link(b).failures).toBe(0);
    expect(link(a).reconnects + link(b).reconnects).toBeGreaterThan(0);
  }, 60_000);

  it('a lost ACK is made good by the next frame that carries the cumulative ack', async () => {
    const { a, b } = await pair({ rules: [] });
    expect(await until(() => link(a).state === 'up' && link(b).state === 'up', 10_000)).toBe(true);
    // From now on b loses the next 2 frames it writes to a (the ACK of a's frame, then whatever follows).
    b.inj.add({ point: 'fabric.send', match: { node: 'a' }, trigger: { count: 2 }, do: { action: 'drop' } });
    expect(a.fabric.send('b', MSG, { channel: SID, socket: SID }, 0, [payload(0)]).ok).toBe(true);
    expect(await until(() => a.ackedSeq === 1, 5_000, 10)).toBe(true);
    expect(b.got).toEqual([0]);
    expect(b.inj.injected(POINT.FABRIC_SEND, 'drop')).toBe(2);
    expect(link(b).duplicates + link(a).retransmitted).toBeLessThanOrEqual(1);
  }, 30_000);

  it('matches a rule on the node id as well as its name, and on the socket of data frames only', async () => {
    const { a, b } = await pair(
      {
        rules: [
          {
            name: 'by-id',
            point: 'fabric.send',
            match: { node: 2, sid: SID },
            trigger: { count: 1 },
            do: { action: 'duplicate' },
          },
        ],
      },
      { rules: [] },
    );
    await Promise.all([pump(a, b, 10)]);
    expect(await until(() => b.got.length === 10, 5_000)).toBe(true);
    exactlyOnce(b, 10);
    expect(a.inj.injected(POINT.FABRIC_SEND, 'duplicate')).toBe(1);
    expect(link(b).duplicates).toBe(1);
  }, 30_000);
});
