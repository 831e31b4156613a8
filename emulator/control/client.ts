/**
 * A client of the control interface (for `sgiov ctl` and `sgiov top`): one
 * connection, requests answered in order, a reply per line. Failures are
 * one-line Errors that say what to check (no stack trace for the user).
 */
import { createConnection, type Socket } from 'node:net';

export interface ControlReply {
  id: unknown;
  ok: boolean;
  result?: unknown;
  error?: string;
  time?: string;
  uptimeS?: number;
}

/** Thrown for a control socket that cannot be reached or stops answering. */
export class ControlUnreachable extends Error {}

function reachError(path: string, e: NodeJS.ErrnoException): ControlUnreachable {
  const why =
    e.code === 'ENOENT'
      ? 'no such socket'
      : e.code === 'ECONNREFUSED'
        ? 'nobody listens there (a stale socket file?)'
        : e.code === 'EACCES'
          ? 'permission denied'
          : e.message;
  return new ControlUnreachable(
    `cannot reach the control socket ${path}: ${why} (is 'sgiov serve --control ${path}' running?)`,
  );
}

export class ControlClient {
  private buf = '';
  private nextId = 1;
  private readonly waiting: { resolve: (r: ControlReply) => void; reject: (e: Error) => void }[] = [];
  private failed: Error | null = null;

  private constructor(
    private readonly c: Socket,
    private readonly path: string,
  ) {
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      this.buf += d;
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiting.shift();
        if (!w) continue;
        try {
          w.resolve(JSON.parse(line) as ControlReply);
        } catch {
          w.reject(new ControlUnreachable(`control socket ${path}: a reply that is not JSON`));
        }
      }
    });
    const fail = (e: Error): void => {
      this.failed = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    c.on('error', (e: NodeJS.ErrnoException) => fail(reachError(path, e)));
    c.on('close', () =>
      fail(new ControlUnreachable(`control socket ${path}: the emulator closed the connection`)),
    );
  }

  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const c = createConnection(path);
      const onErr = (e: NodeJS.ErrnoException): void => reject(reachError(path, e));
      c.once('error', onErr);
      c.once('connect', () => {
        c.off('error', onErr);
        resolve(new ControlClient(c, path));
      });
    });
  }

  /** One request; resolves with the reply (ok or not), rejects when the socket fails or is silent for `ms`. */
  request(cmd: string, args: Record<string, unknown> = {}, ms = 10_000): Promise<ControlReply> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(new ControlUnreachable(`control socket ${this.path}: no answer to '${cmd}' in ${ms} ms`)),
        ms,
      );
      this.waiting.push({
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.c.write(JSON.stringify({ id: this.nextId++, cmd, args }) + '\n');
    });
  }

  /** The result of a request that must succeed; its error as an Error otherwise. */
  async call(cmd: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const r = await this.request(cmd, args);
    if (!r.ok) throw new Error(r.error ?? `${cmd} failed`);
    return r.result;
  }

  close(): void {
    this.failed ??= new ControlUnreachable('closed');
    this.c.destroy();
  }
}
