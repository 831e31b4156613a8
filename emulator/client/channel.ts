/**
 * One vfio-user connection, client side: a blocking AF_UNIX stream socket,
 * a send and a receive buffer in native memory, and synchronous
 * request/reply exchanges (one message in flight at a time, as the protocol
 * allows and as the device's register semantics want).
 *
 * A request is written into `send` after the header (HEADER_SIZE), then
 * `transact` sends it with any fds and returns the reply's payload length;
 * the payload is in `recv` after the header until the next transact.
 *
 * A reply with the error flag throws a VfioUserError and leaves the channel
 * usable. Anything that loses track of the stream (the server hung up, a
 * timeout, a malformed reply) closes the socket: later calls throw.
 */
import { EAGAIN, EINTR, Libc, type Ptr } from '../native/libc.js';
import {
  commandName,
  FLAG_ERROR,
  FLAG_TYPE_COMMAND,
  FLAG_NO_REPLY,
  FLAG_TYPE_MASK,
  FLAG_TYPE_REPLY,
  HEADER_SIZE,
  VfioUserError,
} from './vfio-user-protocol.js';

const EOPNOTSUPP = 95;

/** A native buffer with views; grows by replacement. */
class NativeBuf {
  ptr: Ptr = 0n;
  cap = 0;
  u8: Uint8Array = new Uint8Array(0);
  dv: DataView = new DataView(new ArrayBuffer(0));
  constructor(
    private readonly libc: Libc,
    cap: number,
  ) {
    this.grow(cap);
  }
  grow(cap: number, keep = 0): void {
    const ptr = this.libc.alloc(cap);
    const u8 = new Uint8Array(this.libc.view(ptr, cap));
    if (keep > 0) u8.set(this.u8.subarray(0, keep));
    if (this.ptr) this.libc.free(this.ptr);
    this.ptr = ptr;
    this.cap = cap;
    this.u8 = u8;
    this.dv = new DataView(u8.buffer, u8.byteOffset, cap);
  }
  release(): void {
    if (this.ptr) this.libc.free(this.ptr);
    this.ptr = 0n;
    this.cap = 0;
    this.u8 = new Uint8Array(0);
    this.dv = new DataView(new ArrayBuffer(0));
  }
}

export interface ChannelStats {
  requests: number;
  bytesSent: number;
  bytesReceived: number;
}

export class VfioUserChannel {
  private readonly libc = Libc.get();
  private fd: number;
  private msgId = 0;
  private readonly sendBuf: NativeBuf;
  private readonly recvBuf: NativeBuf;
  /** Why the channel is closed, once it is. */
  private closedBecause: string | null = null;
  /** fds that came with the last reply (the caller owns them). */
  replyFds: number[] = [];
  readonly stats: ChannelStats = { requests: 0, bytesSent: 0, bytesReceived: 0 };

  constructor(
    readonly socketPath: string,
    timeoutMs: number,
  ) {
    this.fd = this.libc.connectUnix(socketPath);
    try {
      this.libc.setSocketTimeout(this.fd, timeoutMs);
    } catch (e) {
      this.libc.close(this.fd);
      throw e;
    }
    this.sendBuf = new NativeBuf(this.libc, 64 * 1024);
    this.recvBuf = new NativeBuf(this.libc, 64 * 1024);
  }

  get open(): boolean {
    return this.fd >= 0;
  }

  /** The send buffer's DataView; the payload starts at HEADER_SIZE. */
  get send(): DataView {
    if (this.sendBuf.cap === 0) this.ensureOpen(0);
    return this.sendBuf.dv;
  }

  get sendBytes(): Uint8Array {
    if (this.sendBuf.cap === 0) this.ensureOpen(0);
    return this.sendBuf.u8;
  }

  /** The receive buffer's DataView; the last reply's payload starts at HEADER_SIZE. */
  get recv(): DataView {
    return this.recvBuf.dv;
  }

  get recvBytes(): Uint8Array {
    return this.recvBuf.u8;
  }

  /** Makes room for a request payload of `len` bytes (call before writing it). */
  reserve(len: number): void {
    if (HEADER_SIZE + len > this.sendBuf.cap) this.sendBuf.grow(HEADER_SIZE + len);
  }

  /**
   * Sends the request in the send buffer (command `cmd`, `payloadLen`
   * bytes after the header) with `fds`, waits for its reply and returns the
   * reply's payload length. fds received with the reply go to replyFds
   * (closed unless `keepFds`).
   */
  transact(cmd: number, payloadLen: number, fds: readonly number[] = [], keepFds = false): number {
    const id = this.sendRequest(cmd, payloadLen, FLAG_TYPE_COMMAND, fds);
    for (;;) {
      const size = this.receiveMessage(cmd);
      const r = this.recvBuf.dv;
      const flags = r.getUint32(8, true);
      const rcmd = r.getUint16(2, true);
      const rid = r.getUint16(0, true);
      if ((flags & FLAG_TYPE_MASK) === FLAG_TYPE_COMMAND) {
        // The server asks something of us (DMA_READ/WRITE: message-based DMA,
        // which this client does not serve: its memory is shared by fd).
        this.closeFds(this.replyFds);
        this.refuse(rid, rcmd);
        continue;
      }
      if ((flags & FLAG_TYPE_MASK) !== FLAG_TYPE_REPLY || rid !== id || rcmd !== cmd) {
        this.closeFds(this.replyFds);
        throw this.broken(
          cmd,
          `unexpected reply (id ${rid}, command ${rcmd}, flags 0x${flags.toString(16)}) to message ${id}`,
        );
      }
      if (flags & FLAG_ERROR) {
        this.closeFds(this.replyFds);
        throw new VfioUserError(cmd, r.getUint32(12, true));
      }
      if (!keepFds) this.closeFds(this.replyFds);
      return size - HEADER_SIZE;
    }
  }

