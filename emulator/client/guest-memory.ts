/**
 * The client's guest memory: a memfd mapped into this process and shared
 * with the device by DMA_MAP at a fixed IOVA, so that the device DMAs
 * straight into a Uint8Array this process sees.
 */
import {
  type Libc,
  MAP_FAILED,
  MAP_SHARED,
  MFD_CLOEXEC,
  PROT_READ,
  PROT_WRITE,
  type Ptr,
} from '../native/libc.js';
import type { VfioUserChannel } from './channel.js';
import {
  CMD,
  DMA_MAP_SIZE,
  DMA_UNMAP_SIZE,
  HEADER_SIZE,
  VFIO_USER_F_DMA_REGION_READ,
  VFIO_USER_F_DMA_REGION_WRITE,
} from './vfio-user-protocol.js';

/** DMA_MAP (read/write): `size` bytes of `fd` from `fileOffset`, seen by the device at `iova`. */
export function dmaMap(
  ch: VfioUserChannel,
  fd: number,
  fileOffset: bigint,
  iova: bigint,
  size: bigint,
): void {
  const s = ch.send;
  s.setUint32(HEADER_SIZE, DMA_MAP_SIZE, true);
  s.setUint32(HEADER_SIZE + 4, VFIO_USER_F_DMA_REGION_READ | VFIO_USER_F_DMA_REGION_WRITE, true);
  s.setBigUint64(HEADER_SIZE + 8, fileOffset, true);
  s.setBigUint64(HEADER_SIZE + 16, iova, true);
  s.setBigUint64(HEADER_SIZE + 24, size, true);
  ch.transact(CMD.DMA_MAP, DMA_MAP_SIZE, [fd]);
}

export class GuestMemory {
  private fd = -1;
  private ptr: Ptr | null = null;
  private v: Uint8Array | null = null;
  private dmaMapped = false;

  /** Creates the memfd of `bytes` and maps it here (not yet in the device: map()); throws, having released it, when the system refuses. */
  constructor(
    private readonly libc: Libc,
    private readonly ch: VfioUserChannel,
    readonly bytes: number,
    readonly iova: bigint,
  ) {
    try {
      this.create();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** True while the memory is DMA-mapped in the server. */
  get mapped(): boolean {
    return this.dmaMapped;
  }

  /** The memory, until close(). */
  get view(): Uint8Array {
    if (!this.v) throw new Error('guest memory is gone: the client is closed');
    return this.v;
  }

  /** The guest (IOVA) address of byte `offset`. */
  addr(offset: number): bigint {
    if (!Number.isInteger(offset) || offset < 0 || offset > this.bytes)
      throw new RangeError(`offset ${offset} outside the ${this.bytes}-byte guest memory`);
    return this.iova + BigInt(offset);
  }

  /** DMA_MAP: shares the memory with the device at `iova` (read/write). */
  map(): void {
    if (this.dmaMapped) return;
    dmaMap(this.ch, this.fd, 0n, this.iova, BigInt(this.bytes));
    this.dmaMapped = true;
  }

  /** DMA_UNMAP: the device loses its view of the memory (this process keeps its own). */
  unmap(): void {
    if (!this.dmaMapped) return;
    const s = this.ch.send;
    s.setUint32(HEADER_SIZE, DMA_UNMAP_SIZE, true);
    s.setUint32(HEADER_SIZE + 4, 0, true);
    s.setBigUint64(HEADER_SIZE + 8, this.iova, true);
    s.setBigUint64(HEADER_SIZE + 16, BigInt(this.bytes), true);
    this.ch.transact(CMD.DMA_UNMAP, DMA_UNMAP_SIZE);
    this.dmaMapped = false;
  }

  /** The connection went without DMA_UNMAP: the server dropped the mapping with it. */
  forget(): void {
    this.dmaMapped = false;
  }

  /** Unmaps the memory here and closes the memfd (the device's mapping is the caller's: unmap() first). */
  close(): void {
    this.dmaMapped = false;
    this.v = null;
    if (this.ptr !== null) this.libc.munmap(this.ptr, this.bytes);
    this.ptr = null;
    if (this.fd >= 0) this.libc.close(this.fd);
    this.fd = -1;
  }

  private create(): void {
    const fd = this.libc.memfd_create('sgiov-client-guest-mem', MFD_CLOEXEC);
    if (fd < 0) throw new Error(`memfd_create failed: errno ${this.libc.errno()}`);
    this.fd = fd;
    if (this.libc.ftruncate(fd, this.bytes) < 0)
      throw new Error(`ftruncate(memfd, ${this.bytes}) failed: errno ${this.libc.errno()}`);
    const ptr = this.libc.mmap(null, this.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (ptr === MAP_FAILED || !ptr)
      throw new Error(`mmap of ${this.bytes} bytes of guest memory failed: errno ${this.libc.errno()}`);
    this.ptr = ptr;
    this.v = new Uint8Array(this.libc.view(ptr, this.bytes));
  }
}
