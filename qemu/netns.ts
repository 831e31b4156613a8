/**
 * Two network namespaces joined by a veth pair, made by a test (or the
 * benchmark) for cross-node traffic that stays off the host's network:
 * "node a" at 10.X.Y.1 in one, "node b" at 10.X.Y.2 in the other. Needs
 * root (CAP_NET_ADMIN) and iproute2 (a host package of the setup).
 * remove() deletes both namespaces, which deletes the veth pair.
 */
import { execFileSync } from 'node:child_process';

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export class NetnsPair {
  readonly nsA: string;
  readonly nsB: string;
  readonly ipA: string;
  readonly ipB: string;
  /** The veth ends (interface names are at most 15 characters). */
  readonly vethA: string;
  readonly vethB: string;
  private removed = false;

  private constructor(tag: string) {
    const id = `${process.pid % 100000}${Math.floor(Math.random() * 36 ** 2).toString(36)}`;
    this.nsA = `sgiov-${tag}-${id}-a`;
    this.nsB = `sgiov-${tag}-${id}-b`;
    this.vethA = `sgv${id}a`.slice(0, 15);
    this.vethB = `sgv${id}b`.slice(0, 15);
    const x = 100 + (process.pid % 100),
      y = Math.floor(Math.random() * 250);
    this.ipA = `10.${x}.${y}.1`;
    this.ipB = `10.${x}.${y}.2`;
  }

  /** Whether this process may make namespaces. */
  static available(): boolean {
    try {
      ip('netns', 'list');
      return process.getuid?.() === 0;
    } catch {
      return false;
    }
  }

  static create(tag: string): NetnsPair {
    const p = new NetnsPair(tag);
    try {
      ip('netns', 'add', p.nsA);
      ip('netns', 'add', p.nsB);
      ip('link', 'add', p.vethA, 'type', 'veth', 'peer', 'name', p.vethB);
      ip('link', 'set', p.vethA, 'netns', p.nsA);
      ip('link', 'set', p.vethB, 'netns', p.nsB);
      for (const [ns, dev, addr] of [
        [p.nsA, p.vethA, p.ipA],
        [p.nsB, p.vethB, p.ipB],
      ] as const) {
        ip('-n', ns, 'addr', 'add', `${addr}/24`, 'dev', dev);
        ip('-n', ns, 'link', 'set', dev, 'up');
        ip('-n', ns, 'link', 'set', 'lo', 'up');
      }
    } catch (e) {
      p.remove();
      throw e;
    }
    return p;
  }

  /**
   * Where node `node` of a two-node cluster runs and how its emulator is told
   * the cluster: its namespace, and `serve`'s flags naming both nodes at
   * `port` and itself.
   */
  node(node: 'a' | 'b', port: number): { netns: string; cluster: string[] } {
    return {
      netns: node === 'a' ? this.nsA : this.nsB,
      cluster: ['--node', `a=${this.ipA}:${port}`, '--node', `b=${this.ipB}:${port}`, '--self', node],
    };
  }

  /** Cuts the link (both ends down: TCP sees nothing more, as on a pulled cable). */
  down(): void {
    ip('-n', this.nsA, 'link', 'set', this.vethA, 'down');
    ip('-n', this.nsB, 'link', 'set', this.vethB, 'down');
  }

  up(): void {
    ip('-n', this.nsA, 'link', 'set', this.vethA, 'up');
    ip('-n', this.nsB, 'link', 'set', this.vethB, 'up');
  }

  remove(): void {
    if (this.removed) return;
    this.removed = true;
    for (const ns of [this.nsA, this.nsB]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* not made */
      }
    }
  }
}
