/**
 * Two (or three) Fabric nodes in this process, on 127.0.0.1: ordered,
 * exactly-once delivery over cuts, dead connections, a deadline and
 * restarts. No assertion is on speed; waits are for conditions.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Fabric,
  type FabricOptions,
  type LinkState,
  type LinkStateInfo,
  type SentFrame,
} from '../../../emulator/fabric/fabric.js';
import { FIRST_DATA_TYPE, type Frame } from '../../../emulator/fabric/frame.js';
import { TcpTransport } from '../../../emulator/fabric/tcp.js';
import { freePorts, localCluster } from '../../support/fabric.js';
import type { FabricTransport, Wire } from '../../../emulator/fabric/transport.js';
import { until } from '../../../qemu/vm.js';

/** A data frame type, as the data plane would number one. */
const MSG = FIRST_DATA_TYPE + 2;

/** What a node's owner saw. */
class Owner {
  readonly frames: { node: string; value: number; seq: number }[] = [];
  readonly states: { node: string; state: LinkState; info: LinkStateInfo }[] = [];
  readonly failed: { node: string; frames: SentFrame[]; reason: string }[] = [];
  readonly acked = new Map<string, number>();
  /** Checks each frame's payload; set per test. */
  check: (node: string, f: Frame) => void = () => {};
  /** Called on onFrame after recording (to cut or stop mid-stream). */
  after: (count: number) => void = () => {};
  drain: () => void = () => {};

  events() {
    return {
      onFrame: (node: string, f: Frame) => {
        this.check(node, f);
        this.frames.push({ node, value: f.value, seq: f.seq });
        this.after(this.frames.length);
      },
      onLinkState: (node: string, state: LinkState, info: LinkStateInfo) =>
        this.states.push({ node, state, info }),
      onFailed: (node: string, frames: SentFrame[], reason: string) =>
        this.failed.push({ node, frames, reason }),
      onAcked: (node: string, seq: number) => this.acked.set(node, seq),
      onDrain: () => this.drain(),
    };
  }

  values(node: string): number[] {
    return this.frames.filter((f) => f.node === node).map((f) => f.value);
  }
}

const fabrics: Fabric[] = [];
afterEach(async () => {
  await Promise.all(fabrics.splice(0).map((f) => f.close()));
});

async function node(
  self: string,
  ports: Record<string, number>,
  opts: Partial<FabricOptions> = {},
): Promise<{ fabric: Fabric; owner: Owner }> {
  const owner = new Owner();
  const fabric = new Fabric(
    { cluster: localCluster(self, ports), heartbeatMs: 1000, ...opts },
    owner.events(),
  );
  fabrics.push(fabric);
  await fabric.start();
  return { fabric, owner };
}

/** Nodes a and b on fresh ports (a dials); `aOnly` are options for a alone. */
async function pair(opts: Partial<FabricOptions> = {}, aOnly: Partial<FabricOptions> = {}) {
  const [pa, pb] = await freePorts(2);
  const ports = { a: pa!, b: pb! };
  return { ports, a: await node('a', ports, { ...opts, ...aOnly }), b: await node('b', ports, opts) };
}

/** A node that stops dead (closes its fabric) on delivering its `k`-th frame; resolves when it is closed. */
function stopAt(n: { fabric: Fabric; owner: Owner }, k: number): Promise<void> {
  return new Promise((resolve) => {
    n.owner.after = (count) => {
      if (count === k) void n.fabric.close().then(resolve);
    };
  });
}

/** Random payloads as views into one pool: each frame is two segments (a ring wrap), the pool never changes. */
class Payloads {
  readonly pool = randomBytes(512 << 10);
  private readonly specs: [number, number, number, number][] = [];

  constructor(count: number, maxSize: number) {
    const r = (n: number): number => Math.floor(Math.random() * (n + 1));
    for (let i = 0; i < count; i++) {
      const size = r(maxSize);
      const first = r(size);
      this.specs.push([
        r(this.pool.length - first),
        first,
        r(this.pool.length - (size - first)),
        size - first,
      ]);
    }
  }

  segments(i: number): Uint8Array[] {
    const [o1, n1, o2, n2] = this.specs[i]!;
    return [this.pool.subarray(o1, o1 + n1), this.pool.subarray(o2, o2 + n2)];
  }

