// Bounded paced UDP sender for rate-limit tests: sends PPS datagrams per
// second for SECONDS from BIND_ADDR:SRC_PORT to ADDR:PORT (SIZE payload
// bytes), catching up on late timers so the offered rate holds on a busy
// machine, then prints {"sent","elapsedMs","perSecond"} (datagrams handed to
// the kernel in each second since the first) as JSON. At most 100,000.
// Usage: node udp-rate.mjs BIND_ADDR ADDR PORT SRC_PORT PPS SECONDS SIZE
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [bindAddress, address, ...numbers] = process.argv.slice(2);
const [port, srcPort, pps, seconds, size] = numbers.map(Number);
if (!bindAddress || !address || numbers.length !== 5 || [port, srcPort, pps, seconds, size].some((n) => !Number.isInteger(n) || n < 0)) {
  console.error('usage: udp-rate.mjs BIND_ADDR ADDR PORT SRC_PORT PPS SECONDS SIZE');
  process.exit(2);
}
const total = pps * seconds;
if (total > 100_000) {
  console.error('refusing to send more than 100000 datagrams');
  process.exit(2);
}

const socket = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
const payload = Buffer.alloc(size, 0x72);
const perSecond = [];
let sent = 0;
let queued = 0;
let start = 0n;

const elapsedMs = () => Number(process.hrtime.bigint() - start) / 1e6;

function finish() {
  console.log(JSON.stringify({ sent, elapsedMs: Math.round(elapsedMs()), perSecond }));
  process.exit(0);
}

socket.on('error', (error) => {
  console.error(error.message);
  process.exit(1);
});

function tick() {
  const due = Math.min(total, Math.floor((elapsedMs() * pps) / 1000));
  // at most 200 in flight: the socket's callbacks say when the kernel took them
  while (queued < due && queued - sent < 200) {
    queued++;
    socket.send(payload, port, address, (error) => {
      if (error) {
        console.error(error.message);
        process.exit(1);
      }
      const second = Math.floor(elapsedMs() / 1000);
      perSecond[second] = (perSecond[second] ?? 0) + 1;
      sent++;
      if (sent === total) finish();
    });
  }
  if (queued < total) setTimeout(tick, 1);
}

socket.bind(srcPort, bindAddress, () => {
  start = process.hrtime.bigint();
  tick();
});
