#!/usr/bin/env node
// xdpwall: the daemon (`serve`), the lab, and a client for the daemon's API.
import { Command, CommanderError } from 'commander';
import { CliError } from './client.js';
import { serveCommand } from './commands/serve.js';
import { labCommand } from './commands/lab.js';
import { accessCommands } from './commands/access.js';
import { detachCommand } from './commands/detach.js';
import { memoryCommand } from './commands/memory.js';
import { ruleCommand } from './commands/rule.js';
import { listCommand } from './commands/list.js';
import { topCommand } from './commands/top.js';
import { captureCommand, eventsCommand } from './commands/events.js';
import { blockImportCommand } from './commands/import.js';
import { blockCommand, blocksCommand, flowsCommand, healthCommand, statsCommand, unblockCommand } from './commands/client.js';
import { XdpwallError } from '../src/errors.js';
import { terminalSafe } from './format.js';
import { VERSION } from '../src/version.js';

const program = new Command('xdpwall')
  .description('XDP firewall: block CIDRs at the driver, count every flow')
  .version(VERSION)
  .exitOverride()
  // Options after a nested subcommand (block import FILE --api ...) belong to it, not its parent.
  .enablePositionalOptions()
  .configureOutput({ outputError: (text, write) => write(text) });

for (const command of [serveCommand(), detachCommand(), labCommand(), blockCommand().enablePositionalOptions().addCommand(blockImportCommand().exitOverride()), unblockCommand(), blocksCommand(), ruleCommand(), listCommand().enablePositionalOptions(), flowsCommand(), statsCommand(), topCommand(), eventsCommand(), captureCommand(), healthCommand(), memoryCommand(), ...accessCommands()]) {
  program.addCommand(command.exitOverride());
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // commander already printed its message (or help / version)
    process.exitCode = error.exitCode;
  } else {
    const message =
      error instanceof CliError || error instanceof XdpwallError
        ? (error instanceof XdpwallError ? `${error.code}: ${error.message}` : error.message)
        : String((error as Error)?.message ?? error);
    process.stderr.write(`xdpwall: ${terminalSafe(message)}\n`);
    process.exitCode = error instanceof CliError ? error.exitCode : 1;
  }
}
