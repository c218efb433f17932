// Run an external command with a time limit and collect its output.
// Lab code only: the daemon itself never shells out.
import { execFile } from 'node:child_process';

export interface RunOptions {
  /** Kill the command after this long. Default 10 s. */
  timeoutMs?: number;
  /** Extra environment variables, on top of this process's. */
  env?: Record<string, string>;
  /** On abort the command gets SIGTERM (to finish early, in its own way). */
  stop?: AbortSignal;
}

export interface RunResult {
  /** Exit status; null when the command was killed by a signal (e.g. the timeout). */
  code: number | null;
  /** The signal that killed the command, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    const detail = result.stderr.trim().split('\n')[0] ?? '';
    super(`${argv.join(' ')} exited ${result.code ?? 'by signal'}${detail ? `: ${detail}` : ''}`);
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Output kept per stream; Node's own default (1 MiB) cuts off e.g. `nft -j list set` of 100k elements. */
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024;

/** Runs argv; resolves with the result whatever the exit status. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      {
        timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        encoding: 'utf8',
        maxBuffer: MAX_OUTPUT_BYTES,
        ...(options.env && { env: { ...process.env, ...options.env } }),
      },
      (error, stdout, stderr) => {
        let code: number | null = 0;
        const signal = error?.signal ?? null;
        if (error) code = typeof error.code === 'number' ? error.code : null;
        // A missing binary (ENOENT) reaches here as a string code: report it as 127 like a shell.
        if (error && typeof error.code === 'string') {
          code = 127;
          stderr = stderr || error.message;
        }
        resolve({ code, signal, stdout, stderr });
      },
    );
    options.stop?.addEventListener('abort', () => child.kill('SIGTERM'), { once: true });
  });
}

/** Runs argv and throws CommandError unless it exits 0; resolves with stdout. */
export async function runChecked(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await run(argv, options);
  if (result.code !== 0) throw new CommandError(argv, result);
  return result.stdout;
}

/** True while a process with this PID exists (signal 0 probes without signalling). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
