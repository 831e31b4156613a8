/**
 * Names for the ABI's numbers (command ops, statuses, signal types, socket
 * states), for trace lines and metrics labels: `create`, `EINVAL`, `tx_tail`.
 */
import { ENUMS } from '../abi/abi.js';

const invert = (o: Record<string, number>): Record<number, string> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [v, k.toLowerCase()]));

export const CMD_OP_NAME: Record<number, string> = invert(ENUMS.CMD_OP);
export const SIGNAL_NAME: Record<number, string> = { ...invert(ENUMS.SIG_H2D), ...invert(ENUMS.SIG_D2H) };
/** Command statuses keep their errno spelling (OK, EINVAL, ...). */
export const STATUS_NAME: Record<number, string> = Object.fromEntries(
  Object.entries(ENUMS.STATUS).map(([k, v]) => [v, k]),
);
/** The socket table's states (SockState), by value. */
export const SOCK_STATE_NAMES = [
  'free',
  'created',
  'listening',
  'connecting',
  'connected',
  'closing',
  'error',
] as const;

export const nameOf = (names: Record<number, string>, v: number): string => names[v] ?? String(v);

const H = ENUMS.SIG_H2D;
const D = ENUMS.SIG_D2H;
const RING_SIGNALS: ReadonlySet<number> = new Set([
  H.TX_TAIL,
  H.RX_HEAD,
  D.TX_HEAD,
  D.RX_TAIL,
  D.MSG_ERROR,
  D.DIGEST,
]);
const SLOT_SIGNALS: ReadonlySet<number> = new Set([H.CMD, D.CMD_DONE]);
const SOCKET_SIGNALS: ReadonlySet<number> = new Set([D.EVENT, D.SOCK_ERROR]);

/** A signal's fields for a trace line: its type by name, and its id as the ring (and socket), slot or socket it is. */
export function signalFields(type: number, id: number, value: number): Record<string, unknown> {
  const t = nameOf(SIGNAL_NAME, type);
  if (RING_SIGNALS.has(type)) return { type: t, sid: id >>> 1, ring: id & 1 ? 'rx' : 'tx', value };
  if (SLOT_SIGNALS.has(type)) return { type: t, slot: id, value };
  if (SOCKET_SIGNALS.has(type)) return { type: t, sid: id, value };
  return { type: t, id, value };
}
