import { reg } from '../../emulator/abi/abi.js';
import { SgiovDevice } from '../../emulator/model/device.js';
import { MemoryBus } from '../../emulator/host/memory-bus.js';

/** A device on an in-memory bus, with register access by ABI name. */
export function rig() {
  const bus = new MemoryBus();
  const dev = new SgiovDevice(bus);
  const r = (name: string, size = reg(name).width): bigint => dev.barRead(0, reg(name).offset, size);
  const w = (name: string, v: bigint | number, size = reg(name).width): void =>
    dev.barWrite(0, reg(name).offset, size, BigInt(v));
  return { bus, dev, r, w };
}
