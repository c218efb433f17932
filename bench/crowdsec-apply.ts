// Where the CrowdSec bouncer's own time goes with N decisions, without LAPI:
// the LAPI double (test/lib/lapi-double.ts) serves the stream from this
// process, the firewall is the real one (kernel maps, attached to nothing,
// in-memory store). Times: the startup pull that blocks N, a resync in sync,
// a delta that deletes all N.
//
//   npx tsx bench/crowdsec-apply.ts [--decisions 100000]
//   node --cpu-prof --import tsx bench/crowdsec-apply.ts   (for a profile)
import { loadavg } from 'node:os';
import { CROWDSEC_ORIGIN, CrowdsecBouncer } from '../src/integrations/crowdsec.js';
import { openTestFirewall } from '../test/lib/firewall.js';
import { LapiDouble } from '../test/lib/lapi-double.js';

const at = process.argv.indexOf('--decisions');
const N = at >= 0 ? Number(process.argv[at + 1]) : 100_000;
const KEY = 'bench-key';
const address = (i: number) => `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

const firewall = await openTestFirewall({ cidrV4: 2 * N, cidrV6: 1024, flows: 1024, timedBlocks: 2 * N });
// One clock for the bouncer and the LAPI double, moved 10 min on for the resync.
let ahead = 0;
const now = () => Date.now() + ahead;
const lapi = await new LapiDouble(KEY, now).start();
try {
  const bouncer = new CrowdsecBouncer({ url: lapi.url, apiKey: KEY, refreshMs: 1000, resyncMs: 600_000 }, firewall.originBlocks(CROWDSEC_ORIGIN), { timeoutMs: 600_000, now });
  const ids = Array.from({ length: N }, (_, i) => lapi.add(address(i), { durationMs: 4 * 3_600_000 }));
  const time = async (what: string, step: () => Promise<void>) => {
    const started = performance.now();
    await step();
    const ms = performance.now() - started;
    console.log(`${what}: ${(ms / 1000).toFixed(2)} s (status ${JSON.stringify({ state: bouncer.status().state, entries: bouncer.status().entries, reason: bouncer.status().reason })})`);
    return ms;
  };
  console.log(`N=${N}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  await time('startup pull, all new', () => bouncer.pull());
  ahead = 600_000; // the next pull is a resync
  await time('resync pull, in sync', () => bouncer.pull());
  for (const id of ids) lapi.delete(id);
  await time('delta pull, all deleted', () => bouncer.pull());
  console.log(`blocks left: ${firewall.blocks.list({ limit: 1 }).total}; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
} finally {
  await lapi.close();
  firewall.close();
}
