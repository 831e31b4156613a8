/**
 * Benchmarks of the device through the vfio-user client, without a VM:
 *
 *   npm run bench            (tsc, then node dist/qemu/bench/bench.js)
 *   node dist/qemu/bench/bench.js [--reads N] [--jobs128k N] [--jobs4k N] [--no-json]
 *
 * It starts the emulator as its own process (from dist/, as the tests do),
 * connects the client, brings the device up with the user-space driver and
 * measures, in one run:
 *   1. a trapped BAR0 read (SCRATCH) round trip: median, p99;
 *   2. 128 KiB DMA copy jobs, doorbell to interrupt, as throughput and as a
 *      ratio to a plain Buffer copy of 128 KiB measured in the same run;
 *   3. the same for 4 KiB jobs, with latency median and p99.
 * It prints a table and writes the same figures as JSON to
 * bench/results/<timestamp>.json. Ratios are against baselines measured in
 * the same run, on the same machine; nothing here asserts a time.
 */
import { randomFillSync } from 'node:crypto';
import { benchDataPlane } from './dataplane.js';
import { schedulerDecisionTable } from './sched.js';
import { benchIsolation } from './isolation.js';
import { benchFabric } from './fabric.js';
import { harnessArgs } from '../harness-args.js';
import { reg } from '../../emulator/abi/abi.js';
import { EmulatorProcess, RunDir } from '../vm.js';
import { Libc } from '../../emulator/native/libc.js';
import { SgiovDriver, VEC_DMA } from '../../emulator/client/sgiov-driver.js';
import { VfioUserClient } from '../../emulator/client/vfio-user-client.js';
import { stats, type Stats } from './stats.js';
import { benchRow, rowsTable } from './rows.js';
import { drfOverTime } from './drf-time.js';
import { plotResult } from './plots.js';
import { cReferenceBarRead } from './c-reference.js';
import { gitCommit, machine, table, writeResult } from './report.js';

export { stats, type Stats } from './stats.js';

const BENCH_HELP = `npm run bench -- [options]
  The device through the VM-less client: BAR reads, DMA jobs, the data plane, the scheduler,
  isolation, cross-node pipes (authenticated and TLS; needs root for the namespaces).
  A table, rows {id, unit, value, baseline, ratio, goal, met}, bench/results/<time>.json and plots.
  --reads N      BAR0 read round trips (default 20000)
  --jobs128k N   128 KiB DMA jobs (default 500)
  --jobs4k N     4 KiB DMA jobs (default 2000)
  --quick        shorter runs of every part
  --no-json      the table only (no JSON, no plots)
  -h, --help     this text
  Compare two results: sgiov bench compare A.json B.json`;

const now = (): bigint => process.hrtime.bigint();

/** Times `fn` `n` times, one sample each (ns). */
function sample(n: number, fn: (i: number) => void): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = now();
    fn(i);
    out[i] = Number(now() - t0);
  }
  return out;
}

/** Times `batch` calls of `fn` per sample and records the time per call (for operations near the timer's resolution). */
function sampleBatched(n: number, batch: number, fn: () => void): number[] {
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const t0 = now();
    for (let j = 0; j < batch; j++) fn();
    out[i] = Number(now() - t0) / batch;
  }
  return out;
}

/** GB/s (1e9 bytes per second) moving `bytes` in `ns`. */
const gbps = (bytes: number, ns: number): number => bytes / ns;

interface DmaFigures {
  bytes: number;
  jobs: number;
  /** Doorbell write until the completion interrupt (eventfd) is seen. */
  doorbellToIrq: Stats;
  /** The whole job as the driver runs it: 5 register writes, doorbell, interrupt, status reads, IRQ ack. */
  wholeJob: Stats;
  /** Throughput at the median doorbell-to-interrupt time. */
  throughputGBps: number;
  /** Per copy, timed in batches of `batch` copies. */
  baseline: { what: string; batch: number; copy: Stats; throughputGBps: number };
  /** Device throughput / baseline throughput (1.0 would match a Buffer copy). */
  ratioToBaseline: number;
}

