// npx tsx bench/lists-1m.ts [COUNT]: a 1M-entry named list replaced through
// the API (PUT text/plain via inject: parse, store, diff, kernel) against the
// raw bpf_map_update_batch of the same prefixes into an LPM trie, in one run
// on one firewall. Realistic blocklist shape (REALISTIC_V4: 90% /32, 7% /24,
// the rest /12../23 and /25../31). Prints the figures and the ratio
// (target: the API replace <= 3x the raw batch). Needs root.
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { buildApp } from '../api/app.js';
import { openTestFirewall } from '../test/lib/firewall.js';
import { REALISTIC_V4, denyValues, generateV4, v4Cidr, v4Keys } from './lib/prefixes.js';

const count = Number(process.argv[2] ?? 1_000_000);
const first = generateV4(count, 20261202, 2048, REALISTIC_V4);
const second = generateV4(count, 20261203, 2048, REALISTIC_V4);
const text = (p: typeof first) => {
  const lines: string[] = ['# bench list'];
  for (let i = 0; i < p.count; i++) lines.push(v4Cidr(p, i));
  return `${lines.join('\n')}\n`;
};
const bodyA = text(first);
const bodyB = text(second);
const firewall = await openTestFirewall({ cidrV4: 2 * count + 1024, cidrV6: 1024, flows: 1024 });
const app = await buildApp({ firewall, bodyLimitBytes: 1 << 20 });
try {
  const trie = firewall.datapath.maps.srcV4;
  const keys = v4Keys(first, 0, count);
  const values = denyValues(1, count);
  let t = performance.now();
  await trie.updateBatch(keys, values, count);
  const raw = performance.now() - t;
  await trie.deleteBatch(keys, count);

  const put = async (body: string) => {
    const start = performance.now();
    const res = await app.inject({ method: 'PUT', url: '/v1/lists/bench', headers: { 'content-type': 'text/plain' }, payload: body });
    if (res.statusCode !== 200) throw new Error(res.body);
    return performance.now() - start;
  };
  const create = await put(bodyA);
  const replace = await put(bodyB);
  const same = await put(bodyB);
  t = performance.now();
  await firewall.lists.delete('bench');
  const remove = performance.now() - t;
  const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`entries ${count} (REALISTIC_V4), body ${(bodyA.length / 1e6).toFixed(1)} MB, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`raw bpf_map_update_batch into the LPM trie: ${f(raw)}`);
  console.log(`PUT /v1/lists/bench (new list):             ${f(create)}  ratio ${(create / raw).toFixed(2)}x`);
  console.log(`PUT /v1/lists/bench (replace by another 1M): ${f(replace)}  ratio ${(replace / raw).toFixed(2)}x`);
  console.log(`PUT /v1/lists/bench (same entries again):    ${f(same)}  ratio ${(same / raw).toFixed(2)}x`);
  console.log(`DELETE the list:                             ${f(remove)}`);
  console.log(`target <= 3x: ${create / raw <= 3 && replace / raw <= 3 ? 'PASS' : 'MISS'}`);
} finally {
  await app.close();
  firewall.close();
}
