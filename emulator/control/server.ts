/**
 * The control interface: JSON lines on a local UNIX socket, served by the
 * main thread and answered by the device thread between its rounds.
 *   -> {"id": 1, "cmd": "status"}
 *   <- {"id": 1, "ok": true, "result": {...}}
 *   <- {"id": 1, "ok": false, "error": "unknown command 'x'"}
 * A malformed line gets an error reply and the connection stays open.
 * Later issues add commands here (tenants, schedulers, faults, metrics).
 *
 * The socket is owner-only (0600; 0660 with a group), whatever the umask:
 * whoever can connect can reset the device. Nothing a client sends grows
 * the emulator without bound: a line is at most MAX_LINE bytes, at most
 * MAX_INFLIGHT requests of a connection are with the device at once (the
 * connection is not read while MAX_QUEUED more wait), and a client that
 * lets MAX_REPLY_QUEUE bytes of replies pile up unread is disconnected.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmodSync, chownSync, unlinkSync } from 'node:fs';
import type { Logger } from '../util/log.js';

export type ControlHandler = (cmd: string, args: Record<string, unknown>) => Promise<unknown>;

/** The largest request line accepted; a client that sends more gets an error and is cut off. */
export const MAX_LINE = 256 << 10;
/** Requests of one connection being answered at once; more wait in its queue. */
const MAX_INFLIGHT = 16;
/** Lines waiting past this: the connection is not read until the device catches up. */
const MAX_QUEUED = 256;
/** Unread replies past this: the client does not read, and is disconnected. */
export const MAX_REPLY_QUEUE = 1 << 20;

export interface ControlServerOptions {
  /** A group given read and write on the socket (mode 0660); without it the owner only (0600). */
  gid?: number;
}

export class ControlServer {
  private server: Server | null = null;
  private readonly conns = new Set<Socket>();

  constructor(
    private readonly path: string,
    private readonly handle: ControlHandler,
    private readonly log: Logger,
    /** Fields every reply carries (the time, the device's uptime). */
    private readonly stamp: () => Record<string, unknown> = () => ({}),
    private readonly opts: ControlServerOptions = {},
  ) {}

  listen(): Promise<void> {
    try {
      unlinkSync(this.path);
    } catch {
      /* not there */
    }
    const server = createServer((c) => this.serve(c));
    this.server = server;
    // bind(2) creates the socket file with the umask's mode: owner-only from the start.
    const old = process.umask(0o177);
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => {
        try {
          if (this.opts.gid !== undefined) chownSync(this.path, -1, this.opts.gid);
          chmodSync(this.path, this.opts.gid !== undefined ? 0o660 : 0o600);
        } catch (e) {
          reject(e as Error);
          return;
        }
        this.log.info(
          { control: this.path, mode: this.opts.gid !== undefined ? '0660' : '0600' },
          'control interface listening',
        );
        resolve();
      });
    }).finally(() => process.umask(old));
  }

  private serve(c: Socket): void {
    this.conns.add(c);
    let buf = '';
    const lines: string[] = [];
    let inflight = 0;
    let cut = false;
    const pump = (): void => {
      while (inflight < MAX_INFLIGHT && lines.length > 0) {
        inflight++;
        void this.request(c, lines.shift()!).finally(() => {
          inflight--;
          pump();
        });
      }
      if (lines.length < MAX_QUEUED / 2 && c.isPaused() && !cut) c.resume();
    };
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      if (cut) return;
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.length > MAX_LINE) {
          cut = true;
          break;
        }
        if (line) lines.push(line);
      }
      if (cut || buf.length > MAX_LINE) {
        cut = true;
        this.log.warn({ max: MAX_LINE }, 'control request line too long; connection closed');
        c.end(
          JSON.stringify({ id: null, ok: false, error: `request line longer than ${MAX_LINE} bytes` }) + '\n',
        );
        return;
      }
      if (lines.length >= MAX_QUEUED) c.pause();
      pump();
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
    if (c.destroyed) return;
    c.write(
      JSON.stringify(reply, (_k, v: unknown) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v)) + '\n',
    );
    if (c.writableLength > MAX_REPLY_QUEUE) {
      this.log.warn(
        { queued: c.writableLength, max: MAX_REPLY_QUEUE },
        'control client does not read its replies; disconnected',
      );
      c.destroy();
    }
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
