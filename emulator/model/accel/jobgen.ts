/**
 * Job generation: cutting one message of a warp pipe into jobs whose every
 * segment is contiguous in its ring.
 *
 * A message sits in the source ring at `srcPos` and takes `len` bytes; the
 * transformation makes `outLen` bytes of it at `dstPos` in the sink ring.
 * Three yes/no questions give the paper's 2 x 2 x 2 = 8 cases: does the
 * source chunk wrap the ring end, does the sink chunk wrap, does the
 * transformation change the size. One recursive rule covers all eight:
 *
 *   split(ring, pos, len): if the range crosses the ring end, cut it at the
 *   wrap point and recurse on the rest from position 0.
 *
 * - A size-preserving, byte-wise transformation (copy, invert, a stream
 *   cipher without tag) maps byte i to byte i, so a job may cover any part
 *   of the message: cut at the nearest wrap point of either ring and
 *   recurse. At most three jobs; each job has one source and one sink
 *   segment and needs no staging.
 * - A size-changing transformation (encrypt adds IV and tag, decapsulation
 *   strips a header) needs the whole message at once: one job whose source
 *   is the split of the source range (a gather list of one or two
 *   segments) and whose sink is the split of the output range (a scatter
 *   list). When the output is smaller than the input it is produced in the
 *   staging buffer the input was gathered into (in-place chunking), so a
 *   decrypt never needs a second buffer.
 */

export interface Segment {
  /** Offset in the ring, 0 <= off < ring size. */
  off: number;
  len: number;
}

export interface Job {
  src: Segment[];
  dst: Segment[];
  /** Byte offset of this job's first source byte within the message. */
  msgOffset: number;
}

export interface JobRequest {
  srcSize: number;
  srcPos: number;
  len: number;
  dstSize: number;
  dstPos: number;
  outLen: number;
  /** True when output byte i depends only on input byte i (so outLen === len). */
  bytewise: boolean;
}

/** Cuts [pos, pos+len) of a ring of `size` bytes at the wrap point, recursively. */
export function split(size: number, pos: number, len: number): Segment[] {
  if (len === 0) return [];
  const room = size - pos;
  if (len <= room) return [{ off: pos, len }];
  return [{ off: pos, len: room }, ...split(size, 0, len - room)];
}

/** The jobs for one message; throws RangeError on a request no ring could hold. */
export function generateJobs(r: JobRequest): Job[] {
  check(r);
  if (r.bytewise) return bytewiseJobs(r.srcSize, r.srcPos, r.dstSize, r.dstPos, r.len, 0);
  return [
    { src: split(r.srcSize, r.srcPos, r.len), dst: split(r.dstSize, r.dstPos, r.outLen), msgOffset: 0 },
  ];
}

function bytewiseJobs(
  srcSize: number,
  srcPos: number,
  dstSize: number,
  dstPos: number,
  len: number,
  done: number,
): Job[] {
  if (len === 0) return [];
  const k = Math.min(len, srcSize - srcPos, dstSize - dstPos); // up to the nearest wrap point
  const job: Job = { src: [{ off: srcPos, len: k }], dst: [{ off: dstPos, len: k }], msgOffset: done };
  return [
    job,
    ...bytewiseJobs(srcSize, (srcPos + k) % srcSize, dstSize, (dstPos + k) % dstSize, len - k, done + k),
  ];
}

function check(r: JobRequest): void {
  const int = (v: number, name: string): void => {
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
  };
  int(r.srcSize, 'srcSize');
  int(r.dstSize, 'dstSize');
  int(r.srcPos, 'srcPos');
  int(r.dstPos, 'dstPos');
  int(r.len, 'len');
  int(r.outLen, 'outLen');
  if (r.srcSize === 0 || r.dstSize === 0) throw new RangeError('ring size must be positive');
  if (r.srcPos >= r.srcSize) throw new RangeError(`srcPos ${r.srcPos} outside a ${r.srcSize}-byte ring`);
  if (r.dstPos >= r.dstSize) throw new RangeError(`dstPos ${r.dstPos} outside a ${r.dstSize}-byte ring`);
  if (r.len > r.srcSize)
    throw new RangeError(`message of ${r.len} bytes larger than its ${r.srcSize}-byte source ring`);
  if (r.outLen > r.dstSize)
    throw new RangeError(`output of ${r.outLen} bytes larger than its ${r.dstSize}-byte sink ring`);
  if (r.bytewise && r.outLen !== r.len)
    throw new RangeError('a byte-wise transformation cannot change the size');
}

