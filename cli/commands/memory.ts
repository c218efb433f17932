import { Command } from 'commander';
import { numPossibleCpus } from '@xdpwall/addon';
import { loadConfig } from '../../src/config.js';
import { plannedMapMemory } from '../../src/datapath/datapath.js';
import { DAEMON_RSS_BUDGET_BYTES, memoryLimitBytes, mib, totalBytes } from '../../src/datapath/memory.js';
import { BPF_OBJECT_PATH } from '../../src/paths.js';
import { CliError } from '../client.js';
import { table, terminalJson } from '../format.js';

export function memoryCommand(): Command {
  return new Command('memory')
    .description("kernel memory the data plane's maps take at a configuration, and the memory limit to give the daemon")
    .option('--config <FILE>', 'YAML or JSON configuration file (default: the built-in capacities)')
    .option('--cpus <N>', 'possible CPUs of the machine it will run on (default: this one)')
    .option('--json', 'print the figures as JSON')
    .action((flags: { config?: string; cpus?: string; json?: boolean }) => {
      const cpus = flags.cpus === undefined ? numPossibleCpus() : Number(flags.cpus);
      if (!Number.isInteger(cpus) || cpus < 1 || cpus > 8192) throw new CliError(`--cpus must be an integer from 1 to 8192, not "${flags.cpus}"`, 2);
      const rows = plannedMapMemory(BPF_OBJECT_PATH, loadConfig(flags.config).capacity, cpus);
      const report = { cpus, maps: rows, mapsBytes: totalBytes(rows), daemonRssBytes: DAEMON_RSS_BUDGET_BYTES, memoryLimitBytes: memoryLimitBytes(rows) };
      if (flags.json) {
        console.log(terminalJson(report));
        return;
      }
      const sorted = [...rows].sort((a, b) => b.bytes - a.bytes);
      console.log(table(['MAP', 'TYPE', 'ENTRIES', 'SIZED BY', 'WHEN FULL'], sorted.map((r) => [r.map, r.type, r.entries, r.sizedBy, mib(r.bytes)])));
      console.log(`\nmaps ${mib(report.mapsBytes)} on ${cpus} CPUs + daemon ${mib(DAEMON_RSS_BUDGET_BYTES)} -> memory limit ${report.memoryLimitBytes / 2 ** 20}Mi`);
    });
}
