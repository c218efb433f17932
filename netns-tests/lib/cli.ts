// Runs the built `xdpwall` CLI as a user would.
import { run, type RunResult } from '../../src/lab/run.js';
import { CLI_PATH } from './lab-env.js';

/** `env` adds to the child's environment, e.g. XDPWALL_TOKEN. */
export function xdpwall(args: readonly string[], api: string, env?: Record<string, string>): Promise<RunResult> {
  return run([process.execPath, CLI_PATH, ...args, '--api', api], { timeoutMs: 15_000, env });
}
