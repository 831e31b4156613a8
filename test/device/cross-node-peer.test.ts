/**
 * A test peer on the fabric: this process joins an emulator's cluster as
 * node a (a Fabric of its own, over real TCP on 127.0.0.1, with the
 * cluster's secret; a dials b) and sends the emulator (node b) frames a
 * well-behaved node would not: for sockets that
 * do not exist, of an unknown type, malformed, past the credit it was
 * given. Each is dropped with a log line and a counter, the socket
 * concerned (if any) fails with LINK_FAILED, and the emulator keeps
 * serving its client. (Frames that are truncated, too large, out of
 * sequence or from a node outside the cluster never reach the data plane:
 * the fabric refuses them; test/unit/fabric-peer.test.ts sends those.)
 * Then an intruder without the secret (the hostile peer, raw-peer.ts):
 * a HELLO without it, a replayed exchange, node a's name, and 1,000
 * handshakes never finished; each is refused, counted in the control
 * interface's `fabric` and logged with its address, nothing it sends is
 * delivered, and the real link keeps carrying the pipes.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSTANTS, ENUMS } from '../../emulator/abi/abi.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { Fabric } from '../../emulator/fabric/fabric.js';
import type { Frame } from '../../emulator/fabric/frame.js';
import { loadSecret } from '../../emulator/fabric/auth.js';
import { LinkType } from '../../emulator/fabric/frame.js';
import { RawPeer } from '../../emulator/fabric/raw-peer.js';
import { FabricCredentials, freePorts, localCluster } from '../support/fabric.js';
import { PIPE_FRAME } from '../../emulator/model/dataplane/remote.js';
import { controlCall, EmulatorProcess, RunDir, until } from '../../qemu/vm.js';

let dir: RunDir;
let emu: EmulatorProcess;
let client: VfioUserClient;
let drv: SgiovSocketDriver;
let peer: Fabric;
const got: Frame[] = [];
let secret: Uint8Array;
let portB = 0;
let hash = 0;
let relay: Server | null = null;
const relayed: Socket[] = [];
const captured: Buffer[] = [];

const control = (cmd: string, args: Record<string, unknown> = {}): Promise<unknown> =>
  controlCall(dir.file('b.ctl'), cmd, args);

interface Pipes {
  msgsIn: number;
  unknownSocket: number;
  protocolErrors: number;
}
const pipes = async (): Promise<Pipes> => ((await control('status')) as { pipes: Pipes }).pipes;
/** Lets the emulator run and the frames travel; the driver's waits spin, so this process's event loop needs turns too. */
const settle = (ms = 300): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  dir = new RunDir('sgiov-crosspeer-');
  const [pa, pb] = (await freePorts(2)) as [number, number];
  portB = pb;
  const creds = FabricCredentials.make(dir.file('fabric'), ['a', 'b']);
  secret = loadSecret(creds.secretFile, 'secret');
  emu = new EmulatorProcess({
    socketPath: dir.file('b.sock'),
    logPath: dir.file('b.log'),
    logLevel: 'info',
    extraArgs: [
      '--node',
      `a=127.0.0.1:${pa}`,
      '--node',
      `b=127.0.0.1:${pb}`,
      '--self',
      'b',
      '--control',
      dir.file('b.ctl'),
      ...creds.flags('b', false),
    ],
  });
  await emu.ready();
  client = VfioUserClient.connect(dir.file('b.sock'), { memBytes: 16 << 20 });
  new SgiovDriver(client).bringUp();
  drv = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 4096, timeoutMs: 10_000 });
  // The peer reaches b through a relay that keeps what a sends: a captured authentication exchange.
  const pr = (await freePorts(1))[0]!;
  relay = createServer((inbound) => {
    const out = connect(pb, '127.0.0.1');
    relayed.push(inbound, out);
    inbound.on('data', (d: Buffer) => {
      captured.push(d);
      out.write(d);
    });
    out.on('data', (d: Buffer) => inbound.write(d));
    for (const x of [inbound, out])
      x.on('error', () => {}).on('close', () => (x === out ? inbound : out).destroy());
  });
  await new Promise<void>((resolve) => relay!.listen(pr, '127.0.0.1', resolve));
  const cluster = localCluster('a', { a: pa, b: pr }, { secret });
  hash = cluster.hash;
  peer = new Fabric(
    { cluster },
    {
      onFrame: (_n, f) => {
        got.push(f);
      },
    },
  );
  await peer.start();
  if (!(await until(() => /fabric link to a up/.test(emu.log), 10_000)))
    throw new Error(`no link:\n${emu.log.slice(-2000)}`);
});

afterAll(async () => {
  RawPeer.destroyAll();
  await peer?.close();
  for (const x of relayed) x.destroy();
  relay?.close();
  client?.close();
  await emu?.stop();
  dir?.remove();
});

const u8 = (...v: number[]): Uint8Array => Uint8Array.from(v);
const chainTenant = (chain: number, tenant: number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setUint32(0, chain, true);
  new DataView(b.buffer).setUint32(4, tenant, true);
  return b;
};

