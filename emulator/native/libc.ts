/**
 * libc, bound with koffi: the calls the emulator's device loop and the
 * VM-less vfio-user client need beyond what node offers, and the Linux
 * x86_64 values (errnos, flags, struct layouts) they use, by name.
 */
import koffi from 'koffi';

/** A pointer as koffi 3 hands it back (0n for NULL). */
export type Ptr = bigint;

// errno values (Linux), named so that no caller writes a bare number.
export const EINTR = 4;
export const EIO = 5;
export const EAGAIN = 11;
export const ECONNRESET = 104;
export const ENOTCONN = 107;
export const ESHUTDOWN = 108;

export const POLLIN = 0x1;

// ============================================================================
// libc for the client
//
// The vfio-user CLIENT (emulator/client/) plays the guest's side without a
// VM: it talks to the emulator's UNIX socket, passes file descriptors
// (guest memory, interrupt eventfds) with SCM_RIGHTS, which Node's net module
// cannot do, and maps shared memory. Everything native it needs is here, in
// the module that holds every native call. Linux x86_64 layouts and values.
// ============================================================================

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0x80000;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
export const SO_RCVTIMEO = 20;
export const SO_SNDTIMEO = 21;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_CTRUNC = 0x8;
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const MFD_CLOEXEC = 0x1;
export const EFD_CLOEXEC = 0x80000;
export const EFD_NONBLOCK = 0x800;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLNVAL = 0x20;
/** What mmap returns on failure, as koffi hands a pointer back: (void *)-1. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
export const POLLOUT = 0x4;
export const SOCK_NONBLOCK = 0x800;
export const O_NONBLOCK = 0x800;
export const MSG_DONTWAIT = 0x40;
export const SO_SNDBUF = 7;
export const SO_SNDBUFFORCE = 32;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_SETPIPE_SZ = 1031;
export const F_GET_SEALS = 1034;
export const F_ADD_SEALS = 1033;
export const F_SEAL_SHRINK = 0x2;
export const F_SEAL_GROW = 0x4;
export const MFD_ALLOW_SEALING = 0x2;
export const E2BIG = 7;
export const EBADF = 9;
export const EINVAL = 22;
export const EWOULDBLOCK = EAGAIN;

/** What fstat(2) says of a descriptor (the fields the emulator looks at). */
export interface FileStat {
  mode: number;
  size: number;
}
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;

// struct msghdr (56 bytes), struct iovec (16), struct cmsghdr (16 + data).
const MSGHDR_SIZE = 56;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const MSG_CONTROL = 32;
const MSG_CONTROLLEN = 40;
const MSG_FLAGS = 48;
const CMSG_HDR = 16;
const cmsgSpace = (n: number): number => CMSG_HDR + ((n + 7) & ~7);

/** At most this many fds per message, either way (libvfio-user accepts up to 1024 in, sends 8 out). */
export const LIBC_MAX_FDS = 64;

/** The result of recvWithFds: bytes read (0: the peer closed), fds received, flags. */
export interface RecvResult {
  n: number;
  fds: number[];
  flags: number;
}

/**
 * The libc calls of the vfio-user client, bound lazily (importing this
 * module never loads anything). Raw calls return what libc returns (-1 and
 * errno() on failure); the few helpers throw with the errno in the message.
 * Pointers are bigints (koffi 3); `void *` arguments also take Buffers,
 * which koffi pins for the duration of the call only.
 */
export class Libc {
  private static inst: Libc | null = null;
  static get(): Libc {
    if (!Libc.inst) Libc.inst = new Libc();
    return Libc.inst;
  }

  readonly socket: (domain: number, type: number, protocol: number) => number;
  readonly connect: (fd: number, addr: Buffer, len: number) => number;
  readonly setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  readonly sendmsg: (fd: number, msg: Ptr, flags: number) => number;
  readonly recvmsg: (fd: number, msg: Ptr, flags: number) => number;
  readonly memfd_create: (name: string, flags: number) => number;
  readonly ftruncate: (fd: number, len: number) => number;
  readonly mmap: (addr: Ptr | null, len: number, prot: number, flags: number, fd: number, off: number) => Ptr;
  readonly munmap: (addr: Ptr, len: number) => number;
  readonly eventfd: (initval: number, flags: number) => number;
  readonly read: (fd: number, buf: Ptr | Buffer, n: number) => number;
  readonly write: (fd: number, buf: Ptr | Buffer, n: number) => number;
  readonly poll: (fds: Ptr | Buffer, nfds: number, timeoutMs: number) => number;
  readonly close: (fd: number) => number;
  readonly bind: (fd: number, addr: Buffer, len: number) => number;
  readonly listen: (fd: number, backlog: number) => number;
  readonly accept4: (fd: number, addr: null, len: null, flags: number) => number;
  readonly getsockopt: (fd: number, level: number, name: number, val: Buffer, len: Buffer) => number;
  readonly umask: (mask: number) => number;
  readonly dup: (fd: number) => number;
  readonly pipe2: (fds: Buffer, flags: number) => number;
  private readonly fcntlInt: (fd: number, cmd: number, ...args: unknown[]) => number;
  private readonly fstatRaw: (fd: number, buf: Buffer) => number;
  private readonly statBuf = Buffer.alloc(256);
  private readonly ioctl: (fd: number, req: number, argType: string, arg: Buffer) => number;
  private readonly intOut = Buffer.alloc(4);

