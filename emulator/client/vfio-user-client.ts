/**
 * A vfio-user client: the guest's side of the device without a VM, for
 * driver tests and benchmarks.
 *
 * It connects to the emulator's UNIX socket, negotiates the version, reads
 * the device, region and interrupt information, and shares a memfd as guest
 * memory (DMA_MAP at a fixed IOVA), so that the device DMAs straight into a
 * Uint8Array this process sees. Register accesses are REGION_READ/WRITE
 * messages; MSI-X vectors are eventfds handed over with SET_IRQS. Regions
 * the server offers for mmap are mapped and exposed.
 *
 * Everything is synchronous: every call blocks until the server answered
 * (the emulator is another process, so nothing here waits on this one's
 * event loop). One client per connection, one request in flight.
 *
 *   const c = VfioUserClient.connect('/tmp/sgiov.sock');
 *   c.enableBusMaster(); c.enableMsix(2);
 *   c.bar0Write(reg('SCRATCH').offset, 0x1234n);
 *   c.mem.fill(7, 0, 4096);          // guest memory at c.addr(0)
 *   c.close();
 */
import {
  EINTR,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  Libc,
  LIBC_MAX_FDS,
  MAP_FAILED,
  MAP_SHARED,
  MFD_CLOEXEC,
  POLLIN,
  PROT_READ,
  PROT_WRITE,
  type Ptr,
} from '../native/libc.js';
import { VfioUserChannel, type ChannelStats } from './channel.js';
import {
  clientCapabilities,
  CMD,
  DEFAULT_MAX_DATA_XFER_SIZE,
  DEVICE_INFO_SIZE,
  DMA_MAP_SIZE,
  DMA_UNMAP_SIZE,
  HEADER_SIZE,
  IRQ_INFO_SIZE,
  IRQ_SET_SIZE,
  parseRegionInfo,
  parseServerCapabilities,
  PCI_CAP_ID_MSIX,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  REGION_ACCESS_SIZE,
  REGION_INFO_SIZE,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_USER_F_DMA_REGION_READ,
  VFIO_USER_F_DMA_REGION_WRITE,
  VFIO_USER_VERSION_MAJOR,
  VFIO_USER_VERSION_MINOR,
  VfioUserError,
  type RegionInfo,
  type ServerCapabilities,
} from './vfio-user-protocol.js';

export interface ConnectOptions {
  /** Size of the shared guest memory (memfd). Default 64 MiB. */
  memBytes?: number;
  /** The IOVA (guest physical address) the memory is mapped at. Default 0x1_0000_0000. */
  iova?: bigint;
  /** DMA_MAP the memory while connecting (default true); otherwise call map(). */
  map?: boolean;
  /** How long to wait for any one reply before giving up on the connection. Default 5000 ms. */
  timeoutMs?: number;
  /** max_msg_fds the client announces (fds it accepts in one reply). Default 16. */
  maxMsgFds?: number;
}

export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
}

/** One mapped area of an mmap-able region. */
/** An ioeventfd of a region (VFIO_USER_DEVICE_GET_REGION_IO_FDS): writing its eventfd stands for a write at `offset`. */
export interface IoEventFd {
  offset: number;
  size: number;
  /** The eventfd (the client owns it; closed by close()). */
  fd: number;
  flags: number;
  datamatch: bigint;
}

export interface MappedArea {
  /** Offset of the area within the region. */
  offset: number;
  size: number;
  view: Uint8Array;
}

interface Mapping {
  ptr: Ptr;
  len: number;
}

const MIB = 1024 * 1024;
const libcRef = (): Libc => Libc.get();

export class VfioUserClient {
  private readonly libc = libcRef();
  private readonly ch: VfioUserChannel;
  /** The server's version and capabilities, from the VERSION reply. */
  readonly server: ServerCapabilities & { major: number; minor: number };
  readonly device: DeviceInfo;
  /** Region information for BAR0..BAR5 and config space (index 7), those the device has. */
  readonly regions: ReadonlyMap<number, RegionInfo>;
  /** MSI-X vectors the device offers (DEVICE_GET_IRQ_INFO). */
  readonly msixCount: number;
  readonly iova: bigint;
  readonly memBytes: number;

