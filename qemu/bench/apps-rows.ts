/**
 * The rows of `npm run bench:apps` (qemu/bench/apps.ts) from the guest's
 * output: the guest script prints one `BENCH PROGRAM SIDE k=v ...` line per
 * measurement (SIDE `kernel` or `sgiov`) and `SNMP TAG Tcp: ...` lines with
 * the guest kernel's TCP counters around each sgiov measurement
 * (qemu/guest-snmp.ts). Pure
 * functions, so the arithmetic is unit-tested without a VM.
 */
import { goalMet } from './rows.js';

export type Side = 'kernel' | 'sgiov';

/** A row as the JSON has it: ratio = sgiov / baseline (the kernel's TCP), goal like ">= 1.0". */
export interface AppsRow {
  id: string;
  unit: string;
  sgiov: number | null;
  baseline: number | null;
  ratio: number | null;
  goal: string;
  met: boolean;
}

/** `k=v` fields of the last `BENCH PROGRAM SIDE ...` line (after the warm-up's), or undefined when there is none. */
export function benchLine(out: string, program: string, side: Side): Record<string, string> | undefined {
  const m = [...out.matchAll(new RegExp(`^BENCH ${program} ${side} (.*?)\\r?$`, 'gm'))].pop();
  if (!m) return undefined;
  const f: Record<string, string> = {};
  for (const kv of m[1]!.matchAll(/(\w+)=(\S*)/g)) f[kv[1]!] = kv[2]!;
  return f;
}

/** One side's figures; null where the program failed or printed nothing usable. */
export interface SideFigures {
  rc: string;
  /** iperf3: receiver Gbit/s. */
  iperfGbps: number | null;
  /** iperf3: guest CPU seconds (/proc/stat, all CPUs, busy jiffies over the client's run) per GB received. */
  cpuSecondsPerGB: number | null;
  /** iperf3's own view: (client + server cpu_utilization_percent) / 100 x seconds, per GB. */
  iperfCpuSecondsPerGB: number | null;
  iperfBytes: number | null;
  /** NPtcp: one-way time of 4 KiB messages (us). */
  nptcp4kUs: number | null;
  /** wrk: requests per second against nginx. */
  wrkRps: number | null;
  wrkNon2xx: number;
}

interface IperfJson {
  end?: {
    sum_received?: { bytes?: number; bits_per_second?: number; seconds?: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

const finite = (x: number | undefined | null): number | null =>
  x !== undefined && x !== null && Number.isFinite(x) ? x : null;

/** USER_HZ: /proc/stat counts in hundredths of a second. */
const USER_HZ = 100;

export function sideFigures(out: string, side: Side): SideFigures {
  const ip = benchLine(out, 'iperf3', side);
  const np = benchLine(out, 'nptcp', side);
  const wk = benchLine(out, 'wrk', side);
  let j: IperfJson = {};
  try {
    j = JSON.parse(ip?.json ?? '{}') as IperfJson;
  } catch {
    j = {};
  }
  const recv = j.end?.sum_received;
  const bytes = ip?.rc === '0' ? finite(recv?.bytes) : null;
  const gb = bytes ? bytes / 1e9 : null;
  const busy = finite(Number(ip?.busy));
  const cpu = j.end?.cpu_utilization_percent;
  const iperfCpu =
    gb && cpu && recv?.seconds
      ? (((cpu.host_total ?? 0) + (cpu.remote_total ?? 0)) / 100) * recv.seconds
      : null;
  const npRow = np?.rc === '0' ? (np.row ?? '').split(',') : [];
  const rps = wk?.rc === '0' ? finite(Number(wk.rps)) : null;
  return {
    rc: [ip?.rc, np?.rc, wk?.rc].map((r) => r ?? 'none').join(','),
    iperfGbps: bytes ? finite((recv?.bits_per_second ?? NaN) / 1e9) : null,
    cpuSecondsPerGB: gb && busy !== null ? busy / USER_HZ / gb : null,
    iperfCpuSecondsPerGB: gb && iperfCpu !== null ? iperfCpu / gb : null,
    iperfBytes: bytes,
    nptcp4kUs: npRow[0] === '4096' ? finite(Number(npRow[2]) * 1e6) : null,
    wrkRps: rps && rps > 0 ? rps : null,
    wrkNon2xx: Number(wk?.non2xx || 0),
  };
}

function row(id: string, unit: string, sgiov: number | null, baseline: number | null, goal: string): AppsRow {
  const ratio = sgiov !== null && baseline ? sgiov / baseline : null;
  const met = ratio !== null && goalMet(ratio, goal);
  return { id, unit, sgiov, baseline, ratio, goal, met };
}

/** The four rows of issue 12, part 5. */
export function appsRows(kernel: SideFigures, sgiov: SideFigures): AppsRow[] {
  // A wrk run with non-2xx answers measured something else than serving the file.
  const rps = (s: SideFigures): number | null => (s.wrkNon2xx ? null : s.wrkRps);
  return [
    row('apps.iperf3.loopback', 'Gbit/s', sgiov.iperfGbps, kernel.iperfGbps, '>= 1.0'),
    row('apps.iperf3.cpu', 'guest CPU s/GB', sgiov.cpuSecondsPerGB, kernel.cpuSecondsPerGB, '<= 0.5'),
    row('apps.nptcp.4k', 'us one-way', sgiov.nptcp4kUs, kernel.nptcp4kUs, '<= 1.0'),
    row('apps.nginx.wrk', 'requests/s', rps(sgiov), rps(kernel), '>= 1.0'),
  ];
}
