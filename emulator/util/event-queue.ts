/**
 * The one queue of timed device events, shared by every carrier (the
 * vfio-user server in wall-clock time, the in-memory bus in test time):
 * events run in order of due time, and in the order they were scheduled
 * when due together. Few events are ever pending (a DMA job, a moderation
 * timer, a delayed fault), so a sorted array beats a heap here.
 */
export interface TimedEvent {
  /** When it falls due, in the carrier's nanoseconds. */
  readonly due: number;
  readonly fn: () => void;
}

export class EventQueue {
  private readonly events: TimedEvent[] = [];

  /** Adds `fn` to run at `due` (after every event already due then). */
  schedule(due: number, fn: () => void): void {
    let i = this.events.length;
    while (i > 0 && this.events[i - 1]!.due > due) i--;
    this.events.splice(i, 0, { due, fn });
  }

  /** The earliest due time, or undefined when nothing is pending. */
  nextDue(): number | undefined {
    return this.events[0]?.due;
  }

  /** Takes the earliest event if it is due at `until` or before. */
  takeDue(until: number): TimedEvent | undefined {
    const first = this.events[0];
    return first !== undefined && first.due <= until ? this.events.shift() : undefined;
  }

  get size(): number {
    return this.events.length;
  }

  clear(): void {
    this.events.length = 0;
  }
}
