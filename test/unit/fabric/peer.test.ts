/**
 * A Fabric node ('b') against a raw TCP peer that speaks the wire protocol
 * by hand as node 'a' (or as nobody): each kind of bad input is refused or
 * dropped and counted, nothing crashes, and b's legitimate link to 'c'
 * keeps working. The same peer checks the window bound, since it can
 * simply never acknowledge.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Fabric, type FabricOptions } from '../../../emulator/fabric/fabric.js';
import {
  encodeFrame,
  encodeHeader,
  FIRST_DATA_TYPE,
  FrameDecoder,
  LinkType,
  type Frame,
  type FrameHeader,
} from '../../../emulator/fabric/frame.js';
import { encodeHello, parseHello, type Hello } from '../../../emulator/fabric/hello.js';
import { freePorts, localCluster } from '../../support/fabric.js';
import { until } from '../../../qemu/vm.js';

/** A data frame type, as the data plane would number one. */
const MSG = FIRST_DATA_TYPE + 2;

/** Node 'a', by hand. Its source id is 0: 'a' sorts first in a, b, c. */
class RawPeer {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly decoder = new FrameDecoder((f) => this.frames.push(f));

  private constructor(readonly socket: Socket) {
    socket.on('data', (c) => this.decoder.push(c));
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<RawPeer> {
    const s = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject));
    return RawPeer.wrap(s);
  }

  static wrap(s: Socket): RawPeer {
    const p = new RawPeer(s);
    raws.push(p);
    return p;
  }

  send(h: Partial<FrameHeader>, payload: Uint8Array[] = []): void {
    for (const c of encodeFrame(
      { type: MSG, flags: 0, src: 0, seq: 0, ack: 0, channel: 0, socket: 0, value: 0, ...h },
      payload,
    ))
      this.socket.write(c);
  }

  hello(over: Partial<Hello> = {}, head: Partial<FrameHeader> = {}): void {
    const h: Hello = {
      from: 'a',
      to: 'b',
      cluster: hash,
      incarnation: 'feed',
      session: '',
      windowFrames: 64,
      windowBytes: 1 << 20,
      ...over,
    };
    this.send({ type: LinkType.HELLO, ...head }, [encodeHello(h)]);
  }

  /** Sends HELLO and returns b's WELCOME and the last seq b says it delivered. */
  async join(session = '', ack = 0): Promise<{ session: string; delivered: number }> {
    this.hello({ session }, { ack });
    expect(await until(() => this.frames.length > 0, 5_000)).toBe(true);
    const w = this.frames.shift()!;
    expect(w.type).toBe(LinkType.WELCOME);
    const h = parseHello(w.payload);
    if (typeof h === 'string') throw new Error(h);
    return { session: h.session, delivered: w.ack };
  }

  async gone(): Promise<boolean> {
    return until(() => this.closed, 5_000);
  }
}

