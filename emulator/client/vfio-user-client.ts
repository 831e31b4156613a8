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
import { Libc, LIBC_MAX_FDS } from '../native/libc.js';
import { type ChannelStats, VfioUserChannel } from './channel.js';
import {
  type DeviceInfo,
  getDeviceInfo,
  getIrqInfo,
  getRegionInfo,
  getRegionIoFds,
  type IoEventFd,
  negotiate,
  type ServerInfo,
  setIrqs,
} from './device-requests.js';
import { dmaMap, GuestMemory } from './guest-memory.js';
import { IrqEventFds } from './irq-eventfds.js';
import { type MappedArea, MappedRegions } from './mapped-regions.js';
import { regionPost, regionRead, regionReadBytes, regionWrite, regionWriteBytes } from './region-access.js';
import {
  CMD,
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
  type RegionInfo,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
} from './vfio-user-protocol.js';

export type { DeviceInfo, IoEventFd } from './device-requests.js';
export type { MappedArea } from './mapped-regions.js';

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

const MIB = 1024 * 1024;

export class VfioUserClient {
  private readonly libc = Libc.get();
  private readonly ch: VfioUserChannel;
  /** The server's version and capabilities, from the VERSION reply. */
  readonly server: ServerInfo;
  readonly device: DeviceInfo;
  /** Region information for BAR0..BAR5 and config space (index 7), those the device has. */
  readonly regions: ReadonlyMap<number, RegionInfo>;
  /** MSI-X vectors the device offers (DEVICE_GET_IRQ_INFO). */
  readonly msixCount: number;
  readonly iova: bigint;
  readonly memBytes: number;

  /** The guest memory (guest-memory.ts); null only while connecting. */
  private memory: GuestMemory | null = null;
  /** The mmap-able regions, mapped (mapped-regions.ts). */
  private readonly areas: MappedRegions;
  /** One eventfd per MSI-X vector (irq-eventfds.ts). */
  private readonly irqs: IrqEventFds;
  /** The eventfds regionIoFds() handed out. */
  private readonly ioFds: number[] = [];
  private readonly ioValue = Buffer.alloc(8);
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
    this.irqs = new IrqEventFds(this.libc);
    this.areas = new MappedRegions(this.libc);
    this.ch = new VfioUserChannel(socketPath, opts.timeoutMs ?? 5000);
    try {
      this.server = negotiate(this.ch, opts.maxMsgFds ?? 16);
      this.device = getDeviceInfo(this.ch);
      const regions = new Map<number, RegionInfo>();
      for (
        let i = VFIO_PCI_BAR0_REGION_INDEX;
        i <= VFIO_PCI_CONFIG_REGION_INDEX && i < this.device.numRegions;
        i++
      ) {
        if (i > VFIO_PCI_BAR5_REGION_INDEX && i !== VFIO_PCI_CONFIG_REGION_INDEX) continue; // the ROM
        const info = this.regionInfoMapped(i);
        if (info.size > 0) regions.set(i, info);
      }
      this.regions = regions;
      this.msixCount =
        this.device.numIrqs > VFIO_PCI_MSIX_IRQ_INDEX
          ? getIrqInfo(this.ch, VFIO_PCI_MSIX_IRQ_INDEX).count
          : 0;
      this.memory = new GuestMemory(this.libc, this.ch, this.memBytes, this.iova);
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
    return this.memory?.mapped ?? false;
  }

  /**
   * The guest memory, shared with the device: byte i is at IOVA addr(i).
   * Valid until close(); do not keep it past that (the memory is unmapped
   * and Node cannot detach the view).
   */
  get mem(): Uint8Array {
    return this.memory!.view;
  }

