/**
 * A DeviceAccess over the in-memory bus: the socket driver talks to the
 * model directly, and waiting runs the device's poll loop in device time.
 */
import { DOORBELLS, reg } from '../abi/abi.js';
import type { DeviceAccess } from '../client/sockets.js';
import { SgiovDevice } from '../model/device.js';
import { MemoryBus } from './memory-bus.js';

export function busAccess(bus: MemoryBus, dev: SgiovDevice, memOffset = 0): DeviceAccess {
  return {
    mem: bus.mem.subarray(memOffset),
    memBase: bus.addr(memOffset),
    shm: bus.shm,
    readReg: (name) => dev.barRead(0, reg(name).offset, reg(name).width),
    writeReg: (name, v) => dev.barWrite(0, reg(name).offset, reg(name).width, BigInt(v)),
    kick: () => dev.barWrite(0, DOORBELLS.KICK, 4, 1n),
    wait: () => {
      dev.poll();
      bus.advance(1000);
    },
  };
}

/** A device on a bus with `memBytes` of guest memory, enabled. */
export function enabledDevice(
  memBytes = 64 << 20,
  maxSockets?: number,
): { bus: MemoryBus; dev: SgiovDevice } {
  const bus = new MemoryBus(0x1_0000_0000n, memBytes);
  const dev = new SgiovDevice(bus, { msixVectors: 16, maxSockets });
  dev.barWrite(0, reg('CONTROL').offset, 4, 1n);
  return { bus, dev };
}
