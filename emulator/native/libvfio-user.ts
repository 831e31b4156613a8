/**
 * libvfio-user, bound with koffi, with the few libc functions its device loop
 * calls on the same thread (poll, read, write on its fds). The other native
 * bindings sit beside it: libc.ts (errnos, the client's calls), libdeflate.ts.
 *
 * Why koffi and not ffi-napi: on node 20 ffi-napi does not build, and its
 * C -> JS callbacks cost 7-10 ms each (every pointer wrapped in an external
 * Buffer), where a BAR access is a callback; koffi's cost 229 ns and a whole
 * BAR round trip through koffi is within ~5% of a C server (13.0 us vs
 * 12.3 us). Figures: ../shared/docs/platform-notes.md.
 *
 * koffi 3 represents pointers as bigints (0n or null for NULL).
 */
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir } from '../util/paths.js';

import { EAGAIN, EINTR, ECONNRESET, ENOTCONN, ESHUTDOWN, POLLIN, type Ptr } from './libc.js';

export { EAGAIN, EINTR, ECONNRESET, ENOTCONN, ESHUTDOWN, POLLIN, type Ptr };

/** Where setup installs libvfio-user; SGIOV_LIBVFIO_USER overrides. */
export function libvfioUserPath(): string {
  if (process.env.SGIOV_LIBVFIO_USER) return process.env.SGIOV_LIBVFIO_USER;
  return join(cacheDir(), 'libvfio-user', 'install', 'lib', 'libvfio-user.so.0');
}

// <vfio-user/libvfio-user.h> values used here.
export const VFU_TRANS_SOCK = 0;
export const VFU_DEV_TYPE_PCI = 0;
export const LIBVFIO_USER_FLAG_ATTACH_NB = 1;
export const VFU_PCI_TYPE_EXPRESS = 3;
export const PCI_HEADER_TYPE_NORMAL = 0;
export const VFU_REGION_FLAG_RW = 3;
export const VFU_REGION_FLAG_MEM = 4;
export const VFU_DEV_MSIX_IRQ = 2;
export const VFU_PCI_DEV_CFG_REGION_IDX = 7;
export const VFU_RESET_TYPES = ['device', 'lost-connection', 'pci-flr'] as const;
export const LOG_ERR = 3;
export const LOG_INFO = 6;
export const LOG_DEBUG = 7;

const Iovec = koffi.struct('sgiov_iovec', { iov_base: 'uint64_t', iov_len: 'size_t' });
const DmaInfo = koffi.struct('sgiov_vfu_dma_info', {
  iova: Iovec,
  vaddr: 'uint64_t',
  mapping: Iovec,
  page_size: 'size_t',
  prot: 'uint32_t',
});
export interface DmaInfoValue {
  iova: { iov_base: number | bigint; iov_len: number | bigint };
  vaddr: number | bigint;
  mapping: { iov_base: number | bigint; iov_len: number | bigint };
  page_size: number | bigint;
  prot: number;
}

const RegionAccessCb = koffi.proto(
  'intptr_t sgiov_region_access_cb(void *ctx, void *buf, size_t count, int64_t offset, bool is_write)',
);
const DmaCb = koffi.proto('void sgiov_dma_cb(void *ctx, void *info)');
const ResetCb = koffi.proto('int sgiov_reset_cb(void *ctx, int type)');
const LogCb = koffi.proto('void sgiov_log_cb(void *ctx, int level, const char *msg)');

export type RegionAccessFn = (buf: Ptr, count: number, offset: number, isWrite: boolean) => number;
export type DmaFn = (info: DmaInfoValue) => void;
export type ResetFn = (type: number) => number;
export type LogFn = (level: number, msg: string) => void;

/** The bound library. Loaded lazily so that importing this module never fails. */
export class Native {
  private static inst: Native | null = null;
  static get(): Native {
    if (!Native.inst) Native.inst = new Native(libvfioUserPath());
    return Native.inst;
  }

  readonly vfu_create_ctx: (
    trans: number,
    path: string,
    flags: number,
    pvt: Ptr | null,
    devType: number,
  ) => Ptr | null;
  readonly vfu_setup_log: (ctx: Ptr, cb: Ptr, level: number) => number;
  readonly vfu_pci_init: (ctx: Ptr, type: number, hdr: number, rev: number) => number;
  readonly vfu_pci_set_id: (ctx: Ptr, vid: number, did: number, ssvid: number, ssid: number) => void;
  readonly vfu_pci_set_class: (ctx: Ptr, base: number, sub: number, pi: number) => void;
  readonly vfu_pci_get_config_space: (ctx: Ptr) => Ptr | null;
  readonly vfu_pci_add_capability: (ctx: Ptr, pos: number, flags: number, data: Buffer) => number;
  readonly vfu_setup_region: (
    ctx: Ptr,
    idx: number,
    size: number,
    cb: Ptr | null,
    flags: number,
    areas: Ptr | null,
    nr: number,
    fd: number,
    off: number,
  ) => number;
  readonly vfu_setup_device_nr_irqs: (ctx: Ptr, type: number, count: number) => number;
  readonly vfu_setup_device_dma: (ctx: Ptr, reg: Ptr, unreg: Ptr) => number;
  readonly vfu_setup_device_reset_cb: (ctx: Ptr, cb: Ptr) => number;
  readonly vfu_realize_ctx: (ctx: Ptr) => number;
  readonly vfu_attach_ctx: (ctx: Ptr) => number;
  readonly vfu_get_poll_fd: (ctx: Ptr) => number;
  readonly vfu_run_ctx: (ctx: Ptr) => number;
  readonly vfu_destroy_ctx: (ctx: Ptr) => void;
  readonly vfu_irq_trigger: (ctx: Ptr, subindex: number) => number;
  readonly vfu_create_ioeventfd: (
    ctx: Ptr,
    region: number,
    fd: number,
    offset: number,
    size: number,
    flags: number,
    datamatch: bigint,
  ) => number;
  readonly poll: (fds: Buffer, nfds: number, timeoutMs: number) => number;

