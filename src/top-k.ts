// The k best items of a stream in O(n log k) time and O(k) memory: a heap
// whose root is the worst item kept, so an item that does not beat it costs
// one comparison. For "top N" answers over tables far larger than N.

export class TopK<T> {
  private readonly heap: T[] = [];

  /** `better(a, b)`: a ranks before b. It must be a strict total order for a stable answer. */
  constructor(
    private readonly k: number,
    private readonly better: (a: T, b: T) => boolean,
  ) {}

  get size(): number {
    return this.heap.length;
  }

  /** Keeps `item` if it is among the k best so far. */
  offer(item: T): void {
    const { heap } = this;
    if (this.k <= 0) return;
    if (heap.length < this.k) {
      heap.push(item);
      this.up(heap.length - 1);
    } else if (this.better(item, heap[0]!)) {
      heap[0] = item;
      this.down(0);
    }
  }

  /** The kept items, best first. */
  ranked(): T[] {
    return [...this.heap].sort((a, b) => (this.better(a, b) ? -1 : this.better(b, a) ? 1 : 0));
  }

  private up(i: number): void {
    const { heap } = this;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.better(heap[parent]!, heap[i]!)) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const { heap } = this;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let worst = i;
      if (left < heap.length && this.better(heap[worst]!, heap[left]!)) worst = left;
      if (right < heap.length && this.better(heap[worst]!, heap[right]!)) worst = right;
      if (worst === i) return;
      [heap[worst], heap[i]] = [heap[i]!, heap[worst]!];
      i = worst;
    }
  }
}
