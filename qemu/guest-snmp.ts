/**
 * The guest kernel's TCP counters (/proc/net/snmp) as a command's output
 * carries them: a shell function for the guest script, `snmp TAG`, prints
 * one `SNMP TAG Tcp: names... Tcp: values...` line; `snmpTcp` reads it back
 * on the host. A program that runs over SG-IOV leaves them where they were
 * (no ActiveOpens, no segments); one on the kernel's TCP moves them.
 */

/** The guest side: defines `snmp TAG`. */
export const SNMP_SH = `snmp() { echo "SNMP $1 $(grep '^Tcp:' /proc/net/snmp | tr '\\n' ' ')"; }`;

/** The counters of the last `SNMP TAG ...` line in `out` by name ({} when there is none). */
export function snmpTcp(out: string, tag: string): Record<string, number> {
  const line = [...out.matchAll(new RegExp(`^SNMP ${tag} (.*)$`, 'gm'))].pop()?.[1] ?? '';
  const [, names = '', values = ''] = line.split('Tcp:');
  const n = names.trim().split(/\s+/).filter(Boolean);
  const v = values.trim().split(/\s+/).map(Number);
  return Object.fromEntries(n.map((k, i) => [k, v[i]!]));
}

/** b - a for the named counters (NaN where one is missing). */
export function snmpDelta(
  a: Record<string, number>,
  b: Record<string, number>,
  names: string[],
): Record<string, number> {
  return Object.fromEntries(names.map((k) => [k, (b[k] ?? NaN) - (a[k] ?? NaN)]));
}