  size(i: number): number {
    return this.specs[i]![1] + this.specs[i]![3];
  }

  /** The payload is frame `i`'s, byte for byte. */
  matches(i: number, p: Uint8Array): boolean {
    const [a, b] = this.segments(i) as [Uint8Array, Uint8Array];
    return (
      p.length === a.length + b.length &&
      Buffer.from(p.buffer, p.byteOffset, a.length).equals(a) &&
      Buffer.from(p.buffer, p.byteOffset + a.length, b.length).equals(b)
    );
  }
}

/** Sends frames [from, to) with value = index, waiting for onDrain whenever the window is full. */
function pump(
  fabric: Fabric,
  owner: Owner,
  peer: string,
  from: number,
  to: number,
  segs: (i: number) => Uint8Array[],
): Promise<SentFrame['seq'][]> {
  const seqs: number[] = [];
  let i = from;
  return new Promise((resolve) => {
    const go = (): void => {
      for (; i < to; i++) {
        const r = fabric.send(peer, MSG, { channel: 1, socket: 2 }, i, segs(i));
        if (!r.ok) {
          expect(r.reason).toBe('full');
          return;
        }
        seqs.push(r.seq);
      }
      resolve(seqs);
    };
    owner.drain = go;
    go();
  });
}

/** Frames arrived in order and exactly once: values from..to-1. */
function inOrder(values: number[], from: number, to: number): void {
  expect(values.length).toBe(to - from);
  values.forEach((v, k) => {
    if (v !== from + k) expect.fail(`frame ${k}: value ${v}, expected ${from + k}`);
  });
}

