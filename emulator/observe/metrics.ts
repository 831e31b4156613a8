/**
 * `sgiov serve --metrics HOST:PORT`: the device's counters on /metrics in
 * the Prometheus text format, through prom-client. Nothing is counted for
 * it: each scrape asks the device thread for one snapshot (the control
 * interface's `metrics` answer, host/snapshot.ts) and the metrics' collect()
 * callbacks read their values from it. Rates are Prometheus's to compute
 * (rate(sgiov_tenant_bytes_total[1m])).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Snapshot } from '../host/snapshot.js';
import type { Logger } from '../util/log.js';

type Labels = Record<string, string>;
type Sample = [Labels, number];

/** One metric: its name (units in it), HELP, TYPE, labels and where its samples come from. */
export interface MetricDef {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  labels: readonly string[];
  samples: (s: Snapshot, uptimeS: number) => Sample[];
}

const one = (v: number): Sample[] => [[{}, v]];
const perTenant =
  (f: (t: NonNullable<Snapshot['schedule']>['tenants'][number]) => number | null) =>
  (s: Snapshot): Sample[] =>
    (s.schedule?.tenants ?? []).flatMap((t): Sample[] => {
      const v = f(t);
      return v === null ? [] : [[{ tenant: t.name }, v]];
    });
const perAccel =
  (f: (a: NonNullable<Snapshot['schedule']>['accels'][number]) => number) =>
  (s: Snapshot): Sample[] =>
    (s.schedule?.accels ?? []).map((a) => [{ accel: a.name }, f(a)]);
const perLink =
  (f: (l: NonNullable<Snapshot['fabric']>['links'][number]) => number) =>
  (s: Snapshot): Sample[] =>
    (s.fabric?.links ?? []).map((l) => [{ node: l.node }, f(l)]);
const perRule =
  (f: (r: Snapshot['faults']['rules'][number]) => number) =>
  (s: Snapshot): Sample[] =>
    s.faults.rules.map((r) => [{ rule: r.id, point: r.point, action: r.action }, f(r)]);

const LINK_STATES = ['connecting', 'up', 'down', 'failed'] as const;

