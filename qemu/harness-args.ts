/**
 * The harness commands' flags (npm run faults, bench, bench:apps): node's
 * parseArgs with --help/-h and one-line usage errors, so that a typo gets
 * "faults: Unknown option '--mesages'" and a pointer to the help, not a
 * stack trace.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses `argv` against `options`. Returns the result, or the exit status
 * when the command should stop: 0 after printing `help` for --help, 2 after
 * a usage error (printed as `name: message`).
 */
export function harnessArgs<O extends Options>(
  name: string,
  help: string,
  argv: string[],
  options: O,
  allowPositionals = false,
): ReturnType<typeof parseArgs<{ options: O; allowPositionals: boolean; args: string[] }>> | number {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(help.endsWith('\n') ? help : help + '\n');
    return 0;
  }
  try {
    return parseArgs({ args: argv, options, allowPositionals });
  } catch (e) {
    if (!(e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) throw e;
    process.stderr.write(`${name}: ${(e as Error).message.split('. ')[0]}\nRun with --help for usage.\n`);
    return 2;
  }
}