  /** The guest (IOVA) address of byte `offset` of mem. */
  addr(offset: number): bigint {
    return this.memory!.addr(offset);
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

  // ---- region access (region-access.ts) -------------------------------------

  /** REGION_READ of `size` (1..8) bytes at `offset` of region `index`, as a little-endian value. */
  regionRead(index: number, offset: number, size: number): bigint {
    return regionRead(this.ch, index, offset, size);
  }

  /** REGION_WRITE of `value` as `size` (1..8) little-endian bytes at `offset` of region `index`. */
  regionWrite(index: number, offset: number, size: number, value: bigint): void {
    regionWrite(this.ch, index, offset, size, value);
  }

  /** A posted REGION_WRITE of a 4-byte `value` (no reply waited for: a doorbell). */
  regionPost(index: number, offset: number, value: number): void {
    regionPost(this.ch, index, offset, value);
  }

  /** REGION_READ of any length (split by the server's max_data_xfer_size); returns a copy. */
  regionReadBytes(index: number, offset: number, len: number): Uint8Array {
    return regionReadBytes(this.ch, this.server.maxDataXferSize, index, offset, len);
  }

  /** REGION_WRITE of any length (split by the server's max_data_xfer_size). */
  regionWriteBytes(index: number, offset: number, data: Uint8Array): void {
    regionWriteBytes(this.ch, this.server.maxDataXferSize, index, offset, data);
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

  // ---- interrupts (irq-eventfds.ts) ------------------------------------------

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
    if (this.irqs.count > 0) this.disableMsix();
    this.irqs.open(vectors, (fds) => {
      const batch = Math.max(1, Math.min(this.server.maxMsgFds, LIBC_MAX_FDS));
      for (let start = 0; start < vectors; start += batch) {
        const count = Math.min(batch, vectors - start);
        setIrqs(
          this.ch,
          VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
          VFIO_PCI_MSIX_IRQ_INDEX,
          start,
          count,
          fds.slice(start, start + count),
        );
      }
    });
    this.setMsixControl(true);
  }

  /** Takes the eventfds back from the device (SET_IRQS DATA_NONE, count 0) and clears MSI-X Enable. */
  disableMsix(): void {
    if (this.irqs.count === 0) return;
    try {
      if (this.connected) {
        setIrqs(
          this.ch,
          VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
          VFIO_PCI_MSIX_IRQ_INDEX,
          0,
          0,
          [],
        );
        this.setMsixControl(false);
      }
    } finally {
      this.irqs.closeFds();
    }
  }

  /** Vectors with an eventfd (0 before enableMsix). */
  get msixVectors(): number {
    return this.irqs.count;
  }

  /** Interrupts seen on `vector` since enableMsix (reads its eventfd without blocking). */
  irqCount(vector: number): number {
    return this.irqs.seenOn(vector);
  }

  /** Forgets interrupts already seen on `vector`: the next waitIrq waits for a new one. */
  clearIrq(vector: number): void {
    this.irqs.clear(vector);
  }

  /**
   * Waits up to `timeoutMs` for an interrupt on `vector` that no earlier
   * waitIrq/clearIrq took; true when one came (it is then taken).
   */
  waitIrq(vector: number, timeoutMs: number): boolean {
    return this.irqs.waitAny([vector], timeoutMs) === vector;
  }

  /** Like waitIrq for several vectors: returns the first that fired, or -1 on timeout. */
  waitAnyIrq(vectors: readonly number[], timeoutMs: number): number {
    return this.irqs.waitAny(vectors, timeoutMs);
  }

  // ---- DMA memory (guest-memory.ts) -------------------------------------------

  /** DMA_MAP: shares the guest memory with the device at `iova` (read/write). */
  map(): void {
    this.memory!.map();
  }

  /**
   * DMA_MAP of another fd (tests of what the server accepts): `size` bytes
   * of `fd` from `fileOffset`, at `iova`. The client keeps no record of it.
   */
  mapFd(fd: number, fileOffset: bigint, iova: bigint, size: bigint): void {
    dmaMap(this.ch, fd, fileOffset, iova, size);
  }

  /** SET_IRQS on MSI-X: `fds` become the trigger of vectors start.. (tests of what the server accepts). */
  setMsixFds(start: number, fds: number[]): void {
    setIrqs(
      this.ch,
      VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
      VFIO_PCI_MSIX_IRQ_INDEX,
      start,
      fds.length,
      fds,
    );
  }

  /** DMA_UNMAP: the device loses its view of the guest memory (this process keeps its own). */
  unmap(): void {
    this.memory?.unmap();
  }

  /** VFIO_USER_DEVICE_RESET: the server resets the device. */
  deviceReset(): void {
    this.ch.transact(CMD.DEVICE_RESET, 0);
  }

  // ---- mmap-able regions (mapped-regions.ts) and ioeventfds ----------------------

  /**
   * The mapping of region `index` when the server offered it for mmap (the
   * whole region, or its first sparse area: see mappedAreas), else null.
   */
  mappedRegion(index: number): Uint8Array | null {
    return this.areas.first(index);
  }

  /** Every mapped area of region `index`, by offset within the region. */
  mappedAreas(index: number): readonly MappedArea[] {
    return this.areas.of(index);
  }

  /**
   * VFIO_USER_DEVICE_GET_REGION_IO_FDS: the ioeventfds the server set up in
   * region `index` (none when it set up none, or does not know the
   * command). The eventfds stay open until close().
   */
  regionIoFds(index: number): IoEventFd[] {
    const { entries, kept } = getRegionIoFds(this.ch, this.libc, index);
    this.ioFds.push(...kept);
    return entries;
  }

  /** A write through an ioeventfd from regionIoFds: the eventfd counts `value` (any non-zero value makes it readable). */
  writeIoEventFd(e: IoEventFd, value = 1n): void {
    this.ioValue.writeBigUInt64LE(value);
    if (this.libc.write(e.fd, this.ioValue, 8) !== 8)
      throw new Error(
        `write to the ioeventfd at 0x${e.offset.toString(16)} failed: errno ${this.libc.errno()}`,
      );
  }

  // ---- teardown ---------------------------------------------------------------

  /**
   * Closes the socket at once, without DMA_UNMAP or anything else: the
   * server sees the client vanish as when a VM dies. The memory and
   * eventfds stay until close().
   */
  disconnectAbruptly(): void {
    this.ch.close('disconnected abruptly by the client');
    this.memory?.forget();
  }

  /**
   * Unmaps the memory from the device (when still connected), closes the
   * socket, the eventfds and the memfd, and unmaps everything. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.ch?.open && this.memory?.mapped) this.memory.unmap();
    } catch {
      /* the server may be gone: it drops the mapping with the connection */
    }
    this.ch?.release();
    this.memory?.forget();
    this.irqs.closeFds();
    for (const fd of this.ioFds.splice(0)) this.libc.close(fd);
    this.areas.close();
    this.memory?.close();
    this.irqs.release();
  }

  // ---- internals ---------------------------------------------------------------

  /** DEVICE_GET_REGION_INFO of region `index`, mapping it when it is mmap-able. */
  private regionInfoMapped(index: number): RegionInfo {
    const { info, fds } = getRegionInfo(this.ch, this.libc, index);
    try {
      if (info.mmappable && info.size > 0) this.areas.map(info, fds);
      return info;
    } finally {
      for (const fd of fds) this.libc.close(fd); // the mappings keep what they need
    }
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
}