/** Every metric, as a table (docs/observability.md lists the same). */
export const METRICS: readonly MetricDef[] = [
  {
    name: 'sgiov_uptime_seconds',
    help: 'Seconds since this emulator started',
    type: 'gauge',
    labels: [],
    samples: (_s, up) => one(up),
  },
  {
    name: 'sgiov_device_enabled',
    help: 'Whether the guest driver enabled the device (CONTROL.ENABLE): 1 or 0',
    type: 'gauge',
    labels: [],
    samples: (s) => one(s.device.enabled ? 1 : 0),
  },
  {
    name: 'sgiov_device_removed',
    help: 'Whether the device is surprise-removed (fault injection): 1 or 0',
    type: 'gauge',
    labels: [],
    samples: (s) => one(s.device.removed ? 1 : 0),
  },
  {
    name: 'sgiov_vfio_user_clients_total',
    help: 'vfio-user clients (VMs) that attached',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.transport.clients),
  },
  {
    name: 'sgiov_bar_accesses_total',
    help: 'Trapped BAR accesses served over vfio-user',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.transport.barAccesses),
  },
  {
    name: 'sgiov_signals_total',
    help: 'Cross-FIFO signals, by direction (h2d: host to device, taken; d2h: device to host, written)',
    type: 'counter',
    labels: ['direction'],
    samples: (s) => [
      [{ direction: 'h2d' }, s.device.h2dSignals],
      [{ direction: 'd2h' }, s.device.d2hSignals],
    ],
  },
  {
    name: 'sgiov_signal_errors_total',
    help: 'Signals refused or sockets failed by a bad signal',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.signalErrors),
  },
  {
    name: 'sgiov_signal_repeats_total',
    help: 'H2D signals ignored as repeats (a tail or head that did not move, a CMD for a taken slot)',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.repeats),
  },
  {
    name: 'sgiov_kicks_total',
    help: 'KICK doorbells (the hybrid poller woken), trapped or through the ioeventfd',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.kicks),
  },
  {
    name: 'sgiov_ioeventfd_kicks_total',
    help: 'KICK doorbells that came through the ioeventfd',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.transport.ioeventfdKicks),
  },
  {
    name: 'sgiov_interrupts_total',
    help: 'MSI-X interrupts raised, by source (data_plane: D2H signals; dma_engine: DMA done and errors)',
    type: 'counter',
    labels: ['source'],
    samples: (s) => [
      [{ source: 'data_plane' }, s.device.dataPlaneInterrupts],
      [{ source: 'dma_engine' }, s.device.engineInterrupts],
    ],
  },
  {
    name: 'sgiov_messages_moved_total',
    help: 'Messages the warp pipes delivered',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.msgsMoved),
  },
  {
    name: 'sgiov_moved_bytes_total',
    help: 'Bytes of the messages the warp pipes delivered (DMA between rings in guest memory)',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.bytesMoved),
  },
  {
    name: 'sgiov_dma_jobs_total',
    help: 'DMA-engine jobs completed',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.dmaJobs),
  },
  {
    name: 'sgiov_dma_bytes_total',
    help: 'Bytes the DMA engine copied',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.dmaBytes),
  },
  {
    name: 'sgiov_dma_errors_total',
    help: 'DMA-engine jobs failed (bad length, unmapped memory, bus mastering off, faults)',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.dmaErrors),
  },
  {
    name: 'sgiov_bad_accesses_total',
    help: 'Guest MMIO accesses ignored (undefined register, bad size, read-only)',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.badAccesses),
  },
  {
    name: 'sgiov_sockets',
    help: 'Socket devices by state',
    type: 'gauge',
    labels: ['state'],
    samples: (s) => Object.entries(s.sockets).map(([state, n]) => [{ state }, n]),
  },
  {
    name: 'sgiov_sockets_created_total',
    help: 'CREATE commands that made a socket',
    type: 'counter',
    labels: [],
    samples: (s) => one(s.device.socketsCreated),
  },
  {
    name: 'sgiov_commands_total',
    help: 'Commands answered, by op and status (OK or the errno name)',
    type: 'counter',
    labels: ['op', 'status'],
    samples: (s) => s.commands.map((c) => [{ op: c.op, status: c.status }, c.count]),
  },
  {
    name: 'sgiov_staging_used_bytes',
    help: 'Device staging memory (executor F) in use',
    type: 'gauge',
    labels: [],
    samples: (s) => one(s.device.stagingUsedBytes),
  },
  {
    name: 'sgiov_staging_capacity_bytes',
    help: 'Device staging memory (executor F)',
    type: 'gauge',
    labels: [],
    samples: (s) => one(s.device.stagingBytes),
  },
  {
    name: 'sgiov_tenant_bytes_total',
    help: 'Bytes of a tenant through the scheduled accelerators (jobs whose whole chain ran)',
    type: 'counter',
    labels: ['tenant'],
    samples: perTenant((t) => t.bytes),
  },
  {
    name: 'sgiov_tenant_messages_total',
    help: 'Messages of a tenant whose every job ran',
    type: 'counter',
    labels: ['tenant'],
    samples: perTenant((t) => t.messages),
  },
  {
    name: 'sgiov_tenant_jobs_total',
    help: 'Accelerator jobs of a tenant whose whole chain ran',
    type: 'counter',
    labels: ['tenant'],
    samples: perTenant((t) => t.jobs),
  },
  {
    name: 'sgiov_tenant_queued_jobs',
    help: 'Jobs of a tenant queued or running in the accelerators now',
    type: 'gauge',
    labels: ['tenant'],
    samples: perTenant((t) => t.queued),
  },
  {
    name: 'sgiov_tenant_weight',
    help: "A tenant's scheduling weight",
    type: 'gauge',
    labels: ['tenant'],
    samples: perTenant((t) => t.weight),
  },
  {
    name: 'sgiov_tenant_drf_allocation_gbps',
    help: "A tenant's DRF allocation for the accelerators it uses (progressive filling), Gbps",
    type: 'gauge',
    labels: ['tenant'],
    samples: perTenant((t) => t.drfGbps),
  },
  {
    name: 'sgiov_tenant_measured_gbps',
    help: "A tenant's average rate since its first job completed, Gbps (a current rate: rate(sgiov_tenant_bytes_total))",
    type: 'gauge',
    labels: ['tenant'],
    samples: perTenant((t) => t.measuredGbps),
  },
  {
    name: 'sgiov_accel_capacity_gbps',
    help: "A scheduled accelerator's capacity, Gbps",
    type: 'gauge',
    labels: ['accel'],
    samples: perAccel((a) => a.capacityGbps),
  },
  {
    name: 'sgiov_accel_busy_seconds_total',
    help: 'Device time an accelerator spent running jobs (utilisation: its rate)',
    type: 'counter',
    labels: ['accel'],
    samples: perAccel((a) => a.busySeconds),
  },
  {
    name: 'sgiov_accel_bytes_total',
    help: 'Bytes of the jobs an accelerator ran',
    type: 'counter',
    labels: ['accel'],
    samples: perAccel((a) => a.bytes),
  },
  {
    name: 'sgiov_accel_jobs_total',
    help: 'Jobs an accelerator ran',
    type: 'counter',
    labels: ['accel'],
    samples: perAccel((a) => a.jobs),
  },
  {
    name: 'sgiov_link_state',
    help: 'A fabric link to another node: 1 for its current state',
    type: 'gauge',
    labels: ['node', 'state'],
    samples: (s) =>
      (s.fabric?.links ?? []).flatMap((l) =>
        LINK_STATES.map((st): Sample => [{ node: l.node, state: st }, l.state === st ? 1 : 0]),
      ),
  },
  {
    name: 'sgiov_link_frames_sent_total',
    help: 'Data frames written to a link (retransmissions included)',
    type: 'counter',
    labels: ['node'],
    samples: perLink((l) => l.framesSent),
  },
  {
    name: 'sgiov_link_frames_received_total',
    help: 'Data frames a link delivered',
    type: 'counter',
    labels: ['node'],
    samples: perLink((l) => l.framesReceived),
  },
  {
    name: 'sgiov_link_sent_bytes_total',
    help: 'Payload bytes written to a link',
    type: 'counter',
    labels: ['node'],
    samples: perLink((l) => l.bytesSent),
  },
  {
    name: 'sgiov_link_received_bytes_total',
    help: 'Payload bytes a link delivered',
    type: 'counter',
    labels: ['node'],
    samples: perLink((l) => l.bytesReceived),
  },
  {
    name: 'sgiov_link_retransmitted_frames_total',
    help: 'Frames sent again after a reconnect',
    type: 'counter',
    labels: ['node'],
    samples: perLink((l) => l.retransmitted),
  },
  {
    name: 'sgiov_link_reconnects_total',
    help: 'Times a link came up again after being down',
    type: 'counter',
    labels: ['node'],
    samples: perLink((l) => l.reconnects),
  },
  {
    name: 'sgiov_link_failures_total',
    help: "Sessions of a link that failed (the link's sockets failed with them)",
    type: 'counter',
    labels: ['node'],
    samples: perLink((l) => l.failures),
  },
  {
    name: 'sgiov_link_rtt_seconds',
    help: 'Smoothed round trip of a link, a frame to its acknowledgement (0 before the first)',
    type: 'gauge',
    labels: ['node'],
    samples: perLink((l) => l.rttSeconds),
  },
  {
    name: 'sgiov_link_unacked_frames',
    help: 'Frames sent on a link and not yet acknowledged',
    type: 'gauge',
    labels: ['node'],
    samples: perLink((l) => l.unackedFrames),
  },
  {
    name: 'sgiov_fault_rule_matches_total',
    help: 'Checks a fault rule matched while live',
    type: 'counter',
    labels: ['rule', 'point', 'action'],
    samples: perRule((r) => r.matches),
  },
  {
    name: 'sgiov_fault_rule_injections_total',
    help: 'Faults a rule injected',
    type: 'counter',
    labels: ['rule', 'point', 'action'],
    samples: perRule((r) => r.injections),
  },
];