describe('a test peer sending bad frames to an emulator over the fabric', () => {
  it('drops frames for sockets that do not exist, and frames of unknown type or malformed, counting each; the emulator keeps serving', async () => {
    const before = await pipes();
    expect(peer.send('b', PIPE_FRAME.MSG, { channel: 4242, socket: 1 }, 3, [u8(1, 2, 3)]).ok).toBe(true);
    expect(peer.send('b', PIPE_FRAME.CREDIT, { channel: 4242, socket: 1 }, 4096, []).ok).toBe(true);
    expect(peer.send('b', PIPE_FRAME.CLOSE, { channel: 4243, socket: 1 }, 0, []).ok).toBe(true);
    expect(peer.send('b', PIPE_FRAME.ACCEPTED, { channel: 4244, socket: 9 }, 4096, []).ok).toBe(true);
    expect(peer.send('b', 99, { channel: 0, socket: 0 }, 0, []).ok).toBe(true);
    expect(peer.send('b', PIPE_FRAME.CONNECT, { channel: 5000, socket: 7 }, 4096, [u8(1)]).ok).toBe(true); // payload too short
    await settle();
    const after = await pipes();
    expect(after.unknownSocket - before.unknownSocket).toBe(4);
    expect(after.protocolErrors - before.protocolErrors).toBe(2);
    expect(emu.log).toMatch(/fabric message frame for no matching socket dropped/);
    // An ACCEPTED for a socket that is not connecting is answered with CLOSE (the far end must not believe it is connected).
    expect(got.some((f) => f.type === PIPE_FRAME.CLOSE && f.channel === 9)).toBe(true);
    const s = drv.socket({ txSize: 4096, rxSize: 4096 });
    s.connect(CONSTANTS.PORT_LOOPBACK);
    s.send(u8(7, 7));
    expect([...s.recv()]).toEqual([7, 7]);
    s.close();
  });

  it('a CONNECT to a port nobody listens on is refused with ECONNREFUSED', async () => {
    peer.send('b', PIPE_FRAME.CONNECT, { channel: 6001, socket: 31 }, 4096, [chainTenant(0, 0)]);
    await until(() => got.some((f) => f.type === PIPE_FRAME.REFUSED && f.channel === 31), 5000);
    expect(got.find((f) => f.type === PIPE_FRAME.REFUSED && f.channel === 31)?.value).toBe(
      ENUMS.STATUS.ECONNREFUSED,
    );
  });

  it('a connection from the peer carries its messages; a message past the credit fails that socket with LINK_FAILED and nothing else', async () => {
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(6000);
    peer.send('b', PIPE_FRAME.CONNECT, { channel: 6000, socket: 55 }, 65536, [chainTenant(0, 0)]);
    for (let i = 0; i < 100 && l.pendingConnections === 0; i++) {
      drv.process();
      await settle(20);
    }
    const s = l.accept({ txSize: 4096, rxSize: 4096 });
    await until(() => got.some((f) => f.type === PIPE_FRAME.ACCEPTED && f.channel === 55), 5000);
    const acc = got.find((f) => f.type === PIPE_FRAME.ACCEPTED && f.channel === 55)!;
    expect(acc.socket).toBe(s.sid);
    expect(acc.value).toBe(4096); // our credit: its rx ring
    peer.send('b', PIPE_FRAME.MSG, { channel: s.sid, socket: 55 }, 5, [u8(1, 2, 3, 4, 5)]);
    for (let i = 0; i < 100 && s.available() === 0; i++) {
      drv.process();
      await settle(20);
    }
    expect([...s.recv()]).toEqual([1, 2, 3, 4, 5]);
    // The application's reply goes to the peer as a MSG frame.
    s.send(u8(9, 8));
    await until(() => got.some((f) => f.type === PIPE_FRAME.MSG && f.channel === 55), 5000);
    expect([...got.find((f) => f.type === PIPE_FRAME.MSG && f.channel === 55)!.payload]).toEqual([9, 8]);
    // Now 8 KiB into a 4 KiB ring: the peer ignored its credit.
    const before = await pipes();
    peer.send('b', PIPE_FRAME.MSG, { channel: s.sid, socket: 55 }, 8192, [new Uint8Array(8192)]);
    for (let i = 0; i < 100 && s.error === null; i++) {
      drv.process();
      await settle(20);
    }
    expect(s.error).toMatch(/20|LINK/);
    expect((await pipes()).protocolErrors - before.protocolErrors).toBe(1);
    // Everything else goes on.
    const t = drv.socket({ txSize: 4096, rxSize: 4096 });
    t.connect(CONSTANTS.PORT_LOOPBACK);
    t.send(u8(3));
    expect([...t.recv()]).toEqual([3]);
    expect(emu.alive).toBe(true);
  });
});

interface FabricStatus {
  authenticated: boolean;
  refused: Record<string, number>;
  handshaking: number;
  links: { a: { state: string; session: string; failures: number; reconnects: number } };
}
const fabricStatus = async (): Promise<FabricStatus> => (await control('fabric')) as FabricStatus;

