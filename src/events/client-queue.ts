// A bounded buffer between the event hub and one slow network client. The
// hub never waits for a client: chunks go to the socket while it accepts
// them, queue while it does not, and a client whose queue fills up is
// disconnected (and counted) rather than allowed to hold memory or events.

export interface ClientSink {
  /** Node's writable.write(): false once its own buffer is full. */
  write(chunk: string | Buffer): boolean;
  /** Registers the callback for the socket's next 'drain'. */
  onceDrain(callback: () => void): void;
}

export const DEFAULT_CLIENT_QUEUE = 1024;

export class ClientQueue {
  private readonly queue: (string | Buffer)[] = [];
  private blocked = false;
  private overflowed = false;

  constructor(
    private readonly sink: ClientSink,
    private readonly onOverflow: () => void,
    private readonly limit = DEFAULT_CLIENT_QUEUE,
  ) {}

  /** Chunks waiting for the socket. */
  get pending(): number {
    return this.queue.length;
  }

  /** false once the client has been given up on. */
  push(chunk: string | Buffer): boolean {
    if (this.overflowed) return false;
    if (this.blocked) {
      if (this.queue.length >= this.limit) {
        this.overflowed = true;
        this.queue.length = 0;
        this.onOverflow();
        return false;
      }
      this.queue.push(chunk);
      return true;
    }
    if (!this.sink.write(chunk)) this.block();
    return true;
  }

  private block(): void {
    this.blocked = true;
    this.sink.onceDrain(() => this.flush());
  }

  private flush(): void {
    this.blocked = false;
    while (this.queue.length > 0 && !this.overflowed) {
      if (!this.sink.write(this.queue.shift()!)) {
        this.block();
        return;
      }
    }
  }
}
