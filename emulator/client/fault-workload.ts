/**
 * The stress workload under faults: connected pairs, random sizes, each
 * message stamped with its pair, sequence number and checksum (stress.ts),
 * and an account of every message sent: delivered once, or failed and
 * reported to its sender or receiver, or lost.
 *
 * Reported failures are the ones the driver surfaces: a message the device
 * refused (EBADMSG at its place in the receiver's stream), or a pair whose
 * socket failed (SOCK_ERROR: EPROTO; the device reset or vanished:
 * ECONNRESET / ENODEV), whose undelivered messages are all reported failed.
 * A message of a pair that kept working which never arrived is lost.
 */
import { SgiovError, type SgiovSocket, type SgiovSocketDriver } from './sockets.js';
import { checksum, makeMessage, rng, type StressOptions } from './stress.js';

/** The stress workload's options (stress.ts), and: */
export interface FaultStressOptions extends Omit<StressOptions, 'progress'> {
  /** Give up on the last messages after this long (wall time). */
  deadlineMs?: number;
  /** Injections so far (for the time to recover). */
  injections?: () => number;
  /** The clock of the time to recover, in ms (default wall time; the in-memory bus passes device time). */
  clock?: () => number;
  /** Pair i belongs to tenant i % tenants (default 1: all tenant 0). */
  tenants?: number;
  /** Pair i's pipes run chainFor(i) (default none: executor Z). */
  chainFor?: (pair: number) => number;
}

export interface FaultStressReport {
  pairs: number;
  sent: number;
  delivered: number;
  /** Failed and reported: refused messages (EBADMSG) and the undelivered messages of failed pairs. */
  failed: number;
  lost: number;
  duplicated: number;
  /** Delivered with a wrong checksum or pair: must be 0 (corruption is detected, not delivered). */
  corrupted: number;
  /** Delivered before one with a lower sequence number of the same pair. */
  reordered: number;
  /** Pairs that failed (a socket error, the device reset or gone). */
  pairsFailed: number;
  /** Why the device was lost, if it was. */
  deviceLost: string | null;
  /** From the first injection to the next message delivered or failure reported (ms), or null (no injection, or nothing after it). */
  recoverMs: number | null;
  /** When the first injection was seen (on the clock), or null. */
  injectedAt: number | null;
  wallMs: number;
}

interface Pair {
  c: SgiovSocket;
  s: SgiovSocket;
  sent: number;
  seen: Set<number>;
  maxSeq: number;
  refused: number;
  dead: boolean;
}

const FATAL = new Set(['EPROTO', 'ECONNRESET', 'ENODEV', 'EPIPE', 'ETIMEDOUT']);

