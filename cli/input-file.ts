// FILE or "-" (standard input) for the CLI's streaming commands, with the
// file's size when there is one (the progress bar's total).
import { createReadStream, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { CliError } from './client.js';

export function openInputFile(file: string): { input: Readable; totalBytes?: number } {
  if (file === '-') return { input: process.stdin };
  let totalBytes: number;
  try {
    totalBytes = statSync(file).size;
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, 2);
  }
  return { input: createReadStream(file), totalBytes };
}
