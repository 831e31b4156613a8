/**
 * Data-plane benchmarks through the vfio-user client (no VM): stream
 * throughput over one pipe against a memcpy baseline measured in the same
 * run, 4 KiB ping-pong latency, the same with many sockets open, the
 * Cross-FIFO modes side by side, and the emulator's memory per idle socket.
 * Used by `npm run bench` (bench.ts); also runnable alone:
 *   node dist/qemu/bench/dataplane.js [--quick]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONSTANTS } from '../../emulator/abi/abi.js';
import { EmulatorProcess, RunDir } from '../vm.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { chainCode, SgiovSocketDriver, type SgiovSocket } from '../../emulator/client/sockets.js';
import { createCipheriv, randomBytes } from 'node:crypto';
import { openPairs } from '../../emulator/client/stress.js';
import { quantiles, stats } from './stats.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';

export interface Stat {
  median: number;
  p99: number;
  n: number;
  /** The distribution, enough to draw its CDF: quantile -> value (QUANTILES, min 0 and max 1). */
  quantiles: Record<string, number>;
}

/** Median, p99 and the quantiles of samples in any unit (the same quantile rule as bench-stats). */
export function stat(samples: number[]): Stat {
  const st = stats(samples);
  return { median: st.medianNs, p99: st.p99Ns, n: st.n, quantiles: quantiles(samples) };
}

const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;

export interface DataPlaneBench {
  stream: {
    msgBytes: number;
    ringBytes: number;
    totalBytes: number;
    copyGBps: number;
    zeroCopyGBps: number;
    memcpyGBps: number;
    memcpyHotGBps: number;
    copyRatio: number;
    zeroCopyRatio: number;
  };
  pingPong: { mode: string; rttUs: Stat }[];
  scaling: { sockets: number; rttUs: Stat }[];
  scalingRatio: number;
  memory: { sockets: number; rssBeforeMiB: number; rssAfterMiB: number; bytesPerSocket: number };
  crypto: { msgBytes: number; totalBytes: number; engineGBps: number; nodeCryptoGBps: number; ratio: number };
}

/** node:crypto sealing the same 128 KiB buffers directly: the crypto engine's baseline. */
function nodeCryptoGBps(msgBytes: number, totalBytes: number): number {
  const key = randomBytes(32);
  const buf = new Uint8Array(msgBytes).fill(3);
  const once = (): void => {
    const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
    c.update(buf);
    c.final();
    c.getAuthTag();
  };
  for (let i = 0; i < 50; i++) once();
  const t0 = nowUs();
  for (let done = 0; done < totalBytes; done += msgBytes) once();
  return totalBytes / ((nowUs() - t0) * 1000);
}

/** An emulator process and one client with the socket driver on it. */
class Session {
  readonly dir = new RunDir('sgiov-bench-');
  emu!: EmulatorProcess;
  client!: VfioUserClient;
  drv!: SgiovSocketDriver;

  async open(memBytes: number, mode: 'hybrid' | 'poll' | 'kick' = 'hybrid'): Promise<this> {
    this.emu = new EmulatorProcess({
      socketPath: this.dir.file('s.sock'),
      logPath: this.dir.file('e.log'),
      logLevel: 'warn',
    });
    await this.emu.ready();
    this.client = VfioUserClient.connect(this.dir.file('s.sock'), { memBytes });
    new SgiovDriver(this.client).bringUp();
    this.drv = new SgiovSocketDriver(clientAccess(this.client, 1 << 20), {
      d2hSlots: 65536,
      mode,
      timeoutMs: 60_000,
    });
    return this;
  }

  rssBytes(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.emu.pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  }

  async close(): Promise<void> {
    this.client?.close();
    await this.emu?.stop();
    this.dir.remove();
  }
}

function pingPong(drv: SgiovSocketDriver, a: SgiovSocket, b: SgiovSocket, rounds: number, size = 4096): Stat {
  const m = new Uint8Array(size).fill(0x5a);
  const rtt: number[] = [];
  const warm = Math.max(1000, rounds);
  for (let i = 0; i < rounds + warm; i++) {
    const t0 = nowUs();
    a.send(m);
    drv.waitUntil(() => b.tryRecvInPlace() >= 0, 'ping');
    b.send(m);
    drv.waitUntil(() => a.tryRecvInPlace() >= 0, 'pong');
    if (i >= warm) rtt.push(nowUs() - t0); // JIT and caches warm up first
  }
  return stat(rtt);
}

/**
 * The baseline: one core copying `msgBytes` at a time from one ring-sized
 * buffer into another, walking through them as the pipe walks its rings
 * (so the working set is the same); and, for reference, the same copy with
 * both buffers hot in cache.
 */
function memcpyGBps(msgBytes: number, ringBytes: number, totalBytes: number): { rings: number; hot: number } {
  const src = new Uint8Array(ringBytes).fill(1);
  const dst = new Uint8Array(ringBytes);
  const walk = (): number => {
    const t0 = nowUs();
    for (let done = 0, p = 0; done < totalBytes; done += msgBytes, p = (p + msgBytes) % ringBytes)
      dst.set(src.subarray(p, p + msgBytes), p);
    return totalBytes / ((nowUs() - t0) * 1000);
  };
  walk();
  const rings = walk();
  const a = src.subarray(0, msgBytes);
  const b = dst.subarray(0, msgBytes);
  for (let i = 0; i < 200; i++) b.set(a);
  const t0 = nowUs();
  for (let done = 0; done < totalBytes; done += msgBytes) b.set(a);
  return { rings, hot: totalBytes / ((nowUs() - t0) * 1000) };
}