  private memFd = -1;
  private memMap: Mapping | null = null;
  private memView: Uint8Array | null = null;
  private dmaMapped = false;
  private readonly areas = new Map<number, (MappedArea & Mapping)[]>();
  private irqFds: number[] = [];
  private irqSeen: number[] = [];
  private irqTaken: number[] = [];
  private readonly scratch: Ptr;
  private readonly scratchView: DataView;
  private pollBuf: Ptr = 0n;
  private pollCap = 0;
  private closed = false;

  /** Connects, negotiates, reads the device and maps the guest memory. */
  static connect(socketPath: string, opts: ConnectOptions = {}): VfioUserClient {
    return new VfioUserClient(socketPath, opts);
  }

  private constructor(
    readonly socketPath: string,
    opts: ConnectOptions,
  ) {
    this.memBytes = opts.memBytes ?? 64 * MIB;
    this.iova = opts.iova ?? 0x1_0000_0000n;
    if (!Number.isInteger(this.memBytes) || this.memBytes <= 0)
      throw new RangeError(`memBytes must be a positive whole number, not ${this.memBytes}`);
    this.scratch = this.libc.alloc(16);
    this.scratchView = new DataView(this.libc.view(this.scratch, 16));
    this.ch = new VfioUserChannel(socketPath, opts.timeoutMs ?? 5000);
    try {
      this.server = this.negotiate(opts.maxMsgFds ?? 16);
      this.device = this.getDeviceInfo();
      const regions = new Map<number, RegionInfo>();
      for (
        let i = VFIO_PCI_BAR0_REGION_INDEX;
        i <= VFIO_PCI_CONFIG_REGION_INDEX && i < this.device.numRegions;
        i++
      ) {
        if (i > VFIO_PCI_BAR5_REGION_INDEX && i !== VFIO_PCI_CONFIG_REGION_INDEX) continue; // the ROM
        const info = this.getRegionInfo(i);
        if (info.size > 0) regions.set(i, info);
      }
      this.regions = regions;
      this.msixCount =
        this.device.numIrqs > VFIO_PCI_MSIX_IRQ_INDEX ? this.getIrqInfo(VFIO_PCI_MSIX_IRQ_INDEX).count : 0;
      this.createMemory();
      if (opts.map ?? true) this.map();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  // ---- state ---------------------------------------------------------------

  /** True while the socket is open. */
  get connected(): boolean {
    return this.ch.open;
  }

  /** True while the memory is DMA-mapped in the server. */
  get mapped(): boolean {
    return this.dmaMapped;
  }

  /**
   * The guest memory, shared with the device: byte i is at IOVA addr(i).
   * Valid until close(); do not keep it past that (the memory is unmapped
   * and Node cannot detach the view).
   */
  get mem(): Uint8Array {
    if (!this.memView) throw new Error('guest memory is gone: the client is closed');
    return this.memView;
  }

  /** The guest (IOVA) address of byte `offset` of mem. */
  addr(offset: number): bigint {
    if (!Number.isInteger(offset) || offset < 0 || offset > this.memBytes)
      throw new RangeError(`offset ${offset} outside the ${this.memBytes}-byte guest memory`);
    return this.iova + BigInt(offset);
  }

  /** Messages exchanged so far. */
  get stats(): Readonly<ChannelStats> {
    return this.ch.stats;
  }

  regionInfo(index: number): RegionInfo {
    const r = this.regions.get(index);
    if (!r) throw new Error(`the device has no region ${index}`);
    return r;
  }

  // ---- region access --------------------------------------------------------

  /** REGION_READ of `size` (1..8) bytes at `offset` of region `index`, as a little-endian value. */
  regionRead(index: number, offset: number, size: number): bigint {
    if (!Number.isInteger(size) || size < 1 || size > 8)
      throw new RangeError(`regionRead size ${size}: use 1..8 (regionReadBytes for more)`);
    const s = this.ch.send;
    s.setBigUint64(HEADER_SIZE, BigInt(offset), true);
    s.setUint32(HEADER_SIZE + 8, index, true);
    s.setUint32(HEADER_SIZE + 12, size, true);
    const n = this.ch.transact(CMD.REGION_READ, REGION_ACCESS_SIZE);
    const r = this.ch.recv;
    const count = r.getUint32(HEADER_SIZE + 12, true);
    if (n < REGION_ACCESS_SIZE + size || count !== size)
      throw new Error(
        `REGION_READ of ${size} bytes at ${index}:0x${offset.toString(16)} answered with ${count} bytes`,
      );
    const d = HEADER_SIZE + REGION_ACCESS_SIZE;
    switch (size) {
      case 1:
        return BigInt(r.getUint8(d));
      case 2:
        return BigInt(r.getUint16(d, true));
      case 4:
        return BigInt(r.getUint32(d, true));
      case 8:
        return r.getBigUint64(d, true);
      default: {
        let v = 0n;
        for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(r.getUint8(d + i));
        return v;
      }
    }
  }

  /** REGION_WRITE of `value` as `size` (1..8) little-endian bytes at `offset` of region `index`. */
  regionWrite(index: number, offset: number, size: number, value: bigint): void {
    if (!Number.isInteger(size) || size < 1 || size > 8)
      throw new RangeError(`regionWrite size ${size}: use 1..8 (regionWriteBytes for more)`);
    const s = this.ch.send;
    s.setBigUint64(HEADER_SIZE, BigInt(offset), true);
    s.setUint32(HEADER_SIZE + 8, index, true);
    s.setUint32(HEADER_SIZE + 12, size, true);
    const d = HEADER_SIZE + REGION_ACCESS_SIZE;
    let v = BigInt.asUintN(64, value);
    if (size === 4) s.setUint32(d, Number(v & 0xffff_ffffn), true);
    else if (size === 8) s.setBigUint64(d, v, true);
    else
      for (let i = 0; i < size; i++) {
        s.setUint8(d + i, Number(v & 0xffn));
        v >>= 8n;
      }
    this.ch.transact(CMD.REGION_WRITE, REGION_ACCESS_SIZE + size);
  }

  /** A posted REGION_WRITE of a 4-byte `value` (no reply waited for: a doorbell). */
  regionPost(index: number, offset: number, value: number): void {
    const s = this.ch.send;
    s.setBigUint64(HEADER_SIZE, BigInt(offset), true);
    s.setUint32(HEADER_SIZE + 8, index, true);
    s.setUint32(HEADER_SIZE + 12, 4, true);
    s.setUint32(HEADER_SIZE + REGION_ACCESS_SIZE, value >>> 0, true);
    this.ch.post(CMD.REGION_WRITE, REGION_ACCESS_SIZE + 4);
  }

  /** REGION_READ of any length (split by the server's max_data_xfer_size); returns a copy. */
  regionReadBytes(index: number, offset: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    const max = Math.min(this.server.maxDataXferSize, DEFAULT_MAX_DATA_XFER_SIZE);
    for (let done = 0; done < len; ) {
      const n = Math.min(max, len - done);
      const s = this.ch.send;
      s.setBigUint64(HEADER_SIZE, BigInt(offset + done), true);
      s.setUint32(HEADER_SIZE + 8, index, true);
      s.setUint32(HEADER_SIZE + 12, n, true);
      const got = this.ch.transact(CMD.REGION_READ, REGION_ACCESS_SIZE) - REGION_ACCESS_SIZE;
      if (got !== n)
        throw new Error(
          `REGION_READ of ${n} bytes at ${index}:0x${(offset + done).toString(16)} answered with ${got} bytes`,
        );
      const d = HEADER_SIZE + REGION_ACCESS_SIZE;
      out.set(this.ch.recvBytes.subarray(d, d + n), done);
      done += n;
    }
    return out;
  }

  /** REGION_WRITE of any length (split by the server's max_data_xfer_size). */
  regionWriteBytes(index: number, offset: number, data: Uint8Array): void {
    const max = Math.min(this.server.maxDataXferSize, DEFAULT_MAX_DATA_XFER_SIZE);
    for (let done = 0; done < data.length; ) {
      const n = Math.min(max, data.length - done);
      this.ch.reserve(REGION_ACCESS_SIZE + n);
      const s = this.ch.send;
      s.setBigUint64(HEADER_SIZE, BigInt(offset + done), true);
      s.setUint32(HEADER_SIZE + 8, index, true);
      s.setUint32(HEADER_SIZE + 12, n, true);
      this.ch.sendBytes.set(data.subarray(done, done + n), HEADER_SIZE + REGION_ACCESS_SIZE);
      this.ch.transact(CMD.REGION_WRITE, REGION_ACCESS_SIZE + n);
      done += n;
    }
  }

  bar0Read(offset: number, size = 4): bigint {
    return this.regionRead(VFIO_PCI_BAR0_REGION_INDEX, offset, size);
  }

  bar0Write(offset: number, value: bigint | number, size = 4): void {
    this.regionWrite(VFIO_PCI_BAR0_REGION_INDEX, offset, size, BigInt(value));
  }

  configRead(offset: number, size: number): bigint {
    return this.regionRead(VFIO_PCI_CONFIG_REGION_INDEX, offset, size);
  }

  configWrite(offset: number, size: number, value: bigint | number): void {
    this.regionWrite(VFIO_PCI_CONFIG_REGION_INDEX, offset, size, BigInt(value));
  }

  // ---- PCI ------------------------------------------------------------------

  /** Sets Memory Space and Bus Master Enable in the PCI command register (pci_set_master). */
  enableBusMaster(): void {
    const cmd = Number(this.configRead(PCI_COMMAND, 2));
    this.configWrite(PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  }

  /** Clears Bus Master Enable (pci_clear_master). */
  disableBusMaster(): void {
    const cmd = Number(this.configRead(PCI_COMMAND, 2));
    this.configWrite(PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MASTER);
  }

  /** The config-space offset of the first capability with id `capId`, or null. */
  findCapability(capId: number): number | null {
    if (!(Number(this.configRead(PCI_STATUS, 2)) & PCI_STATUS_CAP_LIST)) return null;
    let pos = Number(this.configRead(PCI_CAPABILITY_LIST, 1)) & ~3;
    for (let hops = 0; pos >= 0x40 && hops < 48; hops++) {
      const hdr = Number(this.configRead(pos, 2));
      if ((hdr & 0xff) === capId) return pos;
      pos = (hdr >> 8) & ~3;
    }
    return null;
  }

  // ---- interrupts -----------------------------------------------------------

  /**
   * Hands the device one eventfd per MSI-X vector 0..vectors-1
   * (DEVICE_SET_IRQS, DATA_EVENTFD | ACTION_TRIGGER, in batches the server's
   * max_msg_fds allows), then sets MSI-X Enable in the capability as a
   * driver would. libvfio-user signals an eventfd whenever the device
   * triggers its vector and does not look at the capability's enable bit;
   * setting it keeps config space honest.
   */
  enableMsix(vectors: number): void {
    if (!Number.isInteger(vectors) || vectors < 1 || vectors > this.msixCount)
      throw new RangeError(`enableMsix(${vectors}): the device has ${this.msixCount} MSI-X vectors`);
    if (this.irqFds.length > 0) this.disableMsix();
    const fds: number[] = [];
    try {
      for (let i = 0; i < vectors; i++) {
        const fd = this.libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) throw new Error(`eventfd failed: errno ${this.libc.errno()}`);
        fds.push(fd);
      }
      const batch = Math.max(1, Math.min(this.server.maxMsgFds, LIBC_MAX_FDS));
      for (let start = 0; start < vectors; start += batch) {
        const count = Math.min(batch, vectors - start);
        this.setIrqs(
          VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
          VFIO_PCI_MSIX_IRQ_INDEX,
          start,
          count,
          fds.slice(start, start + count),
        );
      }
    } catch (e) {
      for (const fd of fds) this.libc.close(fd);
      throw e;
    }
    this.irqFds = fds;
    this.irqSeen = fds.map(() => 0);
    this.irqTaken = fds.map(() => 0);
    this.setMsixControl(true);
  }

  /** Takes the eventfds back from the device (SET_IRQS DATA_NONE, count 0) and clears MSI-X Enable. */
  disableMsix(): void {
    if (this.irqFds.length === 0) return;
    try {
      if (this.connected) {
        this.setIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, []);
        this.setMsixControl(false);
      }
    } finally {
      this.closeIrqFds();
    }
  }

  /** Vectors with an eventfd (0 before enableMsix). */
  get msixVectors(): number {
    return this.irqFds.length;
  }

  /** Interrupts seen on `vector` since enableMsix (reads its eventfd without blocking). */
  irqCount(vector: number): number {
    this.drain(vector);
    return this.irqSeen[vector]!;
  }

  /** Forgets interrupts already seen on `vector`: the next waitIrq waits for a new one. */
  clearIrq(vector: number): void {
    this.drain(vector);
    this.irqTaken[vector] = this.irqSeen[vector]!;
  }

  /**
   * Waits up to `timeoutMs` for an interrupt on `vector` that no earlier
   * waitIrq/clearIrq took; true when one came (it is then taken).
   */
  waitIrq(vector: number, timeoutMs: number): boolean {
    return this.waitAnyIrq([vector], timeoutMs) === vector;
  }

  /** Like waitIrq for several vectors: returns the first that fired, or -1 on timeout. */
  waitAnyIrq(vectors: readonly number[], timeoutMs: number): number {
    const ready = (): number => {
      for (const v of vectors) {
        this.drain(v);
        if (this.irqSeen[v]! > this.irqTaken[v]!) {
          this.irqTaken[v] = this.irqSeen[v]!;
          return v;
        }
      }
      return -1;
    };
    let hit = ready();
    if (hit >= 0) return hit;
    if (this.pollCap < vectors.length) {
      if (this.pollBuf) this.libc.free(this.pollBuf);
      this.pollCap = Math.max(vectors.length, 16);
      this.pollBuf = this.libc.alloc(8 * this.pollCap);
    }
    const pv = new DataView(this.libc.view(this.pollBuf, 8 * vectors.length));
    vectors.forEach((v, i) => {
      pv.setInt32(8 * i, this.irqFds[v]!, true);
      pv.setInt16(8 * i + 4, POLLIN, true);
      pv.setInt16(8 * i + 6, 0, true);
    });
    const end = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, end - Date.now());
      const r = this.libc.poll(this.pollBuf, vectors.length, left);
      if (r < 0 && this.libc.errno() !== EINTR)
        throw new Error(`poll on MSI-X eventfds failed: errno ${this.libc.errno()}`);
      hit = ready();
      if (hit >= 0) return hit;
      if (left === 0 || Date.now() >= end) return -1;
    }
  }

  // ---- DMA memory --------------------------------------------------------------

  /** DMA_MAP: shares the guest memory with the device at `iova` (read/write). */
  map(): void {
    if (this.dmaMapped) return;
    const s = this.ch.send;
    s.setUint32(HEADER_SIZE, DMA_MAP_SIZE, true);
    s.setUint32(HEADER_SIZE + 4, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, true);
    s.setBigUint64(HEADER_SIZE + 8, 0n, true); // offset into the memfd
    s.setBigUint64(HEADER_SIZE + 16, this.iova, true);
    s.setBigUint64(HEADER_SIZE + 24, BigInt(this.memBytes), true);
    this.ch.transact(CMD.DMA_MAP, DMA_MAP_SIZE, [this.memFd]);
    this.dmaMapped = true;
  }

  /**
   * DMA_MAP of another fd (tests of what the server accepts): `size` bytes
   * of `fd` from `fileOffset`, at `iova`. The client keeps no record of it.
   */
  mapFd(fd: number, fileOffset: bigint, iova: bigint, size: bigint): void {
    const s = this.ch.send;
    s.setUint32(HEADER_SIZE, DMA_MAP_SIZE, true);
    s.setUint32(HEADER_SIZE + 4, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, true);
    s.setBigUint64(HEADER_SIZE + 8, fileOffset, true);
    s.setBigUint64(HEADER_SIZE + 16, iova, true);
    s.setBigUint64(HEADER_SIZE + 24, size, true);
    this.ch.transact(CMD.DMA_MAP, DMA_MAP_SIZE, [fd]);
  }

  /** SET_IRQS on MSI-X: `fds` become the trigger of vectors start.. (tests of what the server accepts). */
  setMsixFds(start: number, fds: number[]): void {
    this.setIrqs(
      VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
      VFIO_PCI_MSIX_IRQ_INDEX,
      start,
      fds.length,
      fds,
    );
  }

  /** DMA_UNMAP: the device loses its view of the guest memory (this process keeps its own). */
  unmap(): void {
    if (!this.dmaMapped) return;
    const s = this.ch.send;
    s.setUint32(HEADER_SIZE, DMA_UNMAP_SIZE, true);
    s.setUint32(HEADER_SIZE + 4, 0, true);
    s.setBigUint64(HEADER_SIZE + 8, this.iova, true);
    s.setBigUint64(HEADER_SIZE + 16, BigInt(this.memBytes), true);
    this.ch.transact(CMD.DMA_UNMAP, DMA_UNMAP_SIZE);
    this.dmaMapped = false;
  }

  /** VFIO_USER_DEVICE_RESET: the server resets the device. */
  deviceReset(): void {
    this.ch.transact(CMD.DEVICE_RESET, 0);
  }

  // ---- mmap-able regions ---------------------------------------------------------

  /**
   * The mapping of region `index` when the server offered it for mmap (the
   * whole region, or its first sparse area: see mappedAreas), else null.
   */
  mappedRegion(index: number): Uint8Array | null {
    return this.areas.get(index)?.[0]?.view ?? null;
  }

  /** Every mapped area of region `index`, by offset within the region. */
  mappedAreas(index: number): readonly MappedArea[] {
    return (this.areas.get(index) ?? []).map(({ offset, size, view }) => ({ offset, size, view }));
  }

  // ---- teardown ---------------------------------------------------------------

  /**
   * Closes the socket at once, without DMA_UNMAP or anything else: the
   * server sees the client vanish as when a VM dies. The memory and
   * eventfds stay until close().
   */
  disconnectAbruptly(): void {
    this.ch.close('disconnected abruptly by the client');
    this.dmaMapped = false;
  }

  /**
   * Unmaps the memory from the device (when still connected), closes the
   * socket, the eventfds and the memfd, and unmaps everything. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.ch?.open && this.dmaMapped) this.unmap();
    } catch {
      /* the server may be gone: it drops the mapping with the connection */
    }
    this.ch?.release();
    this.dmaMapped = false;
    this.closeIrqFds();
    for (const fd of this.ioFds.splice(0)) this.libc.close(fd);
    for (const list of this.areas.values()) for (const a of list) this.libc.munmap(a.ptr, a.len);
    this.areas.clear();
    this.memView = null;
    if (this.memMap) this.libc.munmap(this.memMap.ptr, this.memMap.len);
    this.memMap = null;
    if (this.memFd >= 0) this.libc.close(this.memFd);
    this.memFd = -1;
    if (this.pollBuf) this.libc.free(this.pollBuf);
    this.pollBuf = 0n;
    if (this.scratch) this.libc.free(this.scratch);
  }

  // ---- internals ---------------------------------------------------------------

  private negotiate(maxMsgFds: number): ServerCapabilities & { major: number; minor: number } {
    const caps = clientCapabilities(maxMsgFds, DEFAULT_MAX_DATA_XFER_SIZE);
    this.ch.reserve(4 + caps.length);
    const s = this.ch.send;
    s.setUint16(HEADER_SIZE, VFIO_USER_VERSION_MAJOR, true);
    s.setUint16(HEADER_SIZE + 2, VFIO_USER_VERSION_MINOR, true);
    this.ch.sendBytes.set(caps, HEADER_SIZE + 4);
    const n = this.ch.transact(CMD.VERSION, 4 + caps.length);
    if (n < 4) throw new Error(`VFIO_USER_VERSION reply of ${n} bytes`);
    const r = this.ch.recv;
    const major = r.getUint16(HEADER_SIZE, true);
    const minor = r.getUint16(HEADER_SIZE + 2, true);
    if (major !== VFIO_USER_VERSION_MAJOR)
      throw new Error(
        `the server speaks vfio-user ${major}.${minor}; this client speaks ${VFIO_USER_VERSION_MAJOR}.x`,
      );
    if (minor > VFIO_USER_VERSION_MINOR)
      throw new Error(
        `the server answered minor version ${minor}, above the ${VFIO_USER_VERSION_MINOR} proposed`,
      );
    const data = this.ch.recvBytes.slice(HEADER_SIZE + 4, HEADER_SIZE + n);
    return { major, minor, ...parseServerCapabilities(data) };
  }

  private getDeviceInfo(): DeviceInfo {
    const s = this.ch.send;
    s.setUint32(HEADER_SIZE, DEVICE_INFO_SIZE, true);
    for (let i = 4; i < DEVICE_INFO_SIZE; i += 4) s.setUint32(HEADER_SIZE + i, 0, true);
    const n = this.ch.transact(CMD.DEVICE_GET_INFO, DEVICE_INFO_SIZE);
    if (n < DEVICE_INFO_SIZE) throw new Error(`VFIO_USER_DEVICE_GET_INFO reply of ${n} bytes`);
    const r = this.ch.recv;
    const info = {
      flags: r.getUint32(HEADER_SIZE + 4, true),
      numRegions: r.getUint32(HEADER_SIZE + 8, true),
      numIrqs: r.getUint32(HEADER_SIZE + 12, true),
    };
    if (!(info.flags & VFIO_DEVICE_FLAGS_PCI))
      throw new Error(`the device is not a PCI device (flags 0x${info.flags.toString(16)})`);
    return info;
  }

  /** DEVICE_GET_REGION_INFO, asking again with a larger argsz when the capabilities did not fit; maps mmap-able regions. */
  private getRegionInfo(index: number): RegionInfo {
    let argsz = REGION_INFO_SIZE + 256;
    for (let attempt = 0; ; attempt++) {
      const s = this.ch.send;
      s.setUint32(HEADER_SIZE, argsz, true);
      for (let i = 4; i < REGION_INFO_SIZE; i += 4) s.setUint32(HEADER_SIZE + i, 0, true);
      s.setUint32(HEADER_SIZE + 8, index, true);
      const n = this.ch.transact(CMD.DEVICE_GET_REGION_INFO, REGION_INFO_SIZE, [], true);
      const fds = this.ch.replyFds.splice(0);
      try {
        const info = parseRegionInfo(
          new DataView(this.ch.recv.buffer, this.ch.recv.byteOffset + HEADER_SIZE, n),
        );
        if (info.argsz > argsz && attempt === 0) {
          argsz = info.argsz;
          continue;
        }
        if (info.mmappable && info.size > 0) this.mapRegion(info, fds);
        const { argsz: _drop, ...rest } = info;
        return rest;
      } finally {
        for (const fd of fds) this.libc.close(fd); // the mappings keep what they need
      }
    }
  }

  private mapRegion(info: RegionInfo, fds: number[]): void {
    const areas = info.sparseAreas ?? [{ offset: 0, size: info.size }];
    if (areas.length === 0) return;
    if (fds.length === 0)
      throw new Error(`region ${info.index} is mmap-able but its REGION_INFO reply carried no fd`);
    const prot = (info.readable ? PROT_READ : 0) | (info.writable ? PROT_WRITE : 0);
    const mapped: (MappedArea & Mapping)[] = [];
    try {
      areas.forEach((a, i) => {
        if (a.size === 0) return;
        const fd = fds[Math.min(i, fds.length - 1)]!; // one fd per area; a single fd serves all
        const ptr = this.libc.mmap(null, a.size, prot, MAP_SHARED, fd, Number(info.offset) + a.offset);
        if (ptr === MAP_FAILED || !ptr)
          throw new Error(
            `mmap of region ${info.index} area 0x${a.offset.toString(16)}+0x${a.size.toString(16)} failed: errno ${this.libc.errno()}`,
          );
        mapped.push({
          offset: a.offset,
          size: a.size,
          ptr,
          len: a.size,
          view: new Uint8Array(this.libc.view(ptr, a.size)),
        });
      });
    } catch (e) {
      for (const m of mapped) this.libc.munmap(m.ptr, m.len);
      throw e;
    }
    mapped.sort((x, y) => x.offset - y.offset);
    this.areas.set(info.index, mapped);
  }

  private getIrqInfo(index: number): { flags: number; count: number } {
    const s = this.ch.send;
    s.setUint32(HEADER_SIZE, IRQ_INFO_SIZE, true);
    s.setUint32(HEADER_SIZE + 4, 0, true);
    s.setUint32(HEADER_SIZE + 8, index, true);
    s.setUint32(HEADER_SIZE + 12, 0, true);
    const n = this.ch.transact(CMD.DEVICE_GET_IRQ_INFO, IRQ_INFO_SIZE);
    if (n < IRQ_INFO_SIZE) throw new Error(`VFIO_USER_DEVICE_GET_IRQ_INFO reply of ${n} bytes`);
    const r = this.ch.recv;
    return { flags: r.getUint32(HEADER_SIZE + 4, true), count: r.getUint32(HEADER_SIZE + 12, true) };
  }

  private setIrqs(flags: number, index: number, start: number, count: number, fds: number[]): void {
    const s = this.ch.send;
    s.setUint32(HEADER_SIZE, IRQ_SET_SIZE, true);
    s.setUint32(HEADER_SIZE + 4, flags, true);
    s.setUint32(HEADER_SIZE + 8, index, true);
    s.setUint32(HEADER_SIZE + 12, start, true);
    s.setUint32(HEADER_SIZE + 16, count, true);
    this.ch.transact(CMD.DEVICE_SET_IRQS, IRQ_SET_SIZE, fds);
  }

  private setMsixControl(enable: boolean): void {
    const cap = this.findCapability(PCI_CAP_ID_MSIX);
    if (cap === null) return;
    const ctl = Number(this.configRead(cap + PCI_MSIX_FLAGS, 2));
    const next = enable
      ? (ctl | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL
      : ctl & ~PCI_MSIX_FLAGS_ENABLE;
    if (next !== ctl) this.configWrite(cap + PCI_MSIX_FLAGS, 2, next);
  }

  private createMemory(): void {
    const fd = this.libc.memfd_create('sgiov-client-guest-mem', MFD_CLOEXEC);
    if (fd < 0) throw new Error(`memfd_create failed: errno ${this.libc.errno()}`);
    this.memFd = fd;
    if (this.libc.ftruncate(fd, this.memBytes) < 0)
      throw new Error(`ftruncate(memfd, ${this.memBytes}) failed: errno ${this.libc.errno()}`);
    const ptr = this.libc.mmap(null, this.memBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ptr === MAP_FAILED || !ptr)
      throw new Error(`mmap of ${this.memBytes} bytes of guest memory failed: errno ${this.libc.errno()}`);
    this.memMap = { ptr, len: this.memBytes };
    this.memView = new Uint8Array(this.libc.view(ptr, this.memBytes));
  }

  /** Adds what the eventfd of `vector` counted since the last read. */
  private drain(vector: number): void {
    const fd = this.irqFds[vector];
    if (fd === undefined)
      throw new RangeError(`MSI-X vector ${vector} has no eventfd (enableMsix gave ${this.irqFds.length})`);
    for (;;) {
      const n = this.libc.read(fd, this.scratch, 8);
      if (n === 8) {
        this.irqSeen[vector]! += Number(this.scratchView.getBigUint64(0, true));
        return;
      }
      if (n < 0 && this.libc.errno() === EINTR) continue;
      return; // EAGAIN: nothing new
    }
  }

  private readonly ioFds: number[] = [];

  /**
   * VFIO_USER_DEVICE_GET_REGION_IO_FDS: the ioeventfds the server set up in
   * region `index` (none when it set up none, or does not know the
   * command: a VfioUserError is turned into an empty list). The eventfds
   * stay open until close().
   */
  regionIoFds(index: number): IoEventFd[] {
    const REQ = 16;
    const SUB = 40;
    let argsz = REQ + 8 * SUB;
    for (let attempt = 0; ; attempt++) {
      const s = this.ch.send;
      s.setUint32(HEADER_SIZE, argsz, true);
      s.setUint32(HEADER_SIZE + 4, 0, true);
      s.setUint32(HEADER_SIZE + 8, index, true);
      s.setUint32(HEADER_SIZE + 12, 0, true);
      let n: number;
      try {
        n = this.ch.transact(CMD.DEVICE_GET_REGION_IO_FDS, REQ, [], true);
      } catch (e) {
        if (e instanceof VfioUserError) return [];
        throw e;
      }
      const fds = this.ch.replyFds.splice(0);
      const r = new DataView(this.ch.recv.buffer, this.ch.recv.byteOffset + HEADER_SIZE, n);
      const need = n >= REQ ? r.getUint32(0, true) : 0;
      const count = n >= REQ ? r.getUint32(12, true) : 0;
      if (need > argsz && attempt === 0) {
        for (const fd of fds) this.libc.close(fd);
        argsz = need;
        continue;
      }
      const out: IoEventFd[] = [];
      for (let i = 0; i < count && REQ + (i + 1) * SUB <= n; i++) {
        const o = REQ + i * SUB;
        const fd = fds[r.getUint32(o + 16, true)];
        if (fd === undefined || r.getUint32(o + 20, true) !== 0 /* IOEVENTFD */) continue;
        out.push({
          offset: Number(r.getBigUint64(o, true)),
          size: Number(r.getBigUint64(o + 8, true)),
          fd,
          flags: r.getUint32(o + 24, true),
          datamatch: r.getBigUint64(o + 32, true),
        });
      }
      // Keep the fds an entry uses; close any other.
      for (const fd of fds)
        if (out.some((x) => x.fd === fd)) this.ioFds.push(fd);
        else this.libc.close(fd);
      return out;
    }
  }

  private readonly ioValue = Buffer.alloc(8);

  /** A write through an ioeventfd from regionIoFds: the eventfd counts `value` (any non-zero value makes it readable). */
  writeIoEventFd(e: IoEventFd, value = 1n): void {
    this.ioValue.writeBigUInt64LE(value);
    if (this.libc.write(e.fd, this.ioValue, 8) !== 8)
      throw new Error(
        `write to the ioeventfd at 0x${e.offset.toString(16)} failed: errno ${this.libc.errno()}`,
      );
  }

  private closeIrqFds(): void {
    for (const fd of this.irqFds) this.libc.close(fd);
    this.irqFds = [];
    this.irqSeen = [];
    this.irqTaken = [];
  }
}