/** A registry whose metrics read the snapshot `current()` gives at collect time. */
export function metricsRegistry(current: () => { snap: Snapshot; uptimeS: number } | null): Registry {
  const registry = new Registry();
  for (const def of METRICS) {
    const config = {
      name: def.name,
      help: def.help,
      labelNames: def.labels as string[],
      registers: [registry],
    };
    if (def.type === 'counter')
      new Counter({
        ...config,
        collect() {
          this.reset();
          const c = current();
          if (c) for (const [l, v] of def.samples(c.snap, c.uptimeS)) this.inc(l, v);
        },
      });
    else
      new Gauge({
        ...config,
        collect() {
          this.reset();
          const c = current();
          if (c) for (const [l, v] of def.samples(c.snap, c.uptimeS)) this.set(l, v);
        },
      });
  }
  return registry;
}

export interface ListenAddress {
  host: string;
  port: number;
}

/** `HOST:PORT`, `[V6]:PORT`, `:PORT` or `PORT` (then 127.0.0.1); port 0 picks a free one. */
export function parseListenAddress(v: string): ListenAddress {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(v.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 0 && port <= 65535))
    throw new Error(`'${v}' is not HOST:PORT or PORT (a port in 0..65535; 0 picks a free one)`);
  const host = m[1] ? m[1].replace(/^\[|\]$/g, '') : '127.0.0.1';
  return { host, port };
}

