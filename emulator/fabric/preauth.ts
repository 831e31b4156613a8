/**
 * Accepted connections that have not finished the handshake (TLS, HELLO,
 * authentication): the only state a stranger can make a node keep, so it
 * is bounded in time and in number. Each gets `timeoutMs`; at most
 * `perHost` come from one remote host and `total` in all. One more evicts
 * the oldest of its host, or, when the total is reached, the oldest of
 * all: a flood of half-open handshakes pushes out its own connections
 * (the oldest are the ones that are not finishing), while a real peer's
 * handshake, a round trip or two, completes before it is the oldest; and
 * a flood from one host cannot push out another host's handshakes at all.
 */
export type PreAuthEnd = 'timeout' | 'evicted';

export interface PreAuthLimits {
  timeoutMs: number;
  perHost: number;
  total: number;
}

export const DEFAULT_PREAUTH: Omit<PreAuthLimits, 'timeoutMs'> = { perHost: 16, total: 64 };

export class PreAuth<T> {
  /** In arrival order (a Map iterates in insertion order): the first is the oldest. */
  private readonly items = new Map<T, { host: string; timer: NodeJS.Timeout }>();
  private readonly byHost = new Map<string, Set<T>>();

  constructor(
    private readonly limits: PreAuthLimits,
    /** `item` is let go for `why`; the owner drops it and counts. */
    private readonly end: (item: T, why: PreAuthEnd) => void,
  ) {}

  get size(): number {
    return this.items.size;
  }

  has(item: T): boolean {
    return this.items.has(item);
  }

  /** Holds `item` (from `host`), evicting first what the bounds require. */
  add(item: T, host: string): void {
    const mine = this.byHost.get(host);
    if (mine && mine.size >= this.limits.perHost) this.expire(mine.values().next().value as T, 'evicted');
    if (this.items.size >= this.limits.total) this.expire(this.items.keys().next().value as T, 'evicted');
    const timer = setTimeout(() => this.expire(item, 'timeout'), this.limits.timeoutMs);
    this.items.set(item, { host, timer });
    let set = this.byHost.get(host);
    if (!set) this.byHost.set(host, (set = new Set()));
    set.add(item);
  }

  /** `item` finished its handshake or is gone: no longer held. */
  delete(item: T): boolean {
    const e = this.items.get(item);
    if (!e) return false;
    clearTimeout(e.timer);
    this.items.delete(item);
    const set = this.byHost.get(e.host)!;
    set.delete(item);
    if (set.size === 0) this.byHost.delete(e.host);
    return true;
  }

  /** Lets everything go without reporting it (the owner is closing); returns what was held. */
  clear(): T[] {
    const all = [...this.items.keys()];
    for (const item of all) this.delete(item);
    return all;
  }

  private expire(item: T, why: PreAuthEnd): void {
    if (this.delete(item)) this.end(item, why);
  }
}

/** The host part of a Wire's "host:port" (an IPv6 address keeps its colons). */
export function hostOf(remote: string): string {
  const i = remote.lastIndexOf(':');
  return i < 0 ? remote : remote.slice(0, i);
}