export function runFaultStress(drv: SgiovSocketDriver, o: FaultStressOptions): FaultStressReport {
  const t0 = Date.now();
  const rand = rng(o.seed ?? 1);
  const r: FaultStressReport = {
    pairs: 0,
    sent: 0,
    delivered: 0,
    failed: 0,
    lost: 0,
    duplicated: 0,
    corrupted: 0,
    reordered: 0,
    pairsFailed: 0,
    deviceLost: null,
    recoverMs: null,
    injectedAt: null,
    wallMs: 0,
  };
  const clock = o.clock ?? Date.now;
  let firstInjection: number | null = null;
  const progress = (): void => {
    if (r.recoverMs === null && firstInjection !== null) r.recoverMs = clock() - firstInjection;
  };
  const watch = (): void => {
    if (firstInjection === null && (o.injections?.() ?? 0) > 0) firstInjection = clock();
  };

  // Setup under faults too: a pair that cannot be opened is not used.
  const pairs: Pair[] = [];
  let listener: SgiovSocket | null = null;
  try {
    listener = drv.socket({ txSize: 4096, rxSize: 4096 });
    listener.listen(o.port ?? 9000);
    for (let i = 0; i < Math.floor(o.sockets / 2) && !drv.deviceLost; i++) {
      try {
        const [c, s] = drv.connectPair(listener, {
          txSize: o.ringSize,
          rxSize: o.ringSize,
          tenant: i % (o.tenants ?? 1),
          chain: o.chainFor?.(i) ?? 0,
        });
        pairs.push({ c, s, sent: 0, seen: new Set(), maxSeq: -1, refused: 0, dead: false });
      } catch (e) {
        if (!(e instanceof SgiovError)) throw e;
      }
    }
  } catch (e) {
    if (!(e instanceof SgiovError)) throw e;
  }
  r.pairs = pairs.length;
  const maxSize = Math.min(o.maxSize, o.ringSize);
  const kill = (p: Pair): void => {
    if (!p.dead) {
      p.dead = true;
      progress();
    }
  };

  const receive = (): void => {
    for (let i = 0; i < pairs.length; i++) {
      const p = pairs[i]!;
      for (;;) {
        let m: Uint8Array | null;
        try {
          m = p.s.tryRecv();
        } catch (e) {
          if (!(e instanceof SgiovError)) throw e;
          if (e.errno === 'EBADMSG') {
            p.refused++;
            progress();
            continue;
          }
          kill(p);
          break;
        }
        if (!m) break;
        const d = new DataView(m.buffer, m.byteOffset, m.byteLength);
        if (m.length < 12 || d.getUint32(0, true) !== i || d.getUint32(8, true) !== checksum(m)) {
          r.corrupted++;
          continue;
        }
        const seq = d.getUint32(4, true);
        if (p.seen.has(seq)) {
          r.duplicated++;
          continue;
        }
        p.seen.add(seq);
        if (seq < p.maxSeq) r.reordered++;
        p.maxSeq = Math.max(p.maxSeq, seq);
        progress();
      }
    }
  };
  const settled = (p: Pair): boolean => p.dead || p.seen.size + p.refused >= p.sent;
  const deadline = t0 + (o.deadlineMs ?? 20_000);
  let nextHealth = Date.now() + 50;
  const health = (): void => {
    watch();
    if (Date.now() < nextHealth) return;
    nextHealth = Date.now() + 50;
    if (drv.checkHealth()) for (const p of pairs) kill(p);
  };

  while (Date.now() < deadline) {
    let open = false;
    for (let i = 0; i < pairs.length; i++) {
      const p = pairs[i]!;
      if (p.dead || p.sent >= o.messagesPerPair) continue;
      open = true;
      const size = o.minSize + Math.floor(rand() * (maxSize - o.minSize + 1));
      try {
        if (p.c.trySend(makeMessage(i, p.sent, size, rand))) p.sent++;
      } catch (e) {
        if (!(e instanceof SgiovError) || !FATAL.has(e.errno)) throw e;
        kill(p);
      }
    }
    receive();
    health();
    if (!open) break;
    drv.dev.wait();
  }
  // The last messages: wait for each pair to settle (delivered or reported), under the same deadline.
  while (Date.now() < deadline && !pairs.every(settled)) {
    drv.process();
    receive();
    health();
    drv.dev.wait();
  }
  // Late duplicates would show up now.
  for (let i = 0; i < 100; i++) {
    drv.dev.wait();
    receive();
  }

  for (const p of pairs) {
    r.sent += p.sent;
    r.delivered += p.seen.size;
    r.failed += p.refused;
    const missing = p.sent - p.seen.size - p.refused;
    if (p.dead) {
      r.pairsFailed++;
      r.failed += Math.max(0, missing);
    } else r.lost += Math.max(0, missing);
  }
  r.deviceLost = drv.deviceLost;
  r.injectedAt = firstInjection;
  // Close what still works; a failed device fails these too (reported, not counted).
  if (!drv.deviceLost) {
    for (const p of pairs)
      for (const s of [p.c, p.s]) {
        try {
          s.close();
        } catch {
          /* failed socket */
        }
      }
    try {
      listener?.close();
    } catch {
      /* failed */
    }
  }
  r.wallMs = Date.now() - t0;
  return r;
}
