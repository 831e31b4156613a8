/**
 * The observability pieces on their own: trace patterns and the rate limit,
 * --metrics addresses, the metrics registry's text, and top's rates computed
 * from two snapshots.
 */
import { describe, expect, it } from 'vitest';
import { makeLogger, type Logger } from '../../../emulator/util/log.js';
import type { Snapshot } from '../../../emulator/host/snapshot.js';
import { metricsRegistry, parseListenAddress } from '../../../emulator/observe/metrics.js';
import { renderFrame } from '../../../emulator/observe/top-view.js';
import {
  flushTrace,
  setTrace,
  trace,
  TRACE,
  TRACE_EVENTS,
  traceEvents,
} from '../../../emulator/util/trace.js';

/** A logger at level warn whose lines land in `lines`. */
function capture(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = makeLogger('warn', {
    write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>),
  });
  return { log, lines };
}

describe('trace patterns', () => {
  it('globs, in order, -GLOB removes; a glob matching nothing is refused', () => {
    expect(traceEvents('mmio_*')).toEqual(['mmio_read', 'mmio_write']);
    expect(traceEvents('cmd_*,-cmd_submit')).toEqual(['cmd_done']);
    expect(traceEvents('*')).toEqual([...TRACE_EVENTS]);
    expect(traceEvents('job_?tart, dma_done')).toEqual(['dma_done', 'job_start']);
    expect(traceEvents('')).toEqual([]);
    expect(traceEvents('none')).toEqual([]);
    expect(() => traceEvents('mmio')).toThrow(/'mmio' matches no event \(events: mmio_read,/);
    expect(() => traceEvents('dma_*,-nope')).toThrow(/'-nope' matches no event/);
  });

  it('sets the flags; lines show whatever the level; the rest are counted', () => {
    const { log, lines } = capture();
    try {
      expect(setTrace('mmio_read', log, 3)).toEqual(['mmio_read']);
      expect(TRACE.mmio_read).toBe(true);
      expect(TRACE.mmio_write).toBe(false);
      for (let i = 0; i < 10; i++) trace('mmio_read', { offset: i });
      trace('mmio_write', { offset: 99 }); // off: nothing
      flushTrace();
      expect(
        lines.filter((l) => l.ev === 'mmio_read' && l.offset !== undefined).map((l) => l.offset),
      ).toEqual([0, 1, 2]);
      expect(lines.find((l) => l.msg === 'trace lines suppressed')).toMatchObject({
        sub: 'trace',
        ev: 'mmio_read',
        suppressed: 7,
        perSecond: 3,
      });
      expect(lines.some((l) => l.ev === 'mmio_write')).toBe(false);
      expect(() => setTrace('bogus', log)).toThrow(/matches no event/);
      expect(TRACE.mmio_read).toBe(true); // a refused pattern leaves the old one
    } finally {
      setTrace('', log);
    }
    expect(TRACE_EVENTS.some((e) => TRACE[e])).toBe(false);
  });
});

describe('--metrics addresses', () => {
  it('takes HOST:PORT, [V6]:PORT, :PORT and PORT; refuses the rest', () => {
    expect(parseListenAddress('9477')).toEqual({ host: '127.0.0.1', port: 9477 });
    expect(parseListenAddress(':0')).toEqual({ host: '127.0.0.1', port: 0 });
    expect(parseListenAddress('0.0.0.0:80')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(parseListenAddress('[::1]:9000')).toEqual({ host: '::1', port: 9000 });
    expect(parseListenAddress('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    for (const bad of ['', 'x', 'host:', '1.2.3.4:65536', 'a b:1', '-1'])
      expect(() => parseListenAddress(bad)).toThrow(/is not HOST:PORT or PORT/);
  });
});

function snap(t: number, bytes: number, busyS: number, injections: number): Snapshot {
  return {
    nowNs: t * 1e9,
    transport: {
      clients: 1,
      attached: true,
      dmaRegions: 1,
      barAccesses: 10,
      ioeventfdKicks: 0,
      clientsDropped: 0,
      requestsRefused: 0,
    },
    device: {
      enabled: true,
      removed: false,
      h2dSignals: 100 * t,
      d2hSignals: 50 * t,
      kicks: 0,
      dataPlaneInterrupts: 0,
      engineInterrupts: 0,
      signalErrors: 0,
      repeats: 0,
      resyncs: 0,
      msgsMoved: 10 * t,
      bytesMoved: bytes,
      socketsCreated: 2,
      badAccesses: 0,
      dmaJobs: 0,
      dmaBytes: 0,
      dmaErrors: 0,
      stagingUsedBytes: 0,
      stagingBytes: 1024,
    },
    sockets: { created: 0, listening: 0, connecting: 0, connected: 2, closing: 0, error: 0 },
    commands: [{ op: 'create', status: 'OK', count: 2 }],
    schedule: {
      policy: 'drf',
      tenants: [
        {
          name: 'A',
          weight: 1,
          capGbps: null,
          uses: ['rdma'],
          bytes,
          messages: 10 * t,
          jobs: 10 * t,
          queued: 0,
          measuredGbps: 0,
          drfGbps: 20,
        },
      ],
      accels: [{ name: 'rdma', capacityGbps: 100, jobs: 10 * t, bytes, busySeconds: busyS }],
    },
    faults: {
      state: 'initial',
      rules: [{ id: 'r1', point: 'irq', action: 'drop', live: true, matches: 2 * injections, injections }],
      recent: [],
    },
    fabric: null,
  };
}

describe("top's frame", () => {
  it('rates over the interval: 1.25e9 bytes in 1 s are 10 Gbps, half of a 20 Gbps allocation', () => {
    const f = renderFrame(snap(1, 0, 0, 1), snap(2, 1.25e9, 0.25, 4), {
      control: '/c.sock',
      time: '2026-01-01T00:00:00.000Z',
      uptimeS: 2,
    });
    expect(f).toContain('interval 1.00 s');
    expect(f).toMatch(/signals\/s h2d 100\.0 d2h 50\.0/);
    expect(f).toMatch(/msgs\/s 10\.0 {2}Gbps 10\.00/);
    expect(f).toMatch(/^\s+A\s+1\s+-\s+10\.00\s+20\.00\s+50\.0%\s+10\.0\s+0\s+rdma$/m);
    expect(f).toMatch(/^\s+rdma\s+100\s+25\.0%\s+10\.00\s+10\.0$/m);
    expect(f).toMatch(/^\s+r1\s+irq\s+drop\s+yes\s+8\s+4\s+3$/m);
    expect(f).toContain('LINKS: no cluster');
  });

  it('the registry writes every family from a snapshot', async () => {
    const s = snap(2, 5000, 0.5, 4);
    const text = await metricsRegistry(() => ({ snap: s, uptimeS: 7 })).metrics();
    expect(text).toContain(
      '# TYPE sgiov_tenant_bytes_total counter\nsgiov_tenant_bytes_total{tenant="A"} 5000',
    );
    expect(text).toContain('sgiov_accel_busy_seconds_total{accel="rdma"} 0.5');
    expect(text).toContain('sgiov_commands_total{op="create",status="OK"} 2');
    expect(text).toContain('sgiov_uptime_seconds 7');
    expect(text).toContain('sgiov_fault_rule_injections_total{rule="r1",point="irq",action="drop"} 4');
  });
});
