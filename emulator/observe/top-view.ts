/**
 * One frame of `sgiov top`: the device's counters as rates over the view's
 * own interval (two snapshots of the control interface's `metrics`), beside
 * what they are measured against: a tenant's current rate against its DRF
 * allocation, an accelerator's busy time against the interval, sockets by
 * state, the fabric's links, the latest fault injections.
 */
import type { Snapshot } from '../host/snapshot.js';

export interface FrameInfo {
  control: string;
  /** The reply's time stamp and the emulator's uptime. */
  time: string;
  uptimeS: number;
}

type Row = (string | number)[];

/** Columns padded to their widest cell; numbers right-aligned. */
function table(head: string[], rows: Row[]): string[] {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map(
    (r, ri) =>
      '  ' +
      r
        .map((c, i) => {
          const num = ri > 0 && typeof rows[ri - 1]![i] === 'number';
          return num ? c.padStart(w[i]!) : c.padEnd(w[i]!);
        })
        .join('  ')
        .trimEnd(),
  );
}

const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '-');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '-');
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(v < 0.1 ? 2 : 1)}%` : '-');

/** A frame: `prev` and `cur` are snapshots taken `dtS` seconds apart (prev null: totals only). */
export function renderFrame(prev: Snapshot | null, cur: Snapshot, info: FrameInfo): string {
  const dtS = prev ? (cur.nowNs - prev.nowNs) / 1e9 : NaN;
  const rate = (a: number, b: number | undefined): number =>
    prev && dtS > 0 && b !== undefined ? (a - b) / dtS : NaN;
  const d = cur.device;
  const p = prev?.device;
  const out: string[] = [];
  out.push(
    `sgiov top - ${info.control} - ${info.time} - up ${f1(info.uptimeS)} s - interval ${Number.isFinite(dtS) ? dtS.toFixed(2) : '-'} s`,
  );
  out.push(
    `device: ${d.removed ? 'REMOVED' : d.enabled ? 'enabled' : 'not enabled'}` +
      `  signals/s h2d ${f1(rate(d.h2dSignals, p?.h2dSignals))} d2h ${f1(rate(d.d2hSignals, p?.d2hSignals))}` +
      `  kicks/s ${f1(rate(d.kicks, p?.kicks))}` +
      `  irqs/s ${f1(rate(d.dataPlaneInterrupts + d.engineInterrupts, p ? p.dataPlaneInterrupts + p.engineInterrupts : undefined))}` +
      `  errors ${d.signalErrors}`,
  );
  out.push(
    `data:   msgs/s ${f1(rate(d.msgsMoved, p?.msgsMoved))}  Gbps ${f2((rate(d.bytesMoved, p?.bytesMoved) * 8) / 1e9)}` +
      `  total ${d.msgsMoved} msgs ${d.bytesMoved} bytes` +
      `  DMA jobs/s ${f1(rate(d.dmaJobs, p?.dmaJobs))} errors ${d.dmaErrors}` +
      `  staging ${d.stagingUsedBytes}/${d.stagingBytes} bytes`,
  );
  out.push(
    `sockets: ${Object.entries(cur.sockets)
      .map(([s, n]) => `${s} ${n}`)
      .join('  ')}`,
  );
  out.push('');
  const sc = cur.schedule;
  if (!sc) out.push('TENANTS: the accelerators are not scheduled (ctl schedule)');
  else {
    const pt = new Map(prev?.schedule?.tenants.map((t) => [t.name, t]));
    out.push(`TENANTS (policy ${sc.policy})`);
    out.push(
      ...table(
        ['tenant', 'weight', 'cap Gbps', 'now Gbps', 'DRF Gbps', 'of DRF', 'msgs/s', 'queued', 'uses'],
        sc.tenants.map((t) => {
          const now = (rate(t.bytes, pt.get(t.name)?.bytes) * 8) / 1e9;
          return [
            t.name,
            t.weight,
            t.capGbps === null ? '-' : t.capGbps,
            f2(now),
            t.drfGbps === null ? '-' : f2(t.drfGbps),
            t.drfGbps ? pct(now / t.drfGbps) : '-',
            f1(rate(t.messages, pt.get(t.name)?.messages)),
            t.queued,
            t.uses.join(',') || '-',
          ];
        }),
      ),
    );
    const pa = new Map(prev?.schedule?.accels.map((a) => [a.name, a]));
    out.push('ACCELERATORS');
    out.push(
      ...table(
        ['accel', 'capacity Gbps', 'busy', 'Gbps', 'jobs/s'],
        sc.accels.map((a) => [
          a.name,
          a.capacityGbps,
          pct(rate(a.busySeconds, pa.get(a.name)?.busySeconds)),
          f2((rate(a.bytes, pa.get(a.name)?.bytes) * 8) / 1e9),
          f1(rate(a.jobs, pa.get(a.name)?.jobs)),
        ]),
      ),
    );
  }
  out.push('');
  if (!cur.fabric) out.push('LINKS: no cluster');
  else {
    const pl = new Map(prev?.fabric?.links.map((l) => [l.node, l]));
    out.push(`LINKS (this node: ${cur.fabric.self})`);
    out.push(
      ...table(
        ['node', 'state', 'frames/s out', 'frames/s in', 'Gbps out', 'Gbps in', 'retransmitted', 'RTT ms'],
        cur.fabric.links.map((l) => {
          const q = pl.get(l.node);
          return [
            l.node,
            l.state,
            f1(rate(l.framesSent, q?.framesSent)),
            f1(rate(l.framesReceived, q?.framesReceived)),
            f2((rate(l.bytesSent, q?.bytesSent) * 8) / 1e9),
            f2((rate(l.bytesReceived, q?.bytesReceived) * 8) / 1e9),
            l.retransmitted,
            l.rttSeconds > 0 ? (l.rttSeconds * 1000).toFixed(3) : '-',
          ];
        }),
      ),
    );
  }
  out.push('');
  const fr = cur.faults;
  if (fr.rules.length === 0) out.push(`FAULTS (state ${fr.state}): no rules`);
  else {
    const pr = new Map(prev?.faults.rules.map((r) => [r.id, r]));
    out.push(`FAULTS (state ${fr.state})`);
    out.push(
      ...table(
        ['rule', 'point', 'action', 'live', 'matches', 'injections', 'new'],
        fr.rules.map((r) => [
          r.id,
          r.point,
          r.action,
          r.live ? 'yes' : 'no',
          r.matches,
          r.injections,
          pr.has(r.id) ? r.injections - pr.get(r.id)!.injections : '-',
        ]),
      ),
    );
  }
  if (fr.recent.length > 0) {
    out.push('  latest injections:');
    for (const r of fr.recent.slice(-5))
      out.push(
        `    ${new Date(r.atMs).toISOString().slice(11, 23)}  ${r.rule}  ${r.point}  ${r.action}  #${r.n}`,
      );
  }
  return out.join('\n') + '\n';
}
