/**
 * Shell pieces of the guest scripts that run real programs over SG-IOV
 * (test/vm/apps.test.ts, test/vm/cross-node-apps.test.ts), and the parsing
 * of what they print.
 *
 * In a script, `mark` before a program and `$(delta)` after it give
 * `dev=N segs=M`: the bytes the device moved meanwhile (its BYTES_MOVED
 * register, through the module's dp attribute) and the guest kernel's TCP
 * segments (/proc/net/snmp InSegs + OutSegs).
 */
export const GUEST_HELPERS = `
result() { echo "RESULT $*"; }
devbytes() { sed -n 's/.*bytes_moved=\\([0-9]*\\).*/\\1/p' /sys/bus/pci/drivers/sgiov/*/dp; }
tcpsegs() { awk '/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) c[$i] = i; h = 1 } else print $c["InSegs"] + $c["OutSegs"] }' /proc/net/snmp; }
mark() { B0=$(devbytes); T0=$(tcpsegs); }
delta() { echo "dev=$(( $(devbytes) - B0 )) segs=$(( $(tcpsegs) - T0 ))"; }
# Stops a background server by PID if it has not ended by itself.
reap() { sleep 2; kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
`;

/** The `RESULT name k=v ...` lines of a script's output, by name. */
export function results(s: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const l of s.split('\n')) {
    const r = /^RESULT (\S+) ?(.*)$/.exec(l);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

export const field = (s: string | undefined, k: string): string | undefined =>
  new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(s ?? '')?.[1];

export const num = (s: string | undefined, k: string): number => Number(field(s, k));

/** iperf3 -J's totals, from the `json=` field of a RESULT line. */
export function iperfBytes(line: string | undefined): { sent: number; received: number } {
  const j = JSON.parse(/ json=(.*)$/.exec(line ?? '')?.[1] ?? '{}') as {
    end?: { sum_received?: { bytes: number }; sum_sent?: { bytes: number } };
  };
  return { sent: j.end?.sum_sent?.bytes ?? 0, received: j.end?.sum_received?.bytes ?? 0 };
}

/** Segments of the guest kernel's TCP during a program: a handful at most (nothing of the program's traffic). */
export const FEW_SEGMENTS = 4;
