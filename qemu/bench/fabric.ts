/**
 * Cross-node benchmarks: two emulators in two network namespaces joined by
 * a veth pair (node a and node b), a VM-less client on each (this process),
 * and beside them, in the same run, plain TCP between the same namespaces:
 *   - 128 KiB stream over one cross-node pipe vs a TCP stream (one
 *     connection, 128 KiB writes), as a throughput ratio;
 *   - 4 KiB ping-pong over the pipe vs a TCP ping-pong, as a ratio of
 *     median round trips.
 * Both pipe measures run twice: on an authenticated fabric and on a TLS 1.3
 * one. The TCP baseline runs as two node processes, one in each namespace,
 * the same runtime as the emulators. Needs root (namespaces). Used by
 * `npm run bench`; also alone: node dist/qemu/bench/fabric.js
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NetnsPair } from '../netns.js';
import { EmulatorProcess, RunDir, stopProcess } from '../vm.js';
import { stat, type Stat } from './dataplane.js';
import { benchRow, rowsTable, type BenchRow } from './rows.js';
import { FabricCredentials } from '../fabric-credentials.js';
import { clientAccess } from '../../emulator/client/remote-access.js';
import { SgiovDriver } from '../../emulator/client/sgiov-driver.js';
import { SgiovSocketDriver, type SgiovSocket } from '../../emulator/client/sockets.js';
import { openCrossPairs } from '../../emulator/client/stress.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';

export interface FabricBench {
  stream: {
    msgBytes: number;
    seconds: number;
    pipeGBps: number;
    tlsGBps: number;
    tcpGBps: number;
    ratio: number;
  };
  pingPong: { msgBytes: number; pipeUs: Stat; tlsUs: Stat; tcpUs: Stat; ratio: number };
  rows: BenchRow[];
}

const nowUs = (): number => Number(process.hrtime.bigint()) / 1000;
const napCell = new Int32Array(new SharedArrayBuffer(4));
/** Gives the CPU away for about `ms` (the kernel's timer slack decides the rest). */
const nap = (ms = Number(process.env.SGIOV_BENCH_NAP_MS ?? 0.02)): void => {
  if (ms > 0) Atomics.wait(napCell, 0, 0, ms);
};
const FABRIC_PORT = 7413;
const TCP_PORT = 7414;

/**
 * The TCP baseline's two ends, as one script run by node in each namespace:
 * `server PORT` (discards stream bytes; echoes ping-pong messages) and
 * `client HOST PORT MODE ...` (prints one JSON line).
 */
const TCP_SCRIPT = `
const net = require('node:net');
const [role, ...a] = process.argv.slice(1);
const now = () => Number(process.hrtime.bigint()) / 1000;
if (role === 'server') {
  net.createServer((s) => {
    s.setNoDelay(true);
    let mode = null, size = 0, pend = 0;
    s.on('data', (d) => {
      if (mode === null) { mode = d[0]; size = d.readUInt32LE(1); d = d.subarray(5); }
      if (mode === 1) return; // stream: discard
      pend += d.length;
      while (pend >= size) { pend -= size; s.write(Buffer.alloc(size, 1)); }
    });
    s.on('error', () => {});
  }).listen(Number(a[0]), a[1], () => process.stdout.write('ready\\n'));
} else {
  const [host, port, mode, size, amount] = [a[0], Number(a[1]), a[2], Number(a[3]), Number(a[4])];
  const s = net.connect(port, host, () => {
    s.setNoDelay(true);
    const hdr = Buffer.alloc(5); hdr[0] = mode === 'stream' ? 1 : 2; hdr.writeUInt32LE(size, 1); s.write(hdr);
    if (mode === 'stream') {
      const buf = Buffer.alloc(size, 7); const end = now() + amount * 1e6; const t0 = now(); let sent = 0;
      const pump = () => { while (now() < end) { sent += size; if (!s.write(buf)) return s.once('drain', pump); } s.end(() => { process.stdout.write(JSON.stringify({ bytes: sent, us: now() - t0 }) + '\\n'); process.exit(0); }); };
      pump();
    } else {
      const rtt = []; const m = Buffer.alloc(size, 5); let got = 0, t0 = 0, i = 0;
      s.on('data', (d) => { got += d.length; if (got < size) return; got -= size; if (i >= 1000) rtt.push(now() - t0); if (++i >= amount + 1000) { process.stdout.write(JSON.stringify({ rtt }) + '\\n'); process.exit(0); } t0 = now(); s.write(m); });
      t0 = now(); s.write(m);
    }
  });
}
`;

