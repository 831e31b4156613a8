/**
 * A DeviceAccess over the vfio-user client: the socket driver runs against
 * the emulator process, with guest memory in the client's memfd and the
 * shared-memory BAR mapped from the emulator's memfd.
 */
import { BARS, DOORBELLS, reg } from '../abi/abi.js';
import type { DeviceAccess } from './sockets.js';
import type { VfioUserClient } from './vfio-user-client.js';
import { VFIO_PCI_BAR0_REGION_INDEX } from './vfio-user-protocol.js';

/**
 * `memOffset`: where in the client's memory the socket driver's part begins
 * (below it is free for others). The KICK doorbell is rung through the
 * emulator's ioeventfd when it offers one (an eventfd write: no message,
 * no reply), else as a posted REGION_WRITE; `ioeventfd: false` forces the
 * latter, as QEMU does it today.
 */
export function clientAccess(
  c: VfioUserClient,
  memOffset = 0,
  opts: { ioeventfd?: boolean } = {},
): DeviceAccess {
  const shm = c.mappedRegion(BARS.SHM_BAR);
  if (!shm)
    throw new Error(
      `BAR${BARS.SHM_BAR} (shared memory) is not mapped: the emulator did not offer it as mmap-able`,
    );
  const kickFd =
    opts.ioeventfd === false
      ? undefined
      : c.regionIoFds(VFIO_PCI_BAR0_REGION_INDEX).find((e) => e.offset === DOORBELLS.KICK);
  return {
    mem: c.mem.subarray(memOffset),
    memBase: c.addr(memOffset),
    shm,
    readReg: (name) => c.bar0Read(reg(name).offset, reg(name).width),
    writeReg: (name, v) => c.bar0Write(reg(name).offset, BigInt(v), reg(name).width),
    // Posted, as a guest's MMIO write is: the client does not wait for the device to take it.
    kick: kickFd
      ? () => c.writeIoEventFd(kickFd)
      : () => c.regionPost(VFIO_PCI_BAR0_REGION_INDEX, DOORBELLS.KICK, 1),
    // The emulator is another process: spinning on shared memory is the fastest wait.
    wait: () => {},
    waitIrq: (vector, ms) => {
      c.waitIrq(vector, ms);
    },
  };
}
