/**
 * serve's observability flags (--metrics, --trace, --trace-rate,
 * --log-format), kept apart from serve's other options: spread into its
 * parseArgs table, checked here.
 */
import { parseListenAddress, type ListenAddress } from '../observe/metrics.js';
import { defaultLogFormat, isLogFormat, LOG_FORMATS, type LogFormat } from '../observe/log-format.js';
import { TRACE_EVENTS, TRACE_RATE_DEFAULT, traceEvents } from '../util/trace.js';
import { UsageError } from './options.js';

export const OBSERVE_ARGS = {
  metrics: { type: 'string' },
  trace: { type: 'string' },
  'trace-rate': { type: 'string' },
  'log-format': { type: 'string' },
} as const;

const PAD = ' '.repeat(29);

/** The event names, a few a line, under the option's text. */
function eventLines(): string {
  const lines: string[] = [];
  let cur = '';
  for (const e of TRACE_EVENTS) {
    if (cur && cur.length + e.length + 2 > 66) {
      lines.push(cur + ',');
      cur = e;
    } else cur = cur ? `${cur}, ${e}` : e;
  }
  lines.push(cur);
  return lines.map((l) => `${PAD}  ${l}\n`).join('');
}

/** The lines of the help for them (the global help and `sgiov serve --help`). */
export const OBSERVE_HELP = `      --metrics HOST:PORT    serve /metrics (Prometheus text format) there; a bare PORT
                             listens on 127.0.0.1; 0 picks a free port (off by default)
      --trace PATTERN        log one line per event whose name matches: globs, comma-separated,
                             -GLOB removes, e.g. 'mmio_*' or 'cmd_*,dma_*'. Events:
${eventLines()}      --trace-rate N         trace lines per event per second at most; the rest are counted
                             in a "trace lines suppressed" line (default ${TRACE_RATE_DEFAULT})
      --log-format FORMAT    ${LOG_FORMATS.join('|')} (default: pretty on a terminal, json otherwise)
`;

export interface ObserveOptions {
  metrics?: ListenAddress;
  trace?: { pattern: string; perSecond?: number };
  logFormat: LogFormat;
}

export function observeFromOptions(values: {
  metrics?: string;
  trace?: string;
  'trace-rate'?: string;
  'log-format'?: string;
}): ObserveOptions {
  let metrics: ListenAddress | undefined;
  if (values.metrics !== undefined) {
    try {
      metrics = parseListenAddress(values.metrics);
    } catch (e) {
      throw new UsageError(`--metrics: ${(e as Error).message}`);
    }
  }
  let trace: ObserveOptions['trace'];
  if (values.trace !== undefined) {
    try {
      traceEvents(values.trace);
    } catch (e) {
      throw new UsageError(`--trace: ${(e as Error).message}`);
    }
    trace = { pattern: values.trace };
  }
  if (values['trace-rate'] !== undefined) {
    const n = Number(values['trace-rate']);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`--trace-rate: '${values['trace-rate']}' is not a whole number >= 1`);
    trace = { pattern: trace?.pattern ?? '', perSecond: n };
  }
  const format = values['log-format'] ?? defaultLogFormat();
  if (!isLogFormat(format))
    throw new UsageError(`--log-format: '${format}' is not one of ${LOG_FORMATS.join(', ')}`);
  return { ...(metrics ? { metrics } : {}), ...(trace ? { trace } : {}), logFormat: format };
}