/** One pipe (executor F): the sender keeps the tx ring full, the receiver drains it. */
function stream(
  drv: SgiovSocketDriver,
  tx: SgiovSocket,
  rx: SgiovSocket,
  msgBytes: number,
  totalBytes: number,
  zeroCopy: boolean,
): number {
  const m = new Uint8Array(msgBytes).fill(0xa5);
  let sent = 0;
  let got = 0;
  const t0 = nowUs();
  while (got < totalBytes) {
    while (sent < totalBytes) {
      const ok = zeroCopy ? tx.trySendPrepared(msgBytes) : tx.trySend(m);
      if (!ok) break;
      sent += msgBytes;
    }
    for (;;) {
      if (zeroCopy) {
        const n = rx.tryRecvInPlace();
        if (n < 0) break;
        got += n;
      } else {
        const r = rx.tryRecv();
        if (!r) break;
        got += r.length;
      }
    }
  }
  return totalBytes / ((nowUs() - t0) * 1000);
}

export async function benchDataPlane(
  opts: { quick?: boolean; log?: (s: string) => void } = {},
): Promise<DataPlaneBench> {
  const log = opts.log ?? (() => {});
  const quick = opts.quick ?? false;
  const rounds = quick ? 500 : 5000;
  const streamBytes = (quick ? 256 : 2048) * 2 ** 20;
  const msgBytes = 128 << 10;

  // Stream and modes: one emulator per mode, fresh.
  const pingPongs: { mode: string; rttUs: Stat }[] = [];
  let streamRes: DataPlaneBench['stream'] | null = null;
  let cryptoRes: DataPlaneBench['crypto'] | null = null;
  for (const mode of ['hybrid', 'poll', 'kick'] as const) {
    const s = await new Session().open(64 << 20, mode);
    try {
      const ringBytes = 4 << 20;
      const { pairs } = openPairs(s.drv, 2, ringBytes, 9100);
      const [a, b] = pairs[0]!;
      if (mode === 'hybrid') {
        log('stream: 128 KiB messages over one pipe');
        stream(s.drv, a, b, msgBytes, streamBytes / 4, true); // warm up
        const copy = stream(s.drv, a, b, msgBytes, streamBytes / 4, false);
        const zc = stream(s.drv, a, b, msgBytes, streamBytes, true);
        const base = memcpyGBps(msgBytes, ringBytes, streamBytes);
        streamRes = {
          msgBytes,
          ringBytes,
          totalBytes: streamBytes,
          copyGBps: copy,
          zeroCopyGBps: zc,
          memcpyGBps: base.rings,
          memcpyHotGBps: base.hot,
          copyRatio: copy / base.rings,
          zeroCopyRatio: zc / base.rings,
        };
      }
      if (mode === 'hybrid') {
        log('crypto engine: AES-256-GCM over a loopback pipe (executor L), 128 KiB messages');
        const enc = s.drv.socket({ txSize: ringBytes, rxSize: ringBytes });
        enc.connect(CONSTANTS.PORT_LOOPBACK, chainCode('ENCRYPT'));
        const total = streamBytes / 4;
        stream(s.drv, enc, enc, msgBytes, total / 4, true); // warm up
        // Engine and baseline in turns, best of three each: a busy moment of
        // the machine then lowers one round, not one side of the ratio.
        let engine = 0,
          base = 0;
        for (let r = 0; r < 3; r++) {
          engine = Math.max(engine, stream(s.drv, enc, enc, msgBytes, total / 2, true));
          base = Math.max(base, nodeCryptoGBps(msgBytes, total / 2));
        }
        cryptoRes = {
          msgBytes,
          totalBytes: total,
          engineGBps: engine,
          nodeCryptoGBps: base,
          ratio: engine / base,
        };
      }
      log(`ping-pong 4 KiB, H2D mode ${mode}`);
      pingPongs.push({ mode, rttUs: pingPong(s.drv, a, b, rounds) });
    } finally {
      await s.close();
    }
  }

  // Scaling and memory: one emulator, sockets added in steps.
  const steps = [8, 4096, 65536];
  const ring = 4096;
  const s = await new Session().open(65536 * 2 * ring + (64 << 20));
  const scaling: { sockets: number; rttUs: Stat }[] = [];
  let memory: DataPlaneBench['memory'];
  try {
    const { pairs } = openPairs(s.drv, 2, 65536, 9200);
    const [a, b] = pairs[0]!;
    const idle: SgiovSocket[] = [];
    const rssBefore = s.rssBytes();
    for (const n of steps) {
      while (idle.length + 3 < n) {
        const x = s.drv.socket({ txSize: ring, rxSize: ring });
        x.connect(CONSTANTS.PORT_LOOPBACK);
        idle.push(x);
      }
      log(`ping-pong 4 KiB with ${n} sockets open`);
      scaling.push({ sockets: n, rttUs: pingPong(s.drv, a, b, rounds) });
    }
    const rssAfter = s.rssBytes();
    memory = {
      sockets: idle.length,
      rssBeforeMiB: rssBefore / 2 ** 20,
      rssAfterMiB: rssAfter / 2 ** 20,
      bytesPerSocket: (rssAfter - rssBefore) / idle.length,
    };
  } finally {
    await s.close();
  }
  const first = scaling[0]!.rttUs.median;
  const last = scaling[scaling.length - 1]!.rttUs.median;
  return {
    stream: streamRes!,
    pingPong: pingPongs,
    scaling,
    scalingRatio: last / first,
    memory,
    crypto: cryptoRes!,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchDataPlane({
    quick: process.argv.includes('--quick'),
    log: (m) => process.stderr.write(m + '\n'),
  });
  process.stdout.write(JSON.stringify(r, null, 2) + '\n');
}