/** A transformation between rings, as the executors see it. */
export interface Transform {
  readonly name: string;
  /** Output size for an input of `len` bytes, or an error text when the input cannot be transformed. */
  outLen(len: number): number | string;
  readonly bytewise: boolean;
  /** Byte-wise transformations: dst[i] = f(src[i]); dst may be src itself. */
  map?(src: Uint8Array, dst: Uint8Array): void;
  /** Whole-message transformations: the output for `input`, or an error text. */
  whole?(input: Uint8Array): Uint8Array | string;
  /**
   * The same output as pieces in order, when the engine produces it so
   * (IV, ciphertext, tag): the job writes each into the sink, saving the
   * copy that would assemble them first.
   */
  wholeParts?(input: Uint8Array): Uint8Array[] | string;
}

/**
 * Runs one message through `t` between two rings given as byte arrays, by
 * the generated jobs. Returns the output length, or an error text (nothing
 * is written to the sink then).
 */
export function runMessage(
  t: Transform,
  src: Uint8Array,
  srcPos: number,
  len: number,
  dst: Uint8Array,
  dstPos: number,
): number | string {
  const outLen = t.outLen(len);
  if (typeof outLen === 'string') return outLen;
  const jobs = generateJobs({
    srcSize: src.length,
    srcPos,
    len,
    dstSize: dst.length,
    dstPos,
    outLen,
    bytewise: t.bytewise,
  });
  for (const job of jobs) {
    const e = runJob(t, job, src, dst);
    if (e !== null) return e;
  }
  return outLen;
}

/** Executes one job: byte-wise straight between the rings, whole-message through one staging buffer. */
export function runJob(t: Transform, job: Job, src: Uint8Array, dst: Uint8Array): string | null {
  if (t.bytewise) {
    const s = job.src[0]!;
    const d = job.dst[0]!;
    t.map!(src.subarray(s.off, s.off + s.len), dst.subarray(d.off, d.off + d.len));
    return null;
  }
  const input = gather(src, job.src);
  if (t.wholeParts) {
    const parts = t.wholeParts(input);
    if (typeof parts === 'string') return parts;
    scatterParts(parts, dst, job.dst);
    return null;
  }
  const out = t.whole!(input);
  if (typeof out === 'string') return out;
  scatter(out, dst, job.dst);
  return null;
}

/** Writes `parts`, one after the other, over the sink segments `segs` (their lengths add up). */
export function scatterParts(parts: Uint8Array[], ring: Uint8Array, segs: Segment[]): void {
  let si = 0,
    so = 0;
  for (const p of parts) {
    for (let at = 0; at < p.length; ) {
      const seg = segs[si]!;
      const n = Math.min(p.length - at, seg.len - so);
      ring.set(p.subarray(at, at + n), seg.off + so);
      at += n;
      so += n;
      if (so === seg.len) {
        si++;
        so = 0;
      }
    }
  }
}

/** The bytes of `segs` as one array: a view when there is one segment, a copy otherwise. */
export function gather(ring: Uint8Array, segs: Segment[]): Uint8Array {
  if (segs.length === 1) return ring.subarray(segs[0]!.off, segs[0]!.off + segs[0]!.len);
  const total = segs.reduce((n, s) => n + s.len, 0);
  const buf = new Uint8Array(total);
  let at = 0;
  for (const s of segs) {
    buf.set(ring.subarray(s.off, s.off + s.len), at);
    at += s.len;
  }
  return buf;
}

export function scatter(data: Uint8Array, ring: Uint8Array, segs: Segment[]): void {
  let at = 0;
  for (const s of segs) {
    ring.set(data.subarray(at, at + s.len), s.off);
    at += s.len;
  }
}

// ---- the transformations of this device -------------------------------------

/** F: full copy. */
export const COPY: Transform = {
  name: 'copy',
  bytewise: true,
  outLen: (len) => len,
  map: (src, dst) => {
    if (src !== dst) dst.set(src);
  },
};

/** The self-test's transformation: every byte inverted. */
export const INVERT: Transform = {
  name: 'invert',
  bytewise: true,
  outLen: (len) => len,
  map: (src, dst) => {
    for (let i = 0; i < src.length; i++) dst[i] = ~src[i]! & 0xff;
  },
};
