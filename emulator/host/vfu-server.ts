/**
 * The vfio-user transport: serves a PciDeviceModel to one QEMU at a time
 * through libvfio-user, in the canonical order of libvfio-user's samples
 * (create context, PCI init, ids, capabilities, regions, IRQs, DMA, realize,
 * attach, run loop, re-attach on disconnect).
 *
 * It runs on the worker thread that owns the vfu context (the context is not
 * thread-safe); every callback runs synchronously inside vfu_run_ctx on that
 * thread. The context is non-blocking: the loop polls the socket itself so
 * that it can also run the device's scheduled events and stop on request.
 */
import { readlinkSync } from 'node:fs';
import { FrontDoor, type Refusal } from './front-door.js';
import { BARS, DOORBELLS } from '../abi/abi.js';
import type { DeviceHost, PciDeviceModel } from '../model/host.js';
import { DmaRegions } from '../model/dma-regions.js';
import { msixCapability, pcieCapability, type PciIdentity } from '../pci/config.js';
import { EventQueue } from '../util/event-queue.js';
import type { Logger } from '../util/log.js';
import {
  LIBVFIO_USER_FLAG_ATTACH_NB,
  LOG_DEBUG,
  LOG_ERR,
  LOG_INFO,
  Native,
  PCI_HEADER_TYPE_NORMAL,
  VFU_DEV_MSIX_IRQ,
  VFU_DEV_TYPE_PCI,
  VFU_PCI_TYPE_EXPRESS,
  VFU_REGION_FLAG_MEM,
  VFU_REGION_FLAG_RW,
  VFU_RESET_TYPES,
  VFU_TRANS_SOCK,
  type DmaInfoValue,
} from '../native/libvfio-user.js';
import {
  EAGAIN,
  EBADF,
  ECONNRESET,
  EINVAL,
  F_GET_SEALS,
  F_GETFL,
  F_SETFL,
  O_NONBLOCK,
  F_SEAL_SHRINK,
  S_IFMT,
  S_IFREG,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  EINTR,
  EIO,
  ENOTCONN,
  ESHUTDOWN,
  Libc,
  MAP_FAILED,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  POLLIN,
  type Ptr,
} from '../native/libc.js';

export interface VfuServerOptions {
  socketPath: string;
  identity: PciIdentity;
  msixVectors: number;
  log: Logger;
  /** A group given read and write on the socket (its gid); without it the socket is owner-only. */
  socketGid?: number;
  /** A handshake or a started message must complete within this (ms; default 5000). */
  clientDeadlineMs?: number;
}

export interface VfuStats {
  clients: number;
  attached: boolean;
  dmaRegions: number;
  barAccesses: number;
  /** KICK doorbells rung through the ioeventfd (a client that asked for it writes the eventfd instead of a message). */
  ioeventfdKicks: number;
  /** Clients the front door dropped (silent past the deadline, not reading, unparseable). */
  clientsDropped: number;
  /** Requests the front door refused with an error reply (bad fds, sizes). */
  requestsRefused: number;
}

/** A device loop's round that only spun: it neither waited nor looked at other descriptors. */
const SPUN = Object.freeze({ slept: false, otherReady: false });
const NONE: readonly number[] = [];
const NO_IO: LoopIo = { fds: () => NONE };

/** Other I/O of the device thread that the loop waits on beside the vfio-user socket. */
export interface LoopIo {
  /** Descriptors to wait on. */
  fds: () => readonly number[];
  /**
   * Handles those of them poll(2) found readable, in the loop (before the
   * device's poll of that round), and returns the ones left to the event
   * loop; without it all are left to the event loop.
   */
  readable?: (fds: readonly number[]) => readonly number[];
  /** Runs after every round, before the next may sleep (writes batched during it). */
  flush?: () => void;
  /** A busy slice ends after this long (default 200 us). */
  sliceUs?: number;
}
const CMD_DMA_MAP = 2;
const CMD_SET_IRQS = 8;
const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MASTER = 0x4;

