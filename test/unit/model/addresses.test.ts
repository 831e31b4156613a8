import { describe, expect, it } from 'vitest';
import {
  formatAddr,
  isLoopback,
  parseAddr,
  planNode,
  addrFromWords,
  addrToWords,
} from '../../../emulator/abi/addr.js';
import { AddressBook, EPHEMERAL_LO, routeAddr } from '../../../emulator/model/dataplane/addresses.js';
import { SgiovSocketDriver, type SgiovError } from '../../../emulator/client/sockets.js';
import { busAccess, enabledDevice } from '../../../emulator/host/bus-access.js';

const A = parseAddr;

function rig() {
  const { bus, dev } = enabledDevice();
  const drv = new SgiovSocketDriver(busAccess(bus, dev), { d2hSlots: 4096, timeoutMs: 2000 });
  return { dev, drv };
}

const errno = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as SgiovError).errno;
  }
  return 'no error';
};

describe('addresses: text and words', () => {
  it('parses and formats IPv4 (v4-mapped) and IPv6', () => {
    expect(formatAddr(A('10.77.0.1'))).toBe('10.77.0.1');
    expect(formatAddr(A('::'))).toBe('::');
    expect(formatAddr(A('::1'))).toBe('::1');
    expect(formatAddr(A('fe80::1:2'))).toBe('fe80::1:2');
    expect(formatAddr(A('::ffff:127.0.0.1'))).toBe('127.0.0.1');
    expect(A('::ffff:127.0.0.1')).toEqual(A('127.0.0.1'));
    for (const bad of ['1.2.3', '256.1.1.1', '1::2::3', 'x', '1:2:3:4:5:6:7:8:9'])
      expect(() => A(bad)).toThrow(RangeError);
  });

  it('round-trips through the command slot words, and knows loopback and the plan', () => {
    const a = A('2001:db8::7');
    const [lo, hi] = addrToWords(a);
    expect(addrFromWords(lo, hi)).toEqual(a);
    expect(isLoopback(A('127.3.4.5'))).toBe(true);
    expect(isLoopback(A('::1'))).toBe(true);
    expect(isLoopback(A('10.77.0.1'))).toBe(false);
    expect(planNode(A('10.77.3.9'))).toBe(3);
    expect(planNode(A('10.78.3.9'))).toBe(-1);
  });

  it('routes by the plan: this node, another node, or none', () => {
    expect(routeAddr(A('127.0.0.1'), 2, 3)).toBe(0);
    expect(routeAddr(A('10.77.1.1'), 2, 3)).toBe(0); // node id 2 is plan node 1: this one
    expect(routeAddr(A('10.77.2.1'), 2, 3)).toBe(3);
    expect(routeAddr(A('10.77.7.1'), 2, 3)).toBe(-1);
    expect(routeAddr(A('10.77.0.1'), 0, 0)).toBe(0); // no cluster: plan node 0 is here
    expect(routeAddr(A('10.77.1.1'), 0, 0)).toBe(-1);
    expect(routeAddr(A('192.168.1.1'), 0, 0)).toBe(0);
  });
});

