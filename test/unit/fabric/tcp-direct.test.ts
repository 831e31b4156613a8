/**
 * The TCP transport's direct reads (fabric/tcp.ts, "Reads"): the owner
 * reads the sockets when its own poll finds them readable, node never
 * does. Here the "device loop" is a timer that offers every descriptor to
 * readReady; the bytes must arrive whole and in order, across the arena's
 * replacement, and the end of the stream must close the wire.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { TcpTransport } from '../../../emulator/fabric/tcp.js';
import type { FabricListener, Wire } from '../../../emulator/fabric/transport.js';
import { freePorts } from '../../support/fabric.js';
import { until } from '../../../qemu/vm.js';

const cleanup: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Offers all of a transport's descriptors to readReady every millisecond, as the device loop would after poll(2). */
function pumpReads(t: TcpTransport): { left: number[] } {
  const seen = { left: [] as number[] };
  const timer = setInterval(() => {
    seen.left.push(...t.readReady(t.fds()));
  }, 1);
  cleanup.push(() => clearInterval(timer));
  return seen;
}

async function connected(): Promise<{
  server: TcpTransport;
  client: TcpTransport;
  accepted: Wire;
  dialed: Wire;
  listener: FabricListener;
}> {
  const [port] = await freePorts(1);
  const server = new TcpTransport({ directReads: true });
  const client = new TcpTransport({ directReads: true });
  let accepted: Wire | null = null;
  const listener = await server.listen({ host: '127.0.0.1', port: port! }, (w) => {
    accepted = w;
  });
  cleanup.push(() => listener.close());
  const dialed = await client.connect({ host: '127.0.0.1', port: port! }, new AbortController().signal);
  cleanup.push(() => dialed.close());
  expect(await until(() => accepted !== null, 5000)).toBe(true);
  cleanup.push(() => accepted!.close());
  return { server, client, accepted: accepted!, dialed, listener };
}

describe('TCP transport, direct reads', () => {
  it('delivers 24 MiB written in random pieces whole and in order (the 4 MiB arena is replaced on the way)', async () => {
    const { server, client, accepted, dialed } = await connected();
    const left = pumpReads(server);
    pumpReads(client);
    const got: Uint8Array[] = [];
    let gotBytes = 0;
    accepted.onData((c) => {
      got.push(c);
      gotBytes += c.length;
    });
    const sent = randomBytes(24 << 20);
    for (let off = 0; off < sent.length; ) {
      const n = Math.min(sent.length - off, 1 + Math.floor(Math.random() * 300_000));
      dialed.write([sent.subarray(off, off + n)]);
      off += n;
      if (off % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(await until(() => gotBytes === sent.length, 30_000, 5)).toBe(true);
    // Views handed out earlier still hold their bytes: nothing in the arena was overwritten.
    expect(Buffer.compare(Buffer.concat(got), sent)).toBe(0);
    // The listener's descriptor (a pending accept) is left to the event loop; the connections are not.
    expect(left.left.every((fd) => server.fds()[0] === fd)).toBe(true);
  });

  it('the peer closing ends the wire: read(2) returns 0, the socket is destroyed, onClose runs once', async () => {
    const { server, accepted, dialed } = await connected();
    pumpReads(server);
    let closes = 0;
    let err: Error | undefined;
    accepted.onClose((e) => {
      closes++;
      err = e;
    });
    accepted.onData(() => {});
    dialed.write([new Uint8Array([1, 2, 3])]);
    dialed.close();
    expect(await until(() => closes === 1, 5000)).toBe(true);
    expect(err).toBeUndefined();
    await new Promise((r) => setTimeout(r, 50));
    expect(closes).toBe(1);
    expect(server.fds().length).toBe(1); // only the listener is left
  });
});
