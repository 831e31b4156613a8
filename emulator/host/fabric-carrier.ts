/**
 * Carries a device's cross-node pipes over the fabric (emulator/fabric/):
 * the PipeFabric the model sees, backed by one Fabric of TCP links in the
 * device thread. Node ids for the guest are 1 + the index of the node's
 * name in the cluster's sorted names, the same on every node.
 *
 * The model's frames go to Fabric.send with their payload views untouched
 * (zero-copy: the TCP write reads the guest's ring); the fabric's events
 * (frames in order, acknowledgements, failed sessions, an open window) go
 * back to the data plane.
 *
 * Fault injection: the device's injector answers the fabric's fabric.send
 * and fabric.recv points for every frame on the wire (fabric/faults.ts says
 * what each action does). Context: `node` = the peer's name and `nodeId` its
 * id (a rule's `node` matches either); for the data plane's frames `sid` =
 * this node's socket: the sender (the frame's socket field) at fabric.send,
 * the receiver (its channel field) at fabric.recv, except a REFUSED sent and
 * a CONNECT received, which name no local socket; `tenant` = that socket's.
 * The fabric's own frames (handshake, ACK, heartbeat) carry only `node`.
 */
import type { Logger } from '../util/log.js';
import type { Cluster } from '../fabric/cluster.js';
import {
  Fabric,
  type FabricOptions,
  type FabricStats,
  type WireFault,
  type WireFaults,
  type WireFrame,
} from '../fabric/fabric.js';
import { FIRST_DATA_TYPE } from '../fabric/frame.js';
import { TcpTransport } from '../fabric/tcp.js';
import type { Fault, FaultInjector } from '../faults/injector.js';
import { POINT, type Point } from '../faults/plan.js';
import { PIPE_FRAME, type PipeFabric, type PipeFabricEvents } from '../model/dataplane/remote.js';
import type { FabricPort } from '../model/host.js';
import { RateLimitedLog } from '../util/log.js';

export interface FabricCarrierOptions {
  cluster: Cluster;
  log: Logger;
  /** A link down longer than this fails its sockets (ms). */
  deadlineMs?: number;
  heartbeatMs?: number;
  /** The device's injector: its fabric.send / fabric.recv rules act on the frames on the wire. */
  faults?: FaultInjector;
  /**
   * The fabric's sockets are read by the device loop (readReady) rather
   * than by node in the event loop (tcp.ts, "Reads"). Only for a carrier
   * whose thread runs VfuServer.runAsync with readReady as `io.readable`.
   */
  directReads?: boolean;
}

export class FabricCarrier {
  readonly fabric: Fabric;
  private readonly transport: TcpTransport;
  private events: PipeFabricEvents | null = null;
  private readonly ids = new Map<string, number>();
  private port: FabricPort | null = null;

