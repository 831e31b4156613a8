/**
 * A raw vfio-user connection for hostile tests and the protocol fuzzer:
 * any bytes, any header, any fds (SCM_RIGHTS), no checks. Blocking sends
 * and receives with a timeout (SO_SNDTIMEO / SO_RCVTIMEO), so that a server
 * that stops reading or answering shows as a timeout, never a hung test.
 */
import { Libc, type Ptr } from '../../emulator/native/libc.js';
import { CMD, FLAG_TYPE_COMMAND, HEADER_SIZE } from '../../emulator/client/vfio-user-protocol.js';

export interface RawReply {
  msgId: number;
  cmd: number;
  flags: number;
  error: number;
  payload: Buffer;
  fds: number[];
}

const BUF = 2 << 20;

export class RawConn {
  private readonly libc = Libc.get();
  private readonly buf: Ptr;
  private readonly view: Uint8Array;
  private nextId = 1;
  fd: number;

  constructor(path: string, timeoutMs = 2000) {
    this.fd = this.libc.connectUnix(path);
    this.libc.setSocketTimeout(this.fd, timeoutMs);
    this.buf = this.libc.alloc(BUF);
    this.view = new Uint8Array(this.libc.view(this.buf, BUF));
  }

  /** Sends `bytes` in one sendmsg with `fds`; returns what sendmsg returned (-1: see errno). */
  sendBytes(bytes: Uint8Array, fds: readonly number[] = []): number {
    this.view.set(bytes.subarray(0, BUF));
    return this.libc.sendWithFds(this.fd, this.buf, Math.min(bytes.length, BUF), fds);
  }

  /** A command: header (msg_size = 16 + payload unless `size` says otherwise) and payload. */
  message(
    cmd: number,
    payload: Uint8Array,
    opts: { size?: number; flags?: number; id?: number } = {},
  ): Buffer {
    const b = Buffer.alloc(HEADER_SIZE + payload.length);
    b.writeUInt16LE(opts.id ?? this.nextId++ & 0xffff, 0);
    b.writeUInt16LE(cmd, 2);
    b.writeUInt32LE(opts.size ?? HEADER_SIZE + payload.length, 4);
    b.writeUInt32LE(opts.flags ?? FLAG_TYPE_COMMAND, 8);
    b.set(payload, HEADER_SIZE);
    return b;
  }

  send(cmd: number, payload: Uint8Array, fds: readonly number[] = []): number {
    return this.sendBytes(this.message(cmd, payload), fds);
  }

  /** One reply (header and payload), or null on timeout or hang-up. */
  recv(): RawReply | null {
    const hdr = this.readExact(HEADER_SIZE);
    if (!hdr) return null;
    const size = hdr.bytes.readUInt32LE(4);
    const body = size > HEADER_SIZE ? this.readExact(Math.min(size - HEADER_SIZE, BUF)) : null;
    if (size > HEADER_SIZE && !body) return null;
    return {
      msgId: hdr.bytes.readUInt16LE(0),
      cmd: hdr.bytes.readUInt16LE(2),
      flags: hdr.bytes.readUInt32LE(8),
      error: hdr.bytes.readUInt32LE(12),
      payload: body?.bytes ?? Buffer.alloc(0),
      fds: [...hdr.fds, ...(body?.fds ?? [])],
    };
  }

  /** The VERSION exchange (0.1, max_msg_fds 8); the reply, or null. */
  version(): RawReply | null {
    const json = Buffer.from('{"capabilities":{"max_msg_fds":8}}\0');
    const p = Buffer.alloc(4 + json.length);
    p.writeUInt16LE(0, 0);
    p.writeUInt16LE(1, 2);
    json.copy(p, 4);
    if (this.send(CMD.VERSION, p) < 0) return null;
    return this.recv();
  }

  private readExact(n: number): { bytes: Buffer; fds: number[] } | null {
    const out = Buffer.alloc(n);
    const fds: number[] = [];
    for (let got = 0; got < n; ) {
      const r = this.libc.recvWithFds(this.fd, this.buf, n - got);
      if (r.n <= 0) {
        for (const f of fds) this.libc.close(f);
        return null;
      }
      Buffer.from(this.view.buffer, this.view.byteOffset, r.n).copy(out, got);
      fds.push(...r.fds);
      got += r.n;
    }
    return { bytes: out, fds };
  }

  close(): void {
    if (this.fd >= 0) this.libc.close(this.fd);
    this.fd = -1;
  }

  release(): void {
    this.close();
    this.libc.free(this.buf);
  }
}