const raws: RawPeer[] = [];
const fabrics: Fabric[] = [];
const servers: Server[] = [];
let hash = 0;
afterEach(async () => {
  for (const r of raws.splice(0)) r.socket.destroy();
  await Promise.all(fabrics.splice(0).map((f) => f.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/**
 * Fabric node b, and c either a Fabric node too or (rawC) a listener whose
 * accepted connections are raw peers; a is always the raw peer. b's events
 * are recorded.
 */
async function setup(opts: Partial<FabricOptions> = {}, rawC = false) {
  const [pa, pb, pc] = await freePorts(3);
  const ports = { a: pa!, b: pb!, c: pc! };
  hash = localCluster('a', ports).hash;
  const got: { node: string; f: Frame }[] = [];
  const drains: string[] = [];
  const acked: number[] = [];
  const failed: number[][] = [];
  // A long heartbeat: the raw peer does not send any.
  const b = new Fabric(
    { cluster: localCluster('b', ports), heartbeatMs: 10_000, ...opts },
    {
      onFrame: (node, f) => got.push({ node, f }),
      onDrain: (node) => drains.push(node),
      onAcked: (_node, seq) => acked.push(seq),
      onFailed: (_node, frames) => failed.push(frames.map((f) => f.seq)),
    },
  );
  const cGot: Frame[] = [];
  const cConns: RawPeer[] = [];
  if (rawC) {
    const server = createServer((s) => cConns.push(RawPeer.wrap(s)));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(pc, '127.0.0.1', resolve));
  } else {
    const c = new Fabric(
      { cluster: localCluster('c', ports), heartbeatMs: 10_000 },
      { onFrame: (_n, f) => cGot.push(f) },
    );
    fabrics.push(c);
    await c.start();
  }
  fabrics.push(b);
  await b.start();
  const bad = (): Record<string, number> => b.stats().links.a!.bad;
  /** b's own link to c still carries frames. */
  const bcWorks = async (): Promise<void> => {
    const n = cGot.length;
    expect(b.send('c', MSG, { channel: 0, socket: 0 }, 42, [new Uint8Array([1, 2, 3])]).ok).toBe(true);
    expect(await until(() => cGot.length === n + 1, 5_000)).toBe(true);
    expect(cGot.at(-1)!.value).toBe(42);
  };
  return { b, port: pb!, got, drains, acked, failed, cConns, bad, bcWorks };
}

describe('fabric against a hostile peer', () => {
  it('refuses a HELLO from a node outside the cluster or naming itself wrongly, and any other first frame', async () => {
    const { b, port, bcWorks } = await setup();
    const cases: [string, (r: RawPeer) => void, string][] = [
      ['unknown node', (r) => r.hello({ from: 'zz' }), 'unknownNode'],
      ['claims to be b', (r) => r.hello({ from: 'b' }, { src: 1 }), 'badHello'],
      ['addressed to c', (r) => r.hello({ to: 'c' }), 'badHello'],
      ['another cluster', (r) => r.hello({ cluster: hash ^ 1 }), 'badHello'],
      ['wrong source id', (r) => r.hello({}, { src: 2 }), 'badHello'],
      ['c dialing b (b dials c)', (r) => r.hello({ from: 'c' }, { src: 2 }), 'badHello'],
      ['not JSON', (r) => r.send({ type: LinkType.HELLO }, [new Uint8Array([0x7b])]), 'badHello'],
      ['data before HELLO', (r) => r.send({ seq: 1 }), 'badHello'],
      ['garbage', (r) => r.socket.write(Buffer.alloc(64, 0x41)), 'badMagic'],
      // Before it has named itself a peer gets 4 KiB, not the 16 MiB a link allows.
      ['a 1 MiB HELLO', (r) => r.send({ type: LinkType.HELLO }, [new Uint8Array(1 << 20)]), 'tooLarge'],
    ];
    for (const [what, act, kind] of cases) {
      const before = b.stats().refused[kind as 'badHello'];
      const r = await RawPeer.connect(port);
      act(r);
      expect(await r.gone(), what).toBe(true);
      expect(r.frames, what).toEqual([]); // no WELCOME
      expect(b.stats().refused[kind as 'badHello'], what).toBe(before + 1);
    }
    expect(b.stats().refused).toMatchObject({ unknownNode: 1, badHello: 7, badMagic: 1, tooLarge: 1 });
    expect(b.stats().links.a!.state).toBe('connecting'); // none of them became the link
    await bcWorks();
  });

  it('drops a truncated, a too large, a corrupted and an out-of-sequence frame, each counted, and recovers', async () => {
    const { b, port, got, bad, bcWorks } = await setup();
    const payload = (v: number): Uint8Array[] => [new Uint8Array(100).fill(v)];

    let r = await RawPeer.connect(port);
    await r.join();
    const frame = encodeFrame(
      { type: MSG, flags: 0, src: 0, seq: 1, ack: 0, channel: 0, socket: 0, value: 9 },
      payload(9),
    );
    r.socket.end(Buffer.concat([frame[0]!, frame[1]!.subarray(0, 50)]));
    expect(await until(() => bad().truncated === 1, 5_000)).toBe(true);

    r = await RawPeer.connect(port);
    await r.join();
    const header = encodeHeader(
      { type: MSG, flags: 0, src: 0, seq: 1, ack: 0, channel: 0, socket: 0, value: 0 },
      32 << 20,
      0,
    );
    r.socket.write(header);
    expect(await r.gone()).toBe(true);
    expect(bad().tooLarge).toBe(1);

    r = await RawPeer.connect(port);
    await r.join();
    const damaged = encodeFrame(
      { type: MSG, flags: 0, src: 0, seq: 1, ack: 0, channel: 0, socket: 0, value: 9 },
      payload(9),
    );
    damaged[1]![7] = damaged[1]![7]! ^ 1;
    r.socket.write(Buffer.concat(damaged));
    expect(await r.gone()).toBe(true);
    expect(bad().badCrc).toBe(1);
    expect(got).toEqual([]);

    // Sequence: 1 is delivered, 1 again is a duplicate, 3 is a gap and resets the connection...
    r = await RawPeer.connect(port);
    const { session } = await r.join();
    r.send({ seq: 1, value: 1 }, payload(1));
    r.send({ seq: 1, value: 1 }, payload(1));
    r.send({ seq: 3, value: 3 }, payload(3));
    expect(await r.gone()).toBe(true);
    expect(bad().outOfSequence).toBe(1);
    expect(b.stats().links.a!.duplicates).toBe(1);
    // ...and the reconnect resumes the session: b says it has 1, the peer resends from 2.
    r = await RawPeer.connect(port);
    const resumed = await r.join(session);
    expect(resumed).toEqual({ session, delivered: 1 });
    r.send({ seq: 2, value: 2 }, payload(2));
    r.send({ seq: 3, value: 3 }, payload(3));
    expect(await until(() => got.length === 3, 5_000)).toBe(true);
    expect(got.map((g) => [g.node, g.f.seq, g.f.value, g.f.payload[99]])).toEqual([
      ['a', 1, 1, 1],
      ['a', 2, 2, 2],
      ['a', 3, 3, 3],
    ]);
    expect(r.closed).toBe(false);
    expect(bad()).toMatchObject({ truncated: 1, tooLarge: 1, badCrc: 1, outOfSequence: 1, badMagic: 0 });
    await bcWorks();
  });

  it('keeps the newest connection from the same dialer and resumes on it', async () => {
    const { b, port } = await setup();
    const first = await RawPeer.connect(port);
    const { session } = await first.join();
    const second = await RawPeer.connect(port);
    expect(await second.join(session)).toEqual({ session, delivered: 0 });
    expect(await first.gone()).toBe(true);
    expect(second.closed).toBe(false);
    expect(b.stats().links.a).toMatchObject({ state: 'up', session, failures: 0 });
  });

  it('abandons a handshake in flight when the deadline fails its session', async () => {
    // Dead connections are found by the deadline here, not the (30 s) heartbeat timeout.
    const { b, failed, cConns } = await setup({ deadlineMs: 300 }, true);
    const welcome = (r: RawPeer, session: string): void =>
      r.hello({ from: 'c', to: 'b', incarnation: 'cafe', session }, { type: LinkType.WELCOME, src: 2 });
    const helloOf = async (i: number): Promise<Hello> => {
      expect(await until(() => (cConns[i]?.frames.length ?? 0) > 0, 5_000)).toBe(true);
      const h = parseHello(cConns[i]!.frames.shift()!.payload);
      if (typeof h === 'string') throw new Error(h);
      return h;
    };
    expect((await helloOf(0)).session).toBe('');
    welcome(cConns[0]!, 'abcd');
    expect(await until(() => b.stats().links.c!.state === 'up', 5_000)).toBe(true);
    expect(b.send('c', MSG, { channel: 0, socket: 0 }, 0, [])).toEqual({ ok: true, seq: 1 });
    cConns[0]!.socket.destroy();

    // b dials again naming session abcd; c holds its answer until b's deadline has failed that session.
    expect((await helloOf(1)).session).toBe('abcd');
    expect(await until(() => failed.length === 1, 5_000)).toBe(true);
    expect(failed[0]).toEqual([1]);
    // A WELCOME resuming abcd now would pair b's fresh counters with the peer's old ones: b must not wait for it.
    expect(await cConns[1]!.gone()).toBe(true);
    expect((await helloOf(2)).session).toBe('');
  });

  it('bounds the unacknowledged window: send() reports back-pressure until the peer acks', async () => {
    const { b, port, drains, acked } = await setup({ windowFrames: 8, windowBytes: 256 << 10 });
    const r = await RawPeer.connect(port);
    await r.join();
    const send = (value: number, size: number) =>
      b.send('a', MSG, { channel: 5, socket: 6 }, value, [new Uint8Array(size)]);

    for (let i = 1; i <= 8; i++) expect(send(i, 10)).toEqual({ ok: true, seq: i });
    expect(send(9, 10)).toEqual({ ok: false, reason: 'full' });
    expect(send(9, 10)).toEqual({ ok: false, reason: 'full' });
    expect(b.stats().links.a).toMatchObject({ unackedFrames: 8, unackedBytes: 80 });
    expect(await until(() => r.frames.length === 8, 5_000)).toBe(true);
    expect(r.frames.map((f) => f.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(drains).toEqual([]);

    r.send({ type: LinkType.ACK, ack: 8 });
    expect(await until(() => drains.length === 1, 5_000)).toBe(true);
    expect(drains).toEqual(['a']);
    expect(acked.at(-1)).toBe(8);
    expect(b.stats().links.a!.unackedFrames).toBe(0);

    // The byte bound: 100 KiB frames into a 256 KiB window.
    expect(send(9, 100 << 10).ok).toBe(true);
    expect(send(10, 100 << 10).ok).toBe(true);
    expect(send(11, 100 << 10)).toEqual({ ok: false, reason: 'full' });
    expect(b.stats().links.a!.unackedBytes).toBe(200 << 10);
    r.send({ type: LinkType.ACK, ack: 10 });
    expect(await until(() => drains.length === 2, 5_000)).toBe(true);
    // An empty window takes a frame larger than itself, so such a frame is slow rather than stuck.
    expect(send(11, 512 << 10).ok).toBe(true);
    expect(send(12, 10)).toEqual({ ok: false, reason: 'full' });
  });
});
