/**
 * What the fabric needs from a network: ordered byte streams between nodes.
 * TCP (tcp.ts) is the one there is; an RDMA or in-memory transport can be
 * added behind the same two interfaces without touching the links.
 */
import type { NodeAddress } from './cluster.js';

/** One connection: a duplex byte stream. */
export interface Wire {
  /** "host:port" of this end and of the other, for log lines. */
  readonly local: string;
  readonly remote: string;
  /** Queues the chunks as one write (header + payload segments: a writev), without copying them. */
  write(chunks: readonly Uint8Array[]): void;
  /**
   * Sets the receiver of incoming chunks; nothing is read before one is
   * set. `hints.headerNext()`: the receiver would rather have a frame
   * header alone next (a transport that reads on its own may honour it).
   */
  onData(cb: (chunk: Uint8Array) => void, hints?: { headerNext(): boolean }): void;
  /**
   * Optional (a transport whose owner reads): reads exactly `n` bytes into
   * `views`, in order, now, if that many are waiting; false when fewer are
   * (nothing is read then). Called from within the data callback.
   */
  readExactly?(views: readonly Uint8Array[], n: number): boolean;
  /**
   * Optional (a transport that authenticates connections itself: TLS): the
   * node names the peer's verified certificate carries, null before the
   * handshake is done.
   */
  readonly peerNames?: readonly string[] | null;
  /** Optional: bytes unique to this connection's security session (TLS exporter), which the handshake's proofs cover. */
  binding?(): Uint8Array;
  /** Optional: why the transport's own authentication (TLS) failed on this connection, or null. */
  authFailure?(): string | null;
  /** Sets the callback for the end of the connection, whichever side ended it; called once. */
  onClose(cb: (error?: Error) => void): void;
  /** Drops the connection now; unsent data is discarded. */
  close(): void;
}

export interface FabricListener {
  /** The address actually bound (port 0 resolved). */
  readonly address: NodeAddress;
  /** Stops accepting; connections already handed out stay their owners' to close. */
  close(): Promise<void>;
}

export interface FabricTransport {
  listen(address: NodeAddress, onWire: (wire: Wire) => void): Promise<FabricListener>;
  /** Rejects when the connection cannot be made or `signal` aborts first. */
  connect(address: NodeAddress, signal: AbortSignal): Promise<Wire>;
}

/** connect() rejects with this when the connection was made and its TLS handshake (or the peer's certificate) failed. */
export class TlsFailure extends Error {}
