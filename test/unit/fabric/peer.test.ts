/**
 * A Fabric node ('b') against a raw TCP peer that speaks the wire protocol
 * by hand as node 'a' (or as nobody): each kind of bad input is refused or
 * dropped and counted, nothing crashes, and b's legitimate link to 'c'
 * keeps working. The same peer checks the window bound, since it can
 * simply never acknowledge. The cluster has a secret (TEST_SECRET): the
 * peer authenticates by hand (auth.ts) when it plays a node, and the
 * intruder's attempts without it (no proof, a wrong one, a replayed
 * exchange, another node's name, a flood of handshakes never finished)
 * are each refused, counted and logged with its address.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeProof } from '../../../emulator/fabric/auth.js';
import { Fabric, type FabricOptions } from '../../../emulator/fabric/fabric.js';
import { encodeFrame, encodeHeader, LinkType, type Frame } from '../../../emulator/fabric/frame.js';
import { parseHello, type Hello } from '../../../emulator/fabric/hello.js';
import { RAW_MSG, RawPeer } from '../../../emulator/fabric/raw-peer.js';
import { freePorts, localCluster, TEST_SECRET } from '../../support/fabric.js';
import { makeLogger } from '../../../emulator/util/log.js';
import { until } from '../../../qemu/vm.js';

/** The hostile peer (raw-peer.ts) with this test's cluster hash. */
const raw = {
  connect: (port: number): Promise<RawPeer> => RawPeer.connect(port, hash),
  wrap: (s: Socket): RawPeer => RawPeer.wrap(s, hash),
};

const MSG = RAW_MSG;
const S = TEST_SECRET;

