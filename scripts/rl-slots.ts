// How full xw_rl_buckets_v4 can get before sources overflow: random IPv4
// sources of one rule arrive one by one at a table of --slots slots (none
// freed), each placed as the kernel places it (src/ratelimit/reference.ts:
// the first free of its RL_PROBES slots from rlSlotFirst, else the rule's
// overflow bucket); prints, at each share of the slots, how many of the
// sources so far found no room. Seeded, so every run prints the same.
//   tsx scripts/rl-slots.ts [--slots N] [--seed N] [--rule-id N]
import { parseArgs } from 'node:util';
import { DEFAULT_RL_BUCKETS, POLICY_RULE_ID_BASE } from '../src/datapath/abi.js';
import { ReferenceLimiter } from '../src/ratelimit/reference.js';
import { rateConf } from '../src/ratelimit/model.js';
import { prng } from '../test/lib/prng.js';

const { values } = parseArgs({
  options: {
    slots: { type: 'string', default: String(DEFAULT_RL_BUCKETS) },
    seed: { type: 'string', default: '1' },
    'rule-id': { type: 'string', default: String(POLICY_RULE_ID_BASE + 1) },
  },
});
const slots = Number(values.slots);
const ruleId = Number(values['rule-id']);
const random = prng(Number(values.seed));
const conf = rateConf({ pps: 1000, bps: null, burst: null, per: 'source', prefixV4: null, prefixV6: null }, null);
const limiter = new ReferenceLimiter(slots);
const shares = [0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 1];
const seen = new Set<number>();
let overflowed = 0;
let next = 0;

console.log(`${slots.toLocaleString('en-US')} slots, rule id ${ruleId}, seed ${values.seed}`);
for (const share of shares) {
  for (; next < Math.round(share * slots); next++) {
    let addr: number;
    do addr = Math.floor(random() * 2 ** 32);
    while (seen.has(addr));
    seen.add(addr);
    const src = Uint8Array.of(addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255);
    if (limiter.check(ruleId, conf, { family: 4, src, len: 64 }, 0n).bucket === 'shared') overflowed++;
  }
  console.log(`${next.toLocaleString('en-US')} sources (${share} of the slots): ${overflowed.toLocaleString('en-US')} overflowed (${((100 * overflowed) / next).toFixed(2)}%)`);
}
