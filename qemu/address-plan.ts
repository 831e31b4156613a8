/**
 * The default address plan, guest side: node n (0-based, in the cluster's
 * sorted order), VM v on it: 10.77.n.(v+1)/16. qemu/init puts the address on
 * the guest's dummy interface sgiov0 and exports it as $SGIOV_ADDR.
 */
import { PLAN_PREFIX, PLAN_PREFIX_LEN } from '../emulator/abi/addr.js';

export { PLAN_PREFIX, PLAN_PREFIX_LEN };

/** The plan's address (with its prefix length) of VM `vm` on node `node`. */
export function guestAddress(node: number, vm: number): string {
  if (!Number.isInteger(node) || node < 0 || node > 255) throw new RangeError(`node ${node}: not in 0..255`);
  if (!Number.isInteger(vm) || vm < 0 || vm > 253) throw new RangeError(`VM ${vm}: not in 0..253`);
  return `${PLAN_PREFIX}.${node}.${vm + 1}/${PLAN_PREFIX_LEN}`;
}

/** Checks an address given instead of the plan's: IPv4 with a prefix length (A.B.C.D/N). */
export function parseCidr(s: string): string {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
  if (!m || m.slice(1, 5).some((x) => Number(x) > 255) || Number(m[5]) < 1 || Number(m[5]) > 32)
    throw new RangeError(`'${s}' is not an IPv4 address with a prefix length (A.B.C.D/N)`);
  return s;
}