export class VfuServer implements DeviceHost {
  readonly log: Logger;
  private readonly n = Native.get();
  private ctx: Ptr = 0n;
  private cfgSpace: Uint8Array | null = null;
  private readonly dma = new DmaRegions();
  private readonly callbacks: Ptr[] = [];
  private readonly events = new EventQueue();
  private attached = false;
  private model: PciDeviceModel | null = null;
  /** The shared-memory BAR: a memfd QEMU maps into the guest, mapped here too. */
  private shmFd = -1;
  private shmPtr: Ptr = 0n;
  private shmView: Uint8Array | null = null;
  readonly stats: VfuStats = {
    clients: 0,
    attached: false,
    dmaRegions: 0,
    barAccesses: 0,
    ioeventfdKicks: 0,
    clientsDropped: 0,
    requestsRefused: 0,
  };
  private readonly door: FrontDoor;
  /** The KICK doorbell's ioeventfd (-1: none), and 8 bytes to read it into. */
  private kickFd = -1;
  private readonly kickBuf = Buffer.alloc(8);

  constructor(private readonly opts: VfuServerOptions) {
    this.log = opts.log.child({ sub: 'vfu' });
    this.door = new FrontDoor(
      {
        socketPath: opts.socketPath,
        ...(opts.socketGid !== undefined ? { gid: opts.socketGid } : {}),
        deadlineMs: opts.clientDeadlineMs ?? 5000,
        log: opts.log,
      },
      {
        attach: () => this.tryAttach(),
        serve: () => this.serveRequests(),
        connectionFd: () => (this.ctx ? this.n.vfu_get_poll_fd(this.ctx) : -1),
        check: (cmd, payload, fds) => this.checkRequest(cmd, payload, fds),
      },
    );
  }

  /** What the front door asks before handing a request to libvfio-user. */
  private checkRequest(cmd: number, payload: Buffer, fds: readonly number[]): Refusal | null {
    if (cmd === CMD_DMA_MAP) return this.checkDmaMap(payload, fds);
    if (cmd === CMD_SET_IRQS) return this.checkIrqFds(payload, fds);
    return null;
  }

  /**
   * An interrupt's fd must be an eventfd: libvfio-user writes it from the
   * device thread, and a write to a pipe nobody reads blocks once the pipe
   * is full. Each is made non-blocking too (an eventfd write blocks only at
   * a count of 2^64 - 2, but the device thread never waits).
   */
  private checkIrqFds(p: Buffer, fds: readonly number[]): Refusal | null {
    if (fds.length === 0 || p.length < 20 || (p.readUInt32LE(4) & VFIO_IRQ_SET_DATA_EVENTFD) === 0)
      return null;
    const libc = Libc.get();
    for (const [i, fd] of fds.entries()) {
      let what = '';
      try {
        what = readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        /* not open */
      }
      if (what !== 'anon_inode:[eventfd]')
        return {
          errno: EINVAL,
          reason: 'SET_IRQS fd is not an eventfd',
          vector: p.readUInt32LE(12) + i,
          fd: what || 'unknown',
        };
      const fl = libc.fcntl(fd, F_GETFL);
      if (fl >= 0 && (fl & O_NONBLOCK) === 0) libc.fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
    return null;
  }

  /**
   * A DMA_MAP's fd must back the whole region: libvfio-user maps what it is
   * given, and a page past the end of the file kills the process (SIGBUS)
   * at the first DMA that touches it. A file sealed against shrinking
   * (F_SEAL_SHRINK, as QEMU's memfd backend makes guest RAM) stays so; an
   * unsealed one is looked at again (fstat) before each DMA into it.
   */
  private checkDmaMap(p: Buffer, fds: readonly number[]): Refusal | null {
    if (p.length < 32) return null; // libvfio-user answers a short one itself
    if (fds.length === 0) return null; // a region without a mapping: listed, never touched
    const offset = p.readBigUInt64LE(8);
    const iova = p.readBigUInt64LE(16);
    const size = p.readBigUInt64LE(24);
    const at = { iova: '0x' + iova.toString(16), offset: '0x' + offset.toString(16), size: Number(size) };
    if (fds.length > 1)
      return { errno: EINVAL, reason: 'DMA_MAP with more than one fd', fds: fds.length, ...at };
    const libc = Libc.get();
    const st = libc.fstat(fds[0]!);
    if (!st) return { errno: EBADF, reason: 'DMA_MAP fd cannot be examined', ...at };
    if ((st.mode & S_IFMT) !== S_IFREG)
      return { errno: EINVAL, reason: 'DMA_MAP fd is not a regular file (memfd, shm, hugetlbfs)', ...at };
    if (offset + size > BigInt(st.size))
      return {
        errno: EINVAL,
        reason: 'DMA_MAP region runs past the end of its file',
        fileSize: st.size,
        ...at,
      };
    const seals = libc.fcntl(fds[0]!, F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) === 0) {
      const dup = libc.dup(fds[0]!);
      if (dup < 0) return { errno: EBADF, reason: 'DMA_MAP fd cannot be kept for its checks', ...at };
      const old = this.pendingUnsealed.get(iova);
      if (old) libc.close(old.fd);
      this.pendingUnsealed.set(iova, { fd: dup, need: Number(offset + size) });
      this.log.info(
        at,
        'DMA_MAP of a file not sealed against shrinking: its size is checked before each DMA',
      );
    }
    return null;
  }

