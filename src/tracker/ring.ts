// A bounded FIFO that counts what it had to drop: memory stays fixed whatever a guest does.
// A circular buffer: when full, a push overwrites the oldest item in O(1).
export class Ring<T> {
  private readonly items: T[] = []; // grows to `capacity`, then wraps
  private head = 0; // index in `items` of the oldest item
  dropped = 0;
  constructor(readonly capacity: number) {}

  push(item: T): void {
    if (this.items.length < this.capacity) {
      this.items.push(item);
      return;
    }
    this.dropped++;
    if (this.capacity <= 0) return;
    this.items[this.head] = item;
    this.head = (this.head + 1) % this.capacity;
  }

  get length(): number {
    return this.items.length;
  }

  /** Items from position `start` to `end` (exclusive), oldest first. */
  slice(start = 0, end = this.items.length): T[] {
    const from = Math.max(0, start);
    const to = Math.min(this.items.length, end);
    const out: T[] = [];
    for (let i = from; i < to; i++) out.push(this.items[(this.head + i) % this.items.length]);
    return out;
  }

  toArray(): T[] {
    return this.slice();
  }

  /**
   * Position of the first item for which `pred` holds, `length` if none, by binary search:
   * `pred` must be false for a prefix of the ring and true for the rest (a key in push order).
   */
  partitionPoint(pred: (item: T) => boolean): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pred(this.items[(this.head + mid) % this.items.length])) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
