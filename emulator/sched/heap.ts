/**
 * Small containers for the schedulers and the simulator: a binary min-heap
 * of integer values ordered by (key, tie), and a FIFO.
 */

/** Min-heap of integers ordered by a float key, then by an integer tie-breaker. */
export class MinHeap {
  private keys: number[] = [];
  private ties: number[] = [];
  private vals: number[] = [];

  get size(): number {
    return this.vals.length;
  }

  push(key: number, tie: number, value: number): void {
    const k = this.keys,
      t = this.ties,
      v = this.vals;
    let i = v.length;
    k.push(key);
    t.push(tie);
    v.push(value);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (k[p]! < key || (k[p] === key && t[p]! <= tie)) break;
      k[i] = k[p]!;
      t[i] = t[p]!;
      v[i] = v[p]!;
      i = p;
    }
    k[i] = key;
    t[i] = tie;
    v[i] = value;
  }

  /** Key of the smallest entry (Infinity when empty). */
  peekKey(): number {
    return this.vals.length ? this.keys[0]! : Infinity;
  }
  peekTie(): number {
    return this.ties[0]!;
  }
  /** Value of the smallest entry; the heap must not be empty. */
  peekValue(): number {
    return this.vals[0]!;
  }

  /** Removes the smallest entry and returns its value; the heap must not be empty. */
  pop(): number {
    const k = this.keys,
      t = this.ties,
      v = this.vals;
    const top = v[0]!;
    const key = k.pop()!,
      tie = t.pop()!,
      val = v.pop()!;
    const n = v.length;
    if (n === 0) return top;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && (k[c + 1]! < k[c]! || (k[c + 1] === k[c] && t[c + 1]! < t[c]!))) c++;
      if (key < k[c]! || (key === k[c] && tie <= t[c]!)) break;
      k[i] = k[c]!;
      t[i] = t[c]!;
      v[i] = v[c]!;
      i = c;
    }
    k[i] = key;
    t[i] = tie;
    v[i] = val;
    return top;
  }

  clear(): void {
    this.keys = [];
    this.ties = [];
    this.vals = [];
  }
}

/** FIFO with amortised O(1) push and shift. */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }
  push(x: T): void {
    this.items.push(x);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head]!;
    this.items[this.head] = undefined as unknown as T;
    this.head++;
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i]!;
  }
}