describe('address book: bind, listen, lookup', () => {
  it('lets two listeners share a port on different addresses, and refuses a second on the same one', () => {
    const b = new AddressBook();
    expect(b.bind(1, A('10.77.0.1'), 80, false)).toBe(80);
    expect(b.bind(2, A('10.77.0.2'), 80, false)).toBe(80);
    expect(b.bind(3, A('10.77.0.1'), 80, false)).toBe(-98); // EADDRINUSE
    expect(b.bind(3, A('0.0.0.0'), 80, false)).toBe(-98); // the wildcard covers them
    expect(b.bind(3, A('::'), 80, true)).toBe(80); // V6ONLY: IPv6 only, no overlap
    b.listen(1);
    b.listen(2);
    b.listen(3);
    expect(b.lookup(A('10.77.0.1'), 80)).toBe(1);
    expect(b.lookup(A('10.77.0.2'), 80)).toBe(2);
    expect(b.lookup(A('10.77.0.3'), 80)).toBe(-1);
    expect(b.lookup(A('::1'), 80)).toBe(3);
    expect(b.lookup(A('10.77.0.1'), 81)).toBe(-1);
  });

  it('prefers an exact listener to a wildcard; a :: listener (not V6ONLY) takes IPv4 too', () => {
    const b = new AddressBook();
    expect(b.bind(1, A('::'), 5201, false)).toBe(5201);
    b.listen(1);
    expect(b.lookup(A('127.0.0.1'), 5201)).toBe(1);
    expect(b.lookup(A('::1'), 5201)).toBe(1);
    expect(b.bind(2, A('127.0.0.1'), 5201, false)).toBe(-98);
    b.release(1);
    expect(b.bind(2, A('127.0.0.1'), 5201, false)).toBe(5201);
    expect(b.bind(3, A('0.0.0.0'), 5201, false)).toBe(-98);
    b.listen(2);
    expect(b.lookup(A('127.0.0.1'), 5201)).toBe(2);
    expect(b.lookup(A('127.0.0.2'), 5201)).toBe(-1);
  });

  it('picks distinct ephemeral ports for port 0, and refuses V6ONLY on an IPv4 address', () => {
    const b = new AddressBook();
    const p1 = b.bind(1, A('127.0.0.1'), 0, false);
    const p2 = b.bind(2, A('127.0.0.1'), 0, false);
    expect(p1).toBeGreaterThanOrEqual(EPHEMERAL_LO);
    expect(p2).not.toBe(p1);
    expect(b.bind(1, A('127.0.0.1'), 0, false)).toBe(-22); // bound already
    expect(b.bind(4, A('10.0.0.1'), 0, true)).toBe(-22);
    expect(b.name(1, false)).toEqual({ addr: A('127.0.0.1'), port: p1 });
  });

  it('does not listen on an unbound socket', () => {
    expect(new AddressBook().listen(9)).toBe(22);
  });
});

