/**
 * Every counter of the device at one moment, as plain data: the control
 * interface's `metrics` answer, which the Prometheus endpoint and `sgiov
 * top` read (emulator/observe/). Built on request from counters the model
 * keeps anyway; nothing here runs on the device's hot paths.
 */
import type { SgiovDevice } from '../model/device.js';
import { CMD_OP_NAME, nameOf, SOCK_STATE_NAMES, STATUS_NAME } from '../model/names.js';
import type { FabricStats } from '../fabric/fabric.js';
import type { VfuStats } from './vfu-server.js';

export interface Snapshot {
  /** Device time of the snapshot (ns), for rates over an interval. */
  nowNs: number;
  transport: VfuStats;
  device: {
    enabled: boolean;
    removed: boolean;
    h2dSignals: number;
    d2hSignals: number;
    kicks: number;
    /** MSI-X messages the data plane raised, and the DMA engine's. */
    dataPlaneInterrupts: number;
    engineInterrupts: number;
    signalErrors: number;
    repeats: number;
    resyncs: number;
    msgsMoved: number;
    bytesMoved: number;
    socketsCreated: number;
    badAccesses: number;
    dmaJobs: number;
    dmaBytes: number;
    dmaErrors: number;
    stagingUsedBytes: number;
    stagingBytes: number;
  };
  /** Sockets by state (every state, zeros included). */
  sockets: Record<string, number>;
  commands: { op: string; status: string; count: number }[];
  /** Null while the accelerators are not scheduled. */
  schedule: null | {
    policy: string;
    tenants: {
      name: string;
      weight: number;
      capGbps: number | null;
      uses: string[];
      bytes: number;
      messages: number;
      jobs: number;
      queued: number;
      measuredGbps: number;
      drfGbps: number | null;
    }[];
    accels: { name: string; capacityGbps: number; jobs: number; bytes: number; busySeconds: number }[];
  };
  faults: {
    state: string;
    rules: {
      id: string;
      point: string;
      action: string;
      live: boolean;
      matches: number;
      injections: number;
    }[];
    recent: { atMs: number; rule: string; point: string; action: string; n: number }[];
  };
  /** Null without a cluster. */
  fabric: null | {
    self: string;
    links: {
      node: string;
      state: string;
      framesSent: number;
      framesReceived: number;
      bytesSent: number;
      bytesReceived: number;
      retransmitted: number;
      reconnects: number;
      failures: number;
      rttSeconds: number;
      unackedFrames: number;
    }[];
  };
}

export function snapshot(
  transport: VfuStats,
  model: SgiovDevice,
  nowNs: number,
  fabric: FabricStats | null,
): Snapshot {
  const dp = model.dp;
  const c = dp.counters;
  const st = model.snapshot();
  const sockets: Record<string, number> = Object.fromEntries(SOCK_STATE_NAMES.slice(1).map((n) => [n, 0]));
  const states = dp.socks.state;
  const counts = new Array<number>(SOCK_STATE_NAMES.length).fill(0);
  for (let i = 0; i < states.length; i++) counts[states[i]!]!++;
  SOCK_STATE_NAMES.forEach((n, i) => {
    if (i > 0) sockets[n] = counts[i]!;
  });
  const farm = dp.farm;
  const inj = model.faults.list();
  return {
    nowNs,
    transport: { ...transport },
    device: {
      enabled: model.status().enabled as boolean,
      removed: model.removed,
      h2dSignals: c.h2dSignals,
      d2hSignals: c.d2hSignals,
      kicks: c.kicks,
      dataPlaneInterrupts: c.interrupts,
      engineInterrupts: st.irqCount,
      signalErrors: c.signalErrors,
      repeats: c.repeats,
      resyncs: c.resyncs,
      msgsMoved: c.msgsMoved,
      bytesMoved: c.bytesMoved,
      socketsCreated: c.socketsCreated,
      badAccesses: st.badAccessCount,
      dmaJobs: model.dmaStats.jobs,
      dmaBytes: model.dmaStats.bytes,
      dmaErrors: model.dmaStats.errors,
      stagingUsedBytes: dp.stagingUsed,
      stagingBytes: dp.stagingBytes,
    },
    sockets,
    commands: [...dp.commandCounts].map(([k, count]) => ({
      op: nameOf(CMD_OP_NAME, k >> 8),
      status: nameOf(STATUS_NAME, k & 0xff),
      count,
    })),
    schedule: farm
      ? {
          policy: farm.sched.kind,
          tenants: (() => {
            const extra = farm.tenantCounters();
            return farm.report().map((t, i) => ({
              name: t.tenant,
              weight: t.weight,
              capGbps: t.capGbps,
              uses: t.uses,
              bytes: t.bytes,
              measuredGbps: t.measuredGbps,
              drfGbps: t.drfGbps,
              messages: extra[i]?.messages ?? 0,
              jobs: extra[i]?.jobs ?? 0,
              queued: extra[i]?.queued ?? 0,
            }));
          })(),
          accels: farm.accelStats.map((a) => ({
            name: a.name,
            capacityGbps: a.capacityGbps,
            jobs: a.jobs,
            bytes: a.bytes,
            busySeconds: a.busyNs / 1e9,
          })),
        }
      : null,
    faults: {
      state: inj.state,
      rules: inj.rules.map((r) => ({
        id: r.id,
        point: String(r.rule.point),
        action: String((r.rule.do as { action?: unknown } | undefined)?.action ?? ''),
        live: r.live,
        matches: r.matches,
        injections: r.injections,
      })),
      recent: model.faults.recent(),
    },
    fabric: fabric
      ? {
          self: fabric.self,
          links: Object.entries(fabric.links).map(([node, l]) => ({
            node,
            state: l.state,
            framesSent: l.framesSent,
            framesReceived: l.framesReceived,
            bytesSent: l.bytesSent,
            bytesReceived: l.bytesReceived,
            retransmitted: l.retransmitted,
            reconnects: l.reconnects,
            failures: l.failures,
            rttSeconds: l.rttMs / 1000,
            unackedFrames: l.unackedFrames,
          })),
        }
      : null,
  };
}