function inNs(ns: string, args: string[]): ReturnType<typeof spawn> {
  return spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', TCP_SCRIPT, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function firstLine(p: ReturnType<typeof spawn>, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('the TCP baseline did not answer')), timeoutMs);
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(buf.slice(0, nl));
      }
    });
    p.once('exit', (code) => {
      if (!buf.includes('\n')) {
        clearTimeout(t);
        reject(new Error(`the TCP baseline exited with ${code}`));
      }
    });
  });
}

async function tcpBaseline(
  net: NetnsPair,
  streamSeconds: number,
  rounds: number,
): Promise<{ streamGBps: number; rttUs: Stat }> {
  const server = inNs(net.nsB, ['server', String(TCP_PORT), net.ipB]);
  try {
    await firstLine(server, 10_000);
    const st = inNs(net.nsA, [
      'client',
      net.ipB,
      String(TCP_PORT),
      'stream',
      String(128 << 10),
      String(streamSeconds),
    ]);
    const s = JSON.parse(await firstLine(st, (streamSeconds + 30) * 1000)) as { bytes: number; us: number };
    await stopProcess(st, 2000);
    const pp = inNs(net.nsA, ['client', net.ipB, String(TCP_PORT), 'pingpong', '4096', String(rounds)]);
    const p = JSON.parse(await firstLine(pp, 120_000)) as { rtt: number[] };
    await stopProcess(pp, 2000);
    return { streamGBps: s.bytes / (s.us * 1000), rttUs: stat(p.rtt) };
  } finally {
    await stopProcess(server, 2000);
  }
}

