/**
 * The guest memory the device may DMA to: the regions the client registered
 * (vfio-user DMA_MAP), each with a view on its mapping in this process.
 * Lookups hand out subarrays that the model uses synchronously and drops;
 * remove() forgets the region's view before the transport unmaps it, so no
 * view handed out later can reach unmapped memory. (Node 20 cannot detach an
 * external ArrayBuffer, so the guard is that nothing keeps a view.)
 */
export interface DmaRegionInfo {
  iova: bigint;
  len: number;
  mapped: boolean;
}

/** Makes a view on `len` bytes of a region's mapping from `offset` (the transport's, which may use FFI). */
export type ViewMaker = (offset: number, len: number) => Uint8Array;

/**
 * A region longer than two of these is viewed in pieces of 2 x PIECE bytes
 * starting every PIECE bytes (one view of more than 4 GiB aborts Node), so
 * that any access of up to PIECE bytes lies whole in one piece.
 */
export const PIECE = 1 << 30;

interface Region {
  start: number;
  end: number; // exclusive
  view: Uint8Array | null; // null: registered without a mapping (no fd), or in pieces
  pieces: Uint8Array[] | null;
}

/** The view, or the pieces, of a mapping `len` bytes long. */
function makeViews(
  len: number,
  view: Uint8Array | ViewMaker | null,
): { view: Uint8Array | null; pieces: Uint8Array[] | null } {
  if (view === null || view instanceof Uint8Array) return { view, pieces: null };
  if (len <= 2 * PIECE) return { view: view(0, len), pieces: null };
  const pieces: Uint8Array[] = [];
  for (let off = 0; off < len - PIECE; off += PIECE) pieces.push(view(off, Math.min(2 * PIECE, len - off)));
  return { view: null, pieces };
}

export class DmaRegions {
  private regions: Region[] = [];
  private last: Region | null = null;

  add(iova: bigint, len: number, view: Uint8Array | ViewMaker | null): void {
    const start = Number(iova);
    const r: Region = { start, end: start + len, ...makeViews(len, view) };
    // A client may re-register a range; the newest mapping wins.
    this.regions = this.regions.filter((x) => x.end <= r.start || x.start >= r.end);
    this.regions.push(r);
    this.regions.sort((a, b) => a.start - b.start);
    this.last = null;
  }

  /** Forgets every region inside [iova, iova+len); returns how many. */
  remove(iova: bigint, len: number): number {
    const start = Number(iova);
    const end = start + len;
    const before = this.regions.length;
    for (const r of this.regions)
      if (r.start >= start && r.end <= end) {
        r.view = null;
        r.pieces = null;
      }
    this.regions = this.regions.filter((r) => !(r.start >= start && r.end <= end));
    this.last = null;
    return before - this.regions.length;
  }

  clear(): void {
    for (const r of this.regions) {
      r.view = null;
      r.pieces = null;
    }
    this.regions = [];
    this.last = null;
  }

  /** A view on [addr, addr+len) when one mapped region covers all of it. */
  view(addr: bigint, len: number): Uint8Array | null {
    if (len < 0 || addr < 0n) return null;
    const a = Number(addr);
    const r = this.last && a >= this.last.start && a + len <= this.last.end ? this.last : this.find(a, len);
    if (!r) return null;
    const off = a - r.start;
    if (r.pieces) {
      const k = Math.min(Math.floor(off / PIECE), r.pieces.length - 1);
      const p = r.pieces[k]!;
      const at = off - k * PIECE;
      if (at + len > p.length) return null; // longer than a piece's overlap
      this.last = r;
      return p.subarray(at, at + len);
    }
    if (!r.view) return null;
    this.last = r;
    return r.view.subarray(off, off + len);
  }

  private find(a: number, len: number): Region | null {
    for (const r of this.regions) if (a >= r.start && a + len <= r.end) return r;
    return null;
  }

  list(): DmaRegionInfo[] {
    return this.regions.map((r) => ({
      iova: BigInt(r.start),
      len: r.end - r.start,
      mapped: r.view !== null || r.pieces !== null,
    }));
  }
}
