/**
 * The control interface: JSON lines on a local UNIX socket, served by the
 * main thread and answered by the device thread between its rounds.
 *   -> {"id": 1, "cmd": "status"}
 *   <- {"id": 1, "ok": true, "result": {...}}
 *   <- {"id": 1, "ok": false, "error": "unknown command 'x'"}
 * A malformed line gets an error reply and the connection stays open.
 * Later issues add commands here (tenants, schedulers, faults, metrics).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import type { Logger } from '../util/log.js';

export type ControlHandler = (cmd: string, args: Record<string, unknown>) => Promise<unknown>;

/** The largest request line accepted; a client that sends more is cut off. */
const MAX_LINE = 1 << 20;

export class ControlServer {
  private server: Server | null = null;
  private readonly conns = new Set<Socket>();

  constructor(
    private readonly path: string,
    private readonly handle: ControlHandler,
    private readonly log: Logger,
    /** Fields every reply carries (the time, the device's uptime). */
    private readonly stamp: () => Record<string, unknown> = () => ({}),
  ) {}

  listen(): Promise<void> {
    try {
      unlinkSync(this.path);
    } catch {
      /* not there */
    }
    const server = createServer((c) => this.serve(c));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        this.log.info({ control: this.path }, 'control interface listening');
        resolve();
      });
    });
  }

  private serve(c: Socket): void {
    this.conns.add(c);
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        c.end(JSON.stringify({ ok: false, error: `request line longer than ${MAX_LINE} bytes` }) + '\n');
        return;
      }
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) void this.request(c, line);
      }
    });
    c.on('error', () => {
      /* a client gone mid-reply */
    });
    c.on('close', () => this.conns.delete(c));
  }

  private async request(c: Socket, line: string): Promise<void> {
    let id: unknown = null;
    let reply: Record<string, unknown>;
    try {
      const req = JSON.parse(line) as { id?: unknown; cmd?: unknown; args?: unknown };
      if (typeof req !== 'object' || req === null || Array.isArray(req))
        throw new TypeError('a request is a JSON object');
      id = req.id ?? null;
      if (typeof req.cmd !== 'string') throw new TypeError('"cmd" must be a string');
      const args = req.args ?? {};
      if (typeof args !== 'object' || args === null || Array.isArray(args))
        throw new TypeError('"args" must be an object');
      reply = {
        id,
        ok: true,
        ...this.stamp(),
        result: await this.handle(req.cmd, args as Record<string, unknown>),
      };
    } catch (e) {
      reply = {
        id,
        ok: false,
        ...this.stamp(),
        error: e instanceof SyntaxError ? `not JSON: ${e.message}` : (e as Error).message,
      };
    }
    if (!c.destroyed)
      c.write(
        JSON.stringify(reply, (_k, v: unknown) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v)) + '\n',
      );
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    try {
      unlinkSync(this.path);
    } catch {
      /* gone */
    }
  }
}
