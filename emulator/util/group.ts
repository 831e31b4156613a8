/**
 * A group given access to a socket (--socket-group, --control-group): a
 * name from /etc/group or a numeric gid.
 */
import { readFileSync } from 'node:fs';

/** The gid of `group` (a name or a number); throws naming the group when there is none. */
export function resolveGroup(group: string, groupFile = '/etc/group'): number {
  if (/^\d+$/.test(group)) {
    const gid = Number(group);
    if (gid <= 0xfffffffe) return gid;
  }
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    /* no group file: only numbers */
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`no group '${group}' (not in ${groupFile}, not a gid)`);
}
