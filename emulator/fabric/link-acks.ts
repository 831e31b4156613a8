/**
 * When a link's acks go and what they measure: the receiver's delayed ack
 * (DelayedAck: an ACK frame alone once a quarter of the peer's window waits
 * for one, or ackDelayMs after the first frame; any frame written carries
 * the cumulative ack sooner) and the sender's round-trip estimate
 * (RttEstimator: one frame timed at a time, its first transmission only,
 * as Karn's rule, smoothed as TCP's SRTT).
 */

export class DelayedAck {
  private frames = 0;
  private bytes = 0;
  private everyFrames = 1;
  private everyBytes = 1;
  private timer: NodeJS.Timeout | null = null;

  /** `late` sends the ACK a timer found still due (the link checks it is up). */
  constructor(
    private readonly delayMs: number,
    private readonly late: () => void,
  ) {}

  /** Acks at a quarter of the peer's window (its HELLO or WELCOME), so its sender never stalls waiting for one. */
  setPeerWindow(windowFrames: number, windowBytes: number): void {
    this.everyFrames = Math.max(1, Math.floor(windowFrames / 4));
    this.everyBytes = Math.max(1, Math.floor(windowBytes / 4));
  }

  /** A data frame of `bytes` delivered: it waits for an ack. */
  add(bytes: number): void {
    this.frames++;
    this.bytes += bytes;
  }

  /** Whether an ACK is due now; if not, the timer that sends one after the delay is armed (once). */
  due(): boolean {
    if (this.frames >= this.everyFrames || this.bytes >= this.everyBytes) return true;
    if (!this.timer)
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.frames > 0) this.late();
      }, this.delayMs);
    return false;
  }

  /** A frame written carries the cumulative ack (or the session ended): nothing waits. */
  settled(): void {
    this.frames = 0;
    this.bytes = 0;
    this.cancel();
  }

  /** Stops the timer (the connection went); what waits is carried by the next frame. */
  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

export class RttEstimator {
  private seq = 0;
  private at = 0;
  private srtt = 0;

  /** The smoothed round trip, frame sent to its ack (ms); 0 before a sample. */
  get ms(): number {
    return this.srtt;
  }

  /** Data frame `seq` written; `again` when it was written before (a retransmission, never timed). */
  sent(seq: number, again: boolean): void {
    if (again) {
      if (seq === this.seq) this.seq = 0; // a retransmission's ack would time two sends
    } else if (this.seq === 0) {
      this.seq = seq;
      this.at = performance.now();
    }
  }

  /** Frames up to `ack` acknowledged at `now` (performance.now()). */
  acked(ack: number, now: number): void {
    if (this.seq === 0 || ack < this.seq) return;
    const ms = now - this.at;
    this.srtt = this.srtt === 0 ? ms : this.srtt * 0.875 + ms * 0.125;
    this.seq = 0;
  }

  /** The session ended: numbering starts over, the frame timed is gone. */
  reset(): void {
    this.seq = 0;
  }
}
