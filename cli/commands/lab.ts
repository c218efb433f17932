// `xdpwall lab up|down`: a two-namespace playground on this host. A client
// namespace and a server namespace joined by a veth pair, and a detached
// daemon filtering the server's end. Nothing in the root namespace changes
// except the daemon's loopback API port.
import { Command, Option } from 'commander';
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ATTACH_MODES, type AttachMode } from '../../src/config.js';
import { pinDirFor } from '../../src/firewall.js';
import { createVethPair, deleteNetns, hostAddress, netnsExists, type VethEnd } from '../../src/lab/netns.js';
import { processExists } from '../../src/lab/run.js';
import { CliError } from '../client.js';
import { ensureLabToken, LAB_TOKEN_FILE, LAB_TOKEN_NAME } from '../../src/lab/token.js';
import { detachInstance } from './detach.js';

const CLIENT: VethEnd = { netns: 'xwlab-client', ifname: 'xwc0', ipv4: '198.18.0.1/24', ipv6: 'fd00:198::1/64' };
const SERVER: VethEnd = { netns: 'xwlab-server', ifname: 'xws0', ipv4: '198.18.0.2/24', ipv6: 'fd00:198::2/64' };
const STATE_DIR = '/var/lib/xdpwall-lab';
/** Names the lab's bpffs pin directory, so `down --purge` knows what to remove. */
const INSTANCE = 'xdpwall-lab';
const PID_FILE = join(STATE_DIR, 'xdpwall.pid');
const LOG_FILE = join(STATE_DIR, 'xdpwall.log');
const LISTEN = '127.0.0.1:7070';
const CLI_MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

const HEALTH_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;

/** The PID in the PID file if that process is still our lab daemon; a stale file is removed. */
function labDaemonPid(): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  } catch {
    return undefined;
  }
  let argv: string[] = [];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    // gone
  }
  // The PID may have been reused by an unrelated process since: check it is `serve --state-dir STATE_DIR`.
  if (Number.isInteger(pid) && pid > 0 && argv.includes('serve') && argv.includes(STATE_DIR)) return pid;
  rmSync(PID_FILE, { force: true });
  return undefined;
}

