/**
 * The front door of the vfio-user socket: this module, not libvfio-user,
 * owns the socket clients connect to, so that nothing a client does can
 * block the device thread.
 *
 * libvfio-user reads and writes its connection with blocking calls: it
 * waits in recv(2) for a handshake or a message body that never comes, in
 * sendmsg(2) for a client that does not read its replies, and it reads a
 * message body with one recv(2) without MSG_WAITALL, so a body larger than
 * what the socket holds at that moment (a 1 MiB REGION_WRITE) is read short
 * and the rest of it parsed as headers. So libvfio-user listens on a private
 * socket (in a 0700 directory), and for each client this module:
 *   - accepts it (listen backlog 128) on a non-blocking socket created
 *     owner-only (0600, or 0660 with a group), whatever the umask;
 *   - reads the client's messages without blocking and assembles each
 *     whole (header, body and its SCM_RIGHTS fds) before libvfio-user sees
 *     it; a client silent past the deadline in a handshake or mid-message is
 *     dropped with a log line;
 *   - checks what libvfio-user would trust (request checks: the fds of
 *     DMA_MAP and SET_IRQS, sizes), answering a refused request itself;
 *   - hands each whole message to libvfio-user through its own connection
 *     to the private socket, with buffers large enough for the message and
 *     its reply, so that libvfio-user's reads and writes never wait;
 *   - queues libvfio-user's replies (and their fds) for the client and
 *     writes them without blocking; a client that lets the queue pass
 *     1 MiB is dropped.
 */
import {
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  chmodSync,
  chownSync,
  unlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Logger } from '../util/log.js';
import {
  AF_UNIX,
  E2BIG,
  EAGAIN,
  EINVAL,
  EINTR,
  Libc,
  MSG_CTRUNC,
  MSG_DONTWAIT,
  POLLIN,
  POLLOUT,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOCK_STREAM,
  SOL_SOCKET,
  type Ptr,
} from '../native/libc.js';
import {
  CMD,
  FLAG_ERROR,
  FLAG_NO_REPLY,
  FLAG_TYPE_MASK,
  FLAG_TYPE_REPLY,
  HEADER_SIZE,
} from '../client/vfio-user-protocol.js';

/** libvfio-user's largest message: a REGION_WRITE of 1 MiB (header, region access, data). */
export const MAX_MESSAGE = (1 << 20) + HEADER_SIZE + 16;
/** Replies waiting for a client past this: the client does not read, and is dropped. */
export const MAX_REPLY_QUEUE = 1 << 20;
/** The buffers asked for the connection to libvfio-user (each way). */
const INNER_BUFFER = 4 << 20;
const LISTEN_BACKLOG = 128;

/** A request the front door refuses itself: the errno of the error reply, and why (logged). */
export interface Refusal {
  errno: number;
  reason: string;
  [k: string]: unknown;
}

/** What the front door needs of the vfio-user server behind it. */
export interface FrontDoorBackend {
  /** vfu_attach_ctx, once the client's VERSION waits on the private socket: true when attached. */
  attach(): boolean;
  /** vfu_run_ctx until it has nothing to read (and its handling of a hang-up). */
  serve(): void;
  /** The connection to libvfio-user is closed: let it see the end, whatever it still had to read. */
  hangUp(): void;
  /** libvfio-user's end of the connection (to size its send buffer), or -1. */
  connectionFd(): number;
  /**
   * A request about to be handed over: a refusal answers it instead. It may
   * keep fds it dup()s; the front door closes its own copies after.
   */
  check(cmd: number, payload: Buffer, fds: readonly number[]): Refusal | null;
}

export interface FrontDoorOptions {
  socketPath: string;
  /** A group given read and write on the socket (mode 0660), or none: the owner only (0600). */
  gid?: number;
  /** A handshake or a started message must complete within this (ms). */
  deadlineMs: number;
  log: Logger;
}

interface Outgoing {
  bytes: Buffer;
  off: number;
  fds: number[];
}

interface Client {
  fd: number;
  n: number;
  in: Buffer;
  inLen: number;
  inFds: number[];
  /** When the handshake or the message being assembled started (ns). */
  since: number;
  attached: boolean;
  out: Outgoing[];
  outBytes: number;
}

const nowNs = (): number => Number(process.hrtime.bigint());

/** The private directories are named for the process that made them: sgiov-vfu-<pid>-XXXXXX. */
const PRIVATE_PREFIX = 'sgiov-vfu-';

