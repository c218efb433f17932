// The lab's API token. The lab daemon listens on TCP, so the walkthrough
// needs a token: `lab up` keeps an admin token in the lab's root-only state
// directory, reusing it while it is live, so `lab up` stays idempotent.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AccessStore } from '../auth/access.js';
import { accessStorePathIn } from '../auth/store.js';

export const LAB_TOKEN_NAME = 'lab';
/** File name, in the lab's state directory, of the token in plain text (mode 0600). */
export const LAB_TOKEN_FILE = 'token';

/** The saved token while it is live; else a new admin token "lab" (replacing a lost or revoked one). */
export function ensureLabToken(stateDir: string): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = join(stateDir, LAB_TOKEN_FILE);
  const store = AccessStore.open(accessStorePathIn(stateDir), { synchronous: 'FULL' });
  try {
    let saved = '';
    try {
      saved = readFileSync(file, 'utf8').trim();
    } catch {
      // none yet
    }
    if (saved && store.tokens.verify(saved)?.name === LAB_TOKEN_NAME) return saved;
    if (store.tokens.list().some((t) => t.name === LAB_TOKEN_NAME)) store.tokens.revoke(LAB_TOKEN_NAME);
    const { token } = store.tokens.create(LAB_TOKEN_NAME, 'admin');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return token;
  } finally {
    store.close();
  }
}