function dmaBench(drv: SgiovDriver, bytes: number, jobs: number, baselineCopies: number): DmaFigures {
  const c = drv.client;
  const srcOff = 0;
  const dstOff = 16 << 20;
  randomFillSync(c.mem.subarray(srcOff, srcOff + bytes));
  const job = { src: c.addr(srcOff), dst: c.addr(dstOff), len: bytes, op: 'copy' as const, vector: VEC_DMA };
  // warm up, and check the device really copies
  for (let i = 0; i < 20; i++) drv.dmaJob(job);
  c.mem.fill(0, dstOff, dstOff + bytes);
  const first = drv.dmaJob(job);
  if (first.statusName !== 'DONE' || first.irqVector !== VEC_DMA)
    throw new Error(
      `DMA job failed: ${JSON.stringify(first, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`,
    );
  if (Buffer.compare(c.mem.subarray(srcOff, srcOff + bytes), c.mem.subarray(dstOff, dstOff + bytes)) !== 0)
    throw new Error('DMA copy produced wrong data');

  const d2i: number[] = [];
  const whole = sample(jobs, () => {
    const r = drv.dmaJob(job);
    if (r.irqVector !== VEC_DMA)
      throw new Error(`DMA job ended without its interrupt: ${r.statusName} ${r.errorName}`);
    d2i.push(r.doorbellToDoneNs);
  });

  // Baseline: a plain Buffer copy of the same size, in this process, same run.
  const src = Buffer.alloc(bytes);
  const dst = Buffer.alloc(bytes);
  randomFillSync(src);
  for (let i = 0; i < 200; i++) src.copy(dst);
  const batch = Math.max(1, Math.round((64 * 1024) / bytes)); // about 64 KiB copied per sample
  const copy = stats(
    sampleBatched(baselineCopies, batch, () => {
      src.copy(dst);
    }),
  );

  const doorbellToIrq = stats(d2i);
  const throughputGBps = gbps(bytes, doorbellToIrq.medianNs);
  const baseGBps = gbps(bytes, copy.medianNs);
  return {
    bytes,
    jobs,
    doorbellToIrq,
    wholeJob: stats(whole),
    throughputGBps,
    baseline: {
      what: `Buffer.copy of ${bytes} bytes in the benchmark process`,
      batch,
      copy,
      throughputGBps: baseGBps,
    },
    ratioToBaseline: throughputGBps / baseGBps,
  };
}

const us = (ns: number): string => (ns / 1000).toFixed(ns < 1000 ? 3 : 1);

