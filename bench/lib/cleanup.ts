// Undo actions registered as resources are created, run in reverse order on
// success, failure, SIGINT or SIGTERM. Each action runs at most once, and a
// failing action does not stop the others.

type Action = { what: string; run: () => Promise<void> | void };

export class Cleanup {
  private readonly actions: Action[] = [];
  private running: Promise<void> | null = null;

  /** Registers an undo step; the returned function runs it early (and unregisters it). */
  add(what: string, run: () => Promise<void> | void): () => Promise<void> {
    const action: Action = { what, run };
    this.actions.push(action);
    return async () => {
      const index = this.actions.indexOf(action);
      if (index < 0) return;
      this.actions.splice(index, 1);
      await runOne(action);
    };
  }

  /** Runs every registered action, newest first. */
  runAll(): Promise<void> {
    this.running ??= (async () => {
      while (this.actions.length > 0) {
        const action = this.actions.pop() as Action;
        await runOne(action);
      }
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }
}

async function runOne(action: Action): Promise<void> {
  try {
    await action.run();
  } catch (error) {
    process.stderr.write(`cleanup: ${action.what} failed: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}