describe('device: addressing through the command slots', () => {
  it('connects by address, and getsockname/getpeername give the real names', () => {
    const { drv } = rig();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    expect(l.bind(A('::'), 5201)).toBe(5201);
    l.listenBound();
    const c = drv.socket({ txSize: 4096, rxSize: 4096 });
    const cport = c.bind(A('127.0.0.1'), 0);
    const wait = c.connectAddrStart(A('127.0.0.1'), 5201);
    drv.waitUntil(() => l.pendingConnections > 0, 'the connection');
    const a = l.accept({ txSize: 4096, rxSize: 4096 });
    wait();
    expect(c.name(false)).toEqual({ addr: A('127.0.0.1'), port: cport });
    expect(c.name(true)).toEqual({ addr: A('127.0.0.1'), port: 5201 });
    expect(a.name(false)).toEqual({ addr: A('127.0.0.1'), port: 5201 });
    expect(a.name(true)).toEqual({ addr: A('127.0.0.1'), port: cport });
    expect(l.name(false)).toEqual({ addr: A('::'), port: 5201 });
    expect(l.name(true)).toBeNull();
    c.send(Uint8Array.of(1, 2, 3));
    expect(a.recv()).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('completes a connect by address before the accept, as TCP does; what was sent (and a SHUT_WR) waits for the accept', () => {
    const { drv } = rig();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.bind(A('127.0.0.1'), 6000);
    l.listenBound();
    const c = drv.socket({ txSize: 4096, rxSize: 4096 });
    c.connectAddr(A('127.0.0.1'), 6000); // answered without an accept
    expect(c.name(true)).toEqual({ addr: A('127.0.0.1'), port: 6000 });
    c.send(Uint8Array.of(5, 6));
    c.shutdown(1);
    drv.waitUntil(() => l.pendingConnections > 0, 'the connection');
    const a = l.accept({ txSize: 4096, rxSize: 4096 });
    expect(a.recv()).toEqual(Uint8Array.of(5, 6));
    drv.waitUntil(() => a.peerShutdown, 'PEER_SHUTDOWN');
    a.send(Uint8Array.of(1));
    expect(c.recv()).toEqual(Uint8Array.of(1));
  });

  it('fails a connection that was never accepted when its listener closes, and forgets one whose connector closed', () => {
    const { drv } = rig();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.bind(A('127.0.0.1'), 6001);
    l.listenBound();
    const gone = drv.socket({ txSize: 4096, rxSize: 4096 });
    gone.connectAddr(A('127.0.0.1'), 6001);
    gone.send(Uint8Array.of(1));
    gone.close();
    const c = drv.socket({ txSize: 4096, rxSize: 4096 });
    c.connectAddr(A('127.0.0.1'), 6001);
    const a = l.accept({ txSize: 4096, rxSize: 4096 }); // the first one left the backlog
    c.send(Uint8Array.of(2));
    expect(a.recv()).toEqual(Uint8Array.of(2));
    const d = drv.socket({ txSize: 4096, rxSize: 4096 });
    d.connectAddr(A('127.0.0.1'), 6001);
    l.close();
    drv.waitUntil(() => d.error !== null, 'the reset');
    expect(d.error).toBe('NOT_CONNECTED');
  });

  it('keeps two listeners on one port apart by address', () => {
    const { drv } = rig();
    const ls = ['10.77.0.1', '10.77.0.2'].map((ip) => {
      const l = drv.socket({ txSize: 4096, rxSize: 4096 });
      l.bind(A(ip), 80);
      l.listenBound();
      return l;
    });
    for (const [i, ip] of ['10.77.0.2', '10.77.0.1'].entries()) {
      const c = drv.socket({ txSize: 4096, rxSize: 4096 });
      const wait = c.connectAddrStart(A(ip), 80);
      const l = ls[1 - i]!;
      drv.waitUntil(() => l.pendingConnections > 0, 'the connection');
      const a = l.accept({ txSize: 4096, rxSize: 4096 });
      wait();
      expect(a.name(false)?.addr).toEqual(A(ip));
      // An unbound connector got an ephemeral port on the wildcard.
      expect(c.name(false)?.port).toBeGreaterThanOrEqual(EPHEMERAL_LO);
    }
    const b = drv.socket({ txSize: 4096, rxSize: 4096 });
    expect(errno(() => b.bind(A('10.77.0.1'), 80))).toBe('EADDRINUSE');
  });

  it('refuses a connect to an address nobody listens on, or to a node that does not exist', () => {
    const { drv } = rig();
    const c = drv.socket({ txSize: 4096, rxSize: 4096 });
    expect(errno(() => c.connectAddr(A('127.0.0.1'), 9))).toBe('ECONNREFUSED');
    expect(errno(() => c.connectAddr(A('10.77.5.1'), 9))).toBe('ENETUNREACH');
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(9); // a port-only listener is not an address listener
    expect(errno(() => c.connectAddr(A('127.0.0.1'), 9))).toBe('ECONNREFUSED');
    const bl = drv.socket({ txSize: 4096, rxSize: 4096 });
    bl.bind(A('127.0.0.1'), 9);
    expect(errno(() => bl.listen(9))).toBe('EINVAL'); // a bound socket listens by address
    bl.listenBound();
    l.close(); // closing the port-only listener leaves the address listener on the same port
    const wait = c.connectAddrStart(A('127.0.0.1'), 9);
    drv.waitUntil(() => bl.pendingConnections > 0, 'the connection');
    bl.accept({ txSize: 4096, rxSize: 4096 });
    wait();
  });

  it('frees the name at close, so the port can be bound again', () => {
    const { drv } = rig();
    const a = drv.socket({ txSize: 4096, rxSize: 4096 });
    a.bind(A('127.0.0.1'), 7777);
    a.close();
    const b = drv.socket({ txSize: 4096, rxSize: 4096 });
    expect(b.bind(A('127.0.0.1'), 7777)).toBe(7777);
  });
});

describe('device: half-close (SHUTDOWN)', () => {
  it('SHUT_WR: the peer gets what was sent, then EOF, and can still send back', () => {
    const { drv } = rig();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(7100);
    const [c, a] = drv.connectPair(l, { txSize: 4096, rxSize: 4096 });
    c.send(Uint8Array.of(9, 9));
    c.shutdown(1);
    expect(a.recv()).toEqual(Uint8Array.of(9, 9));
    drv.waitUntil(() => a.peerShutdown, 'PEER_SHUTDOWN');
    expect(a.peerClosed).toBe(false);
    a.send(Uint8Array.of(7));
    expect(c.recv()).toEqual(Uint8Array.of(7));
    c.shutdown(1); // again: no news
    expect(errno(() => l.shutdown(1))).toBe('ENOTCONN');
    expect(errno(() => c.shutdown(3))).toBe('EINVAL');
  });

  it('a send after SHUT_WR fails the socket (the driver refuses it first: EPIPE)', () => {
    const { drv } = rig();
    const l = drv.socket({ txSize: 4096, rxSize: 4096 });
    l.listen(7101);
    const [c] = drv.connectPair(l, { txSize: 4096, rxSize: 4096 });
    c.shutdown(1);
    c.trySend(Uint8Array.of(1));
    drv.waitUntil(() => c.error !== null, 'the socket error');
    expect(c.error).toBe('NOT_CONNECTED');
  });
});