/** The pipe's side of the bench on one pair of emulators started with `security`'s flags per node. */
async function measurePipes(
  net: NetnsPair,
  dir: RunDir,
  security: (node: 'a' | 'b') => string[],
  tag: string,
  seconds: number,
  rounds: number,
  log: (m: string) => void,
): Promise<{ pipeGBps: number; pipeUs: Stat }> {
  const emus: EmulatorProcess[] = [];
  const clients: VfioUserClient[] = [];
  try {
    const drvs: SgiovSocketDriver[] = [];
    for (const name of ['a', 'b'] as const) {
      const emu = new EmulatorProcess({
        socketPath: dir.file(`${tag}-${name}.sock`),
        logPath: dir.file(`${tag}-${name}.log`),
        logLevel: 'warn',
        netns: net.node(name, FABRIC_PORT).netns,
        extraArgs: [...net.node(name, FABRIC_PORT).cluster, ...security(name)],
      });
      emus.push(emu);
      await emu.ready();
      const c = VfioUserClient.connect(dir.file(`${tag}-${name}.sock`), { memBytes: 64 << 20 });
      clients.push(c);
      new SgiovDriver(c).bringUp();
      const access = clientAccess(c, 1 << 20);
      // Three processes on two vCPUs: a client that spins takes a CPU the emulators need; it naps instead.
      access.wait = nap;
      drvs.push(
        new SgiovSocketDriver(access, {
          d2hSlots: 65536,
          timeoutMs: 60_000,
          irqWait: process.env.SGIOV_BENCH_IRQ !== '0',
          mode: (process.env.SGIOV_FABRIC_MODE as 'kick' | 'hybrid' | undefined) ?? 'kick',
        }),
      );
    }
    const [da, db] = drvs as [SgiovSocketDriver, SgiovSocketDriver];
    // Wait for the link: a connect fails with ENETUNREACH until it is up.
    const deadline = Date.now() + 15_000;
    let pair: [SgiovSocket, SgiovSocket] | null = null;
    for (let port = 9000; !pair; port++) {
      try {
        pair = openCrossPairs(da, db, 2, 2, 4 << 20, port).pairs[0]!;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const [tx, rx] = pair;

    log('128 KiB stream across the nodes');
    const msg = 128 << 10;
    const runStream = (us: number): number => {
      let got = 0;
      const t0 = nowUs();
      while (nowUs() - t0 < us) {
        let moved = false;
        while (tx.trySendPrepared(msg)) moved = true;
        for (let n = rx.tryRecvInPlace(); n >= 0; n = rx.tryRecvInPlace()) {
          got += n;
          moved = true;
        }
        db.process();
        da.process();
        if (!moved) nap();
      }
      const end = nowUs() + 2_000_000;
      while (tx.txFree() < tx.txSize && nowUs() < end) {
        for (let n = rx.tryRecvInPlace(); n >= 0; n = rx.tryRecvInPlace()) got += n;
        da.process();
      }
      return got / ((nowUs() - t0) * 1000);
    };
    runStream(300_000); // warm up: JIT, TCP windows
    const pipeGBps = runStream(seconds * 1e6);

    log('4 KiB ping-pong across the nodes');
    const [pa, pb] = openCrossPairs(da, db, 2, 2, 65536, 9900).pairs[0]!;
    const m = new Uint8Array(4096).fill(0x5a);
    const rtt: number[] = [];
    for (let i = 0; i < rounds + 1000; i++) {
      const t0 = nowUs();
      pa.send(m);
      db.waitUntil(() => pb.tryRecvInPlace() >= 0, 'ping');
      pb.send(m);
      da.waitUntil(() => pa.tryRecvInPlace() >= 0, 'pong');
      if (i >= 1000) rtt.push(nowUs() - t0);
    }
    return { pipeGBps, pipeUs: stat(rtt) };
  } finally {
    for (const c of clients) c.close();
    await Promise.all(emus.map((e) => e.stop()));
  }
}

/**
 * The fabric bench: the pipes on an authenticated fabric (the secret only),
 * the same on a TLS 1.3 fabric, and plain TCP between the same namespaces,
 * in one run. The rows compare each with the baseline a user would pick
 * instead: plain TCP for the pipes, and the unencrypted fabric for TLS (the
 * price of encryption).
 */
export async function benchFabric(
  opts: { quick?: boolean; log?: (m: string) => void } = {},
): Promise<FabricBench | { skipped: string }> {
  if (!NetnsPair.available()) return { skipped: 'needs root and iproute2 for the network namespaces' };
  const log = opts.log ?? (() => {});
  const seconds = opts.quick ? 1.5 : 4;
  const rounds = opts.quick ? 500 : 3000;
  const net = NetnsPair.create('bench');
  const dir = new RunDir('sgiov-benchfabric-');
  try {
    const creds = FabricCredentials.make(dir.file('fabric'), ['a', 'b']);
    const auth = await measurePipes(
      net,
      dir,
      (n) => creds.flags(n, false),
      'auth',
      seconds,
      rounds,
      (m) => log(`fabric (authenticated): ${m}`),
    );
    const tls = await measurePipes(
      net,
      dir,
      (n) => creds.flags(n, true),
      'tls',
      seconds,
      rounds,
      (m) => log(`fabric (TLS 1.3): ${m}`),
    );
    log('fabric: plain TCP between the same namespaces');
    const tcp = await tcpBaseline(net, seconds, rounds);
    const msg = 128 << 10;
    return {
      stream: {
        msgBytes: msg,
        seconds,
        pipeGBps: auth.pipeGBps,
        tlsGBps: tls.pipeGBps,
        tcpGBps: tcp.streamGBps,
        ratio: auth.pipeGBps / tcp.streamGBps,
      },
      pingPong: {
        msgBytes: 4096,
        pipeUs: auth.pipeUs,
        tlsUs: tls.pipeUs,
        tcpUs: tcp.rttUs,
        ratio: auth.pipeUs.median / tcp.rttUs.median,
      },
      rows: fabricRows(auth, tls, tcp),
    };
  } finally {
    net.remove();
    dir.remove();
  }
}

function fabricRows(
  auth: { pipeGBps: number; pipeUs: Stat },
  tls: { pipeGBps: number; pipeUs: Stat },
  tcp: { streamGBps: number; rttUs: Stat },
): BenchRow[] {
  return [
    benchRow({
      id: 'crossNode.stream.128k',
      what: '128 KiB stream over one cross-node pipe (authenticated fabric) / plain TCP between the namespaces',
      unit: 'GB/s',
      value: auth.pipeGBps,
      baseline: tcp.streamGBps,
      goal: '>= 0.8',
    }),
    benchRow({
      id: 'crossNode.pingPong.4k',
      what: '4 KiB ping-pong median RTT over one cross-node pipe (authenticated) / plain TCP',
      unit: 'us',
      value: auth.pipeUs.median,
      baseline: tcp.rttUs.median,
      goal: '<= 1.5',
    }),
    benchRow({
      id: 'crossNode.tls.stream.128k',
      what: '128 KiB stream over a TLS 1.3 fabric / the same without TLS',
      unit: 'GB/s',
      value: tls.pipeGBps,
      baseline: auth.pipeGBps,
      goal: '>= 0.5',
    }),
    benchRow({
      id: 'crossNode.tls.pingPong.4k',
      what: '4 KiB ping-pong median RTT over a TLS 1.3 fabric / the same without TLS',
      unit: 'us',
      value: tls.pipeUs.median,
      baseline: auth.pipeUs.median,
      goal: '<= 1.5',
    }),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  benchFabric({
    quick: process.argv.includes('--quick'),
    log: (m) => process.stderr.write(`bench: ${m}\n`),
  }).then(
    (r) => {
      if ('rows' in r) process.stdout.write(rowsTable(r.rows));
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    },
    (e: unknown) => {
      process.stderr.write(`bench-fabric: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
