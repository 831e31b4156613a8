/**
 * sgiov top: a live view of a running emulator through its control socket,
 * a frame every --interval seconds (as spdk_top). --once samples twice, one
 * interval apart, prints one frame and exits (for scripts and tests).
 */
import type { ControlClient } from '../control/client.js';
import { CONTROL_OPTION, withControl } from './control-session.js';
import type { Snapshot } from '../host/snapshot.js';
import { renderFrame } from '../observe/top-view.js';
import { commandHelp, parseCommand, UsageError, type CommandSpec } from './options.js';

export const TOP: CommandSpec = {
  name: 'top',
  summary:
    'a live view of a running emulator: tenants against their DRF allocation, accelerators, sockets, links, faults',
  usage: ['--control PATH [--interval S] [--once]'],
  options: [
    CONTROL_OPTION,
    {
      name: 'interval',
      short: 'i',
      type: 'string',
      arg: 'S',
      help: 'seconds between frames; rates are computed over it (0.1..3600)',
      default: '1 s',
    },
    { name: 'once', type: 'boolean', help: 'print one frame (two samples an interval apart) and exit' },
  ],
  footer: 'Live: q or Ctrl-C quits. Rates are over the interval; totals are since the emulator started.\n',
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runTop(argv: string[]): Promise<number> {
  const { values, positionals, help } = parseCommand(TOP, argv);
  if (help) {
    process.stdout.write(commandHelp(TOP));
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`, 'top');
  const path = values.control as string | undefined;
  if (!path) throw new UsageError('--control PATH is required', 'top');
  const intervalS = values.interval === undefined ? 1 : Number(values.interval);
  if (!(Number.isFinite(intervalS) && intervalS >= 0.1 && intervalS <= 3600))
    throw new UsageError(
      `--interval: '${String(values.interval)}' is not a number of seconds in 0.1..3600`,
      'top',
    );
  return withControl('top', path, (c) => live(c, path, intervalS, values.once === true));
}

async function live(c: ControlClient, path: string, intervalS: number, once: boolean): Promise<number> {
  const sample = async (): Promise<{ snap: Snapshot; time: string; uptimeS: number }> => {
    const r = await c.request('metrics');
    if (!r.ok) throw new Error(r.error ?? 'metrics failed');
    return { snap: r.result as Snapshot, time: r.time ?? '', uptimeS: r.uptimeS ?? NaN };
  };
  const frame = (prev: Snapshot | null, s: Awaited<ReturnType<typeof sample>>): string =>
    renderFrame(prev, s.snap, { control: path, time: s.time, uptimeS: s.uptimeS });
  let stop = false;
  const quit = (): void => {
    stop = true;
  };
  try {
    let prev = await sample();
    if (once) {
      await sleep(intervalS * 1000);
      process.stdout.write(frame(prev.snap, await sample()));
      return 0;
    }
    process.once('SIGINT', quit);
    const tty = process.stdin.isTTY === true;
    if (tty) {
      process.stdin.setRawMode(true);
      process.stdin.on('data', (b: Buffer) => {
        if (b.includes(0x71) || b.includes(0x03)) quit(); // q, Ctrl-C
      });
    }
    process.stdout.write(`\x1b[H\x1b[2J${frame(null, prev)}`);
    while (!stop) {
      const end = Date.now() + intervalS * 1000;
      while (!stop && Date.now() < end) await sleep(Math.min(100, end - Date.now()));
      if (stop) break;
      const cur = await sample();
      process.stdout.write(`\x1b[H\x1b[2J${frame(prev.snap, cur)}`);
      prev = cur;
    }
    if (tty) {
      process.stdin.setRawMode(false);
      process.stdin.pause();
    }
    return 0;
  } finally {
    process.off('SIGINT', quit);
  }
}
