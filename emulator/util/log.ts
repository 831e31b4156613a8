/**
 * Logging: pino, JSON lines. The level comes from --log-level or
 * SGIOV_LOG_LEVEL (default info). Subsystems take child loggers
 * ({ sub: 'model' }, { sub: 'vfu' }, ...).
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

export function defaultLevel(): LogLevel {
  const env = process.env.SGIOV_LOG_LEVEL;
  return env && isLogLevel(env) ? env : 'info';
}

export function makeLogger(level: LogLevel = defaultLevel(), dest?: DestinationStream): Logger {
  return pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    dest ?? pino.destination({ dest: 1, sync: true }),
  );
}

/**
 * A child logger for a part of the emulator: `{"sub": name}` on its lines.
 * pino appends a child's bindings to its parent's, so under a parent that
 * has a `sub` already a second one would repeat the key in every line
 * (JSON parsers keep only the last); there the part goes in `part`.
 */
export function subLogger(log: Logger, name: string): Logger {
  return log.bindings().sub === undefined ? log.child({ sub: name }) : log.child({ part: name });
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Guest errors can come in floods (a buggy driver in a loop). Log the first
 * few of each kind per window, then one summary with the count suppressed.
 */
export class RateLimitedLog {
  private counts = new Map<string, { n: number; since: number }>();
  constructor(
    private readonly log: Logger,
    private readonly perWindow = 10,
    private readonly windowMs = 1000,
  ) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    let c = this.counts.get(key);
    if (!c || now - c.since >= this.windowMs) {
      if (c && c.n > this.perWindow)
        this.log.warn({ key, suppressed: c.n - this.perWindow }, 'similar guest errors suppressed');
      c = { n: 0, since: now };
      this.counts.set(key, c);
    }
    c.n++;
    if (c.n <= this.perWindow) this.log.warn(obj, msg);
  }
}