/** The HTTP side: GET /metrics, a snapshot fetched per scrape. */
export class MetricsServer {
  private server: Server | null = null;
  private current: { snap: Snapshot; uptimeS: number } | null = null;
  private readonly registry = metricsRegistry(() => this.current);
  /** Scrapes answered (for the log line at stop). */
  scrapes = 0;

  constructor(
    private readonly addr: ListenAddress,
    private readonly fetch: () => Promise<{ snap: Snapshot; uptimeS: number }>,
    private readonly log: Logger,
  ) {}

  /** Listens; rejects with a one-line reason (address in use, no such address). */
  listen(): Promise<ListenAddress> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('sgiov: only GET /metrics is served here\n');
        return;
      }
      this.fetch().then(
        async (c) => {
          this.current = c;
          const text = await this.registry.metrics();
          this.current = null;
          this.scrapes++;
          res.writeHead(200, { 'content-type': this.registry.contentType }).end(text);
        },
        (e: Error) => {
          res
            .writeHead(503, { 'content-type': 'text/plain' })
            .end(`sgiov: the device did not answer: ${e.message}\n`);
        },
      );
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          new Error(
            `--metrics ${this.addr.host}:${this.addr.port}: cannot listen: ${
              e.code === 'EADDRINUSE'
                ? 'the port is in use'
                : e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND'
                  ? 'no such local address'
                  : e.code === 'EACCES'
                    ? 'permission denied (a port below 1024?)'
                    : e.message
            }`,
          ),
        ),
      );
      server.listen(this.addr.port, this.addr.host, () => {
        const a = server.address() as AddressInfo;
        const bound = { host: a.address, port: a.port };
        this.log.info(
          { metrics: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/metrics` },
          'metrics endpoint listening',
        );
        resolve(bound);
      });
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
}
