/**
 * Cross-node warp pipes between two devices (nodes a and b), each on its
 * own in-memory bus, joined by the in-memory fabric: connection set-up by
 * (node, port), messages both ways zero-copy, chains split across the
 * nodes, credit flow control, acknowledgement before TX_HEAD, link failure,
 * and frames that break the protocol.
 */
import { describe, expect, it } from 'vitest';
import { ENUMS } from '../../../emulator/abi/abi.js';
import { chainCode, SgiovSocketDriver, type SgiovSocket } from '../../../emulator/client/sockets.js';
import { PIPE_FRAME } from '../../../emulator/model/dataplane/remote.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';
import { MemoryFabric } from '../../../emulator/host/memory-fabric.js';
import { parseAddr } from '../../../emulator/abi/addr.js';

function twoNodes(opts: { window?: number } = {}) {
  const fabric = new MemoryFabric(['a', 'b']);
  if (opts.window !== undefined) fabric.window = opts.window;
  const A = enabledDevice(32 << 20);
  const B = enabledDevice(32 << 20);
  const step = (): void => {
    A.dev.poll();
    B.dev.poll();
    fabric.pump();
    A.dev.poll();
    B.dev.poll();
    A.bus.advance(1000);
    B.bus.advance(1000);
  };
  const aAcc = busAccess(A.bus, A.dev);
  const bAcc = busAccess(B.bus, B.dev);
  aAcc.wait = step;
  bAcc.wait = step;
  const da = new SgiovSocketDriver(aAcc, { d2hSlots: 4096, timeoutMs: 2000 });
  const db = new SgiovSocketDriver(bAcc, { d2hSlots: 4096, timeoutMs: 2000 });
  fabric.attach('a', A.dev.dp);
  fabric.attach('b', B.dev.dp);
  return { fabric, A, B, da, db, step };
}

/** A socket on node a connected to a listener on node b; returns [client on a, server on b]. */
function crossPair(
  t: ReturnType<typeof twoNodes>,
  port: number,
  opts: { chain?: number; size?: number } = {},
): [SgiovSocket, SgiovSocket] {
  const size = opts.size ?? 16384;
  const l = t.db.socket({ txSize: 4096, rxSize: 4096 });
  l.listen(port);
  const c = t.da.socket({ txSize: size, rxSize: size });
  const done = c.connectStart(port, opts.chain ?? 0, t.fabric.id('b'));
  t.db.waitUntil(() => l.pendingConnections > 0, 'the remote connection request');
  const s = l.accept({ txSize: size, rxSize: size });
  done();
  return [c, s];
}

const msg = (n: number, seed: number): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed * 101) & 0xff);

