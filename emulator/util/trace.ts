/**
 * Trace events, as QEMU's -trace: a glob over event names (`mmio_*`,
 * `cmd_*,dma_*`) turns on one log line per event. Off, an event costs the
 * test of a flag in TRACE (`if (TRACE.mmio_read) trace('mmio_read', ...)`):
 * the flags are computed when the pattern changes, never per event.
 *
 * Lines are rate-limited per event: at most `perSecond` a second each; the
 * rest are counted and reported in one line ("trace lines suppressed",
 * with the count) when the second is over and the event comes again, when
 * the pattern changes, and at flushTrace().
 */
import type { Logger } from './log.js';

export const TRACE_EVENTS = [
  'mmio_read',
  'mmio_write',
  'dma_done',
  'dma_error',
  'cmd_submit',
  'cmd_done',
  'signal_h2d',
  'signal_d2h',
  'job_submit',
  'job_start',
  'job_done',
  'fault_inject',
] as const;
export type TraceEvent = (typeof TRACE_EVENTS)[number];

/** What each event is, for `sgiov serve --help` and the docs. */
export const TRACE_HELP: Record<TraceEvent, string> = {
  mmio_read: 'a BAR read by the guest: bar, offset, size, value',
  mmio_write: 'a BAR write by the guest: bar, offset, size, value',
  dma_done: 'a DMA-engine job completed: tag, src, dst, len, op',
  dma_error: 'a DMA-engine job failed: tag, code, addr, why',
  cmd_submit: 'a command taken from its slot: slot, op, sid',
  cmd_done: 'a command answered: slot, op, status, result',
  signal_h2d: 'a host-to-device signal: type, id (socket or slot), value',
  signal_d2h: 'a device-to-host signal queued: type, id, value',
  job_submit: 'a message handed to the scheduled accelerators: tenant, bytes, jobs, accels',
  job_start: 'an accelerator starts a job: accel, tenant, bytes',
  job_done: 'an accelerator finished a job: accel, tenant, bytes',
  fault_inject: 'a fault rule fired: rule, point, action and what the point knew',
};

/** Per event: on or off (read on the hot paths; changed only by setTrace). */
export const TRACE: Record<TraceEvent, boolean> = Object.fromEntries(
  TRACE_EVENTS.map((e) => [e, false]),
) as Record<TraceEvent, boolean>;

export const TRACE_RATE_DEFAULT = 1000;

interface Window {
  since: number;
  n: number;
  suppressed: number;
}

let out: Logger | null = null;
let perSecond = TRACE_RATE_DEFAULT;
let pattern = '';
const windows = new Map<TraceEvent, Window>();

/** A glob (`*`, `?`) as a RegExp over the whole name. */
function globRe(g: string): RegExp {
  const body = g
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

/**
 * The events a pattern turns on: comma-separated globs, applied in order;
 * `-glob` turns off what it matches. '' or 'none': none. Throws naming a
 * glob that matches no event.
 */
export function traceEvents(p: string): TraceEvent[] {
  const on = new Set<TraceEvent>();
  const parts = p
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '' && x !== 'none');
  for (const part of parts) {
    const off = part.startsWith('-');
    const re = globRe(off ? part.slice(1) : part);
    const hit = TRACE_EVENTS.filter((e) => re.test(e));
    if (hit.length === 0)
      throw new Error(`trace pattern '${part}' matches no event (events: ${TRACE_EVENTS.join(', ')})`);
    for (const e of hit) {
      if (off) on.delete(e);
      else on.add(e);
    }
  }
  return TRACE_EVENTS.filter((e) => on.has(e));
}

/**
 * Sets the pattern (throws on a bad one, leaving the old in force) and
 * where lines go. Returns the events now on.
 */
export function setTrace(p: string, log: Logger, rate = perSecond): TraceEvent[] {
  const events = traceEvents(p);
  if (!(Number.isInteger(rate) && rate >= 1))
    throw new Error(`trace rate ${rate} is not a whole number >= 1`);
  flushTrace();
  // Trace lines show whatever the log level: they were asked for by name.
  out = log.child({ sub: 'trace' }, { level: 'info' });
  perSecond = rate;
  pattern = events.length > 0 ? p : '';
  for (const e of TRACE_EVENTS) TRACE[e] = events.includes(e);
  return events;
}

export function traceState(): { pattern: string; events: TraceEvent[]; perSecond: number } {
  return { pattern, events: TRACE_EVENTS.filter((e) => TRACE[e]), perSecond };
}

/** One event (callers test TRACE[ev] first). */
export function trace(ev: TraceEvent, fields: Record<string, unknown>): void {
  if (!TRACE[ev] || !out) return;
  const now = Date.now();
  let w = windows.get(ev);
  if (!w) windows.set(ev, (w = { since: now, n: 0, suppressed: 0 }));
  else if (now - w.since >= 1000) {
    report(ev, w);
    w.since = now;
    w.n = 0;
  }
  if (++w.n > perSecond) {
    w.suppressed++;
    return;
  }
  out.info({ ev, ...fields }, ev);
}

function report(ev: TraceEvent, w: Window): void {
  if (w.suppressed === 0 || !out) return;
  out.info({ ev, suppressed: w.suppressed, perSecond }, 'trace lines suppressed');
  w.suppressed = 0;
}

/** Reports what is still suppressed (at stop, when the pattern changes). */
export function flushTrace(): void {
  for (const [ev, w] of windows) report(ev, w);
}

/** A number as hex, as the logs show addresses. */
export const hex = (v: number | bigint): string => '0x' + v.toString(16);