  /**
   * Sends the request in the send buffer without waiting: flagged NO_REPLY,
   * so the server sends none (a posted write, as MMIO writes are on PCIe:
   * a doorbell costs one sendmsg instead of a round trip).
   */
  post(cmd: number, payloadLen: number): void {
    this.sendRequest(cmd, payloadLen, FLAG_TYPE_COMMAND | FLAG_NO_REPLY, []);
  }

  /** Writes the header before the request in the send buffer and sends it; returns its message id. */
  private sendRequest(cmd: number, payloadLen: number, flags: number, fds: readonly number[]): number {
    this.ensureOpen(cmd);
    const id = this.msgId;
    this.msgId = (this.msgId + 1) & 0xffff;
    const total = HEADER_SIZE + payloadLen;
    const h = this.sendBuf.dv;
    h.setUint16(0, id, true);
    h.setUint16(2, cmd, true);
    h.setUint32(4, total, true);
    h.setUint32(8, flags, true);
    h.setUint32(12, 0, true);
    this.sendAll(cmd, this.sendBuf.ptr, total, fds);
    this.stats.requests++;
    this.stats.bytesSent += total;
    return id;
  }

  /** Closes the socket (idempotent); `why` is what later calls report. */
  close(why = 'closed'): void {
    if (this.fd >= 0) {
      this.libc.close(this.fd);
      this.fd = -1;
      this.closedBecause ??= why;
    }
  }

  /** Frees the native buffers; the channel is unusable afterwards. */
  release(): void {
    this.close();
    this.sendBuf.release();
    this.recvBuf.release();
  }

  // ---- internals -------------------------------------------------------------

  private ensureOpen(cmd: number): void {
    if (this.fd < 0)
      throw new Error(
        `${cmd ? commandName(cmd) : 'vfio-user'}: not connected to ${this.socketPath} (${this.closedBecause ?? 'closed'})`,
      );
  }

  /** Closes the socket and returns the error to throw. */
  private broken(cmd: number, why: string): Error {
    this.close(why);
    return new Error(`${commandName(cmd)}: ${why}; connection to ${this.socketPath} closed`);
  }

  private sendAll(cmd: number, ptr: Ptr, len: number, fds: readonly number[]): void {
    let off = 0;
    let withFds = fds;
    while (off < len) {
      const n = this.libc.sendWithFds(this.fd, ptr + BigInt(off), len - off, withFds);
      if (n < 0) {
        const e = this.libc.errno();
        if (e === EINTR) continue;
        throw this.broken(cmd, e === EAGAIN ? 'send timed out' : `send failed: errno ${e}`);
      }
      off += n;
      withFds = []; // the fds went with the first byte
    }
  }

  /**
   * Reads one whole message into the receive buffer (growing it when the
   * message is larger) and returns its size. Only one request is ever in
   * flight and the server sends nothing unasked, so a read never runs into
   * the next message.
   */
  private receiveMessage(cmd: number): number {
    const b = this.recvBuf;
    this.replyFds = [];
    let got = 0;
    let size = 0;
    for (;;) {
      const want = size === 0 ? b.cap - got : size - got;
      const r = this.libc.recvWithFds(this.fd, b.ptr + BigInt(got), want);
      if (r.fds.length > 0) this.replyFds.push(...r.fds);
      if (r.n < 0) {
        const e = this.libc.errno();
        if (e === EINTR) continue;
        this.closeFds(this.replyFds);
        throw this.broken(cmd, e === EAGAIN ? 'no reply within the timeout' : `recv failed: errno ${e}`);
      }
      if (r.n === 0) {
        this.closeFds(this.replyFds);
        throw this.broken(
          cmd,
          got === 0
            ? 'the server closed the connection'
            : `the server closed the connection mid-reply (${got} bytes read)`,
        );
      }
      got += r.n;
      this.stats.bytesReceived += r.n;
      if (size === 0 && got >= HEADER_SIZE) {
        size = b.dv.getUint32(4, true);
        if (size < HEADER_SIZE) throw this.broken(cmd, `reply header gives a message size of ${size}`);
        if (size > b.cap) b.grow(size, got);
      }
      if (size !== 0 && got >= size) {
        if (got > size)
          throw this.broken(cmd, `reply of ${size} bytes followed by ${got - size} unexpected bytes`);
        return size;
      }
    }
  }

  /** Answers a server request with an error (header only). */
  private refuse(id: number, cmd: number): void {
    const tmp = this.libc.alloc(HEADER_SIZE);
    try {
      const h = new DataView(this.libc.view(tmp, HEADER_SIZE));
      h.setUint16(0, id, true);
      h.setUint16(2, cmd, true);
      h.setUint32(4, HEADER_SIZE, true);
      h.setUint32(8, FLAG_TYPE_REPLY | FLAG_ERROR, true);
      h.setUint32(12, EOPNOTSUPP, true);
      this.sendAll(cmd, tmp, HEADER_SIZE, []);
    } finally {
      this.libc.free(tmp);
    }
  }

  private closeFds(fds: number[]): void {
    for (const f of fds) this.libc.close(f);
    fds.length = 0;
  }
}