function logTail(lines = 15): string {
  try {
    return readFileSync(LOG_FILE, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function healthy(api: string): Promise<boolean> {
  try {
    const response = await fetch(`${api}/healthz`, { signal: AbortSignal.timeout(1_000) });
    return response.ok;
  } catch {
    return false;
  }
}

async function ensureNamespaces(): Promise<void> {
  const [client, server] = [await netnsExists(CLIENT.netns), await netnsExists(SERVER.netns)];
  if (client && server) {
    console.log(`namespaces ${CLIENT.netns} and ${SERVER.netns} already exist`);
    return;
  }
  // A half-made lab (one namespace left over) is rebuilt from scratch.
  await deleteNetns(CLIENT.netns);
  await deleteNetns(SERVER.netns);
  await createVethPair({ a: CLIENT, b: SERVER });
  console.log(`created ${CLIENT.netns} (${CLIENT.ipv4}, ${CLIENT.ipv6}) <-veth-> ${SERVER.netns} (${SERVER.ipv4}, ${SERVER.ipv6})`);
}

async function startDaemon(mode: AttachMode, api: string): Promise<number> {
  mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  const log = openSync(LOG_FILE, 'a');
  const argv = [
    CLI_MAIN, 'serve', '--iface', `${SERVER.netns}/${SERVER.ifname}`,
    '--listen', LISTEN, '--state-dir', STATE_DIR, '--instance', INSTANCE, '--mode', mode,
  ];
  const child = spawn(process.execPath, argv, { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new CliError('could not start the daemon');
  let exitCode: number | null | undefined;
  child.once('exit', (code) => (exitCode = code));
  child.unref();
  writeFileSync(PID_FILE, `${pid}\n`);

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  while (!(await healthy(api))) {
    if (exitCode !== undefined) {
      rmSync(PID_FILE, { force: true });
      throw new CliError(`the daemon exited (${exitCode}) during start-up; ${LOG_FILE} ends with:\n${logTail()}`);
    }
    if (Date.now() > deadline) {
      throw new CliError(`the daemon (pid ${pid}) is not healthy after ${HEALTH_TIMEOUT_MS / 1000} s; see ${LOG_FILE}`);
    }
    await sleep(200);
  }
  return pid;
}

function printWalkthrough(api: string, token: string): void {
  const client = `nsenter --net=/run/netns/${CLIENT.netns}`;
  const server = hostAddress(SERVER.ipv4);
  const auth = `-H "authorization: Bearer $XDPWALL_TOKEN"`;
  console.log(`
The API on TCP needs a token; the lab made an admin token named "${LAB_TOKEN_NAME}" (also in ${join(STATE_DIR, LAB_TOKEN_FILE)}).
The xdpwall client commands read it from $XDPWALL_TOKEN too:
  export XDPWALL_TOKEN=${token}
Send traffic from the client namespace to the filtered server:
  ${client} ping -c 3 ${server}
  ${client} ping -c 3 ${hostAddress(SERVER.ipv6)}
Block the client, watch the ping stop, then unblock it:
  curl -s -X POST ${api}/v1/blocks ${auth} -H 'content-type: application/json' -d '{"cidr":"198.18.0.1/32","comment":"lab"}'
  ${client} ping -c 3 -W 1 ${server}
  curl -s -X DELETE '${api}/v1/blocks?cidr=198.18.0.1/32' ${auth}
Look at what the firewall saw:
  curl -s '${api}/v1/flows?limit=5' ${auth}      (or: xdpwall flows --top 5)
  curl -s ${api}/v1/stats ${auth}                (or: xdpwall stats)
  xdpwall audit                                  (who changed what)
Daemon log: ${LOG_FILE}. Rules persist across lab down/up; start afresh with: xdpwall lab down --purge`);
}

async function labUp(flags: { mode: AttachMode }): Promise<void> {
  if (process.getuid?.() !== 0) throw new CliError('lab up needs root (network namespaces, XDP)');
  const api = `http://${LISTEN}`;
  await ensureNamespaces();
  const token = ensureLabToken(STATE_DIR);
  const running = labDaemonPid();
  if (running !== undefined) {
    console.log(`daemon already running (pid ${running})`);
  } else {
    if (await healthy(api)) throw new CliError(`something else already answers on ${api}: stop it first`);
    const pid = await startDaemon(flags.mode, api);
    console.log(`daemon started (pid ${pid}), filtering ${SERVER.netns}/${SERVER.ifname}, API ${api}`);
  }
  printWalkthrough(api, token);
}

async function stopDaemon(pid: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (processExists(pid)) {
    if (Date.now() > deadline) {
      // Deleting the namespaces below removes the veth and with it any program still attached.
      console.error(`daemon (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000} s; sending SIGKILL`);
      process.kill(pid, 'SIGKILL');
      break;
    }
    await sleep(100);
  }
  rmSync(PID_FILE, { force: true });
  console.log(`daemon (pid ${pid}) stopped`);
}

async function labDown(flags: { purge?: boolean }): Promise<void> {
  if (process.getuid?.() !== 0) throw new CliError('lab down needs root');
  const pid = labDaemonPid();
  if (pid === undefined) console.log('daemon not running');
  else await stopDaemon(pid);
  // The daemon leaves its programs attached when it stops: take them off before the namespaces go.
  detachInstance(pinDirFor('/sys/fs/bpf', INSTANCE), [], (line) => console.log(line));
  for (const netns of [CLIENT.netns, SERVER.netns]) {
    console.log((await deleteNetns(netns)) ? `deleted namespace ${netns}` : `namespace ${netns} not present`);
  }
  if (flags.purge) {
    const pinDir = pinDirFor('/sys/fs/bpf', INSTANCE);
    rmSync(STATE_DIR, { recursive: true, force: true });
    rmSync(pinDir, { recursive: true, force: true });
    console.log(`removed the lab's rules and log (${STATE_DIR}) and pinned maps (${pinDir})`);
  }
}

export function labCommand(): Command {
  const lab = new Command('lab').description(
    `a local playground: namespaces ${CLIENT.netns} and ${SERVER.netns} joined by a veth, filtered by a daemon`,
  );
  lab
    .command('up')
    .description(`create the namespaces and start a daemon on ${LISTEN} (state in ${STATE_DIR}); idempotent`)
    .addOption(new Option('--mode <MODE>', 'XDP attach mode').choices(ATTACH_MODES).default('auto'))
    .action(labUp);
  lab
    .command('down')
    .description('stop the lab daemon and delete the namespaces; idempotent')
    .option('--purge', `also forget the lab's rules: remove ${STATE_DIR} and its pinned maps`)
    .action(labDown);
  return lab;
}