/**
 * Removes the private directories of emulators that died without cleaning
 * up (SIGKILL, a crash, the stop watchdog): those of this user whose
 * process is gone.
 */
function removeStalePrivateDirs(): void {
  const dir = tmpdir();
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^sgiov-vfu-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    const path = join(dir, name);
    try {
      if (statSync(path).uid !== process.getuid?.()) continue;
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') rmSync(path, { recursive: true, force: true });
    }
  }
}

export class FrontDoor {
  private readonly libc = Libc.get();
  private readonly log: Logger;
  private listenFd = -1;
  private client: Client | null = null;
  private inner = -1;
  private innerIn = Buffer.alloc(0);
  private innerFds: number[] = [];
  private clients = 0;
  /** Native scratch for every read and write (one thread, one call at a time). */
  private readonly scratch: Ptr;
  private readonly scratchView: Uint8Array;
  private readonly scratchLen = MAX_MESSAGE + 4096;
  /** The largest message and the largest reply the connection to libvfio-user holds whole. */
  private requestCap = 0;
  private replyCap = 0;
  /** The directory of libvfio-user's private socket. */
  readonly privateDir: string;
  readonly privatePath: string;
  readonly stats = { dropped: 0, refused: 0 };

  constructor(
    private readonly opts: FrontDoorOptions,
    private readonly backend: FrontDoorBackend,
  ) {
    this.log = opts.log.child({ sub: 'front-door' });
    this.scratch = this.libc.alloc(this.scratchLen);
    this.scratchView = new Uint8Array(this.libc.view(this.scratch, this.scratchLen));
    removeStalePrivateDirs();
    this.privateDir = mkdtempSync(join(tmpdir(), `${PRIVATE_PREFIX}${process.pid}-`));
    this.privatePath = join(this.privateDir, 's');
  }

