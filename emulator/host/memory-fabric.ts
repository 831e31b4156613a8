/**
 * An in-memory fabric between the data planes of several devices, for unit
 * tests of cross-node pipes without TCP: frames wait in per-link queues
 * until pump() delivers them (in order, then acknowledged to the sender),
 * so a test decides when the "network" moves. Payload views are read at
 * delivery, as a zero-copy wire reads the sender's ring: a sender that
 * reused its ring before the acknowledgement would be caught.
 */
import type { PipeFabric, PipeFabricEvents } from '../model/dataplane/remote.js';
import type { FabricPort } from '../model/host.js';
import { joinBytes } from '../util/bytes.js';

interface Queued {
  seq: number;
  type: number;
  flags: number;
  channel: number;
  socket: number;
  value: number;
  segments: readonly Uint8Array[];
}

export class MemoryFabric {
  readonly names: string[];
  private readonly events = new Map<number, PipeFabricEvents>();
  /** `${from}>${to}` -> frames in flight. */
  private readonly queues = new Map<string, Queued[]>();
  private readonly seqs = new Map<string, number>();
  private readonly full = new Set<string>();
  /** Links that hold their frames (a network outage shorter than any deadline). */
  readonly paused = new Set<string>();
  /** Frames a link may hold before send() says 'full'. */
  window = Infinity;
  /** Every frame delivered, for tests that look at the wire (type, payload as delivered). */
  readonly wire: {
    from: number;
    to: number;
    type: number;
    channel: number;
    socket: number;
    value: number;
    payload: Uint8Array;
  }[] = [];
  /** Called on each payload at delivery: a test may corrupt it (the wire's bytes, not the sender's ring). */
  tamper: ((f: { type: number; payload: Uint8Array }) => void) | null = null;

  constructor(names: string[]) {
    this.names = [...names].sort();
  }

  /** Node id of `name` (1-based, by sorted name). */
  id(name: string): number {
    const i = this.names.indexOf(name);
    if (i < 0) throw new Error(`no node ${name}`);
    return i + 1;
  }

  /** Joins `name`'s device (its model, or just its data plane) to this fabric. */
  attach(name: string, port: Pick<FabricPort, 'attachFabric'>): void {
    const self = this.id(name);
    const view: PipeFabric = {
      selfId: self,
      names: this.names,
      send: (node, type, flags, channel, socket, value, segments) => {
        if (node < 1 || node > this.names.length || node === self || !this.events.has(node)) return 'unknown';
        const key = `${self}>${node}`;
        const q = this.queues.get(key) ?? [];
        this.queues.set(key, q);
        if (q.length >= this.window) {
          this.full.add(key);
          return 'full';
        }
        const seq = (this.seqs.get(key) ?? 0) + 1;
        this.seqs.set(key, seq);
        q.push({ seq, type, flags, channel, socket, value, segments });
        return seq;
      },
    };
    this.events.set(self, port.attachFabric(view));
  }

  /** Delivers every queued frame of every unpaused link, acknowledges them, and reports open windows; returns frames delivered. */
  pump(): number {
    let n = 0;
    for (const [key, q] of this.queues) {
      if (q.length === 0 || this.paused.has(key)) continue;
      const [from, to] = key.split('>').map(Number) as [number, number];
      const dst = this.events.get(to)!;
      const batch = q.splice(0, q.length);
      for (const f of batch) {
        // A copy: the tamper hook must not touch the sender's ring.
        const payload = Uint8Array.from(joinBytes(f.segments));
        this.tamper?.({ type: f.type, payload });
        this.wire.push({
          from,
          to,
          type: f.type,
          channel: f.channel,
          socket: f.socket,
          value: f.value,
          payload,
        });
        dst.frame(from, f.type, f.flags, f.channel, f.socket, f.value, [payload]);
        n++;
      }
      this.events.get(from)!.acked(to, batch[batch.length - 1]!.seq);
      if (this.full.delete(key)) this.events.get(from)!.drain(to);
    }
    return n;
  }

  /** The session between two nodes is lost: frames in flight vanish and both sides are told. */
  fail(a: string, b: string, why = 'test: link failed'): void {
    const x = this.id(a),
      y = this.id(b);
    for (const key of [`${x}>${y}`, `${y}>${x}`]) {
      this.queues.delete(key);
      this.seqs.delete(key);
      this.full.delete(key);
    }
    this.events.get(x)?.failed(y, why);
    this.events.get(y)?.failed(x, why);
  }

  /** Injects a raw frame as if node `from` had sent it to `to` (bad-input tests). */
  inject(
    from: string,
    to: string,
    type: number,
    flags: number,
    channel: number,
    socket: number,
    value: number,
    payload: Uint8Array = new Uint8Array(0),
  ): void {
    this.events.get(this.id(to))!.frame(this.id(from), type, flags, channel, socket, value, [payload]);
  }
}
