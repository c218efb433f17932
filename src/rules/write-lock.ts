// Serialises rule changes. A bulk import awaits the kernel inside its SQLite
// transaction; without this a single-rule change arriving meanwhile would
// run inside that transaction and share its fate.
export class WriteLock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => T | Promise<T>): Promise<T> {
    const result = this.tail.then(work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
