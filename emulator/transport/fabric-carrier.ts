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
 */
import type { Logger } from '../util/log.js';
import type { Cluster } from '../fabric/cluster.js';
import { Fabric, type FabricOptions, type FabricStats } from '../fabric/fabric.js';
import { TcpTransport } from '../fabric/tcp.js';
import type { DataPlane } from '../model/dataplane/dataplane.js';
import type { PipeFabric, PipeFabricEvents } from '../model/dataplane/remote.js';

export interface FabricCarrierOptions {
  cluster: Cluster;
  log: Logger;
  /** A link down longer than this fails its sockets (ms). */
  deadlineMs?: number;
  heartbeatMs?: number;
}

export class FabricCarrier {
  readonly fabric: Fabric;
  private readonly transport = new TcpTransport();
  private events: PipeFabricEvents | null = null;
  private readonly ids = new Map<string, number>();

  constructor(private readonly o: FabricCarrierOptions) {
    o.cluster.names.forEach((n, i) => this.ids.set(n, i + 1));
    const opts: FabricOptions = {
      cluster: o.cluster, transport: this.transport, log: o.log,
      ...(o.deadlineMs !== undefined ? { deadlineMs: o.deadlineMs } : {}),
      ...(o.heartbeatMs !== undefined ? { heartbeatMs: o.heartbeatMs } : {}),
    };
    const id = (node: string): number => this.ids.get(node) ?? 0;
    this.fabric = new Fabric(opts, {
      onFrame: (node, f) => this.events?.frame(id(node), f.type, f.flags, f.channel, f.socket, f.value, f.payload),
      onAcked: (node, seq) => this.events?.acked(id(node), seq),
      onFailed: (node, _frames, why) => this.events?.failed(id(node), why ?? 'session lost'),
      onLinkState: (node, state, info) => { if (state === 'failed') this.events?.failed(id(node), info.reason); },
      onDrain: (node) => this.events?.drain(id(node)),
    });
  }

  /** The node table, for logs and the control interface. */
  get nodes(): { id: number; name: string; self: boolean }[] {
    return this.o.cluster.names.map((name, i) => ({ id: i + 1, name, self: name === this.o.cluster.self }));
  }

  /** Gives the data plane its PipeFabric. */
  attach(dp: DataPlane): void {
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
    this.events = dp.attachFabric(view);
  }

  start(): Promise<void> {
    return this.fabric.start();
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
