// Waiting for a daemon the bench (or a profiling script) started to serve.
import type { ChildProcess } from 'node:child_process';

/** Polls `${base}/healthz` every 20 ms until it answers 2xx, for at most 120 s; throws if `daemon` exits first. */
export async function untilServing(daemon: ChildProcess, base: string): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    if (daemon.exitCode !== null) throw new Error(`the daemon exited with ${daemon.exitCode} while starting`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('the daemon did not answer /healthz within 120 s');
}

/** Sends SIGTERM to a daemon still running and waits for it to exit. */
export async function stopDaemon(daemon: ChildProcess | null): Promise<void> {
  if (!daemon || daemon.exitCode !== null) return;
  const exited = new Promise((resolve) => daemon.once('exit', resolve));
  daemon.kill('SIGTERM');
  await exited;
}