const fabrics: Fabric[] = [];
const servers: Server[] = [];
let hash = 0;
afterEach(async () => {
  RawPeer.destroyAll();
  await Promise.all(fabrics.splice(0).map((f) => f.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/**
 * Fabric node b, and c either a Fabric node too or (rawC) a listener whose
 * accepted connections are raw peers; a is always the raw peer. b's events
 * are recorded.
 */
async function setup(opts: Partial<FabricOptions> = {}, rawC = false, cOpts: Partial<FabricOptions> = {}) {
  const [pa, pb, pc] = await freePorts(3);
  const ports = { a: pa!, b: pb!, c: pc! };
  hash = localCluster('a', ports).hash;
  const got: { node: string; f: Frame }[] = [];
  const drains: string[] = [];
  const acked: number[] = [];
  const failed: number[][] = [];
  // A long heartbeat: the raw peer does not send any. b's warnings are kept: each refusal is logged.
  const logged: Record<string, unknown>[] = [];
  const log = makeLogger('warn', { write: (line: string) => logged.push(JSON.parse(line)) });
  const b = new Fabric(
    { cluster: localCluster('b', ports), heartbeatMs: 10_000, log, ...opts },
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
    const server = createServer((s) => cConns.push(raw.wrap(s)));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(pc, '127.0.0.1', resolve));
  } else {
    const c = new Fabric(
      { cluster: localCluster('c', ports), heartbeatMs: 10_000, ...cOpts },
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
  return { b, port: pb!, got, drains, acked, failed, cConns, bad, bcWorks, logged, cGot };
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
      const r = await raw.connect(port);
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

    let r = await raw.connect(port);
    await r.join(S);
    const frame = encodeFrame(
      { type: MSG, flags: 0, src: 0, seq: 1, ack: 0, channel: 0, socket: 0, value: 9 },
      payload(9),
    );
    r.socket.end(Buffer.concat([frame[0]!, frame[1]!.subarray(0, 50)]));
    expect(await until(() => bad().truncated === 1, 5_000)).toBe(true);

    r = await raw.connect(port);
    await r.join(S);
    const header = encodeHeader(
      { type: MSG, flags: 0, src: 0, seq: 1, ack: 0, channel: 0, socket: 0, value: 0 },
      32 << 20,
      0,
    );
    r.socket.write(header);
    expect(await r.gone()).toBe(true);
    expect(bad().tooLarge).toBe(1);

    r = await raw.connect(port);
    await r.join(S);
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
    r = await raw.connect(port);
    const { session } = await r.join(S);
    r.send({ seq: 1, value: 1 }, payload(1));
    r.send({ seq: 1, value: 1 }, payload(1));
    r.send({ seq: 3, value: 3 }, payload(3));
    expect(await r.gone()).toBe(true);
    expect(bad().outOfSequence).toBe(1);
    expect(b.stats().links.a!.duplicates).toBe(1);
    // ...and the reconnect resumes the session: b says it has 1, the peer resends from 2.
    r = await raw.connect(port);
    const resumed = await r.join(S, session);
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
    const first = await raw.connect(port);
    const { session } = await first.join(S);
    const second = await raw.connect(port);
    expect(await second.join(S, session)).toEqual({ session, delivered: 0 });
    expect(await first.gone()).toBe(true);
    expect(second.closed).toBe(false);
    expect(b.stats().links.a).toMatchObject({ state: 'up', session, failures: 0 });
  });

  it('abandons a handshake in flight when the deadline fails its session', async () => {
    // Dead connections are found by the deadline here, not the (30 s) heartbeat timeout.
    const { b, failed, cConns } = await setup({ deadlineMs: 300 }, true);
    const welcome = (r: RawPeer, session: string): void =>
      void r.hello({ from: 'c', to: 'b', incarnation: 'cafe', session }, { type: LinkType.WELCOME, src: 2 });
    const conn = async (i: number): Promise<RawPeer> => {
      expect(await until(() => cConns[i] !== undefined, 5_000)).toBe(true);
      return cConns[i]!;
    };
    const helloOf = async (i: number): Promise<Hello> => {
      const r = await conn(i);
      const f = await r.next();
      const h = parseHello(f!.payload);
      if (typeof h === 'string') throw new Error(h);
      return h;
    };
    expect((await (await conn(0)).accept(S))?.session).toBe('');
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
    const r = await raw.connect(port);
    await r.join(S);
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

describe('fabric authentication against an intruder without the secret', () => {
  /** b's warnings about connections from `r`'s address, of `kind`. */
  const linesAbout = (logged: Record<string, unknown>[], r: RawPeer, kind: string): number =>
    logged.filter((l) => l.kind === kind && l.remote === `127.0.0.1:${r.port}`).length;

  it('refuses a HELLO without a nonce, a wrong proof, another frame for the proof, and no proof at all; each counted and logged with its address', async () => {
    const { b, port, got, logged, bcWorks } = await setup({ deadMs: 400 });
    const cases: [string, (r: RawPeer) => Promise<void>, string][] = [
      ['HELLO without a nonce', async (r) => void r.hello({ nonce: undefined }), 'badAuth'],
      [
        'proof made with another secret',
        (r) =>
          r.authenticate(new TextEncoder().encode('not the cluster secret'), { check: S }).then(() => {}),
        'badAuth',
      ],
      [
        'data instead of the proof',
        async (r) => {
          r.hello();
          expect((await r.next())?.type).toBe(LinkType.CHALLENGE);
          r.send({ seq: 1, value: 7 }, [new Uint8Array(10)]);
        },
        'badAuth',
      ],
      [
        'a proof that is not hex',
        async (r) => {
          r.hello();
          await r.next();
          r.send({ type: LinkType.PROOF }, [new TextEncoder().encode('{"proof":"xyz"}')]);
        },
        'badAuth',
      ],
      // Says HELLO and stops: the handshake times out (deadMs) and the connection goes.
      ['HELLO, then nothing', async (r) => void r.hello(), 'handshakeTimeout'],
      ['nothing at all', async () => {}, 'handshakeTimeout'],
    ];
    for (const [what, act, kind] of cases) {
      const before = b.stats().refused[kind as 'badAuth'];
      const r = await raw.connect(port);
      await act(r);
      expect(await r.gone(), what).toBe(true);
      // No WELCOME, nothing after the CHALLENGE.
      expect(
        r.frames.filter((f) => f.type !== LinkType.CHALLENGE),
        what,
      ).toEqual([]);
      expect(b.stats().refused[kind as 'badAuth'], what).toBe(before + 1);
      expect(linesAbout(logged, r, kind), what).toBe(1);
    }
    expect(b.stats().refused).toMatchObject({ badAuth: 4, handshakeTimeout: 2 });
    expect(b.stats().links.a!.state).toBe('connecting');
    expect(b.stats().handshaking).toBe(0);
    expect(got).toEqual([]);
    await bcWorks();
  });

  it('refuses a captured exchange replayed, and a proof replayed on a new challenge; the session it copied stays as it was', async () => {
    const { b, port, got, logged } = await setup();
    // A real 'a' joins (the intruder watches its bytes) and sends one frame.
    const real = await raw.connect(port);
    const { session } = await real.join(S);
    real.send({ seq: 1, value: 1 }, [new Uint8Array([1])]);
    expect(await until(() => got.length === 1, 5_000)).toBe(true);
    const [helloBytes, proofBytes] = real.sent;

    // Replayed as it was: HELLO and PROOF back to back (the PROOF answered the old CHALLENGE).
    const replay = await raw.connect(port);
    replay.socket.write(helloBytes!);
    replay.socket.write(proofBytes!);
    expect(await replay.gone()).toBe(true);
    expect(replay.frames.map((f) => f.type)).toEqual([LinkType.CHALLENGE]);
    expect(b.stats().refused.badAuth).toBe(1);
    expect(linesAbout(logged, replay, 'badAuth')).toBe(1);

    // Replayed after reading the new CHALLENGE: the old proof does not cover its nonce.
    const late = await raw.connect(port);
    late.socket.write(helloBytes!);
    expect((await late.next())?.type).toBe(LinkType.CHALLENGE);
    late.socket.write(proofBytes!);
    expect(await late.gone()).toBe(true);
    expect(b.stats().refused.badAuth).toBe(2);

    // The real peer's connection and session were neither replaced nor failed, and still carry frames.
    expect(real.closed).toBe(false);
    expect(b.stats().links.a).toMatchObject({ state: 'up', session, failures: 0, framesReceived: 1 });
    real.send({ seq: 2, value: 2 }, [new Uint8Array([2])]);
    expect(await until(() => got.length === 2, 5_000)).toBe(true);
    expect(got.map((g) => g.f.value)).toEqual([1, 2]);
  });

  it("refuses an intruder claiming another node's name: the named node's session is not resumed, replaced or failed", async () => {
    const { b, port, got, logged, bcWorks } = await setup();
    const real = await raw.connect(port);
    const { session } = await real.join(S);
    // Claims to be 'a', naming a's session to resume it, with no secret (a guessed proof).
    const intruder = await raw.connect(port);
    const { payload } = intruder.hello({ session, incarnation: 'feed' });
    expect(payload.length).toBeGreaterThan(0);
    expect((await intruder.next())?.type).toBe(LinkType.CHALLENGE);
    intruder.send({ type: LinkType.PROOF }, [encodeProof('00'.repeat(32))]);
    intruder.send({ seq: 1, value: 66 }, [new Uint8Array([6, 6])]);
    expect(await intruder.gone()).toBe(true);
    // ... and as 'c' (a real node, which b dials): refused before any proof.
    const asC = await raw.connect(port);
    asC.hello({ from: 'c' }, { src: 2 });
    expect(await asC.gone()).toBe(true);
    expect(b.stats().refused).toMatchObject({ badAuth: 1, badHello: 1 });
    expect(linesAbout(logged, intruder, 'badAuth')).toBe(1);
    expect(real.closed).toBe(false);
    expect(b.stats().links.a).toMatchObject({ state: 'up', session, failures: 0, reconnects: 0 });
    expect(got).toEqual([]); // nothing from the intruder
    await bcWorks();
  });

  it('refuses a peer acceptor that cannot prove the secret or replays a captured CHALLENGE (b dials it)', async () => {
    const { b, cConns, logged } = await setup({}, true);
    const conn = async (i: number): Promise<RawPeer> => {
      expect(await until(() => cConns[i] !== undefined, 5_000)).toBe(true);
      return cConns[i]!;
    };
    // A c with another secret: b refuses its CHALLENGE and sends no PROOF.
    expect(
      await (await conn(0)).accept(new TextEncoder().encode('another secret, same length'), { check: S }),
    ).toBeNull();
    expect(await cConns[0]!.gone()).toBe(true);
    expect(b.stats().links.c!.bad.badAuth).toBe(1);
    // A real c (it has the secret): b proves itself; the intruder captures that CHALLENGE...
    expect(await (await conn(1)).accept(S)).not.toBeNull();
    const captured = cConns[1]!.sent[0]!;
    cConns[1]!.socket.destroy();
    // ...and replays it to b's next dial: it answered another nonce.
    const r = await conn(2);
    expect((await r.next())?.type).toBe(LinkType.HELLO);
    r.socket.write(captured);
    expect(await r.gone()).toBe(true);
    expect(r.frames).toEqual([]); // no PROOF
    expect(b.stats().links.c!.bad.badAuth).toBe(2);
    expect(logged.filter((l) => l.kind === 'badAuth').length).toBe(2);
    expect(b.stats().links.c!.session).toBe('');
  });

  it('1,000 connections that never finish the handshake: each refused and counted, at most the bound held at once; the real link keeps working and a real peer still joins', async () => {
    // A short handshake time and heartbeats to match it (deadMs = 3 heartbeats).
    const fast = { heartbeatMs: 100 };
    const { b, port, got, logged, cGot } = await setup(fast, false, fast);
    const N = 1000;
    let maxHeld = 0;
    const sample = setInterval(() => (maxHeld = Math.max(maxHeld, b.stats().handshaking)), 2);
    const peers: RawPeer[] = [];
    let sentToC = 0;
    for (let i = 0; i < N; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, () => raw.connect(port)));
      // Half say HELLO and never prove anything, half say nothing at all.
      batch.forEach((r, j) => j % 2 === 0 && r.hello());
      peers.push(...batch);
      // b's link to c carries frames all along.
      expect(b.send('c', MSG, { channel: 0, socket: 0 }, i, [new Uint8Array([i & 0xff])]).ok).toBe(true);
      sentToC++;
      maxHeld = Math.max(maxHeld, b.stats().handshaking);
    }
    expect(await until(() => peers.every((r) => r.closed), 20_000)).toBe(true);
    clearInterval(sample);
    const { refused } = b.stats();
    expect(refused.handshakeTimeout + refused.handshakeOverflow).toBe(N);
    // One host may hold 16 handshakes: the rest pushed out its own older ones.
    expect(refused.handshakeOverflow).toBeGreaterThanOrEqual(N - 16 * 3);
    expect(maxHeld).toBeLessThanOrEqual(16);
    expect(b.stats().handshaking).toBe(0);
    // Logged with their addresses (rate-limited: the first of each second, then a count of the rest).
    expect(
      logged.some((l) => l.kind === 'handshakeOverflow' && String(l.remote).startsWith('127.0.0.1:')),
    ).toBe(true);
    expect(peers.every((r) => r.frames.every((f) => f.type === LinkType.CHALLENGE))).toBe(true);
    expect(await until(() => cGot.length === sentToC, 5_000)).toBe(true);
    expect(b.stats().links.c).toMatchObject({ state: 'up', failures: 0 });
    expect(got).toEqual([]);
    // After the flood a real 'a' still joins.
    const real = await raw.connect(port);
    expect((await real.join(S)).session).toMatch(/^[0-9a-f]{16}$/);
  }, 60_000);
});
