/**
 * The fabric over TLS (--fabric-tls): two Fabric nodes with certificates
 * from one CA (scripts/fabric-certs.sh) and the cluster secret. Frames go
 * both ways, and what crosses the wire (seen by a relay between them) is
 * TLS records, never the payload; a client certificate from another CA, a
 * client without TLS, a certificate naming another node than the one its
 * HELLO claims, and a server whose certificate names another node are
 * each refused, counted and logged.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Fabric } from '../../../emulator/fabric/fabric.js';
import { encodeFrame, FIRST_DATA_TYPE, LinkType, type Frame } from '../../../emulator/fabric/frame.js';
import { encodeHello } from '../../../emulator/fabric/hello.js';
import { newNonce } from '../../../emulator/fabric/auth.js';
import { FabricCredentials, freePorts, localCluster } from '../../support/fabric.js';
import type { FabricTls } from '../../../emulator/fabric/tls.js';
import { makeLogger } from '../../../emulator/util/log.js';
import { until } from '../../../qemu/vm.js';

const MSG = FIRST_DATA_TYPE + 2;
let dir: string;
let creds: FabricCredentials;
/** Another CA's certificates, same node names. */
let rogue: FabricCredentials;
const fabrics: Fabric[] = [];
const closers: (() => void)[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sgiov-fabtls-'));
  creds = FabricCredentials.make(join(dir, 'cluster'), ['a', 'b', 'c']);
  rogue = FabricCredentials.make(join(dir, 'rogue'), ['a', 'b', 'c']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await Promise.all(fabrics.splice(0).map((f) => f.close()));
});

function node(
  self: string,
  ports: Record<string, number>,
  tls: FabricTls,
  onFrame: (f: Frame) => void = () => {},
): { f: Fabric; logged: Record<string, unknown>[] } {
  const logged: Record<string, unknown>[] = [];
  const log = makeLogger('warn', { write: (line: string) => logged.push(JSON.parse(line)) });
  const f = new Fabric(
    { cluster: localCluster(self, ports, { tls }), log },
    { onFrame: (_n, fr) => onFrame(fr) },
  );
  fabrics.push(f);
  return { f, logged };
}

