/**
 * How log lines reach stdout: JSON lines as pino writes them, or pino-pretty's
 * one readable line per record (time, level, sub, message, then the fields).
 * The default is pretty on a terminal and JSON otherwise (a file, a pipe).
 */
import pinoPretty from 'pino-pretty';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function isLogFormat(s: string): s is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(s);
}

export function defaultLogFormat(): LogFormat {
  return process.stdout.isTTY ? 'pretty' : 'json';
}

/** A function that writes one JSON log line (newline or not) to stdout in `format`. */
export function lineWriter(
  format: LogFormat,
  write = (s: string) => process.stdout.write(s),
): (line: string) => void {
  if (format === 'json') return (line) => write(line.endsWith('\n') ? line : line + '\n');
  const pretty = pinoPretty.prettyFactory({
    colorize: process.stdout.isTTY === true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    messageFormat: '{if sub}[{sub}] {end}{msg}',
    hideObject: false,
  });
  return (line) => {
    // A line that is not JSON (it should not happen) is written as it came.
    let out: string;
    try {
      out = pretty(line);
    } catch {
      out = line;
    }
    write(out.endsWith('\n') ? out : out + '\n');
  };
}