  // Native scratch for sendWithFds/recvWithFds: one msghdr, one iovec and a
  // control buffer each way, allocated once (the client is synchronous).
  private readonly sendHdr: Ptr;
  private readonly recvHdr: Ptr;
  private readonly sendCtl: Ptr;
  private readonly recvCtl: Ptr;
  private readonly sendHdrView: DataView;
  private readonly recvHdrView: DataView;
  private readonly sendCtlView: DataView;
  private readonly recvCtlView: DataView;

  private constructor() {
    const libc = koffi.load('libc.so.6');
    this.socket = libc.func('int socket(int domain, int type, int protocol)');
    this.connect = libc.func('int connect(int fd, const void *addr, uint32_t len)');
    this.setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)');
    this.sendmsg = libc.func('intptr_t sendmsg(int fd, void *msg, int flags)');
    this.recvmsg = libc.func('intptr_t recvmsg(int fd, void *msg, int flags)');
    this.memfd_create = libc.func('int memfd_create(const char *name, unsigned int flags)');
    this.ftruncate = libc.func('int ftruncate(int fd, int64_t len)');
    this.mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
    this.munmap = libc.func('int munmap(void *addr, size_t len)');
    this.eventfd = libc.func('int eventfd(unsigned int initval, int flags)');
    this.read = libc.func('intptr_t read(int fd, void *buf, size_t n)');
    this.write = libc.func('intptr_t write(int fd, const void *buf, size_t n)');
    this.poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
    this.close = libc.func('int close(int fd)');
    this.ioctl = libc.func('int ioctl(int fd, unsigned long req, ...)');
    this.bind = libc.func('int bind(int fd, const void *addr, uint32_t len)');
    this.listen = libc.func('int listen(int fd, int backlog)');
    this.accept4 = libc.func('int accept4(int fd, void *addr, void *len, int flags)');
    this.getsockopt = libc.func('int getsockopt(int fd, int level, int name, void *val, void *len)');
    this.umask = libc.func('unsigned int umask(unsigned int mask)');
    this.dup = libc.func('int dup(int fd)');
    this.pipe2 = libc.func('int pipe2(void *fds, int flags)');
    this.fcntlInt = libc.func('int fcntl(int fd, int cmd, ...)');
    this.fstatRaw = libc.func('int fstat(int fd, void *buf)');
    const ctl = cmsgSpace(4 * LIBC_MAX_FDS);
    this.sendHdr = this.alloc(MSGHDR_SIZE + 16);
    this.recvHdr = this.alloc(MSGHDR_SIZE + 16);
    this.sendCtl = this.alloc(ctl);
    this.recvCtl = this.alloc(ctl);
    this.sendHdrView = new DataView(this.view(this.sendHdr, MSGHDR_SIZE + 16));
    this.recvHdrView = new DataView(this.view(this.recvHdr, MSGHDR_SIZE + 16));
    this.sendCtlView = new DataView(this.view(this.sendCtl, ctl));
    this.recvCtlView = new DataView(this.view(this.recvCtl, ctl));
    // Each msghdr's single iovec sits right after it.
    for (const [hdr, v] of [
      [this.sendHdr, this.sendHdrView],
      [this.recvHdr, this.recvHdrView],
    ] as const) {
      v.setBigUint64(MSG_IOV, hdr + BigInt(MSGHDR_SIZE), true);
      v.setBigUint64(MSG_IOVLEN, 1n, true);
    }
  }

  errno(): number {
    return koffi.errno();
  }

  /** Bytes waiting to be read on socket `fd` (ioctl FIONREAD), or -1. */
  readable(fd: number): number {
    return this.ioctl(fd, 0x541b /* FIONREAD */, 'void *', this.intOut) === 0
      ? this.intOut.readInt32LE(0)
      : -1;
  }

  /** fcntl(fd, cmd, arg) with an int argument (or none): what libc returns. */
  fcntl(fd: number, cmd: number, arg = 0): number {
    return this.fcntlInt(fd, cmd, 'int', arg);
  }

  /** fstat(2): the file's type and size, or null (errno()) when fd is not open. */
  fstat(fd: number): FileStat | null {
    if (this.fstatRaw(fd, this.statBuf) < 0) return null;
    // struct stat on x86-64 and arm64 differ; both are handled by their offsets.
    const arm = process.arch === 'arm64';
    return {
      mode: this.statBuf.readUInt32LE(arm ? 16 : 24),
      size: Number(this.statBuf.readBigInt64LE(48)),
    };
  }

  /** A struct sockaddr_un for `path`, and its length; throws for a path too long. */
  unixAddress(path: string): [Buffer, number] {
    const addr = Buffer.alloc(110);
    const p = Buffer.from(path);
    if (p.length >= 108) throw new Error(`socket path too long (${p.length} bytes, at most 107): ${path}`);
    addr.writeUInt16LE(AF_UNIX, 0);
    p.copy(addr, 2);
    return [addr, 2 + p.length + 1];
  }

  /** Native memory that never moves (koffi.alloc); release with free(). */
  alloc(len: number): Ptr {
    return koffi.alloc('uint8_t', len) as Ptr;
  }

  free(ptr: Ptr): void {
    koffi.free(ptr);
  }

  /** Memory at `ptr` as an ArrayBuffer (no copy). Valid only while the memory is. */
  view(ptr: Ptr, len: number): ArrayBuffer {
    return koffi.view(ptr, len);
  }

  /** A blocking AF_UNIX stream socket connected to `path`; throws on failure. */
  connectUnix(path: string): number {
    const [addr, len] = this.unixAddress(path);
    const fd = this.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket(AF_UNIX) failed: errno ${this.errno()}`);
    if (this.connect(fd, addr, len) < 0) {
      const e = this.errno();
      this.close(fd);
      throw Object.assign(new Error(`connect(${path}) failed: errno ${e}`), { errno: e });
    }
    return fd;
  }

  /** SO_RCVTIMEO and SO_SNDTIMEO: a blocked recv/send fails with EAGAIN after `ms`. */
  setSocketTimeout(fd: number, ms: number): void {
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
    tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
    for (const opt of [SO_RCVTIMEO, SO_SNDTIMEO]) {
      if (this.setsockopt(fd, SOL_SOCKET, opt, tv, 16) < 0)
        throw new Error(`setsockopt(${opt}) failed: errno ${this.errno()}`);
    }
  }

  /**
   * One sendmsg of `len` bytes at `buf`, with `fds` as SCM_RIGHTS when there
   * are any (they arrive with the first byte). Returns the bytes sent or -1.
   */
  sendWithFds(fd: number, buf: Ptr, len: number, fds: readonly number[] = [], flags = 0): number {
    if (fds.length > LIBC_MAX_FDS)
      throw new RangeError(`${fds.length} fds in one message (at most ${LIBC_MAX_FDS})`);
    const h = this.sendHdrView;
    h.setBigUint64(MSGHDR_SIZE, buf, true);
    h.setBigUint64(MSGHDR_SIZE + 8, BigInt(len), true);
    if (fds.length > 0) {
      const c = this.sendCtlView;
      c.setBigUint64(0, BigInt(CMSG_HDR + 4 * fds.length), true);
      c.setInt32(8, SOL_SOCKET, true);
      c.setInt32(12, SCM_RIGHTS, true);
      fds.forEach((f, i) => c.setInt32(CMSG_HDR + 4 * i, f, true));
      h.setBigUint64(MSG_CONTROL, this.sendCtl, true);
      h.setBigUint64(MSG_CONTROLLEN, BigInt(cmsgSpace(4 * fds.length)), true);
    } else {
      h.setBigUint64(MSG_CONTROL, 0n, true);
      h.setBigUint64(MSG_CONTROLLEN, 0n, true);
    }
    return Number(this.sendmsg(fd, this.sendHdr, MSG_NOSIGNAL | flags));
  }

  /**
   * One recvmsg of up to `cap` bytes into `buf`, collecting SCM_RIGHTS fds
   * (received close-on-exec). Returns n = -1 on failure (see errno()).
   */
  recvWithFds(fd: number, buf: Ptr, cap: number, flags = 0): RecvResult {
    const h = this.recvHdrView;
    h.setBigUint64(MSGHDR_SIZE, buf, true);
    h.setBigUint64(MSGHDR_SIZE + 8, BigInt(cap), true);
    h.setBigUint64(MSG_CONTROL, this.recvCtl, true);
    h.setBigUint64(MSG_CONTROLLEN, BigInt(this.recvCtlView.byteLength), true);
    h.setInt32(MSG_FLAGS, 0, true);
    const n = Number(this.recvmsg(fd, this.recvHdr, MSG_CMSG_CLOEXEC | flags));
    const fds: number[] = [];
    if (n < 0) return { n, fds, flags: 0 };
    const ctlLen = Number(h.getBigUint64(MSG_CONTROLLEN, true));
    const c = this.recvCtlView;
    for (let off = 0; off + CMSG_HDR <= ctlLen; ) {
      const len = Number(c.getBigUint64(off, true));
      if (len < CMSG_HDR) break;
      if (c.getInt32(off + 8, true) === SOL_SOCKET && c.getInt32(off + 12, true) === SCM_RIGHTS) {
        for (let i = off + CMSG_HDR; i + 4 <= off + len; i += 4) fds.push(c.getInt32(i, true));
      }
      off += (len + 7) & ~7;
    }
    return { n, fds, flags: h.getInt32(MSG_FLAGS, true) };
  }
}
