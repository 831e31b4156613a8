/**
 * Before `serve` listens on a UNIX socket path (vfio-user or control): a
 * path on which a live process listens is refused (taking it over would
 * leave that emulator unreachable), a socket file nobody listens on (left
 * by an emulator that died) is removed, and any other file is left alone.
 *
 * Listening is read from /proc/net/unix first, which does not disturb the
 * live emulator (a probe connection would be a client to it); a connect
 * probe covers what that table does not show (another network namespace).
 */
import { readFileSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection } from 'node:net';
import { resolve } from 'node:path';

export class SocketPathInUse extends Error {}

/** Paths of listening UNIX sockets in this network namespace (null: the table cannot be read). */
function listeningPaths(): Set<string> | null {
  let text: string;
  try {
    text = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return null;
  }
  const out = new Set<string>();
  // Num RefCount Protocol Flags Type St Inode Path; Flags 00010000 is __SO_ACCEPTCON (listening).
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || !f[7]) continue;
    if ((Number.parseInt(f[3]!, 16) & 0x10000) !== 0) out.add(f.slice(7).join(' '));
  }
  return out;
}

function probe(path: string): Promise<'live' | 'dead'> {
  return new Promise((res, rej) => {
    const c = createConnection(path);
    c.once('connect', () => {
      c.destroy();
      res('live');
    });
    c.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNREFUSED') res('dead');
      else rej(new SocketPathInUse(`${path}: ${e.message}`));
    });
  });
}

/**
 * Makes `path` free for a new listener. Returns 'free' (nothing there) or
 * 'stale' (a dead socket file was removed); throws SocketPathInUse naming
 * the path and `what` it is for otherwise.
 */
export async function claimSocketPath(path: string, what: string): Promise<'free' | 'stale'> {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'free';
    throw new SocketPathInUse(`${what} ${path}: ${(e as Error).message}`);
  }
  if (!st.isSocket())
    throw new SocketPathInUse(`${what} ${path} exists and is not a socket; not replacing it`);
  const live = listeningPaths();
  const busy = `${what} ${path}: another process (an emulator?) is listening there; stop it or choose another path`;
  if (live && (live.has(path) || live.has(resolve(path)))) throw new SocketPathInUse(busy);
  if ((await probe(path)) === 'live') throw new SocketPathInUse(busy);
  unlinkSync(path);
  return 'stale';
}