  /** Creates the public socket: owner-only (or the group's too), whatever the umask; listening. */
  listen(): void {
    const { socketPath, gid } = this.opts;
    const libc = this.libc;
    try {
      unlinkSync(socketPath);
    } catch {
      /* not there */
    }
    const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket(AF_UNIX) failed: errno ${libc.errno()}`);
    // Bound and listening under a private name first, then renamed into place: a client that
    // sees the path can connect (a socket file that exists before listen(2) refuses with
    // ECONNREFUSED). A path too long for the private name is bound in place.
    const hidden = join(dirname(socketPath), `.${basename(socketPath)}.${process.pid}`);
    const bindPath = Buffer.byteLength(hidden) < 108 ? hidden : socketPath;
    try {
      if (bindPath !== socketPath) unlinkSync(bindPath);
    } catch {
      /* not there */
    }
    const [addr, len] = libc.unixAddress(bindPath);
    // The socket file is created by bind(2) with the umask's mode: owner-only from the start.
    const old = libc.umask(0o177);
    const rc = libc.bind(fd, addr, len);
    const e = libc.errno();
    libc.umask(old);
    if (rc < 0) {
      libc.close(fd);
      throw new Error(`bind(${socketPath}) failed: errno ${e}`);
    }
    if (gid !== undefined) chownSync(bindPath, -1, gid);
    chmodSync(bindPath, gid !== undefined ? 0o660 : 0o600);
    if (libc.listen(fd, LISTEN_BACKLOG) < 0) {
      const le = libc.errno();
      libc.close(fd);
      if (bindPath !== socketPath) rmSync(bindPath, { force: true });
      throw new Error(`listen(${socketPath}) failed: errno ${le}`);
    }
    if (bindPath !== socketPath) renameSync(bindPath, socketPath);
    this.listenFd = fd;
  }

  /** The descriptor the loop polls for the front door, and the events it waits for. */
  pollFd(): number {
    return this.client ? this.client.fd : this.listenFd;
  }

  pollEvents(): number {
    return POLLIN | (this.client && this.client.outBytes > 0 ? POLLOUT : 0);
  }

  get attached(): boolean {
    return this.client?.attached ?? false;
  }

  /** How long until a deadline needs a look (ms), or undefined. */
  nextDeadlineMs(): number | undefined {
    const c = this.client;
    if (!c || (c.attached && c.inLen === 0)) return undefined;
    return Math.max(0, Math.ceil((c.since + this.opts.deadlineMs * 1e6 - nowNs()) / 1e6));
  }

  /** The polled descriptor is ready (or a deadline may have passed): serve it. */
  ready(revents: number): void {
    if (!this.client) {
      if (revents !== 0) this.accept();
      return;
    }
    if (revents & POLLOUT) this.flush();
    if (this.client && revents & ~POLLOUT) this.readClient();
    this.checkDeadline();
  }

  /** Looks at the deadline only (the loop calls it when nothing was ready). */
  tick(): void {
    this.checkDeadline();
  }

  private checkDeadline(): void {
    const c = this.client;
    if (!c || (c.attached && c.inLen === 0)) return;
    const waited = (nowNs() - c.since) / 1e6;
    if (waited < this.opts.deadlineMs) return;
    this.drop(
      c.attached ? 'a message started but not finished within the deadline' : 'silent past the deadline',
      { waitedMs: Math.round(waited), deadlineMs: this.opts.deadlineMs, have: c.inLen },
    );
  }

  private accept(): void {
    const fd = this.libc.accept4(this.listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const e = this.libc.errno();
      if (e !== EAGAIN && e !== EINTR) this.log.warn({ errno: e }, 'accept failed');
      return;
    }
    this.clients++;
    this.client = {
      fd,
      n: this.clients,
      in: Buffer.alloc(4096),
      inLen: 0,
      inFds: [],
      since: nowNs(),
      attached: false,
      out: [],
      outBytes: 0,
    };
    this.log.debug({ conn: this.clients }, 'connection accepted; waiting for the handshake');
  }

  private readClient(): void {
    for (let reads = 0; this.client && reads < 64; reads++) {
      const c = this.client;
      // Never past the message being assembled: fds come with the read that takes the
      // first bytes of the sendmsg carrying them, so a read that ran into the next message
      // would give that message's fds to this one (QEMU sends DMA_MAPs back to back).
      const want = Math.min(this.scratchLen, Math.max(1, this.needed(c) - c.inLen));
      const r = this.libc.recvWithFds(c.fd, this.scratch, want, MSG_DONTWAIT);
      if (r.n < 0) {
        const e = this.libc.errno();
        if (e === EAGAIN || e === EINTR) return;
        this.drop('read from the client failed', { errno: e });
        return;
      }
      if (r.flags & MSG_CTRUNC) {
        for (const f of r.fds) this.libc.close(f);
        this.drop('the client sent more fds in one message than are accepted', {});
        return;
      }
      if (r.n === 0) {
        for (const f of r.fds) this.libc.close(f);
        this.drop(null, {});
        return;
      }
      if (c.inLen === 0) c.since = nowNs();
      if (c.in.length < c.inLen + r.n) {
        const grown = Buffer.alloc(Math.min(MAX_MESSAGE * 2, Math.max(c.in.length * 2, c.inLen + r.n)));
        c.in.copy(grown, 0, 0, c.inLen);
        c.in = grown;
      }
      c.in.set(this.scratchView.subarray(0, r.n), c.inLen);
      c.inLen += r.n;
      c.inFds.push(...r.fds);
      this.takeMessages();
    }
  }

  /** Bytes the message being assembled needs in all (its header says; 16 until there is one). */
  private needed(c: Client): number {
    return c.inLen >= HEADER_SIZE ? c.in.readUInt32LE(4) : HEADER_SIZE;
  }

  private takeMessages(): void {
    for (let c = this.client; c && c.inLen >= HEADER_SIZE; c = this.client) {
      const size = c.in.readUInt32LE(4);
      if (size < HEADER_SIZE || size > MAX_MESSAGE) {
        this.drop('a message size out of range: the stream cannot be followed', {
          size,
          max: MAX_MESSAGE,
        });
        return;
      }
      if (c.inLen < size) return;
      const msg = Buffer.from(c.in.subarray(0, size));
      c.in.copy(c.in, 0, size, c.inLen);
      c.inLen -= size;
      c.since = nowNs();
      const fds = c.inFds;
      c.inFds = [];
      this.handle(c, msg, fds);
      for (const f of fds) this.libc.close(f);
    }
  }

  private handle(c: Client, msg: Buffer, fds: number[]): void {
    const cmd = msg.readUInt16LE(2);
    if (!c.attached) {
      if (cmd !== CMD.VERSION) {
        this.drop('the first message is not VERSION', { cmd });
        return;
      }
      if (!this.connectInner() || !this.sendInner(msg, fds)) return;
      if (!this.backend.attach()) {
        this.drop('libvfio-user refused the handshake', {});
        return;
      }
      c.attached = true;
      this.sizeBuffer(this.backend.connectionFd(), 'reply');
      this.log.debug({ conn: c.n }, 'handshake done');
      this.drainInner();
      return;
    }
    const refusal = this.refuse(cmd, msg) ?? this.backend.check(cmd, msg.subarray(HEADER_SIZE), fds);
    if (refusal) {
      this.stats.refused++;
      const { errno, reason, ...rest } = refusal;
      this.log.warn({ conn: c.n, cmd, errno, ...rest }, `request refused: ${reason}`);
      if ((msg.readUInt32LE(8) & FLAG_NO_REPLY) === 0) this.queue(this.errorReply(msg, errno), []);
      this.flush();
      return;
    }
    if (!this.sendInner(msg, fds)) return;
    this.backend.serve();
    this.drainInner();
  }

  /**
   * Headers libvfio-user rejects without reading the body (which it then
   * parses as headers), messages the connection to libvfio-user cannot
   * carry whole, and requests whose reply it could not.
   */
  private refuse(cmd: number, msg: Buffer): Refusal | null {
    if ((msg.readUInt32LE(8) & FLAG_TYPE_MASK) !== 0)
      return {
        errno: EINVAL,
        reason: 'not a command (the header type is not 0)',
        flags: msg.readUInt32LE(8),
      };
    if (msg.length === HEADER_SIZE && cmd !== CMD.DEVICE_RESET)
      return { errno: EINVAL, reason: 'a command without its payload', size: msg.length };
    if (msg.length > this.requestCap)
      return {
        errno: E2BIG,
        reason: 'message larger than this host can pass whole',
        size: msg.length,
        max: this.requestCap,
      };
    let reply = 0;
    if (cmd === CMD.REGION_READ && msg.length >= HEADER_SIZE + 16)
      reply = HEADER_SIZE + 16 + msg.readUInt32LE(HEADER_SIZE + 12);
    if ((cmd === CMD.DMA_UNMAP || cmd === CMD.DIRTY_PAGES) && msg.length >= HEADER_SIZE + 4)
      reply = HEADER_SIZE + msg.readUInt32LE(HEADER_SIZE);
    if (reply > this.replyCap)
      return {
        errno: E2BIG,
        reason: 'reply larger than this host can pass whole',
        reply,
        max: this.replyCap,
      };
    return null;
  }

  private errorReply(msg: Buffer, errno: number): Buffer {
    const r = Buffer.alloc(HEADER_SIZE);
    r.writeUInt16LE(msg.readUInt16LE(0), 0);
    r.writeUInt16LE(msg.readUInt16LE(2), 2);
    r.writeUInt32LE(HEADER_SIZE, 4);
    r.writeUInt32LE(FLAG_TYPE_REPLY | FLAG_ERROR, 8);
    r.writeUInt32LE(errno, 12);
    return r;
  }

  /** Asks for large send buffers (SO_SNDBUFFORCE when allowed); returns what one message may be. */
  private sizeBuffer(fd: number, which: 'request' | 'reply'): void {
    if (fd < 0) return;
    const v = Buffer.alloc(4);
    v.writeInt32LE(INNER_BUFFER, 0);
    if (this.libc.setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, v, 4) < 0)
      this.libc.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, v, 4);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(4, 0);
    this.libc.getsockopt(fd, SOL_SOCKET, SO_SNDBUF, v, len);
    // The kernel doubles what was asked for its bookkeeping: half of it is data, safely.
    const cap = Math.floor(v.readInt32LE(0) / 2);
    if (which === 'request') this.requestCap = cap;
    else this.replyCap = cap;
    if (cap < MAX_MESSAGE)
      this.log.info(
        { [which]: cap, max: MAX_MESSAGE },
        `the socket buffers allow ${which}s of ${cap} bytes at most; larger ones are refused with E2BIG (raise net.core.wmem_max)`,
      );
  }

  private connectInner(): boolean {
    const libc = this.libc;
    const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const [addr, len] = libc.unixAddress(this.privatePath);
    if (fd < 0 || libc.connect(fd, addr, len) < 0) {
      const e = libc.errno();
      if (fd >= 0) libc.close(fd);
      this.drop('could not reach libvfio-user', { errno: e });
      return false;
    }
    this.inner = fd;
    this.sizeBuffer(fd, 'request');
    return true;
  }

  private sendInner(msg: Buffer, fds: readonly number[]): boolean {
    this.scratchView.set(msg);
    const n = this.libc.sendWithFds(this.inner, this.scratch, msg.length, fds, MSG_DONTWAIT);
    if (n !== msg.length) {
      this.drop('could not pass a message whole to libvfio-user', {
        size: msg.length,
        sent: n,
        errno: this.libc.errno(),
      });
      return false;
    }
    return true;
  }

  /** Takes what libvfio-user wrote and queues it for the client, message by message. */
  private drainInner(): void {
    for (;;) {
      if (this.inner < 0) return;
      const r = this.libc.recvWithFds(this.inner, this.scratch, this.scratchLen, MSG_DONTWAIT);
      if (r.n < 0) {
        const e = this.libc.errno();
        if (e === EAGAIN || e === EINTR) break;
        this.drop('read from libvfio-user failed', { errno: e });
        return;
      }
      if (r.n === 0) {
        for (const f of r.fds) this.libc.close(f);
        this.drop('libvfio-user closed the connection', {});
        return;
      }
      this.innerIn = Buffer.concat([this.innerIn, this.scratchView.subarray(0, r.n)]);
      this.innerFds.push(...r.fds);
    }
    while (this.innerIn.length >= HEADER_SIZE) {
      const size = Math.max(HEADER_SIZE, this.innerIn.readUInt32LE(4));
      if (this.innerIn.length < size) break;
      const fds = this.innerFds;
      this.innerFds = [];
      this.queue(Buffer.from(this.innerIn.subarray(0, size)), fds);
      this.innerIn = this.innerIn.subarray(size);
    }
    this.flush();
  }

  private queue(bytes: Buffer, fds: number[]): void {
    const c = this.client;
    if (!c) {
      for (const f of fds) this.libc.close(f);
      return;
    }
    c.out.push({ bytes, off: 0, fds });
    c.outBytes += bytes.length;
  }

  /** Writes queued replies as far as the client takes them; drops a client that lets them pile up. */
  private flush(): void {
    const c = this.client;
    if (!c) return;
    while (c.out.length > 0) {
      const o = c.out[0]!;
      const len = Math.min(o.bytes.length - o.off, this.scratchLen);
      this.scratchView.set(o.bytes.subarray(o.off, o.off + len));
      const n = this.libc.sendWithFds(c.fd, this.scratch, len, o.off === 0 ? o.fds : [], MSG_DONTWAIT);
      if (n < 0) {
        const e = this.libc.errno();
        if (e === EAGAIN || e === EINTR) break;
        this.drop('write to the client failed', { errno: e });
        return;
      }
      if (o.off === 0) {
        for (const f of o.fds) this.libc.close(f);
        o.fds = [];
      }
      o.off += n;
      c.outBytes -= n;
      if (o.off >= o.bytes.length) c.out.shift();
    }
    if (c.outBytes > MAX_REPLY_QUEUE)
      this.drop('the client does not read its replies', { queued: c.outBytes, max: MAX_REPLY_QUEUE });
  }

  /**
   * Ends the client's connection (reason null: it hung up) and libvfio-user's
   * with it; the server notices the hang-up in serve() and resets the device.
   */
  drop(reason: string | null, fields: Record<string, unknown>): void {
    const c = this.client;
    if (!c) return;
    this.client = null;
    if (reason !== null) {
      this.stats.dropped++;
      // Before the handshake is done it is a failed handshake (the log says so, as it always has).
      const what = c.attached ? 'client dropped' : 'client failed the vfio-user handshake; dropped';
      this.log.warn({ conn: c.n, ...fields }, `${what}: ${reason}`);
    }
    this.libc.close(c.fd);
    for (const f of c.inFds) this.libc.close(f);
    for (const o of c.out) for (const f of o.fds) this.libc.close(f);
    for (const f of this.innerFds) this.libc.close(f);
    this.innerFds = [];
    this.innerIn = Buffer.alloc(0);
    if (this.inner >= 0) {
      this.libc.close(this.inner);
      this.inner = -1;
      if (c.attached) this.backend.hangUp();
    }
  }

  close(): void {
    this.drop(null, {});
    if (this.listenFd >= 0) this.libc.close(this.listenFd);
    this.listenFd = -1;
    try {
      unlinkSync(this.opts.socketPath);
    } catch {
      /* already gone */
    }
    rmSync(this.privateDir, { recursive: true, force: true });
    this.libc.free(this.scratch);
  }
}
