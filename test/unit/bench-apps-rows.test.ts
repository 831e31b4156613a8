/** The rows of `npm run bench:apps` from a guest's output (qemu/bench/apps-rows.ts), and the SNMP lines. */
import { describe, expect, it } from 'vitest';
import { appsRows, benchLine, sideFigures } from '../../qemu/bench/apps-rows.js';
import { snmpDelta, snmpTcp } from '../../qemu/guest-snmp.js';

const iperf = (bytes: number, bps: number, host: number, remote: number): string =>
  JSON.stringify({
    end: {
      sum_received: { bytes, bits_per_second: bps, seconds: 5 },
      cpu_utilization_percent: { host_total: host, remote_total: remote },
    },
  });

const OUT = [
  'boot noise',
  // The warm-up round's lines come first; the measured round's count.
  'BENCH iperf3 kernel rc=0 busy=1 json={}',
  'BENCH wrk kernel rc=0 nginx=0 rps=1 non2xx=',
  `BENCH iperf3 kernel rc=0 busy=500 json=${iperf(2e9, 3.2e9, 40, 60)}`,
  'BENCH nptcp kernel rc=0 row=4096,25.8,0.00120000',
  'BENCH wrk kernel rc=0 nginx=0 rps=150.50 non2xx=',
  `BENCH iperf3 sgiov rc=0 busy=200 json=${iperf(4e9, 6.4e9, 20, 20)}\r`,
  'BENCH nptcp sgiov rc=0 row=4096,40.1,0.00060000',
  'BENCH wrk sgiov rc=0 nginx=0 rps=100 non2xx=12',
].join('\n');

describe('bench:apps rows', () => {
  it('computes each side, ratio = sgiov / kernel and whether the goal is met', () => {
    expect(benchLine(OUT, 'wrk', 'kernel')).toEqual({ rc: '0', nginx: '0', rps: '150.50', non2xx: '' });
    const k = sideFigures(OUT, 'kernel');
    const s = sideFigures(OUT, 'sgiov');
    expect(k.iperfGbps).toBeCloseTo(3.2);
    // 500 jiffies = 5 CPU seconds over 2 GB.
    expect(k.cpuSecondsPerGB).toBeCloseTo(2.5);
    // (40 + 60) % of 5 s = 5 s over 2 GB.
    expect(k.iperfCpuSecondsPerGB).toBeCloseTo(2.5);
    expect(k.nptcp4kUs).toBeCloseTo(1200);
    expect(s.cpuSecondsPerGB).toBeCloseTo(0.5);
    const rows = appsRows(k, s);
    expect(rows.map((r) => [r.id, r.ratio === null ? null : Number(r.ratio.toFixed(3)), r.met])).toEqual([
      ['apps.iperf3.loopback', 2, true],
      ['apps.iperf3.cpu', 0.2, true],
      ['apps.nptcp.4k', 0.5, true],
      // Non-2xx answers: no figure, not met.
      ['apps.nginx.wrk', null, false],
    ]);
    expect(rows[0]).toEqual({
      id: 'apps.iperf3.loopback',
      unit: 'Gbit/s',
      sgiov: 6.4,
      baseline: 3.2,
      ratio: 2,
      goal: '>= 1.0',
      met: true,
    });
  });

  it('gives no figure for a side that failed or did not run', () => {
    const out = 'BENCH iperf3 kernel rc=1 busy=5 json=\nBENCH nptcp sgiov rc=no-sgiov-run\n';
    const k = sideFigures(out, 'kernel');
    expect(k).toMatchObject({
      rc: '1,none,none',
      iperfGbps: null,
      cpuSecondsPerGB: null,
      nptcp4kUs: null,
      wrkRps: null,
    });
    const rows = appsRows(k, sideFigures(out, 'sgiov'));
    expect(rows.every((r) => r.ratio === null && !r.met)).toBe(true);
    // A missed goal is "met: false" with its ratio.
    const slow = appsRows({ ...k, nptcp4kUs: 100 }, { ...k, nptcp4kUs: 150 })[2]!;
    expect([slow.ratio, slow.met]).toEqual([1.5, false]);
  });

  it('reads SNMP lines and their deltas', () => {
    const out =
      'SNMP b Tcp: ActiveOpens OutSegs Tcp: 1 1 \nSNMP a Tcp: ActiveOpens OutSegs Tcp: 5 100 \nSNMP b Tcp: ActiveOpens OutSegs Tcp: 5 140 \n';
    expect(snmpDelta(snmpTcp(out, 'a'), snmpTcp(out, 'b'), ['ActiveOpens', 'OutSegs'])).toEqual({
      ActiveOpens: 0,
      OutSegs: 40,
    });
    expect(snmpTcp(out, 'c')).toEqual({});
  });
});
