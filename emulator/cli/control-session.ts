/**
 * A CLI command's session with a running emulator's control socket (ctl,
 * top): a socket that cannot be reached, or that stops answering, is one
 * line on stderr and exit status 1, never a stack trace.
 */
import { ControlClient, ControlUnreachable } from '../control/client.js';
import type { OptionSpec } from './options.js';

/** --control PATH, as ctl and top take it. */
export const CONTROL_OPTION: OptionSpec = {
  name: 'control',
  short: 'c',
  type: 'string',
  arg: 'PATH',
  help: 'the control socket (serve --control PATH)',
};

export async function withControl(
  name: string,
  path: string,
  use: (c: ControlClient) => Promise<number>,
): Promise<number> {
  const unreachable = (e: unknown): number => {
    if (!(e instanceof ControlUnreachable)) throw e;
    process.stderr.write(`sgiov ${name}: ${e.message}\n`);
    return 1;
  };
  let c: ControlClient;
  try {
    c = await ControlClient.connect(path);
  } catch (e) {
    return unreachable(e);
  }
  try {
    return await use(c);
  } catch (e) {
    return unreachable(e);
  } finally {
    c.close();
  }
}
