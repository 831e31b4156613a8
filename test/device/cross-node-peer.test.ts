/**
 * A test peer on the fabric: this process joins an emulator's cluster as
 * node b (a Fabric of its own, over real TCP on 127.0.0.1) and sends the
 * emulator (node a) frames a well-behaved node would not: for sockets that
 * do not exist, of an unknown type, malformed, past the credit it was
 * given. Each is dropped with a log line and a counter, the socket
 * concerned (if any) fails with LINK_FAILED, and the emulator keeps
 * serving its client. (Frames that are truncated, too large, out of
 * sequence or from a node outside the cluster never reach the data plane:
 * the fabric refuses them; test/unit/fabric-peer.test.ts sends those.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSTANTS, ENUMS } from '../../emulator/abi/abi.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver } from '../../emulator/client/sockets.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { Fabric } from '../../emulator/fabric/fabric.js';
import type { Frame } from '../../emulator/fabric/frame.js';
import { freePorts, localCluster } from '../support/fabric.js';
import { PIPE_FRAME } from '../../emulator/model/dataplane/remote.js';
import { controlCall, EmulatorProcess, RunDir, until } from '../../qemu/vm.js';

let dir: RunDir;
let emu: EmulatorProcess;
let client: VfioUserClient;
let drv: SgiovSocketDriver;
let peer: Fabric;
const got: Frame[] = [];

const control = (cmd: string, args: Record<string, unknown> = {}): Promise<unknown> =>
  controlCall(dir.file('a.ctl'), cmd, args);

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
  emu = new EmulatorProcess({
    socketPath: dir.file('a.sock'),
    logPath: dir.file('a.log'),
    logLevel: 'info',
    extraArgs: [
      '--node',
      `a=127.0.0.1:${pa}`,
      '--node',
      `b=127.0.0.1:${pb}`,
      '--self',
      'a',
      '--control',
      dir.file('a.ctl'),
    ],
  });
  await emu.ready();
  client = VfioUserClient.connect(dir.file('a.sock'), { memBytes: 16 << 20 });
  new SgiovDriver(client).bringUp();
  drv = new SgiovSocketDriver(clientAccess(client, 1 << 20), { d2hSlots: 4096, timeoutMs: 10_000 });
  peer = new Fabric(
    { cluster: localCluster('b', { a: pa, b: pb }) },
    {
      onFrame: (_n, f) => {
        got.push(f);
      },
    },
  );
  await peer.start();
  if (!(await until(() => /fabric link to b up/.test(emu.log), 10_000)))
    throw new Error(`no link:\n${emu.log.slice(-2000)}`);
});

afterAll(async () => {
  await peer?.close();
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
    expect(peer.send('a', PIPE_FRAME.MSG, { channel: 4242, socket: 1 }, 3, [u8(1, 2, 3)]).ok).toBe(true);
    expect(peer.send('a', PIPE_FRAME.CREDIT, { channel: 4242, socket: 1 }, 4096, []).ok).toBe(true);
    expect(peer.send('a', PIPE_FRAME.CLOSE, { channel: 4243, socket: 1 }, 0, []).ok).toBe(true);
    expect(peer.send('a', PIPE_FRAME.ACCEPTED, { channel: 4244, socket: 9 }, 4096, []).ok).toBe(true);
    expect(peer.send('a', 99, { channel: 0, socket: 0 }, 0, []).ok).toBe(true);
    expect(peer.send('a', PIPE_FRAME.CONNECT, { channel: 5000, socket: 7 }, 4096, [u8(1)]).ok).toBe(true); // payload too short
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
    peer.send('a', PIPE_FRAME.CONNECT, { channel: 6001, socket: 31 }, 4096, [chainTenant(0, 0)]);
    await until(() => got.some((f) => f.type === PIPE_FRAME.REFUSED && f.channel === 31), 5000);
    expect(got.find((f) => f.type === PIPE_FRAME.REFUSED && f.channel === 31)?.value).toBe(
      ENUMS.STATUS.ECONNREFUSED,
    );
  });

  it('a connection from the peer carries its messages; a message past the credit fails that socket with LINK_FAILED and nothing else', async () => {
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(6000);
    peer.send('a', PIPE_FRAME.CONNECT, { channel: 6000, socket: 55 }, 65536, [chainTenant(0, 0)]);
    for (let i = 0; i < 100 && l.pendingConnections === 0; i++) {
      drv.process();
      await settle(20);
    }
    const s = l.accept({ txSize: 4096, rxSize: 4096 });
    await until(() => got.some((f) => f.type === PIPE_FRAME.ACCEPTED && f.channel === 55), 5000);
    const acc = got.find((f) => f.type === PIPE_FRAME.ACCEPTED && f.channel === 55)!;
    expect(acc.socket).toBe(s.sid);
    expect(acc.value).toBe(4096); // our credit: its rx ring
    peer.send('a', PIPE_FRAME.MSG, { channel: s.sid, socket: 55 }, 5, [u8(1, 2, 3, 4, 5)]);
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
    peer.send('a', PIPE_FRAME.MSG, { channel: s.sid, socket: 55 }, 8192, [new Uint8Array(8192)]);
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
