// `xdpwall detach`: really stop filtering. The daemon leaves its programs
// attached when it stops (so restarts and upgrades never open the
// firewall); this removes them, by the links pinned for the instance, and
// only while no daemon holds the instance.
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { loadConfig } from '../../src/config.js';
import { pinDirFor } from '../../src/firewall.js';
import { LockedError } from '../../src/errors.js';
import { lockDirectory } from '../../src/lock.js';
import { detachPinnedLink, pinnedLinks } from '../../src/datapath/hooks.js';
import { CliError } from '../client.js';

const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Detaches the instance's links (those of `ifaces`, or all), printing one
 * line per link. Refuses while a daemon holds the pin directory: it would
 * re-attach at once.
 */
export function detachInstance(pinDir: string, ifaces: readonly string[], print: (line: string) => void): void {
  if (!existsSync(pinDir)) {
    print(`nothing pinned in ${pinDir}`);
    return;
  }
  let lock;
  try {
    lock = lockDirectory(pinDir, 'pin directory');
  } catch (error) {
    if (error instanceof LockedError) throw new CliError(`${error.message}; stop the daemon first (it would re-attach)`);
    throw error;
  }
  try {
    const links = pinnedLinks(pinDir).filter((link) => ifaces.length === 0 || ifaces.includes(link.iface));
    for (const iface of ifaces) {
      if (!links.some((link) => link.iface === iface)) print(`${iface}: no link of this instance`);
    }
    for (const link of links) {
      const done = detachPinnedLink(link);
      print(`${done.iface}: detached ${done.hook} link ${done.link} running ${done.program}`);
    }
  } finally {
    lock.release();
  }
}

export function detachCommand(): Command {
  return new Command('detach')
    .description("stop filtering: remove the instance's programs from its interfaces (stop the daemon first)")
    .option('--iface <[NETNS/]IFNAME>', 'only this interface (repeatable; default all)', collect, [])
    .option('--state-dir <DIR>', 'the daemon\'s state directory (default /var/lib/xdpwall)')
    .option('--instance <NAME>', 'the daemon\'s instance (default: derived from --state-dir)')
    .option('--config <FILE>', 'the daemon\'s configuration file')
    .action((flags: { iface: string[]; stateDir?: string; instance?: string; config?: string }) => {
      if (process.getuid?.() !== 0) throw new CliError('detach needs root (bpffs, netlink)');
      const config = loadConfig(flags.config, { stateDir: flags.stateDir, instance: flags.instance });
      detachInstance(pinDirFor(config.bpffsRoot, config.instance), flags.iface, (line) => console.log(line));
    });
}