  /** Unsealed DMA regions' fds, from DMA_MAP until libvfio-user registers the region. */
  private readonly pendingUnsealed = new Map<bigint, { fd: number; need: number }>();
  /** Registered regions whose file could shrink: [start, end) in IOVA, the fd, the size the mapping needs. */
  private unsealed: { start: number; end: number; fd: number; need: number; shrank: boolean }[] = [];

  /** False when a region under [addr, addr+len) lost part of its file (DMA into it would be SIGBUS). */
  private filesBack(addr: bigint, len: number): boolean {
    const a = Number(addr);
    for (const u of this.unsealed) {
      if (a >= u.end || a + len <= u.start) continue;
      const st = Libc.get().fstat(u.fd);
      if (st && st.size >= u.need) continue;
      if (!u.shrank)
        this.log.warn(
          { iova: '0x' + u.start.toString(16), need: u.need, fileSize: st?.size },
          "a DMA region's file shrank below its mapping: DMA into it fails (DMA_UNMAPPED)",
        );
      u.shrank = true;
      return false;
    }
    return true;
  }

  private dropUnsealed(inside?: { start: number; end: number }): void {
    const keep: typeof this.unsealed = [];
    for (const u of this.unsealed) {
      if (!inside || (u.start >= inside.start && u.end <= inside.end)) Libc.get().close(u.fd);
      else keep.push(u);
    }
    this.unsealed = keep;
    if (!inside) {
      for (const p of this.pendingUnsealed.values()) Libc.get().close(p.fd);
      this.pendingUnsealed.clear();
    }
  }

  // ---- DeviceHost -----------------------------------------------------------

  dmaView(addr: bigint, len: number): Uint8Array | null {
    if (this.unsealed.length > 0 && !this.filesBack(addr, len)) return null;
    return this.dma.view(addr, len);
  }

  busMasterEnabled(): boolean {
    return this.cfgSpace !== null && (this.cfgSpace[PCI_COMMAND]! & PCI_COMMAND_MASTER) !== 0;
  }

  raiseMsix(vector: number): boolean {
    // An MSI-X message is a DMA write: it needs bus mastering and MSI-X
    // enabled in config space (libvfio-user checks neither).
    if (!this.attached || !this.busMasterEnabled() || !this.msixEnabled()) return false;
    return this.n.vfu_irq_trigger(this.ctx, vector) === 0;
  }

  private msixCap = 0;

  private msixEnabled(): boolean {
    return this.cfgSpace !== null && this.msixCap > 0 && (this.cfgSpace[this.msixCap + 3]! & 0x80) !== 0;
  }

  nowNs(): number {
    return Number(process.hrtime.bigint());
  }

  deviceMemory(): Uint8Array | null {
    return this.shmView;
  }

  schedule(delayNs: number, fn: () => void): void {
    this.events.schedule(this.nowNs() + Math.max(0, delayNs), fn);
  }

  // ---- setup ---------------------------------------------------------------

