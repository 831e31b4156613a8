/**
 * The boundary between the device model and whatever carries it. The model
 * (SgiovDevice) implements PciDeviceModel; its carrier implements DeviceHost.
 * In production the carrier is the vfio-user transport in a worker thread;
 * in unit tests it is the in-memory bus (emulator/host/memory-bus.ts).
 * Neither side knows how the other is built: the model never sees koffi,
 * sockets or threads. A carrier with a fabric to other nodes gives it to
 * the model through FabricPort.
 */
import type { Logger } from '../util/log.js';
import type { PipeFabric, PipeFabricEvents } from './dataplane/remote.js';

export interface DeviceHost {
  /**
   * A view on guest memory [addr, addr+len) as the device's DMA sees it, or
   * null when no registered DMA region covers all of it. The view is only
   * valid until the model returns control to its host: never keep it.
   */
  dmaView(addr: bigint, len: number): Uint8Array | null;
  /** The Bus Master Enable bit of the PCI command register. */
  busMasterEnabled(): boolean;
  /** Sends MSI-X message `vector`; false when the host could not (vector not set up by the guest). */
  raiseMsix(vector: number): boolean;
  /** Runs `fn` after `delayNs` nanoseconds of device time (0: after the current access). */
  schedule(delayNs: number, fn: () => void): void;
  /** Device time in nanoseconds (monotonic). */
  nowNs(): number;
  /**
   * The shared-memory BAR (BARS.SHM_BAR) as the device sees it: memory the
   * host maps and writes directly, and the device polls. null until the
   * carrier has it.
   */
  deviceMemory(): Uint8Array | null;
  readonly log: Logger;
}

export interface PciDeviceModel {
  /** A read of `size` bytes at `offset` of BAR `bar`. */
  barRead(bar: number, offset: number, size: number): bigint;
  /** A write of `size` bytes at `offset` of BAR `bar`. */
  barWrite(bar: number, offset: number, size: number, value: bigint): void;
  /** Back to the power-on state (guest reset, FLR, client gone). */
  reset(reason: string): void;
  /**
   * Work the device does without being asked by an access (polling shared
   * memory, moving data). The carrier calls it in its loop; true means
   * "call again at once", false "sleep until an access or a scheduled event".
   */
  poll(): boolean;
}

/**
 * The fabric as a port of the model (cross-node pipes): the carrier that
 * has one (host/fabric-carrier.ts, or host/memory-fabric.ts in tests)
 * hands the model its PipeFabric and reports the fabric's events to what
 * it gets back.
 */
export interface FabricPort {
  /** Takes the fabric to other nodes; returns the events the carrier reports to. */
  attachFabric(fabric: PipeFabric): PipeFabricEvents;
  /** The tenant socket `sid` belongs to (fault rules on the wire match on it); undefined outside the table. */
  socketTenant(sid: number): number | undefined;
}