describe('cross-node warp pipes (in-memory fabric)', () => {
  it('half-closes across nodes: SHUT_WR reaches the peer after the messages sent before it, and the peer can still send', () => {
    const t = twoNodes();
    const [c, s] = crossPair(t, 7390);
    c.send(msg(2000, 3));
    c.shutdown(1);
    expect(s.recv()).toEqual(msg(2000, 3));
    t.db.waitUntil(() => s.peerShutdown, 'PEER_SHUTDOWN from node a');
    expect(s.peerClosed).toBe(false);
    s.send(msg(500, 4));
    expect(c.recv()).toEqual(msg(500, 4));
  });

  it('connects by address: the plan address of node b reaches its listener, and both ends know the names', () => {
    const t = twoNodes();
    const A = parseAddr;
    const l = t.db.socket({ txSize: 4096, rxSize: 4096 });
    l.bind(A('10.77.1.1'), 5201); // node b is plan node 1
    l.listenBound();
    const c = t.da.socket({ txSize: 16384, rxSize: 16384 });
    const cport = c.bind(A('10.77.0.1'), 0);
    const done = c.connectAddrStart(A('10.77.1.1'), 5201);
    t.db.waitUntil(() => l.pendingConnections > 0, 'the remote connection request');
    const s = l.accept({ txSize: 16384, rxSize: 16384 });
    done();
    expect(c.name(true)).toEqual({ addr: A('10.77.1.1'), port: 5201 });
    expect(s.name(false)).toEqual({ addr: A('10.77.1.1'), port: 5201 });
    expect(s.name(true)).toEqual({ addr: A('10.77.0.1'), port: cport });
    c.send(msg(3000, 1));
    expect(s.recv()).toEqual(msg(3000, 1));
    s.send(msg(100, 2));
    expect(c.recv()).toEqual(msg(100, 2));
    // An address of node b nobody listens on is refused; a node the cluster lacks is unreachable.
    const d = t.da.socket({ txSize: 4096, rxSize: 4096 });
    expect(() => d.connectAddr(A('10.77.1.9'), 5201)).toThrow(/ECONNREFUSED/);
    expect(() => d.connectAddr(A('10.77.2.1'), 5201)).toThrow(/ENETUNREACH/);
  });

  it('connects to (node, port) and carries messages both ways, whole, once and in order, wrapping both rings', () => {
    const t = twoNodes();
    const [c, s] = crossPair(t, 5000, { size: 4096 });
    for (let i = 1; i <= 40; i++) {
      c.send(msg(100 + ((i * 61) % 3000), i));
      expect(s.recv()).toEqual(msg(100 + ((i * 61) % 3000), i));
    }
    s.send(msg(4096, 7)); // a full-ring message
    expect(c.recv()).toEqual(msg(4096, 7));
    // The connection is visible in both socket tables with its far end.
    const sa = t.A.dev.control('sockets', {}) as {
      sockets: { sid: number; remote: { node: string; peer: number } | null }[];
    };
    expect(sa.sockets.find((x) => x.sid === c.sid)?.remote).toMatchObject({ node: 'b', peer: s.sid });
    expect(t.A.dev.dp.remote!.counters.msgsOut).toBe(40);
    expect(t.B.dev.dp.remote!.counters.msgsIn).toBe(40);
  });

  it("Z across nodes: the wire carries the ring bytes, and the sender's space is freed only on acknowledgement", () => {
    const t = twoNodes();
    const [c, s] = crossPair(t, 5001, { size: 4096 });
    t.fabric.paused.add(`${t.fabric.id('a')}>${t.fabric.id('b')}`);
    c.send(msg(1000, 1));
    for (let i = 0; i < 5; i++) t.step();
    expect(c.txFree()).toBe(4096 - 1000); // sent, not acknowledged: still held
    expect(s.available()).toBe(0);
    t.fabric.paused.clear();
    expect(s.recv()).toEqual(msg(1000, 1));
    t.da.waitUntil(() => c.txFree() === 4096, 'TX_HEAD after the acknowledgement');
    const w = t.fabric.wire.filter((f) => f.type === PIPE_FRAME.MSG);
    expect(w).toHaveLength(1);
    expect(w[0]!.payload).toEqual(msg(1000, 1));
  });

  it('credit: a receiver that does not read holds the sender to its ring; nothing more is sent, nothing lost', () => {
    const t = twoNodes();
    const [c, s] = crossPair(t, 5002, { size: 4096 });
    let sent = 0;
    while (c.trySend(msg(1024, sent))) {
      sent++;
      for (let i = 0; i < 4; i++) t.step();
      if (sent > 64) break;
    }
    expect(sent).toBe(8); // the receiver's 4 KiB ring, then the sender's own
    const msgs = t.fabric.wire.filter((f) => f.type === PIPE_FRAME.MSG).length;
    expect(msgs).toBe(4); // never more than the credit
    for (let i = 0; i < sent; i++) expect(s.recv()).toEqual(msg(1024, i));
    expect(s.tryRecv()).toBeNull();
  });

  it('splits a chain across the nodes: ENCRYPT on the sender, DECRYPT on the receiver; the wire carries ciphertext', () => {
    const t = twoNodes();
    const key = new Uint8Array(32).map((_, i) => i + 1);
    for (const d of [t.da, t.db])
      for (let i = 0; i < 4; i++)
        d.dev.writeReg(`CRYPTO_KEY${i === 0 ? '' : i}`, new DataView(key.buffer).getBigUint64(i * 8, true));
    const [c, s] = crossPair(t, 5003, { chain: chainCode('ENCRYPT', 'DECRYPT') });
    c.send(msg(3000, 3));
    expect(s.recv()).toEqual(msg(3000, 3));
    const w = t.fabric.wire.filter((f) => f.type === PIPE_FRAME.MSG);
    expect(w[0]!.payload.length).toBe(3000 + 28); // IV + ciphertext + tag
    expect(Buffer.from(w[0]!.payload).includes(Buffer.from(msg(3000, 3).subarray(0, 64)))).toBe(false);
    // Tampered on the wire: the receiver's DECRYPT refuses it (EBADMSG in order), the next one arrives.
    t.fabric.tamper = (f) => {
      if (f.type === PIPE_FRAME.MSG) f.payload[40]! ^= 1;
    };
    c.send(msg(500, 4));
    expect(() => s.recv()).toThrow(expect.objectContaining({ errno: 'EBADMSG' }));
    t.fabric.tamper = null;
    c.send(msg(600, 5));
    expect(s.recv()).toEqual(msg(600, 5));
    // The refused message's credit came back: the sender can still fill the peer's ring.
    expect(t.A.dev.dp.remote!.describe(c.sid)!.credit).toBeGreaterThan(16384 - 1000);
  });

  it('close: what was sent arrives, then the peer sees EOF', () => {
    const t = twoNodes();
    const [c, s] = crossPair(t, 5004);
    c.send(msg(10, 1));
    c.send(msg(20, 2));
    c.close();
    expect(s.recv()).toEqual(msg(10, 1));
    expect(s.recv()).toEqual(msg(20, 2));
    t.db.waitUntil(() => s.peerClosed, 'EOF');
    expect(() => s.send(msg(1, 1))).toThrow(/peer closed/);
  });

  it('a failed link fails every socket paired across it, on both sides, with LINK_FAILED; local pipes go on', () => {
    const t = twoNodes();
    const [c1, s1] = crossPair(t, 5005);
    const [c2, s2] = crossPair(t, 5006);
    const l = t.da.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(6000);
    const [lc, ls] = t.da.connectPair(l, { txSize: 4096, rxSize: 4096 });
    c1.send(msg(100, 1));
    t.fabric.paused.add(`${t.fabric.id('a')}>${t.fabric.id('b')}`); // in flight when the link dies
    c2.send(msg(100, 2));
    t.step();
    t.fabric.fail('a', 'b');
    for (const x of [c1, c2]) t.da.waitUntil(() => x.error !== null, 'the socket error on a');
    for (const x of [s1, s2]) t.db.waitUntil(() => x.error !== null, 'the socket error on b');
    expect(c2.error).toMatch(/20|LINK/);
    lc.send(msg(50, 9));
    expect(ls.recv()).toEqual(msg(50, 9));
    expect(t.A.dev.dp.remote!.counters.linkFailures).toBe(1);
  });

  it('refuses what cannot connect: no listener (ECONNREFUSED), an unknown node (ENETUNREACH), no fabric at all (ENETUNREACH)', () => {
    const t = twoNodes();
    expect(() => t.da.socket().connect(5999, 0, t.fabric.id('b'))).toThrow(/ECONNREFUSED/);
    expect(() => t.da.socket().connect(5000, 0, 9)).toThrow(/ENETUNREACH/);
    const lone = enabledDevice();
    const d = new SgiovSocketDriver(busAccess(lone.bus, lone.dev), { d2hSlots: 4096, timeoutMs: 2000 });
    expect(() => d.socket().connect(5000, 0, 2)).toThrow(/ENETUNREACH/);
    // Connecting to this node's own id is a local connect.
    const l = t.da.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(7000);
    const [c, s] = t.da.connectPair(l, { txSize: 4096, rxSize: 4096 });
    c.send(msg(10, 1));
    expect(s.recv()).toEqual(msg(10, 1));
  });

  it('drops frames that name no socket or the wrong sender, and fails a socket whose peer sends past its credit', () => {
    const t = twoNodes();
    const [c, s] = crossPair(t, 5007, { size: 4096 });
    const rb = t.B.dev.dp.remote!;
    t.fabric.inject('a', 'b', PIPE_FRAME.MSG, 0, 999, c.sid, 10, msg(10, 1)); // no such socket
    t.fabric.inject('a', 'b', PIPE_FRAME.MSG, 0, s.sid, c.sid + 1, 10, msg(10, 1)); // not its peer
    t.fabric.inject('a', 'b', PIPE_FRAME.CREDIT, 0, s.sid, 12345, 1 << 20); // credit from a stranger
    t.fabric.inject('a', 'b', 99, 0, 0, 0, 0); // unknown type
    expect(rb.counters.unknownSocket).toBe(3);
    expect(rb.counters.protocolErrors).toBe(1);
    c.send(msg(100, 1));
    expect(s.recv()).toEqual(msg(100, 1)); // still fine
    t.fabric.inject('a', 'b', PIPE_FRAME.MSG, 0, s.sid, c.sid, 8192, new Uint8Array(8192)); // past the credit
    t.db.waitUntil(() => s.error !== null, 'the protocol error');
    expect(rb.counters.protocolErrors).toBe(2);
    expect(t.B.dev.dp.socks.err[s.sid]).toBe(ENUMS.SERR.LINK_FAILED);
  });

  it('carries 2,000 random messages over 16 pipes through a small link window, none lost, duplicated or reordered', () => {
    const t = twoNodes({ window: 8 });
    const pairs = Array.from({ length: 16 }, (_, i) => crossPair(t, 5100 + i, { size: 8192 }));
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const sent = pairs.map(() => [] as number[]);
    const got = pairs.map(() => [] as number[]);
    const bad: string[] = [];
    const drain = (): void => {
      for (const [j, [, s]] of pairs.entries()) {
        for (let r = s.tryRecv(); r; r = s.tryRecv()) {
          // Byte 0 carries the sequence number, the rest a pattern of (length, sequence).
          const k = got[j]!.length;
          if (
            r[0] !== (k & 0xff) ||
            r.length !== sent[j]![k] ||
            r[r.length - 1] !== ((r.length * 7 + k) & 0xff)
          )
            bad.push(`pair ${j} message ${k}`);
          got[j]!.push(r.length);
        }
      }
    };
    let total = 0;
    while (total < 2000) {
      for (let b = 0; b < 16 && total < 2000; b++) {
        const i = rnd(16);
        const k = sent[i]!.length;
        const len = 2 + rnd(4000);
        const m = new Uint8Array(len);
        m[0] = k & 0xff;
        m[len - 1] = (len * 7 + k) & 0xff;
        if (pairs[i]![0].trySend(m)) {
          sent[i]!.push(len);
          total++;
        }
      }
      t.step();
      drain();
    }
    for (let k = 0; k < 500 && got.some((g, j) => g.length < sent[j]!.length); k++) {
      t.step();
      drain();
    }
    expect(bad).toEqual([]);
    expect(got).toEqual(sent);
  });
});
