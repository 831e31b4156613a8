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