/** The link to the peer carries frames: a CONNECT to a port nobody listens on comes back REFUSED. */
async function linkWorks(channel: number): Promise<void> {
  expect(
    peer.send('b', PIPE_FRAME.CONNECT, { channel: 6002, socket: channel }, 4096, [chainTenant(0, 0)]).ok,
  ).toBe(true);
  expect(
    await until(() => got.some((f) => f.type === PIPE_FRAME.REFUSED && f.channel === channel), 5000),
  ).toBe(true);
}

describe('an intruder without the secret against the emulator', () => {
  it("a HELLO without the secret, a wrong proof, a replayed exchange and node a's own name: each refused, counted, logged; the real link goes on", async () => {
    const before = await fabricStatus();
    const pipesBefore = await pipes();
    expect(before.authenticated).toBe(true);
    expect(before.links.a.state).toBe('up');
    const tried: RawPeer[] = [];
    const attempt = async (act: (r: RawPeer) => Promise<void> | void): Promise<void> => {
      const r = await RawPeer.connect(portB, hash);
      tried.push(r);
      await act(r);
      expect(await r.gone()).toBe(true);
      expect(r.frames.filter((f) => f.type !== LinkType.CHALLENGE)).toEqual([]); // never a WELCOME
    };
    // No nonce: a peer without a secret.
    await attempt((r) => void r.hello({ nonce: undefined }));
    // A proof made with another secret.
    await attempt((r) =>
      r
        .authenticate(new TextEncoder().encode('not the secret of this cluster'), { check: secret })
        .then(() => {}),
    );
    // The real a's exchange as the relay saw it, HELLO and PROOF, replayed.
    const wire = Buffer.concat(captured);
    const helloLen = 48 + wire.readUInt32BE(40);
    const proofLen = 48 + wire.readUInt32BE(helloLen + 40);
    expect(wire[5]).toBe(LinkType.HELLO);
    expect(wire[helloLen + 5]).toBe(LinkType.PROOF);
    await attempt((r) => {
      r.socket.write(wire.subarray(0, helloLen + proofLen));
    });
    // Node a's name, its session and incarnation, a guessed proof, then data.
    const { session } = before.links.a;
    await attempt(async (r) => {
      r.hello({ session, incarnation: peer.incarnation });
      expect((await r.next())?.type).toBe(LinkType.CHALLENGE);
      r.send({ type: LinkType.PROOF }, [
        new TextEncoder().encode(JSON.stringify({ proof: '00'.repeat(32) })),
      ]);
      r.send({ type: PIPE_FRAME.MSG, seq: 1, channel: 1, socket: 1 }, [u8(6, 6, 6)]);
    });
    const after = await fabricStatus();
    expect(after.refused.badAuth! - before.refused.badAuth!).toBe(4);
    // Each logged with its address.
    for (const r of tried)
      expect(
        emu.records().some((l) => l.kind === 'badAuth' && l.remote === `127.0.0.1:${r.port}`),
        `log line for 127.0.0.1:${r.port}`,
      ).toBe(true);
    // The real session: not resumed, replaced or failed by any of them; nothing of theirs delivered.
    expect(after.links.a).toMatchObject({
      state: 'up',
      session,
      failures: 0,
      reconnects: before.links.a.reconnects,
    });
    expect(await pipes()).toEqual(pipesBefore);
    await linkWorks(71);
  });

  it('1,000 connections that never finish the handshake: all refused and counted, few held at once; the link keeps working', async () => {
    const before = await fabricStatus();
    const pipesBefore = await pipes();
    const N = 1000;
    const peers: RawPeer[] = [];
    let maxHeld = 0;
    for (let i = 0; i < N; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => RawPeer.connect(portB, hash)));
      batch.forEach((r, j) => j % 2 === 0 && r.hello());
      peers.push(...batch);
      maxHeld = Math.max(maxHeld, (await fabricStatus()).handshaking);
      if (i === 500) await linkWorks(72); // during the flood
    }
    expect(await until(() => peers.every((r) => r.closed), 30_000)).toBe(true);
    const after = await fabricStatus();
    const d = (k: string): number => after.refused[k]! - before.refused[k]!;
    expect(d('handshakeTimeout') + d('handshakeOverflow')).toBe(N);
    expect(maxHeld).toBeLessThanOrEqual(16);
    expect(after.handshaking).toBe(0);
    expect(peers.every((r) => r.frames.every((f) => f.type === LinkType.CHALLENGE))).toBe(true);
    expect(
      emu.records().some((l) => l.kind === 'handshakeOverflow' && String(l.remote).startsWith('127.0.0.1:')),
    ).toBe(true);
    expect(after.links.a).toMatchObject({ state: 'up', failures: 0 });
    // Nothing of the intruders' reached the pipes (the CONNECT of linkWorks did, and was answered).
    const p = await pipes();
    expect([p.msgsIn, p.unknownSocket, p.protocolErrors]).toEqual([
      pipesBefore.msgsIn,
      pipesBefore.unknownSocket,
      pipesBefore.protocolErrors,
    ]);
    await linkWorks(73);
    expect(emu.alive).toBe(true);
  }, 120_000);
});
