// TCP listener for the lab: accepts on every port given and answers "ok".
// Usage: node tcp-listen.mjs LIFETIME_MS PORT...
// Prints "ready" once every port is bound; exits by itself after LIFETIME_MS.
import { createServer } from 'node:net';

const [lifetimeMs, ...ports] = process.argv.slice(2).map(Number);
if (!lifetimeMs || ports.length === 0) {
  console.error('usage: tcp-listen.mjs LIFETIME_MS PORT...');
  process.exit(2);
}
let bound = 0;
for (const port of ports) {
  const server = createServer((socket) => socket.end('ok\n'));
  server.on('error', (error) => {
    console.error(error.message);
    process.exit(1);
  });
  server.listen({ port, host: '::', ipv6Only: false }, () => {
    if (++bound === ports.length) console.log('ready');
  });
}
setTimeout(() => process.exit(0), lifetimeMs).unref();
process.on('SIGTERM', () => process.exit(0));
