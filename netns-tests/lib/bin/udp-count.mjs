// UDP sink for rate-limit tests: counts datagrams arriving on PORT per source
// address, in one-second bins from the first datagram of any source. Prints
// "ready" once bound; on SIGTERM (or after LIFETIME_MS) prints
// {"sources": {ADDR: {"total", "perSecond": [...]}}} as JSON and exits.
// Usage: node udp-count.mjs PORT LIFETIME_MS
import { createSocket } from 'node:dgram';

const [port, lifetimeMs] = process.argv.slice(2).map(Number);
if (!Number.isInteger(port) || !Number.isInteger(lifetimeMs)) {
  console.error('usage: udp-count.mjs PORT LIFETIME_MS');
  process.exit(2);
}
const sources = {};
let first = 0n;
const socket = createSocket({ type: 'udp6', ipv6Only: false, recvBufferSize: 4 << 20 });

function finish() {
  console.log(JSON.stringify({ sources }));
  process.exit(0);
}

socket.on('message', (_message, rinfo) => {
  const now = process.hrtime.bigint();
  if (first === 0n) first = now;
  const addr = rinfo.address.replace(/^::ffff:/, '');
  const source = (sources[addr] ??= { total: 0, perSecond: [] });
  const second = Number((now - first) / 1_000_000_000n);
  source.perSecond[second] = (source.perSecond[second] ?? 0) + 1;
  source.total++;
});
socket.on('error', (error) => {
  console.error(error.message);
  process.exit(1);
});
process.on('SIGTERM', finish);
setTimeout(finish, lifetimeMs);
socket.bind(port, '::', () => console.log('ready'));