  private constructor(path: string) {
    if (!existsSync(path))
      throw new Error(`libvfio-user not found at ${path}: run scripts/setup.sh (or set SGIOV_LIBVFIO_USER)`);
    const lib = koffi.load(path);
    const libc = koffi.load('libc.so.6');
    this.vfu_create_ctx = lib.func(
      'void *vfu_create_ctx(int trans, const char *path, int flags, void *pvt, int dev_type)',
    );
    this.vfu_setup_log = lib.func('int vfu_setup_log(void *ctx, void *log, int level)');
    this.vfu_pci_init = lib.func('int vfu_pci_init(void *ctx, int pci_type, int hdr_type, int revision)');
    this.vfu_pci_set_id = lib.func(
      'void vfu_pci_set_id(void *ctx, uint16_t vid, uint16_t did, uint16_t ssvid, uint16_t ssid)',
    );
    this.vfu_pci_set_class = lib.func(
      'void vfu_pci_set_class(void *ctx, uint8_t base, uint8_t sub, uint8_t pi)',
    );
    this.vfu_pci_get_config_space = lib.func('void *vfu_pci_get_config_space(void *ctx)');
    this.vfu_pci_add_capability = lib.func(
      'intptr_t vfu_pci_add_capability(void *ctx, size_t pos, int flags, void *data)',
    );
    this.vfu_setup_region = lib.func(
      'int vfu_setup_region(void *ctx, int idx, size_t size, void *cb, int flags, void *areas, uint32_t nr, int fd, uint64_t offset)',
    );
    this.vfu_setup_device_nr_irqs = lib.func(
      'int vfu_setup_device_nr_irqs(void *ctx, int type, uint32_t count)',
    );
    this.vfu_setup_device_dma = lib.func('int vfu_setup_device_dma(void *ctx, void *reg, void *unreg)');
    this.vfu_setup_device_reset_cb = lib.func('int vfu_setup_device_reset_cb(void *ctx, void *reset)');
    this.vfu_realize_ctx = lib.func('int vfu_realize_ctx(void *ctx)');
    this.vfu_attach_ctx = lib.func('int vfu_attach_ctx(void *ctx)');
    this.vfu_get_poll_fd = lib.func('int vfu_get_poll_fd(void *ctx)');
    this.vfu_run_ctx = lib.func('int vfu_run_ctx(void *ctx)');
    this.vfu_destroy_ctx = lib.func('void vfu_destroy_ctx(void *ctx)');
    this.vfu_irq_trigger = lib.func('int vfu_irq_trigger(void *ctx, uint32_t subindex)');
    this.vfu_create_ioeventfd = lib.func(
      'int vfu_create_ioeventfd(void *ctx, uint32_t region_idx, int fd, size_t offset, uint32_t size, uint32_t flags, uint64_t datamatch)',
    );
    this.poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)');
  }

  errno(): number {
    return koffi.errno();
  }

  setErrno(v: number): void {
    koffi.errno(v);
  }

  registerRegionAccess(fn: RegionAccessFn): Ptr {
    return koffi.register(
      (_ctx: Ptr, buf: Ptr, count: number | bigint, offset: number | bigint, isWrite: boolean) =>
        fn(buf, Number(count), Number(offset), isWrite),
      koffi.pointer(RegionAccessCb),
    );
  }

  registerDma(fn: DmaFn): Ptr {
    return koffi.register(
      (_ctx: Ptr, info: Ptr) => fn(koffi.decode(info, DmaInfo) as DmaInfoValue),
      koffi.pointer(DmaCb),
    );
  }

  registerReset(fn: ResetFn): Ptr {
    return koffi.register((_ctx: Ptr, type: number) => fn(type), koffi.pointer(ResetCb));
  }

  registerLog(fn: LogFn): Ptr {
    return koffi.register((_ctx: Ptr, level: number, msg: string) => fn(level, msg), koffi.pointer(LogCb));
  }

  unregister(cb: Ptr): void {
    koffi.unregister(cb);
  }

  /** Memory at `ptr` as an ArrayBuffer (no copy). Valid only while the memory is. */
  view(ptr: Ptr, len: number): ArrayBuffer {
    return koffi.view(ptr, len);
  }

  /** Reads a little-endian unsigned value of `size` bytes (1, 2, 4, 8) at ptr. */
  readUint(ptr: Ptr, size: number): bigint {
    switch (size) {
      case 1:
        return BigInt(koffi.decode.uint8(ptr));
      case 2:
        return BigInt(koffi.decode.uint16(ptr));
      case 4:
        return BigInt(koffi.decode.uint32(ptr));
      case 8:
        return BigInt(koffi.decode.uint64(ptr));
      default: {
        const b = new Uint8Array(koffi.view(ptr, size));
        let v = 0n;
        for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        return v;
      }
    }
  }

  /** Writes `value` as `size` little-endian bytes at ptr. */
  writeUint(ptr: Ptr, size: number, value: bigint): void {
    const b = new Uint8Array(koffi.view(ptr, size));
    let v = value;
    for (let i = 0; i < size; i++) {
      b[i] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
}