  constructor(private readonly o: FabricCarrierOptions) {
    this.transport = new TcpTransport({
      directReads: o.directReads === true,
      ...(o.cluster.tls ? { tls: o.cluster.tls } : {}),
    });
    o.cluster.names.forEach((n, i) => this.ids.set(n, i + 1));
    const id = (node: string): number => this.ids.get(node) ?? 0;
    const opts: FabricOptions = {
      cluster: o.cluster,
      transport: this.transport,
      log: o.log,
      ...(o.deadlineMs !== undefined ? { deadlineMs: o.deadlineMs } : {}),
      ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}),
      ...(o.faults ? { faults: wireFaults(o.faults, o.log, id, (sid) => this.port?.socketTenant(sid)) } : {}),
    };
    this.fabric = new Fabric(opts, {
      onFrame: (node, f) =>
        this.events?.frame(id(node), f.type, f.flags, f.channel, f.socket, f.value, f.parts),
      onAcked: (node, seq) => this.events?.acked(id(node), seq),
      // A failed session always comes with onFailed (the link's state change to 'failed' is the same event).
      onFailed: (node, _frames, why) => this.events?.failed(id(node), why),
      onDrain: (node) => this.events?.drain(id(node)),
      onPlace: (node, h, length) =>
        this.events?.place?.(id(node), h.type, h.flags, h.channel, h.socket, h.value, length) ?? null,
    });
  }

  /** The node table, for logs and the control interface. */
  get nodes(): { id: number; name: string; self: boolean }[] {
    return this.o.cluster.names.map((name, i) => ({ id: i + 1, name, self: name === this.o.cluster.self }));
  }

  /** Gives the device model its PipeFabric (through the model's contract, model/host.ts). */
  attach(port: FabricPort): void {
    this.port = port;
    const names = this.o.cluster.names;
    const view: PipeFabric = {
      selfId: this.ids.get(this.o.cluster.self)!,
      names,
      send: (node, type, flags, channel, socket, value, segments) => {
        const name = names[node - 1];
        if (name === undefined) return 'unknown';
        const r = this.fabric.send(name, type, { channel, socket }, value, segments, flags);
        if (r.ok) return r.seq;
        return r.reason === 'full' ? 'full' : 'unknown';
      },
    };
    this.events = port.attachFabric(view);
  }

  start(): Promise<void> {
    return this.fabric.start();
  }

  /** Writes out the frames batched since the last call (the device loop calls it after each round). */
  flush(): void {
    this.transport.flush();
  }

  /** Reads the fabric's sockets among `fds` (found readable by the device loop); returns the descriptors left to the event loop. */
  readReady(fds: readonly number[]): readonly number[] {
    return this.transport.readReady(fds);
  }

  /** Descriptors the fabric's I/O waits on (the device loop polls them beside its own). */
  fds(): number[] {
    return this.transport.fds();
  }

  stats(): FabricStats & { nodes: { id: number; name: string; self: boolean }[] } {
    return { ...this.fabric.stats(), nodes: this.nodes };
  }

  close(): Promise<void> {
    return this.fabric.close();
  }
}

/**
 * An injector's fabric.* points as a fabric asks them (the fabric reads
 * `armed` for each frame: nothing more while no rule is live there). The
 * context is built only for a frame a rule could hit: see the top of this file.
 */
export function wireFaults(
  inj: FaultInjector,
  log: Logger,
  nodeId: (peer: string) => number,
  tenantOf: (sid: number) => number | undefined = () => undefined,
): WireFaults {
  const skipped = new RateLimitedLog(log);
  const ask = (point: Point, peer: string, sid: number | undefined): WireFault | null => {
    const tenant = sid === undefined ? undefined : tenantOf(sid);
    const fault = inj.check(point, {
      node: peer,
      nodeId: nodeId(peer),
      ...(sid !== undefined ? { sid } : {}),
      ...(tenant !== undefined ? { tenant } : {}),
    });
    return fault === null ? null : wireFault(fault, skipped);
  };
  const data = (f: WireFrame): boolean => f.type >= FIRST_DATA_TYPE;
  return {
    armed: inj.armed,
    sendPoint: POINT.FABRIC_SEND,
    recvPoint: POINT.FABRIC_RECV,
    send: (peer, f) =>
      ask(POINT.FABRIC_SEND, peer, data(f) && f.type !== PIPE_FRAME.REFUSED ? f.socket : undefined),
    recv: (peer, f) =>
      ask(POINT.FABRIC_RECV, peer, data(f) && f.type !== PIPE_FRAME.CONNECT ? f.channel : undefined),
  };
}

/** A plan's action as the fabric applies it; reset and surprise_removal are the device's, not the wire's (counted, logged, not applied here). */
function wireFault(f: Fault, log: RateLimitedLog): WireFault | null {
  switch (f.action) {
    case 'drop':
    case 'duplicate':
    case 'error':
      return { action: f.action };
    case 'delay':
    case 'link_down':
      return { action: f.action, ns: f.ns };
    case 'corrupt':
      return { action: 'corrupt', offset: f.offset, xor: f.xor };
    default:
      log.warn(
        `fabric-fault-${f.rule}`,
        { rule: f.rule, action: f.action },
        'fault action not applied at a fabric point',
      );
      return null;
  }
}
