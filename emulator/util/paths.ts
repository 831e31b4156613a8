/** Where things are: the checkout (found from this file, in src or dist) and the setup cache. */
import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the sgiov checkout above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}

export function cacheDir(): string {
  return process.env.SGIOV_CACHE ?? join(homedir(), '.cache', 'sgiov');
}

/**
 * This checkout's id in the shared cache (scripts/lib.sh: guest_json): the
 * physical path hashed, so that parallel checkouts boot what each built.
 */
export function checkoutId(): string {
  return createHash('sha256').update(realpathSync(repoRoot())).digest('hex').slice(0, 12);
}