describe('fabric links between nodes', () => {
  it('carries 10,000 frames of 0..256 KiB in order, exactly once, both ways', async () => {
    const { a, b } = await pair();
    const big = new Payloads(10_000, 256 << 10);
    const small = new Payloads(1_000, 4096);
    let corrupt = 0;
    b.owner.check = (_n, f) => void (big.matches(f.value, f.payload) || corrupt++);
    a.owner.check = (_n, f) => void (small.matches(f.value, f.payload) || corrupt++);

    await Promise.all([
      pump(a.fabric, a.owner, 'b', 0, 10_000, (i) => big.segments(i)),
      pump(b.fabric, b.owner, 'a', 0, 1_000, (i) => small.segments(i)),
    ]);
    expect(
      await until(() => b.owner.frames.length >= 10_000 && a.owner.frames.length >= 1_000, 120_000, 50),
    ).toBe(true);

    expect(corrupt).toBe(0);
    inOrder(b.owner.values('a'), 0, 10_000);
    inOrder(a.owner.values('b'), 0, 1_000);
    const sb = b.fabric.stats().links.a!;
    expect(sb.framesReceived).toBe(10_000);
    expect(sb.bytesReceived).toBe(
      Array.from({ length: 10_000 }, (_, i) => big.size(i)).reduce((x, y) => x + y, 0),
    );
    expect(sb.duplicates).toBe(0);
    expect(await until(() => a.owner.acked.get('b') === 10_000, 10_000)).toBe(true);
    expect(a.fabric.stats().links.b!.unackedFrames).toBe(0);
  }, 180_000);

  it('delivers every frame once and in order while the connection is cut again and again', async () => {
    const { a, b } = await pair({ deadlineMs: 60_000 });
    const load = new Payloads(3_000, 64 << 10);
    let corrupt = 0;
    b.owner.check = (_n, f) => void (load.matches(f.value, f.payload) || corrupt++);
    // Cut from inside the delivery callback, alternating ends: mid-stream by construction, whatever the machine's speed.
    let cuts = 0;
    b.owner.after = (n) => {
      if (n % 250 === 0 && n < 3_000)
        cuts += (cuts % 2 === 0 ? b.fabric.debugCutLink('a') : a.fabric.debugCutLink('b')) ? 1 : 0;
    };

    await pump(a.fabric, a.owner, 'b', 0, 3_000, (i) => load.segments(i));
    expect(await until(() => b.owner.frames.length >= 3_000, 120_000, 50)).toBe(true);

    expect(corrupt).toBe(0);
    inOrder(b.owner.values('a'), 0, 3_000);
    expect(cuts).toBe(11);
    const sa = a.fabric.stats().links.b!;
    expect(sa.retransmitted).toBeGreaterThan(0);
    expect(sa.reconnects).toBeGreaterThanOrEqual(11);
    expect(sa.failures + b.fabric.stats().links.a!.failures).toBe(0);
    expect(a.owner.failed).toEqual([]);
    expect(a.owner.states.filter((s) => s.state === 'up' && s.info.resumed).length).toBeGreaterThanOrEqual(
      11,
    );
  }, 180_000);

  it('notices a silent connection by its heartbeats, reconnects and resumes', async () => {
    const freezer = new FreezingTransport();
    const { a, b } = await pair({ heartbeatMs: 100, deadlineMs: 60_000 }, { transport: freezer });
    const load = new Payloads(200, 1024);
    await pump(a.fabric, a.owner, 'b', 0, 100, (i) => load.segments(i));
    expect(await until(() => b.owner.frames.length === 100, 10_000)).toBe(true);

    // Like a pulled cable: nothing in or out, and no FIN or RST either.
    freezer.freeze();
    await pump(a.fabric, a.owner, 'b', 100, 200, (i) => load.segments(i));
    expect(await until(() => b.owner.frames.length === 200, 20_000)).toBe(true);

    inOrder(b.owner.values('a'), 0, 200);
    // Whichever end times out first drops the connection; the other may then just see it close.
    const timedOut = [...a.owner.states, ...b.owner.states].filter(
      (s) => s.state === 'down' && /nothing heard/.test(s.info.reason),
    );
    expect(timedOut.length).toBeGreaterThan(0);
    expect(a.owner.states.at(-1)).toMatchObject({ state: 'up', info: { resumed: true } });
    expect(a.fabric.stats().links.b!.failures).toBe(0);
  }, 60_000);

  it('fails the session after the deadline with exactly the unacknowledged frames, and never resends them', async () => {
    const opts = { heartbeatMs: 100, deadlineMs: 300 };
    const nodes = await pair(opts);
    const { a, ports } = nodes;
    let { b } = nodes;
    const load = new Payloads(300, 4096);
    const bGone = stopAt(b, 100);
    const seqs = await pump(a.fabric, a.owner, 'b', 0, 200, (i) => load.segments(i));
    await bGone;
    expect(await until(() => a.owner.failed.length === 1, 10_000)).toBe(true);

    const acked = a.owner.acked.get('b') ?? 0;
    const failed = a.owner.failed[0]!;
    expect(failed.node).toBe('b');
    // Exactly the frames after the last ack: nothing acknowledged is reported, nothing unacknowledged is missing.
    expect(failed.frames.map((f) => f.seq)).toEqual(seqs.filter((s) => s > acked));
    expect(failed.frames.map((f) => f.value)).toEqual(seqs.filter((s) => s > acked).map((s) => s - 1));
    const delivered = b.owner.values('a');
    inOrder(delivered, 0, delivered.length);
    expect(delivered.length).toBeGreaterThanOrEqual(acked);
    // No silent loss: every frame was delivered or handed back (a frame may be both: delivered, its ack lost).
    expect(new Set([...delivered, ...failed.frames.map((f) => f.value)]).size).toBe(200);
    expect(failed.reason).toMatch(/not re-established within 300 ms/);
    expect(a.owner.states.find((s) => s.state === 'failed')?.info).toMatchObject({
      reason: failed.reason,
      failedFrames: failed.frames.length,
    });
    expect(a.fabric.stats().links.b).toMatchObject({
      failures: 1,
      unackedFrames: 0,
      failedFrames: failed.frames.length,
    });

    // b comes back: a fresh session carries only new frames; the failed ones are the owner's now.
    b = await node('b', ports, opts);
    await pump(a.fabric, a.owner, 'b', 1000, 1010, (i) => load.segments(i - 1000));
    expect(await until(() => b.owner.frames.length === 10, 10_000)).toBe(true);
    inOrder(b.owner.values('a'), 1000, 1010);
    expect(b.owner.frames.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(a.fabric.stats().links.b!.failures).toBe(1);
  }, 60_000);

  it('fails the old session at once when the peer comes back restarted, on either end', async () => {
    const opts = { heartbeatMs: 100, deadlineMs: 60_000 };
    const nodes = await pair(opts);
    const { ports } = nodes;
    let { a, b } = nodes;
    const load = new Payloads(100, 8192);
    const bGone = stopAt(b, 50);
    const seqs = await pump(a.fabric, a.owner, 'b', 0, 100, (i) => load.segments(i));
    await bGone;
    const oldB = b.fabric.incarnation;

    // The acceptor restarts on its port; the dialer learns it from the WELCOME, long before the 60 s deadline.
    b = await node('b', ports, opts);
    expect(b.fabric.incarnation).not.toBe(oldB);
    expect(await until(() => a.owner.failed.length === 1, 10_000)).toBe(true);
    const acked = a.owner.acked.get('b') ?? 0;
    expect(a.owner.failed[0]!.frames.map((f) => f.seq)).toEqual(seqs.filter((s) => s > acked));
    expect(a.owner.states.find((s) => s.state === 'failed')?.info.reason).toMatch(/peer restarted/);
    await pump(a.fabric, a.owner, 'b', 0, 10, (i) => load.segments(i));
    await pump(b.fabric, b.owner, 'a', 0, 10, (i) => load.segments(i));
    expect(await until(() => b.owner.frames.length === 10 && a.owner.frames.length === 10, 10_000)).toBe(
      true,
    );
    inOrder(b.owner.values('a'), 0, 10);
    inOrder(a.owner.values('b'), 0, 10);

    // Now the dialer restarts: the acceptor learns it from the HELLO.
    await a.fabric.close();
    a = await node('a', ports, opts);
    expect(await until(() => b.owner.failed.length === 1, 10_000)).toBe(true);
    expect(b.owner.states.find((s) => s.state === 'failed')?.info.reason).toMatch(/peer restarted/);
    await pump(a.fabric, a.owner, 'b', 20, 30, (i) => load.segments(i));
    expect(await until(() => b.owner.frames.length === 20, 10_000)).toBe(true);
    inOrder(b.owner.values('a').slice(10), 20, 30);
  }, 60_000);

  it('reports an unknown node and refuses bad frame fields', async () => {
    const { a } = await pair();
    expect(a.fabric.send('zz', MSG, { channel: 0, socket: 0 }, 0, [])).toEqual({
      ok: false,
      reason: 'unknown-node',
    });
    expect(a.fabric.send('a', MSG, { channel: 0, socket: 0 }, 0, [])).toEqual({
      ok: false,
      reason: 'unknown-node',
    });
    expect(() => a.fabric.send('b', 3, { channel: 0, socket: 0 }, 0, [])).toThrow(/not a data type/);
    expect(() => a.fabric.send('b', MSG, { channel: -1, socket: 0 }, 0, [])).toThrow(/u32/);
    expect(() =>
      a.fabric.send('b', MSG, { channel: 0, socket: 0 }, 0, [new Uint8Array((16 << 20) + 1)]),
    ).toThrow(/above the maximum/);
  });
});

/** TCP whose current connections can be made to go silent without closing. */
class FreezingTransport implements FabricTransport {
  private readonly inner = new TcpTransport();
  private readonly live = new Set<{ frozen: boolean }>();

  freeze(): void {
    for (const w of this.live) w.frozen = true;
    this.live.clear();
  }

  listen: FabricTransport['listen'] = (address, onWire) =>
    this.inner.listen(address, (w) => onWire(this.wrap(w)));
  connect: FabricTransport['connect'] = async (address, signal) =>
    this.wrap(await this.inner.connect(address, signal));

  private wrap(w: Wire): Wire {
    const state = { frozen: false };
    this.live.add(state);
    return {
      local: w.local,
      remote: w.remote,
      write: (chunks) => state.frozen || w.write(chunks),
      onData: (cb) => w.onData((c) => state.frozen || cb(c)),
      onClose: (cb) =>
        w.onClose((e) => {
          this.live.delete(state);
          cb(e);
        }),
      close: () => w.close(),
    };
  }
}