/** A TCP relay from `port` to `to`, keeping what b sends c. */
async function relay(port: number, to: number): Promise<Buffer[]> {
  const seen: Buffer[] = [];
  const socks: Socket[] = [];
  const server: Server = createServer((inbound) => {
    const out = connect(to, '127.0.0.1');
    socks.push(inbound, out);
    inbound.on('data', (d) => {
      seen.push(d);
      out.write(d);
    });
    out.on('data', (d) => inbound.write(d));
    for (const s of [inbound, out])
      s.on('error', () => {}).on('close', () => (s === out ? inbound : out).destroy());
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  closers.push(() => {
    for (const s of socks) s.destroy();
    server.close();
  });
  return seen;
}

describe('fabric links over TLS', () => {
  it('carries frames both ways encrypted: the wire holds TLS records, not the payload', async () => {
    const [pb, pc, pr] = (await freePorts(3)) as [number, number, number];
    const gotC: Frame[] = [];
    const gotB: Frame[] = [];
    // b reaches c through the relay (its cluster says c is at the relay's port); c listens on its own.
    const b = node('b', { b: pb, c: pr }, creds.tls('b'), (f) => gotB.push(f));
    const c = node('c', { b: pb, c: pc }, creds.tls('c'), (f) => gotC.push(f));
    const seen = await relay(pr, pc);
    await c.f.start();
    await b.f.start();
    expect(
      await until(() => b.f.stats().links.c!.state === 'up' && c.f.stats().links.b!.state === 'up', 10_000),
    ).toBe(true);
    const marker = Buffer.from('plaintext that must not be seen on the wire '.repeat(40));
    const big = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
    expect(b.f.send('c', MSG, { channel: 1, socket: 2 }, 3, [marker]).ok).toBe(true);
    expect(b.f.send('c', MSG, { channel: 1, socket: 2 }, 4, [big]).ok).toBe(true);
    expect(c.f.send('b', MSG, { channel: 5, socket: 6 }, 7, [marker]).ok).toBe(true);
    expect(await until(() => gotC.length === 2 && gotB.length === 1, 10_000)).toBe(true);
    expect(Buffer.from(gotC[0]!.payload).equals(marker)).toBe(true);
    expect(Buffer.from(gotC[1]!.payload).equals(Buffer.from(big))).toBe(true);
    expect(gotB[0]!.value).toBe(7);
    const wire = Buffer.concat(seen);
    expect(wire.length).toBeGreaterThan(1 << 20);
    expect(wire.indexOf(marker.subarray(0, 40))).toBe(-1);
    expect(wire.indexOf(Buffer.from(big.subarray(4096, 4160)))).toBe(-1);
    expect(wire.indexOf(Buffer.from('SGFB'))).toBe(-1); // not even a frame header
    expect(wire[0]).toBe(0x16); // a TLS handshake record
    expect(b.f.stats()).toMatchObject({ authenticated: true, encrypted: true });
    expect(c.f.stats().refused.badTls).toBe(0);
  });

  it('refuses a client certificate from another CA, a client without TLS, and a certificate naming another node than its HELLO', async () => {
    const [pa, pb, pc] = (await freePorts(3)) as [number, number, number];
    const ports = { a: pa, b: pb, c: pc };
    const b = node('b', ports, creds.tls('b'));
    const c = node('c', ports, creds.tls('c'));
    await c.f.start();
    await b.f.start();
    expect(await until(() => b.f.stats().links.c!.state === 'up', 10_000)).toBe(true);
    const refused = () => b.f.stats().refused.badTls;
    const closed = (s: Socket) => until(() => s.destroyed || s.closed, 5_000);
    const hello = (from: string, src: number): Uint8Array[] =>
      encodeFrame({ type: LinkType.HELLO, flags: 0, src, seq: 0, ack: 0, channel: 0, socket: 0, value: 0 }, [
        encodeHello({
          from,
          to: 'b',
          cluster: localCluster('b', ports).hash,
          incarnation: 'feed',
          session: '',
          nonce: newNonce(),
          windowFrames: 64,
          windowBytes: 1 << 20,
        }),
      ]);
    const tlsTo = (t: FabricTls): Socket => {
      const s = tlsConnect({
        port: pb,
        host: '127.0.0.1',
        ...t,
        checkServerIdentity: () => undefined,
        rejectUnauthorized: false,
      });
      s.on('error', () => {});
      closers.push(() => s.destroy());
      return s;
    };

    // Another CA's certificate for 'a'.
    const r1 = tlsTo(rogue.tls('a'));
    r1.on('secureConnect', () => r1.write(Buffer.concat(hello('a', 0))));
    expect(await closed(r1)).toBe(true);
    expect(await until(() => refused() === 1, 5_000)).toBe(true);

    // No TLS at all: a plain HELLO is not a TLS ClientHello.
    const r2 = connect(pb, '127.0.0.1');
    r2.on('error', () => {});
    closers.push(() => r2.destroy());
    r2.on('connect', () => r2.write(Buffer.concat(hello('a', 0))));
    expect(await closed(r2)).toBe(true);
    expect(await until(() => refused() === 2, 5_000)).toBe(true);

    // A valid certificate for 'c', and a HELLO claiming 'a'.
    const r3 = tlsTo(creds.tls('c'));
    const r3got: Buffer[] = [];
    r3.on('data', (d) => r3got.push(d));
    r3.on('secureConnect', () => r3.write(Buffer.concat(hello('a', 0))));
    expect(await closed(r3)).toBe(true);
    expect(await until(() => refused() === 3, 5_000)).toBe(true);
    expect(r3got).toEqual([]); // no CHALLENGE

    const lines = b.logged.filter((l) => l.kind === 'badTls');
    expect(lines.length).toBe(3);
    expect(lines.every((l) => String(l.remote).startsWith('127.0.0.1:'))).toBe(true);
    expect(String(lines[0]!.msg)).toMatch(/client certificate refused: [A-Z_]+/);
    expect(String(lines[1]!.msg)).toMatch(/TLS handshake failed/);
    expect(String(lines[2]!.msg)).toMatch(/HELLO says 'a', its certificate names c/);
    // The real link was not disturbed.
    expect(b.f.stats().links.c).toMatchObject({ state: 'up', failures: 0, reconnects: 0 });
    expect(b.f.stats().links.a!.state).toBe('connecting');
  });

  it('a dialer refuses a server whose certificate names another node', async () => {
    const [pb, pc] = (await freePorts(2)) as [number, number];
    const ports = { b: pb, c: pc };
    // "c" presents a's certificate (valid, same CA): b dialed c, so it is not c.
    const impostor = node('a', { a: pc, b: pb }, creds.tls('a'));
    await impostor.f.start();
    const b = node('b', ports, creds.tls('b'));
    await b.f.start();
    expect(await until(() => b.f.stats().links.c!.bad.badTls >= 1, 10_000)).toBe(true);
    expect(b.f.stats().links.c!.state).not.toBe('up');
    expect(b.logged.some((l) => l.kind === 'badTls' && /names a/.test(String(l.msg)))).toBe(true);
  });
});
