/**
 * The regions the server offers for mmap (VFIO_REGION_INFO_FLAG_MMAP with
 * an fd), mapped into this process: the whole region, or each of its
 * sparse areas.
 */
import { type Libc, MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, type Ptr } from '../native/libc.js';
import type { RegionInfo } from './vfio-user-protocol.js';

/** One mapped area of an mmap-able region. */
export interface MappedArea {
  /** Offset of the area within the region. */
  offset: number;
  size: number;
  view: Uint8Array;
}

interface Mapping extends MappedArea {
  ptr: Ptr;
  len: number;
}

export class MappedRegions {
  private readonly areas = new Map<number, Mapping[]>();

  constructor(private readonly libc: Libc) {}

  /** Maps region `info` through the fds of its REGION_INFO reply (one per area; a single fd serves all). The fds stay the caller's. */
  map(info: RegionInfo, fds: readonly number[]): void {
    const areas = info.sparseAreas ?? [{ offset: 0, size: info.size }];
    if (areas.length === 0) return;
    if (fds.length === 0)
      throw new Error(`region ${info.index} is mmap-able but its REGION_INFO reply carried no fd`);
    const prot = (info.readable ? PROT_READ : 0) | (info.writable ? PROT_WRITE : 0);
    const mapped: Mapping[] = [];
    try {
      areas.forEach((a, i) => {
        if (a.size === 0) return;
        const fd = fds[Math.min(i, fds.length - 1)]!;
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

  /** The mapping of region `index` (the whole region, or its first sparse area), or null. */
  first(index: number): Uint8Array | null {
    return this.areas.get(index)?.[0]?.view ?? null;
  }

  /** Every mapped area of region `index`, by offset within the region. */
  of(index: number): readonly MappedArea[] {
    return (this.areas.get(index) ?? []).map(({ offset, size, view }) => ({ offset, size, view }));
  }

  /** Unmaps everything. */
  close(): void {
    for (const list of this.areas.values()) for (const a of list) this.libc.munmap(a.ptr, a.len);
    this.areas.clear();
  }
}
