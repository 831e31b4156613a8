/**
 * A stress workload over the socket driver: N sockets in connected pairs,
 * random message sizes, each message stamped with a sequence number and a
 * checksum; counts what was lost, duplicated, reordered or corrupted.
 */
import type { SgiovSocket, SgiovSocketDriver } from './sockets.js';

export interface StressOptions {
  /** Sockets in all (pairs: sockets / 2). */
  sockets: number;
  /** Messages each pair's client sends to its server. */
  messagesPerPair: number;
  minSize: number;
  maxSize: number;
  ringSize: number;
  port?: number;
  seed?: number;
  /** Called every `progressEvery` (default 10,000) messages received, with the count so far. */
  progress?: (received: number) => void;
  progressEvery?: number;
}

export interface StressReport {
  pairs: number;
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  bytes: number;
}

/** xorshift32: the workload is reproducible from its seed. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

/** FNV-1a over the payload after the 12-byte stamp. */
export function checksum(b: Uint8Array, from = 12): number {
  let h = 0x811c9dc5;
  for (let i = from; i < b.length; i++) {
    h ^= b[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A message: pair id, sequence number, checksum, then pseudo-random bytes. */
export function makeMessage(pair: number, seq: number, size: number, rand: () => number): Uint8Array {
  const m = new Uint8Array(Math.max(12, size));
  for (let i = 12; i < m.length; i++) m[i] = (rand() * 256) | 0;
  const d = new DataView(m.buffer);
  d.setUint32(0, pair, true);
  d.setUint32(4, seq, true);
  d.setUint32(8, checksum(m), true);
  return m;
}

/** Opens `sockets` sockets as connected pairs through one listener. */
export function openPairs(
  drv: SgiovSocketDriver,
  sockets: number,
  ringSize: number,
  port = 9000,
): { listener: SgiovSocket; pairs: [SgiovSocket, SgiovSocket][] } {
  const listener = drv.socket({ txSize: 4096, rxSize: 4096 });
  listener.listen(port);
  const pairs: [SgiovSocket, SgiovSocket][] = [];
  for (let i = 0; i < Math.floor(sockets / 2); i++)
    pairs.push(drv.connectPair(listener, { txSize: ringSize, rxSize: ringSize }));
  return { listener, pairs };
}

export function runStress(drv: SgiovSocketDriver, o: StressOptions): StressReport {
  const { listener, pairs } = openPairs(drv, o.sockets, o.ringSize, o.port);
  const r = stressPairs(
    pairs,
    o,
    (pred, what) => drv.waitUntil(pred, what),
    () => drv.dev.wait(),
  );
  for (const [c, s] of pairs) {
    c.close();
    s.close();
  }
  listener.close();
  return r;
}

/** Pairs whose client is on `clientDrv`'s device and server on `serverDrv`'s, on node `node` (cross-node pipes). */
export function openCrossPairs(
  clientDrv: SgiovSocketDriver,
  serverDrv: SgiovSocketDriver,
  node: number,
  sockets: number,
  ringSize: number,
  port = 9000,
): { listener: SgiovSocket; pairs: [SgiovSocket, SgiovSocket][] } {
  const listener = serverDrv.socket({ txSize: 4096, rxSize: 4096 });
  listener.listen(port);
  const pairs: [SgiovSocket, SgiovSocket][] = [];
  for (let i = 0; i < Math.floor(sockets / 2); i++) {
    const c = clientDrv.socket({ txSize: ringSize, rxSize: ringSize });
    const done = c.connectStart(port, 0, node);
    serverDrv.waitUntil(() => listener.pendingConnections > 0, 'the remote connection request');
    const s = listener.accept({ txSize: ringSize, rxSize: ringSize });
    done();
    pairs.push([c, s]);
  }
  return { listener, pairs };
}

export interface PairsReport extends StressReport {
  /** Pairs whose client or server socket failed with an error (reported to the application). */
  failedPairs: number;
  /** Messages not received on failed pairs: sent, then reported failed through the socket error. */
  failedReported: number;
}

/**
 * The workload over pairs already open (on one device or across two):
 * `wait(pred, what)` waits for the devices, `tick()` lets them run once.
 * A pair whose socket fails stops; its undelivered messages count as
 * failed-and-reported (`lost` counts only those on pairs that did not fail).
 */
export function stressPairs(
  pairs: [SgiovSocket, SgiovSocket][],
  o: Omit<StressOptions, 'sockets' | 'port'>,
  wait: (pred: () => boolean, what: string) => void,
  tick: () => void,
): PairsReport {
  const rand = rng(o.seed ?? 1);
  const maxSize = Math.min(o.maxSize, o.ringSize);
  const r: PairsReport = {
    pairs: pairs.length,
    sent: 0,
    received: 0,
    lost: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    bytes: 0,
    failedPairs: 0,
    failedReported: 0,
  };
  const nextSeq = new Uint32Array(pairs.length);
  const expect = new Uint32Array(pairs.length);
  const seen = pairs.map(() => new Set<number>());
  const got = new Uint32Array(pairs.length);
  const failed = (p: number): boolean => pairs[p]![0].error !== null || pairs[p]![1].error !== null;
  let lastProgress = 0;
  const receive = (): void => {
    for (let p = 0; p < pairs.length; p++) {
      const s = pairs[p]![1];
      // A socket may fail while it is read (its link failed): then it has nothing more to give.
      const next = (): Uint8Array | null => {
        if (s.error) return null;
        try {
          return s.tryRecv();
        } catch (e) {
          if (s.error) return null;
          throw e;
        }
      };
      for (let m = next(); m; m = next()) {
        r.received++;
        got[p]!++;
        r.bytes += m.length;
        const d = new DataView(m.buffer, m.byteOffset, m.byteLength);
        const pair = m.length >= 12 ? d.getUint32(0, true) : -1;
        const seq = m.length >= 12 ? d.getUint32(4, true) : -1;
        if (m.length < 12 || pair !== p || d.getUint32(8, true) !== checksum(m)) {
          r.corrupted++;
          continue;
        }
        if (seen[p]!.has(seq)) {
          r.duplicated++;
          continue;
        }
        seen[p]!.add(seq);
        if (seq !== expect[p]) r.reordered++;
        expect[p] = seq + 1;
      }
    }
    if (o.progress && r.received - lastProgress >= (o.progressEvery ?? 10_000)) {
      lastProgress = r.received;
      o.progress(r.received);
    }
  };
  const live = (p: number): boolean => nextSeq[p]! < o.messagesPerPair && !failed(p);
  for (;;) {
    let any = false;
    for (let p = 0; p < pairs.length; p++) {
      if (!live(p)) continue;
      any = true;
      const size = o.minSize + Math.floor(rand() * (maxSize - o.minSize + 1));
      const m = makeMessage(p, nextSeq[p]!, size, rand);
      try {
        if (pairs[p]![0].trySend(m)) {
          nextSeq[p]!++;
          r.sent++;
        }
      } catch {
        /* the socket failed: counted below */
      }
    }
    receive();
    if (!any) break;
  }
  const settled = (): boolean => {
    receive();
    return pairs.every((_, p) => failed(p) || got[p]! >= nextSeq[p]!);
  };
  wait(settled, 'the last messages');
  // Late duplicates would show up now.
  for (let i = 0; i < 100; i++) {
    tick();
    receive();
  }
  for (let p = 0; p < pairs.length; p++) {
    const missing = nextSeq[p]! - seen[p]!.size;
    if (failed(p)) {
      r.failedPairs++;
      r.failedReported += missing;
    } else r.lost += missing;
  }
  return r;
}
