import { Command, Option } from 'commander';
import { ATTACH_MODES, LOG_LEVELS, loadConfig, type AttachMode, type LogLevel } from '../../src/config.js';
import { runDaemon } from '../../daemon/serve.js';

interface ServeFlags {
  iface: string[];
  listen?: string;
  stateDir?: string;
  mode?: AttachMode;
  config?: string;
  instance?: string;
  logLevel?: LogLevel;
  force?: boolean;
  rules?: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the firewall daemon: attach to interfaces and serve the API')
    .option('--iface <[NETNS/]IFNAME>', 'interface to filter (repeatable)', collect, [])
    .option('--listen <HOST:PORT|unix:PATH>', 'API address (default 127.0.0.1:7070)')
    .option('--state-dir <DIR>', 'where rules are stored (default /var/lib/xdpwall)')
    .addOption(new Option('--mode <MODE>', 'XDP attach mode (default auto)').choices(ATTACH_MODES))
    .option('--config <FILE>', 'YAML or JSON configuration file; flags override it')
    .option('--instance <NAME>', 'names the bpffs pin directory (default: derived from --state-dir)')
    .option('--rules <FILE>', 'follow a YAML rules file (policy, blocks, rules, lists): applied at start and on every change; what it sets is origin "file"')
    .option('--force', 'replace an XDP program this instance does not own (another tool\'s or instance\'s)')
    .addOption(new Option('--log-level <LEVEL>').choices(LOG_LEVELS))
    .action(async (flags: ServeFlags) => {
      const config = loadConfig(flags.config, {
        interfaces: flags.iface,
        listen: flags.listen,
        stateDir: flags.stateDir,
        mode: flags.mode,
        instance: flags.instance,
        logLevel: flags.logLevel,
        force: flags.force,
        rulesFile: flags.rules,
      });
      await runDaemon(config);
    });
}
