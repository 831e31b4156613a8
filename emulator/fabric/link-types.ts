/**
 * What a link's owner (fabric.ts) names: the link's options, its states,
 * its counters and the bad input it counts by kind, the events it reports
 * and the context it runs in.
 */
import type { Logger } from '../util/log.js';
import type { Cluster } from './cluster.js';
import type { WireFaults } from './faults.js';
import type { Frame, FrameErrorKind, FrameHeader } from './frame.js';
import type { FabricTransport } from './transport.js';
import type { SentFrame } from './window.js';

export interface LinkOptions {
  /** A frame (a heartbeat when idle) goes out at least this often. */
  heartbeatMs: number;
  /** Nothing heard for this long: the connection is dead; also the limit for a connect + handshake. */
  deadMs: number;
  /** Not re-established within this: the session is FAILED. */
  deadlineMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** Bound on frames sent and not yet acknowledged: count and payload bytes. */
  windowFrames: number;
  windowBytes: number;
  /** An ack waits at most this long for a frame to ride on. */
  ackDelayMs: number;
  /**
   * Retransmission timeout: frames unacknowledged and no ack progress for
   * this long reset the connection, so the resume resends them (a frame lost
   * with nothing after it). Above the heartbeat interval, which carries the
   * ack when an ACK frame is lost, and above deadMs, so that a silent peer is
   * reported as such (default 4 heartbeat intervals).
   */
  rtoMs: number;
  maxPayload: number;
}

export const DEFAULT_LINK_OPTIONS: LinkOptions = {
  heartbeatMs: 200,
  deadMs: 600,
  deadlineMs: 10_000,
  backoffMinMs: 50,
  backoffMaxMs: 2_000,
  windowFrames: 1024,
  windowBytes: 16 << 20,
  ackDelayMs: 2,
  rtoMs: 800,
  maxPayload: 16 << 20,
};

export type LinkState = 'connecting' | 'up' | 'down' | 'failed';

export interface LinkStateInfo {
  reason: string;
  session?: string;
  resumed?: boolean;
  retransmitted?: number;
  failedFrames?: number;
}

/** Input refused, by kind: the frame decoder's kinds and the link's own. */
export type BadKind =
  | FrameErrorKind
  | 'outOfSequence'
  | 'unknownNode'
  | 'badHello'
  | 'unexpected'
  /** The handshake's authentication failed (auth.ts): no, another or a replayed proof of the cluster secret. */
  | 'badAuth'
  /** The TLS handshake, the peer's certificate, or the node it names (tls.ts). */
  | 'badTls'
  /** A connection that did not finish its handshake in time, or was pushed out by newer ones (preauth.ts). */
  | 'handshakeTimeout'
  | 'handshakeOverflow';
export type BadCounts = Record<BadKind, number>;

export function zeroBadCounts(): BadCounts {
  return {
    truncated: 0,
    tooLarge: 0,
    badCrc: 0,
    badMagic: 0,
    badVersion: 0,
    outOfSequence: 0,
    unknownNode: 0,
    badHello: 0,
    unexpected: 0,
    badAuth: 0,
    badTls: 0,
    handshakeTimeout: 0,
    handshakeOverflow: 0,
  };
}

/** A link's running counters (LinkStats without its state and window). */
export interface LinkCounters {
  /** Data frames written (retransmissions included) and their payload bytes. */
  framesSent: number;
  bytesSent: number;
  /** Data frames delivered to the owner and their payload bytes. */
  framesReceived: number;
  bytesReceived: number;
  retransmitted: number;
  /** Connections reset by the retransmission timeout. */
  rtoResets: number;
  duplicates: number;
  /** Times the link came up again after being down. */
  reconnects: number;
  failures: number;
  failedFrames: number;
}

export function zeroLinkCounters(): LinkCounters {
  return {
    framesSent: 0,
    bytesSent: 0,
    framesReceived: 0,
    bytesReceived: 0,
    retransmitted: 0,
    rtoResets: 0,
    duplicates: 0,
    reconnects: 0,
    failures: 0,
    failedFrames: 0,
  };
}

export interface LinkStats extends LinkCounters {
  state: LinkState;
  session: string;
  peerIncarnation: string;
  /** Smoothed round trip, frame sent to its ack (ms; acks may wait ackDelayMs to ride on a frame); 0 before a sample. */
  rttMs: number;
  unackedFrames: number;
  unackedBytes: number;
  bad: BadCounts;
}

export interface LinkEvents {
  frame(f: Frame): void;
  state(state: LinkState, info: LinkStateInfo): void;
  /** The session failed (`reason`); `frames` were not acknowledged (each may or may not have been delivered). */
  failed(frames: SentFrame[], reason: string): void;
  /** Every frame of the current session up to `seq` is delivered at the peer. */
  acked(seq: number): void;
  /** send() refused a frame and the window has room again. */
  drain(): void;
  /**
   * Optional: where the payload (`length` bytes) of the data frame `h` may
   * be written straight from the wire (views adding up to `length`), or
   * null. Asked only for the next frame in sequence on an established link
   * with no injected receive fault in play; frame() follows at once if the
   * frame checks out.
   */
  place?(h: FrameHeader, length: number): Uint8Array[] | null;
}

export interface LinkContext {
  cluster: Cluster;
  incarnation: string;
  transport: FabricTransport;
  log: Logger;
  opts: LinkOptions;
  /** Fault injection on the wire (faults.ts); absent: none. */
  faults?: WireFaults;
}