async function main(): Promise<number> {
  const parsed = harnessArgs('bench', BENCH_HELP, process.argv.slice(2), {
    reads: { type: 'string', default: '20000' },
    jobs128k: { type: 'string', default: '500' },
    jobs4k: { type: 'string', default: '2000' },
    'no-json': { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const reads = Number(values.reads);
  const jobs128k = Number(values.jobs128k);
  const jobs4k = Number(values.jobs4k);
  for (const [k, v] of Object.entries({ reads, jobs128k, jobs4k }))
    if (!Number.isInteger(v) || v < 10) throw new Error(`--${k}: a whole number >= 10`);

  const dir = new RunDir('sgiov-bench-');
  const emu = new EmulatorProcess({
    socketPath: dir.file('sgiov.sock'),
    logPath: dir.file('emulator.log'),
    logLevel: 'info',
  });
  let client: VfioUserClient | null = null;
  let ok = false;
  try {
    await emu.ready();
    client = VfioUserClient.connect(dir.file('sgiov.sock'));
    const drv = new SgiovDriver(client);
    drv.bringUp();
    const c = client;

    // 1. trapped BAR0 read round trip
    const scratch = reg('SCRATCH').offset;
    c.bar0Write(scratch, 0x5a5a5a5an);
    for (let i = 0; i < 2000; i++) c.bar0Read(scratch);
    const bar0 = stats(
      sample(reads, () => {
        c.bar0Read(scratch);
      }),
    );
    // the same round trip against a C device on the same library (libvfio-user's sample server)
    const cRef = await cReferenceBarRead(reads, dir, sample);
    // for scale: one libc call through koffi (a read of an empty, non-blocking eventfd)
    const libc = Libc.get();
    const efd = libc.eventfd(0, 0x800 /* EFD_NONBLOCK */);
    const buf = libc.alloc(8);
    const ffi = stats(
      sample(20000, () => {
        libc.read(efd, buf, 8);
      }),
    );
    libc.free(buf);
    libc.close(efd);

    // 2. and 3. DMA copy jobs
    const big = dmaBench(drv, 128 * 1024, jobs128k, 2000);
    const small = dmaBench(drv, 4 * 1024, jobs4k, 5000);
    const requests = c.stats.requests;
    c.close();
    await emu.stop();

    // 4. the data plane: sockets, warp pipes, Cross-FIFO (emulators of its own)
    const dp = await benchDataPlane({
      quick: values.quick,
      log: (m) => process.stderr.write(`bench: ${m}\n`),
    });
    // 5. scheduler decision cost with 4,096 tenants
    process.stderr.write('bench: scheduler decisions, 4096 tenants\n');
    const sched = schedulerDecisionTable({ tenants: 4096, decisions: values.quick ? 100_000 : 400_000 });
    // 6. isolation: a 4 KiB ping-pong tenant beside 8 saturating tenants (device time)
    process.stderr.write(
      'bench: isolation, sriov (128 VFs as in the paper, and 9: one per tenant) vs drf vs rr\n',
    );
    const isoRounds = values.quick ? 300 : 2000;
    const iso = [
      benchIsolation('sriov', { rounds: isoRounds, vfs: 128 }),
      benchIsolation('sriov', { rounds: isoRounds, vfs: 9 }),
      benchIsolation('drf', { rounds: isoRounds }),
      benchIsolation('rr', { rounds: isoRounds }),
    ];

    // 7. cross-node pipes between two namespaces, beside plain TCP between them
    process.stderr.write('bench: cross-node pipes vs plain TCP (two network namespaces)\n');
    const fabric = await benchFabric({
      quick: values.quick,
      log: (m) => process.stderr.write(`bench: ${m}\n`),
    });

    const result = {
      when: new Date().toISOString(),
      commit: gitCommit(),
      machine: machine(),
      transport:
        'vfio-user over a UNIX socket; client and emulator are separate processes; guest memory is a memfd both map',
      bar0Read: { what: `REGION_READ of SCRATCH (4 bytes), ${reads} round trips`, ...bar0 },
      reference: { what: 'one libc read() through koffi on an empty non-blocking eventfd', ...ffi },
      bar0ReadC: cRef,
      dmaCopy128k: big,
      dmaCopy4k: small,
      client: { requests },
      dataPlane: dp,
      scheduler: sched,
      isolation: iso,
      crossNode: fabric,
      drfOverTime: drfOverTime(),
      rows: [
        ...('skipped' in cRef
          ? []
          : [
              benchRow({
                id: 'bar0.read',
                what: "trapped BAR0 read round trip (SCRATCH), median / the same against libvfio-user's C sample server",
                unit: 'us',
                value: bar0.medianNs / 1000,
                baseline: cRef.medianNs / 1000,
                goal: '<= 1.5',
              }),
            ]),
        benchRow({
          id: 'dataPlane.stream.128k',
          what: '128 KiB stream over one pipe, zero-copy / memcpy through the same rings',
          unit: 'GB/s',
          value: dp.stream.zeroCopyGBps,
          baseline: dp.stream.memcpyGBps,
          goal: '>= 0.5',
        }),
        benchRow({
          id: 'dataPlane.scaling.pingPong.4k',
          what: `4 KiB ping-pong median RTT with ${dp.scaling.at(-1)!.sockets} sockets open / with ${dp.scaling[0]!.sockets}`,
          unit: 'us',
          value: dp.scaling.at(-1)!.rttUs.median,
          baseline: dp.scaling[0]!.rttUs.median,
          goal: '<= 1.5',
        }),
        benchRow({
          id: 'dataPlane.aesGcm.128k',
          what: 'AES-256-GCM engine on 128 KiB messages / node:crypto on the same buffers',
          unit: 'GB/s',
          value: dp.crypto.engineGBps,
          baseline: dp.crypto.nodeCryptoGBps,
          goal: '>= 0.8',
        }),
        ...('rows' in fabric ? fabric.rows : []),
      ],
    };

    const rows: [string, string, string, string][] = [
      ['measure', 'median', 'p99', 'throughput / ratio'],
      ['BAR0 read round trip (SCRATCH)', `${us(bar0.medianNs)} us`, `${us(bar0.p99Ns)} us`, `n=${bar0.n}`],
      'skipped' in cRef
        ? [`  C reference: skipped (${cRef.skipped})`, '', '', '']
        : [
            "  baseline: the same against libvfio-user's C sample server",
            `${us(cRef.medianNs)} us`,
            `${us(cRef.p99Ns)} us`,
            `n=${cRef.n}`,
          ],
      ['  for scale: one koffi libc call', `${us(ffi.medianNs)} us`, `${us(ffi.p99Ns)} us`, ''],
      ...[big, small].flatMap((d): [string, string, string, string][] => [
        [
          `DMA copy ${d.bytes / 1024} KiB, doorbell->irq`,
          `${us(d.doorbellToIrq.medianNs)} us`,
          `${us(d.doorbellToIrq.p99Ns)} us`,
          `${d.throughputGBps.toFixed(3)} GB/s (n=${d.jobs})`,
        ],
        [
          `  whole job (regs+doorbell+irq+status)`,
          `${us(d.wholeJob.medianNs)} us`,
          `${us(d.wholeJob.p99Ns)} us`,
          `${gbps(d.bytes, d.wholeJob.medianNs).toFixed(3)} GB/s`,
        ],
        [
          `  baseline: Buffer.copy ${d.bytes / 1024} KiB`,
          `${us(d.baseline.copy.medianNs)} us`,
          `${us(d.baseline.copy.p99Ns)} us`,
          `${d.baseline.throughputGBps.toFixed(2)} GB/s`,
        ],
        [
          `  device / baseline throughput`,
          '',
          '',
          `${d.ratioToBaseline.toFixed(4)} (1/${(1 / d.ratioToBaseline).toFixed(0)})`,
        ],
      ]),
      ['data plane (sockets over warp pipes; no VM)', '', '', ''],
      [
        `  stream ${dp.stream.msgBytes / 1024} KiB msgs, one pipe, zero-copy`,
        '',
        '',
        `${dp.stream.zeroCopyGBps.toFixed(3)} GB/s`,
      ],
      [`  stream, copying send/recv`, '', '', `${dp.stream.copyGBps.toFixed(3)} GB/s`],
      [
        `  baseline: memcpy ${dp.stream.msgBytes / 1024} KiB through ${dp.stream.ringBytes >> 20} MiB rings`,
        '',
        '',
        `${dp.stream.memcpyGBps.toFixed(2)} GB/s`,
      ],
      [
        `  (memcpy ${dp.stream.msgBytes / 1024} KiB, hot in cache)`,
        '',
        '',
        `${dp.stream.memcpyHotGBps.toFixed(2)} GB/s`,
      ],
      [
        `  pipe / memcpy (zero-copy; copying)`,
        '',
        '',
        `${dp.stream.zeroCopyRatio.toFixed(4)}; ${dp.stream.copyRatio.toFixed(4)}`,
      ],
      ...dp.pingPong.map((p): [string, string, string, string] => [
        `  4 KiB ping-pong RTT, H2D ${p.mode}`,
        `${p.rttUs.median.toFixed(1)} us`,
        `${p.rttUs.p99.toFixed(1)} us`,
        `n=${p.rttUs.n}`,
      ]),
      ...dp.scaling.map((p): [string, string, string, string] => [
        `  4 KiB ping-pong RTT, ${p.sockets} sockets open`,
        `${p.rttUs.median.toFixed(1)} us`,
        `${p.rttUs.p99.toFixed(1)} us`,
        `n=${p.rttUs.n}`,
      ]),
      [
        `  RTT ${dp.scaling.at(-1)!.sockets} / ${dp.scaling[0]!.sockets} sockets`,
        '',
        '',
        dp.scalingRatio.toFixed(3),
      ],
      [
        `  emulator RSS per idle socket (${dp.memory.sockets} sockets)`,
        '',
        '',
        `${dp.memory.bytesPerSocket.toFixed(0)} B`,
      ],
      [
        `  AES-256-GCM engine, ${dp.crypto.msgBytes / 1024} KiB msgs (loopback pipe)`,
        '',
        '',
        `${dp.crypto.engineGBps.toFixed(3)} GB/s`,
      ],
      [`  baseline: node:crypto on the same buffers`, '', '', `${dp.crypto.nodeCryptoGBps.toFixed(3)} GB/s`],
      [`  engine / node:crypto`, '', '', dp.crypto.ratio.toFixed(3)],
      ['scheduler decision per job (4,096 tenants, 4 accelerators)', '', '', ''],
      ...sched.map((d): [string, string, string, string] => [
        `  ${d.kind}`,
        `${d.nsPerDecision.toFixed(0)} ns`,
        '',
        `n=${d.decisions}`,
      ]),
      ['isolation: 4 KiB ping-pong RTT beside 8 tenants saturating RDMA 100 Gbps (device time)', '', '', ''],
      ...iso.map((r): [string, string, string, string] => [
        `  ${r.policy}${r.vfs !== null ? ` (${r.vfs} VFs)` : ''}`,
        `${r.rttUs.median.toFixed(1)} us`,
        `${r.rttUs.p99.toFixed(1)} us`,
        `bulk ${r.busyGbps.toFixed(1)} Gbps`,
      ]),
      [
        `  p99 sriov (128 VFs) / drf; sriov (9 VFs) / drf`,
        '',
        '',
        `${(iso[0]!.rttUs.p99 / iso[2]!.rttUs.p99).toFixed(2)}; ${(iso[1]!.rttUs.p99 / iso[2]!.rttUs.p99).toFixed(2)}`,
      ],
    ];
    if ('skipped' in fabric) rows.push([`cross-node pipes: skipped (${fabric.skipped})`, '', '', '']);
    else {
      rows.push(
        ['cross-node pipes (two emulators, two network namespaces, a veth pair)', '', '', ''],
        [`  128 KiB stream over one pipe`, '', '', `${fabric.stream.pipeGBps.toFixed(3)} GB/s`],
        [
          `  baseline: plain TCP stream between the namespaces`,
          '',
          '',
          `${fabric.stream.tcpGBps.toFixed(3)} GB/s`,
        ],
        [`  pipe / TCP (goal >= 0.8)`, '', '', fabric.stream.ratio.toFixed(3)],
        [
          `  4 KiB ping-pong RTT over one pipe`,
          `${fabric.pingPong.pipeUs.median.toFixed(1)} us`,
          `${fabric.pingPong.pipeUs.p99.toFixed(1)} us`,
          `n=${fabric.pingPong.pipeUs.n}`,
        ],
        [
          `  baseline: plain TCP ping-pong`,
          `${fabric.pingPong.tcpUs.median.toFixed(1)} us`,
          `${fabric.pingPong.tcpUs.p99.toFixed(1)} us`,
          `n=${fabric.pingPong.tcpUs.n}`,
        ],
        [`  pipe / TCP median RTT (goal <= 1.5)`, '', '', fabric.pingPong.ratio.toFixed(2)],
        [`  128 KiB stream over a TLS 1.3 fabric`, '', '', `${fabric.stream.tlsGBps.toFixed(3)} GB/s`],
        [
          `  4 KiB ping-pong RTT over a TLS 1.3 fabric`,
          `${fabric.pingPong.tlsUs.median.toFixed(1)} us`,
          `${fabric.pingPong.tlsUs.p99.toFixed(1)} us`,
          `n=${fabric.pingPong.tlsUs.n}`,
        ],
      );
    }
    process.stdout.write(
      `sgiov bench ${result.when} commit ${result.commit ?? '?'} on ${result.machine.cpus} x ${result.machine.cpu}, node ${process.version}\n`,
    );
    process.stdout.write(table(rows));
    process.stdout.write('\nrows (baseline measured in the same run; ratio = value / baseline)\n');
    process.stdout.write(rowsTable(result.rows));
    if (!values['no-json']) {
      const file = writeResult(result);
      process.stdout.write(`figures: ${file}\n`);
      for (const f of await plotResult(result, file)) process.stdout.write(`plot: ${f}\n`);
    }
    ok = true;
    return 0;
  } finally {
    client?.close();
    await emu.stop();
    if (ok) dir.remove();
    else process.stderr.write(`bench: emulator log kept in ${dir.path}\n`);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
