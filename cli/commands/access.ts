// `xdpwall token create|ls|revoke` work on the state directory itself (no
// daemon needed, and safe while one runs: the daemon reads tokens from the
// same SQLite file on every request). `xdpwall audit` asks the daemon.
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { AccessStore } from '../../src/auth/access.js';
import { accessStorePathIn } from '../../src/auth/store.js';
import { SCOPES, type Scope } from '../../src/auth/tokens.js';
import type { AuditDetail, AuditRecord } from '../../src/auth/audit.js';
import { DEFAULT_STATE_DIR } from '../../src/config.js';
import { CliError } from '../client.js';
import { table } from '../format.js';
import { apiClient, clientCommand, print } from './client.js';

interface StateFlags {
  stateDir: string;
  json?: boolean;
}

const stateDirOption = () => new Option('--state-dir <DIR>', "the daemon's state directory").default(DEFAULT_STATE_DIR);

/** Runs `work` on the access store of an existing state directory, as principal "local". */
function withStore<T>(stateDir: string, work: (store: AccessStore, audit: (route: string, detail: AuditDetail) => void) => T): T {
  // No directory is created here: a mistyped --state-dir must not yield a token no daemon knows.
  if (!existsSync(stateDir)) throw new CliError(`state directory ${stateDir} does not exist (the daemon's --state-dir; default ${DEFAULT_STATE_DIR})`);
  const store = AccessStore.open(accessStorePathIn(stateDir), { synchronous: 'FULL' });
  const audit = (route: string, detail: AuditDetail) =>
    store.audit.append({
      time: new Date().toISOString(),
      principal: 'local',
      remote: `uid:${userInfo().uid}`,
      method: 'CLI',
      route,
      status: 0,
      detail: { list: 'tokens', ...detail },
    });
  try {
    return work(store, audit);
  } finally {
    store.close();
  }
}

function tokenCommand(): Command {
  const token = new Command('token').description('API tokens, on the state directory (works while the daemon runs)');
  token
    .command('create')
    .description('create a token and print it, once, alone on stdout; only its SHA-256 digest is stored')
    .argument('<NAME>')
    .addOption(new Option('--scope <SCOPE>', 'read: GET routes; write: also change rules; admin: also tokens and audit').choices(SCOPES).makeOptionMandatory())
    .addOption(stateDirOption())
    .action((name: string, flags: StateFlags & { scope: Scope }) =>
      withStore(flags.stateDir, (store, audit) => {
        const created = store.tokens.create(name, flags.scope);
        audit('token create', { token: name, scope: flags.scope });
        process.stdout.write(`${created.token}\n`);
      }),
    );
  token
    .command('ls')
    .description('list live tokens (names and scopes, never the secrets)')
    .addOption(stateDirOption())
    .option('--json', 'print JSON')
    .action((flags: StateFlags) =>
      withStore(flags.stateDir, (store) => {
        const items = store.tokens.list();
        print(flags, items, () => table(['NAME', 'SCOPE', 'CREATED'], items.map((t) => [t.name, t.scope, t.createdAt])));
      }),
    );
  token
    .command('revoke')
    .description('revoke a token: the daemon refuses it from the next request on')
    .argument('<NAME>')
    .addOption(stateDirOption())
    .action((name: string, flags: StateFlags) =>
      withStore(flags.stateDir, (store, audit) => {
        store.tokens.revoke(name);
        audit('token revoke', { token: name });
        console.log(`revoked ${name}`);
      }),
    );
  return token;
}

const detailText = (detail: AuditDetail): string =>
  Object.entries(detail)
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(' ');

function auditCommand(): Command {
  return clientCommand('audit', 'the audit trail: who changed what, from where, with what result (scope admin)')
    .option('--limit <N>', 'how many entries', '100')
    .option('--since <TIME>', 'entries at or after this ISO time, oldest first')
    .action(async (flags: Parameters<typeof apiClient>[0] & { limit: string; since?: string }) => {
      const query = new URLSearchParams({ limit: flags.limit, ...(flags.since && { since: flags.since }) });
      const { body } = await apiClient(flags).call<{ items: AuditRecord[] }>('GET', `/v1/audit?${query}`);
      print(flags, body.items, () =>
        table(
          ['TIME', 'PRINCIPAL', 'REMOTE', 'METHOD', 'ROUTE', 'STATUS', 'WHAT'],
          body.items.map((e) => [e.time, e.principal, e.remote ?? '-', e.method, e.route, e.status || '-', detailText(e.detail)]),
        ),
      );
    });
}

export const accessCommands = (): Command[] => [tokenCommand(), auditCommand()];
