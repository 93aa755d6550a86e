// A bounded FIFO that counts what it had to drop: memory stays fixed whatever a guest does.
export class Ring<T> {
  private readonly items: T[] = [];
  dropped = 0;
  constructor(readonly capacity: number) {}

  push(item: T): void {
    if (this.items.length >= this.capacity) {
      this.items.shift();
      this.dropped++;
    }
    this.items.push(item);
  }

  toArray(): T[] {
    return this.items.slice();
  }

  get length(): number {
    return this.items.length;
  }

  /** Items after index predicate turns true, in order. */
  filter(pred: (item: T) => boolean): T[] {
    return this.items.filter(pred);
  }
}