  /** Creates and realizes the context; the socket is listening afterwards. */
  open(model: PciDeviceModel): void {
    this.model = model;
    const { socketPath, identity: id, msixVectors, log: rootLog } = this.opts;
    // libvfio-user listens on a private socket; clients come through the front door.
    const ctx = this.n.vfu_create_ctx(
      VFU_TRANS_SOCK,
      this.door.privatePath,
      LIBVFIO_USER_FLAG_ATTACH_NB,
      null,
      VFU_DEV_TYPE_PCI,
    );
    if (!ctx) throw new Error(`vfu_create_ctx(${socketPath}) failed: errno ${this.n.errno()}`);
    this.ctx = ctx;
    const check = (what: string, rc: number): void => {
      if (rc < 0) throw new Error(`${what} failed: errno ${this.n.errno()}`);
    };
    const libLog = rootLog.child({ sub: 'libvfio-user' });
    const logCb = this.n.registerLog((level, msg) => {
      const text = msg.trimEnd();
      if (level <= LOG_ERR) libLog.error(text);
      else if (level <= LOG_INFO) libLog.info(text);
      else libLog.debug(text);
    });
    this.callbacks.push(logCb);
    check(
      'vfu_setup_log',
      this.n.vfu_setup_log(ctx, logCb, this.log.isLevelEnabled('debug') ? LOG_DEBUG : LOG_INFO),
    );
    check('vfu_pci_init', this.n.vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0));
    this.n.vfu_pci_set_id(ctx, id.vendorId, id.deviceId, id.subsysVendorId, id.subsysId);
    this.n.vfu_pci_set_class(ctx, id.classBase, id.classSub, id.classProgIf);
    const cfg = this.n.vfu_pci_get_config_space(ctx);
    if (!cfg) throw new Error('vfu_pci_get_config_space returned NULL');
    this.cfgSpace = new Uint8Array(this.n.view(cfg, 256));
    this.cfgSpace[0x08] = id.revision; // revision id: libvfio-user has no setter
    check('vfu_pci_add_capability(PCIe)', this.n.vfu_pci_add_capability(ctx, 0, 0, pcieCapability()));
    const msixAt = this.n.vfu_pci_add_capability(ctx, 0, 0, msixCapability(msixVectors));
    check('vfu_pci_add_capability(MSI-X)', msixAt);
    this.msixCap = msixAt;

    const barCb = (bar: number): Ptr => {
      const cb = this.n.registerRegionAccess((buf, count, offset, isWrite) =>
        this.barAccess(bar, buf, count, offset, isWrite),
      );
      this.callbacks.push(cb);
      return cb;
    };
    const flags = VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM;
    check(
      'vfu_setup_region(BAR0)',
      this.n.vfu_setup_region(
        ctx,
        BARS.REGS_BAR,
        BARS.REGS_BAR_SIZE,
        barCb(BARS.REGS_BAR),
        flags,
        null,
        0,
        -1,
        0,
      ),
    );
    this.setupKickEventfd(ctx);
    // The shared-memory BAR: the host writes H2D signals straight into it
    // (no trap); the device polls it. One fd for the whole region, as QEMU
    // accepts only one per region.
    this.openSharedMemory();
    check(
      'vfu_setup_region(BAR2)',
      this.n.vfu_setup_region(
        ctx,
        BARS.SHM_BAR,
        BARS.SHM_BAR_SIZE,
        barCb(BARS.SHM_BAR),
        flags,
        null,
        0,
        this.shmFd,
        0,
      ),
    );
    // QEMU emulates the MSI-X table and PBA itself; the BAR only has to exist.
    check(
      'vfu_setup_region(BAR4)',
      this.n.vfu_setup_region(
        ctx,
        BARS.MSIX_BAR,
        BARS.MSIX_BAR_SIZE,
        barCb(BARS.MSIX_BAR),
        flags,
        null,
        0,
        -1,
        0,
      ),
    );
    check(
      'vfu_setup_device_nr_irqs(MSI-X)',
      this.n.vfu_setup_device_nr_irqs(ctx, VFU_DEV_MSIX_IRQ, msixVectors),
    );

