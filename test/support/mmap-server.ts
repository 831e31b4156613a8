/**
 * A test fixture, not part of the emulator: a minimal vfio-user server on
 * libvfio-user whose BARs the client may mmap, so that the client's
 * mmap-able region path is exercised against the real library's replies
 * (the emulator offers no such region yet; the data plane's doorbell area
 * will be one).
 *
 *   node dist/test/support/mmap-server.js SOCKET
 *
 * One memfd backs two BARs: BAR2 (64 KiB at file offset 0, mmap-able as a
 * whole) and BAR3 (64 KiB at file offset 64 KiB, two sparse mmap areas).
 * REGION_READ/WRITE of either BAR go to the same memory, so what the
 * client writes through its mapping, the server reads, and back.
 * Prints "listening" once the socket is up and "client gone" before it
 * exits (one client, then exit 0).
 */
import { BARS } from '../../emulator/abi/abi.js';
import {
  Native,
  PCI_HEADER_TYPE_NORMAL,
  VFU_DEV_TYPE_PCI,
  VFU_PCI_TYPE_EXPRESS,
  VFU_REGION_FLAG_MEM,
  VFU_REGION_FLAG_RW,
  VFU_TRANS_SOCK,
} from '../../emulator/native/libvfio-user.js';
import {
  Libc,
  MAP_FAILED,
  MAP_SHARED,
  MFD_CLOEXEC,
  PROT_READ,
  PROT_WRITE,
} from '../../emulator/native/libc.js';

export const FIXTURE_BAR_SIZE = 0x10000;
export const FIXTURE_BAR2 = { index: 2, fileOffset: 0 } as const;
export const FIXTURE_BAR3 = {
  index: 3,
  fileOffset: FIXTURE_BAR_SIZE,
  areas: [
    { offset: 0x1000, size: 0x1000 },
    { offset: 0x4000, size: 0x2000 },
  ],
} as const;

function main(socketPath: string): number {
  const n = Native.get();
  const libc = Libc.get();
  const fail = (what: string): never => {
    throw new Error(`${what} failed: errno ${n.errno()}`);
  };
  const fileLen = 2 * FIXTURE_BAR_SIZE;
  const fd = libc.memfd_create('sgiov-mmap-fixture', MFD_CLOEXEC);
  if (fd < 0) fail('memfd_create');
  if (libc.ftruncate(fd, fileLen) < 0) fail('ftruncate');
  const base = libc.mmap(null, fileLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base === MAP_FAILED) fail('mmap');

  const ctx =
    n.vfu_create_ctx(VFU_TRANS_SOCK, socketPath, 0, null, VFU_DEV_TYPE_PCI) ?? fail('vfu_create_ctx');
  if (n.vfu_pci_init(ctx, VFU_PCI_TYPE_EXPRESS, PCI_HEADER_TYPE_NORMAL, 0) < 0) fail('vfu_pci_init');
  n.vfu_pci_set_id(ctx, 0x1234, 0x5347, 0x1234, 0x0002);
  // BAR0 exists as in the real device, trapped, reading 0.
  const bar0 = n.registerRegionAccess((buf, count, _off, isWrite) => {
    if (!isWrite) n.writeUint(buf, count, 0n);
    return count;
  });
  if (
    n.vfu_setup_region(
      ctx,
      BARS.REGS_BAR,
      BARS.REGS_BAR_SIZE,
      bar0,
      VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM,
      null,
      0,
      -1,
      0,
    ) < 0
  )
    fail('vfu_setup_region(BAR0)');
  const backed = (fileOffset: number) =>
    n.registerRegionAccess((buf, count, offset, isWrite) => {
      const at = base + BigInt(fileOffset + offset);
      if (isWrite) new Uint8Array(libc.view(at, count)).set(new Uint8Array(libc.view(buf, count)));
      else new Uint8Array(libc.view(buf, count)).set(new Uint8Array(libc.view(at, count)));
      return count;
    });
  const flags = VFU_REGION_FLAG_RW | VFU_REGION_FLAG_MEM;
  if (
    n.vfu_setup_region(
      ctx,
      FIXTURE_BAR2.index,
      FIXTURE_BAR_SIZE,
      backed(FIXTURE_BAR2.fileOffset),
      flags,
      null,
      0,
      fd,
      FIXTURE_BAR2.fileOffset,
    ) < 0
  )
    fail('vfu_setup_region(BAR2)');
  const areas = libc.alloc(16 * FIXTURE_BAR3.areas.length); // struct iovec[]
  const av = new DataView(libc.view(areas, 16 * FIXTURE_BAR3.areas.length));
  FIXTURE_BAR3.areas.forEach((a, i) => {
    av.setBigUint64(16 * i, BigInt(a.offset), true);
    av.setBigUint64(16 * i + 8, BigInt(a.size), true);
  });
  if (
    n.vfu_setup_region(
      ctx,
      FIXTURE_BAR3.index,
      FIXTURE_BAR_SIZE,
      backed(FIXTURE_BAR3.fileOffset),
      flags,
      areas,
      FIXTURE_BAR3.areas.length,
      fd,
      FIXTURE_BAR3.fileOffset,
    ) < 0
  )
    fail('vfu_setup_region(BAR3)');
  if (n.vfu_realize_ctx(ctx) < 0) fail('vfu_realize_ctx');
  process.stdout.write('listening\n');
  if (n.vfu_attach_ctx(ctx) < 0) fail('vfu_attach_ctx');
  process.stdout.write('client attached\n');
  while (n.vfu_run_ctx(ctx) >= 0) {
    /* blocking: one request per call */
  }
  process.stdout.write(`client gone (errno ${n.errno()})\n`);
  n.vfu_destroy_ctx(ctx);
  return 0;
}

// Run only as a program, not when a test imports the constants.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const sock = process.argv[2];
  if (!sock) {
    process.stderr.write('usage: mmap-server.js SOCKET\n');
    process.exitCode = 2;
  } else {
    try {
      process.exitCode = main(sock);
    } catch (e) {
      process.stderr.write(`mmap-server: ${(e as Error).message}\n`);
      process.exitCode = 1;
    }
  }
}
