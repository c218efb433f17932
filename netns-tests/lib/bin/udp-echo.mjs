// UDP responder for the lab: answers every datagram with a reply of a fixed
// size, so the two directions of a flow carry different, known byte counts.
// Usage: node udp-echo.mjs PORT REPLY_SIZE LIFETIME_MS
// Prints "ready" once bound; exits by itself after LIFETIME_MS.
import { createSocket } from 'node:dgram';

const [port, replySize, lifetimeMs] = process.argv.slice(2).map(Number);
if (!port || replySize === undefined || !lifetimeMs) {
  console.error('usage: udp-echo.mjs PORT REPLY_SIZE LIFETIME_MS');
  process.exit(2);
}

const reply = Buffer.alloc(replySize, 0x72);
const socket = createSocket({ type: 'udp6', ipv6Only: false });
socket.on('message', (_message, peer) => socket.send(reply, peer.port, peer.address));
socket.on('error', (error) => {
  console.error(error.message);
  process.exit(1);
});
socket.bind(port, '::', () => console.log('ready'));
setTimeout(() => process.exit(0), lifetimeMs).unref();
process.on('SIGTERM', () => process.exit(0));