    const reg = this.n.registerDma((info) => this.dmaRegister(info));
    const unreg = this.n.registerDma((info) => this.dmaUnregister(info));
    this.callbacks.push(reg, unreg);
    check('vfu_setup_device_dma', this.n.vfu_setup_device_dma(ctx, reg, unreg));
    const reset = this.n.registerReset((type) => {
      this.model?.reset(`vfio-user reset: ${VFU_RESET_TYPES[type] ?? type}`);
      return 0;
    });
    this.callbacks.push(reset);
    check('vfu_setup_device_reset_cb', this.n.vfu_setup_device_reset_cb(ctx, reset));
    check('vfu_realize_ctx', this.n.vfu_realize_ctx(ctx));
    this.door.listen();
    this.log.info({ socket: socketPath, ids: id, msixVectors }, 'listening for a vfio-user client');
  }

  /**
   * The KICK doorbell as an ioeventfd (VFIO_USER_DEVICE_GET_REGION_IO_FDS):
   * a client that asks for it writes the eventfd instead of sending a
   * REGION_WRITE message, and the device loop polls it beside the socket;
   * a client that does not (QEMU today) writes the register as before.
   * Without it the device works as before, with a log line.
   */
  private setupKickEventfd(ctx: Ptr): void {
    const libc = Libc.get();
    const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
      this.log.warn({ errno: libc.errno() }, 'no eventfd for the KICK doorbell; kicks come as messages only');
      return;
    }
    if (this.n.vfu_create_ioeventfd(ctx, BARS.REGS_BAR, fd, DOORBELLS.KICK, 4, 0, 0n) !== 0) {
      this.log.warn({ errno: this.n.errno() }, 'vfu_create_ioeventfd failed; kicks come as messages only');
      libc.close(fd);
      return;
    }
    this.kickFd = fd;
  }

  /** The KICK ioeventfd was written: one kick, however many writes it counted (a kick only says "look"). */
  private kickFromEventfd(): void {
    Libc.get().read(this.kickFd, this.kickBuf, 8);
    if (!this.attached || !this.model) return;
    this.stats.ioeventfdKicks++;
    try {
      this.model.barWrite(BARS.REGS_BAR, DOORBELLS.KICK, 4, 1n);
    } catch (err) {
      this.log.error({ err }, 'KICK through the ioeventfd failed inside the model');
    }
  }

  private openSharedMemory(): void {
    const libc = Libc.get();
    const fd = libc.memfd_create('sgiov-shm-bar', 0);
    if (fd < 0) throw new Error(`memfd_create failed: errno ${libc.errno()}`);
    if (libc.ftruncate(fd, BARS.SHM_BAR_SIZE) < 0) throw new Error(`ftruncate failed: errno ${libc.errno()}`);
    const p = libc.mmap(null, BARS.SHM_BAR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (!p || p === MAP_FAILED)
      throw new Error(`mmap of the shared-memory BAR failed: errno ${libc.errno()}`);
    this.shmFd = fd;
    this.shmPtr = p;
    this.shmView = new Uint8Array(libc.view(p, BARS.SHM_BAR_SIZE));
  }

  // ---- callbacks (run inside vfu_run_ctx) -------------------------------------

  private barAccess(bar: number, buf: Ptr, count: number, offset: number, isWrite: boolean): number {
    this.stats.barAccesses++;
    try {
      if (bar === BARS.MSIX_BAR) {
        if (!isWrite) this.n.writeUint(buf, count, 0n);
        return count;
      }
      if (!this.model) return count;
      if (isWrite) this.model.barWrite(bar, offset, count, this.n.readUint(buf, count));
      else this.n.writeUint(buf, count, this.model.barRead(bar, offset, count));
      return count;
    } catch (err) {
      // A model bug must not take the device down: report and fail the access.
      this.log.error({ err, bar, offset, count, isWrite }, 'BAR access failed inside the model');
      this.n.setErrno(EIO);
      return -1;
    }
  }

  private dmaRegister(info: DmaInfoValue): void {
    const iova = BigInt(info.iova.iov_base);
    const len = Number(info.iova.iov_len);
    const vaddr = BigInt(info.vaddr);
    // Without a mapping (guest RAM not shared) only message-based DMA would
    // work, which this device does not use: such a region is listed but
    // every DMA into it fails with DMA_UNMAPPED.
    // A region of several GiB (a VM's RAM) is viewed in pieces (DmaRegions).
    const view =
      vaddr !== 0n ? (off: number, n: number) => new Uint8Array(this.n.view(vaddr + BigInt(off), n)) : null;
    this.dma.add(iova, len, view);
    const unsealed = this.pendingUnsealed.get(iova);
    if (unsealed) {
      this.pendingUnsealed.delete(iova);
      const start = Number(iova);
      this.dropUnsealed({ start, end: start + len });
      this.unsealed.push({ start, end: start + len, ...unsealed, shrank: false });
    }
    this.stats.dmaRegions = this.dma.list().length;
    // QEMU also registers device memory (other BARs, ROMs) without an fd;
    // guest RAM comes with one when it is shared (share=on).
    this.log.debug({ iova: '0x' + iova.toString(16), len, mapped: view !== null }, 'DMA region registered');
  }

  private dmaUnregister(info: DmaInfoValue): void {
    const iova = BigInt(info.iova.iov_base);
    const len = Number(info.iova.iov_len);
    this.dma.remove(iova, len);
    this.dropUnsealed({ start: Number(iova), end: Number(iova) + len });
    this.stats.dmaRegions = this.dma.list().length;
    this.log.debug({ iova: '0x' + iova.toString(16), len }, 'DMA region unregistered');
  }

  // ---- the loop ------------------------------------------------------------

  /**
   * Serves clients until `stop()` returns true: attach, run, and on
   * disconnect reset the device and wait for the next client.
   */
  run(stop: () => boolean, idleMs = 50): void {
    while (!stop()) this.round(idleMs, NO_IO);
  }

  /**
   * The same loop, giving the thread's event loop a turn between slices, so
   * that other I/O of this thread (the fabric's TCP sockets, its timers) is
   * served. `io.fds()` lists the descriptors that I/O waits on: an idle wait
   * in poll(2) includes them, and while the device spins they are looked at
   * with the vfio-user socket; those `io.readable` takes are read in the
   * loop, for any other the loop yields at once. A busy slice also ends
   * after `io.sliceUs` (default 200 us), so timers and partly written
   * sockets are never starved. `io.flush()` runs after every round, before
   * the next one may sleep: that I/O's writes batched during the round go
   * out then.
   */
  async runAsync(stop: () => boolean, io: LoopIo, idleMs = 50): Promise<void> {
    const sliceNs = BigInt((io.sliceUs ?? 200) * 1000);
    for (;;) {
      if (stop()) return;
      const end = process.hrtime.bigint() + sliceNs;
      // The event loop's turn may have given the device work (a frame from
      // the fabric): look before deciding to sleep.
      this.pollDevice();
      io.flush?.();
      for (;;) {
        const r = this.round(idleMs, io);
        io.flush?.();
        // A descriptor is ready that its owner reads in the event loop, or we slept: yield now.
        if (r.otherReady || r.slept || process.hrtime.bigint() > end) break;
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Due work and a round of the device's own poll. */
  private pollDevice(): void {
    this.runDueEvents();
    this.busy = this.attached && this.model !== null && this.model.poll();
  }

  /**
   * One round of the loop: work that is due and the device's own poll; and,
   * when the device is idle or on every 16th round while it spins (a poll(2)
   * per round would cost more than the round), a poll(2) of the vfio-user
   * socket and of `io.fds()` for up to the idle timeout, serving the
   * client's requests and handing readable extra descriptors to
   * `io.readable`. Says whether it waited, and whether an extra descriptor
   * is readable that is left to the event loop.
   */
  private round(idleMs: number, io: LoopIo): { slept: boolean; otherReady: boolean } {
    const timeout = this.nextTimeoutMs(idleMs);
    if (timeout === 0 && ++this.spins % 16 !== 0) {
      this.runDueEvents();
      this.busy = this.attached && this.model !== null && this.model.poll();
      return SPUN;
    }
    const extra = io.fds();
    // [vfio-user socket, KICK ioeventfd (when there is one), the extra descriptors]
    const own = this.kickFd >= 0 ? 2 : 1;
    const n = own + extra.length;
    if (this.pollSet.length < n * 8) this.pollSet = Buffer.alloc(n * 8 * 2);
    const fd = this.door.pollFd();
    for (let i = 0; i < n; i++) {
      this.pollSet.writeInt32LE(i === 0 ? fd : i < own ? this.kickFd : extra[i - own]!, i * 8);
      this.pollSet.writeInt16LE(i === 0 ? this.door.pollEvents() : POLLIN, i * 8 + 4);
      this.pollSet.writeInt16LE(0, i * 8 + 6);
    }
    const r = this.n.poll(this.pollSet, n, timeout);
    if (r < 0 && this.n.errno() !== EINTR) throw new Error(`poll failed: errno ${this.n.errno()}`);
    const revents = (i: number): boolean => r > 0 && this.pollSet.readInt16LE(i * 8 + 6) !== 0;
    if (revents(0)) this.door.ready(this.pollSet.readInt16LE(6));
    else this.door.tick();
    this.stats.clientsDropped = this.door.stats.dropped;
    this.stats.requestsRefused = this.door.stats.refused;
    if (own === 2 && revents(1)) this.kickFromEventfd();
    const ready: number[] = [];
    for (let i = own; i < n; i++) if (revents(i)) ready.push(extra[i - own]!);
    const otherReady = ready.length > 0 && (io.readable ? io.readable(ready).length > 0 : true);
    this.runDueEvents();
    this.busy = this.attached && this.model !== null && this.model.poll();
    return { slept: timeout > 0, otherReady };
  }

  private pollSet = Buffer.alloc(64);
  private busy = false;
  private spins = 0;

  private nextTimeoutMs(idleMs: number): number {
    if (this.busy) return 0; // the device is polling shared memory: do not sleep
    const deadline = this.door.nextDeadlineMs();
    if (deadline !== undefined) idleMs = Math.min(idleMs, deadline);
    const next = this.events.nextDue();
    if (next === undefined) return idleMs;
    const ms = Math.floor((next - this.nowNs()) / 1e6);
    return Math.max(0, Math.min(idleMs, ms));
  }

  /** The front door has passed the client's VERSION on: libvfio-user's handshake. */
  private tryAttach(): boolean {
    if (this.n.vfu_attach_ctx(this.ctx) === 0) {
      this.attached = true;
      this.stats.attached = true;
      this.stats.clients++;
      this.log.info({ client: this.stats.clients }, 'client attached');
      return true;
    }
    this.log.warn({ errno: this.n.errno() }, 'client failed the vfio-user handshake; still listening');
    return false;
  }

  private serveRequests(): void {
    for (;;) {
      const r = this.n.vfu_run_ctx(this.ctx);
      if (r > 0) {
        this.runDueEvents();
        continue;
      }
      if (r === 0) return;
      const e = this.n.errno();
      if (e === ENOTCONN || e === ESHUTDOWN || e === ECONNRESET) {
        this.clientGone();
      } else if (e !== EAGAIN && e !== EINTR) {
        // A malformed message or a client that died mid-message: drop it,
        // reset, and serve the next one rather than exit.
        this.log.warn({ errno: e }, 'vfu_run_ctx failed; dropping the client');
        this.clientGone();
      }
      return;
    }
  }

  private clientGone(): void {
    if (!this.attached) return;
    // The next client finds the function as after a reset: no memory
    // decoding, no bus mastering, MSI-X off (libvfio-user keeps them).
    if (this.cfgSpace) {
      this.cfgSpace[PCI_COMMAND] = 0;
      this.cfgSpace[PCI_COMMAND + 1] = 0;
      if (this.msixCap > 0) this.cfgSpace[this.msixCap + 3] = this.cfgSpace[this.msixCap + 3]! & 0x3f;
    }
    this.attached = false;
    this.stats.attached = false;
    this.dma.clear();
    this.dropUnsealed();
    this.stats.dmaRegions = 0;
    this.events.clear();
    this.model?.reset('client disconnected');
    this.log.info('client gone; waiting for the next client');
    // When libvfio-user ended the connection (a protocol error), the front door drops the client too.
    this.door.drop('libvfio-user ended the connection', {});
  }

  private runDueEvents(): void {
    const now = this.nowNs();
    for (let ev = this.events.takeDue(now); ev; ev = this.events.takeDue(now)) {
      try {
        ev.fn();
      } catch (err) {
        this.log.error({ err }, 'device event failed');
      }
    }
  }

  close(): void {
    if (this.ctx) {
      this.dma.clear();
      this.dropUnsealed();
      this.n.vfu_destroy_ctx(this.ctx);
      this.ctx = 0n;
    }
    for (const cb of this.callbacks) this.n.unregister(cb);
    this.callbacks.length = 0;
    if (this.kickFd >= 0) {
      Libc.get().close(this.kickFd);
      this.kickFd = -1;
    }
    if (this.shmView) {
      this.shmView = null;
      Libc.get().munmap(this.shmPtr, BARS.SHM_BAR_SIZE);
      Libc.get().close(this.shmFd);
      this.shmFd = -1;
    }
    this.door.close();
    this.log.info('closed');
  }
}
